/* static.c - the web UI and the Debian front-end libraries, served from
 * disk with ETags (see static.h).
 */
#include "svc-panel/static.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "common/err.h"

#define STATIC_PATH_MAX 512 /* longest request path below a root */

/* The libraries under /vendor/<name>/, relative to BERTH_UI_VENDOR_DIR:
 * what Debian's node-xterm and node-chart.js install there. Their files
 * may be links into the matching libjs-* package (/usr/share/javascript),
 * the only other place a file may resolve to. */
static const struct vendor {
    const char *name;
    const char *dir;
    const char *also; /* absolute; NULL: none */
} vendors[] = {
    {"xterm", "xterm/lib", "/usr/share/javascript/xterm"},
    {"chart.js", "chart.js/dist", "/usr/share/javascript/chart.js"},
};

/* The extensions served and their content types; anything else is 404. */
static const struct ctype {
    const char *ext;
    const char *type;
} ctypes[] = {
    {".html", "text/html; charset=utf-8"},
    {".js", "text/javascript; charset=utf-8"},
    {".mjs", "text/javascript; charset=utf-8"},
    {".css", "text/css; charset=utf-8"},
    {".json", "application/json; charset=utf-8"},
    {".map", "application/json; charset=utf-8"},
    {".svg", "image/svg+xml"},
    {".png", "image/png"},
    {".ico", "image/x-icon"},
    {".woff2", "font/woff2"},
    {".txt", "text/plain; charset=utf-8"},
};

enum cache_kind { CACHE_UI, CACHE_VENDOR };

/* The page's policy: scripts and styles from the panel only (xterm's
 * CommonJS modules are evaluated by ui/js/cjs.js, hence 'unsafe-eval';
 * xterm sets inline styles); connections anywhere, since consoles and
 * files go straight to the daemons. */
static const char csp[] =
    "default-src 'self'; script-src 'self' 'unsafe-eval'; "
    "style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
    "connect-src *; frame-ancestors 'none'; base-uri 'none'; "
    "form-action 'self'";

static const char *ctype_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    const char *dot = strrchr(slash != NULL ? slash : path, '.');
    size_t i;

    if (dot == NULL)
        return NULL;
    for (i = 0; i < sizeof(ctypes) / sizeof(ctypes[0]); i++) {
        if (strcasecmp(dot, ctypes[i].ext) == 0)
            return ctypes[i].type;
    }
    return NULL;
}

/* Returns 1 when rel (below a root, without the leading slash) is a path
 * we may look up: non-empty segments not starting with '.', no backslash,
 * no control characters, not too long. */
static int rel_ok(const char *rel)
{
    const char *s = rel;
    size_t n = strlen(rel);

    if (n == 0 || n > STATIC_PATH_MAX)
        return 0;
    for (; *s; s++) {
        if ((unsigned char)*s < 0x20 || *s == 0x7f || *s == '\\')
            return 0;
    }
    for (s = rel;;) {
        const char *end = strchr(s, '/');

        if (end == s || s[0] == '.')
            return 0;
        if (end == NULL)
            return 1;
        s = end + 1;
    }
}

/* Returns 1 when the If-None-Match list names etag (weak comparison). */
static int etag_matches(const char *inm, const char *etag)
{
    const char *bare = strncmp(etag, "W/", 2) == 0 ? etag + 2 : etag;
    size_t blen = strlen(bare);
    const char *s = inm;

    while (s != NULL && *s) {
        const char *end;
        size_t len;

        while (*s == ' ' || *s == '\t' || *s == ',')
            s++;
        if (*s == '*')
            return 1;
        if (strncmp(s, "W/", 2) == 0)
            s += 2;
        end = strchr(s, ',');
        len = end != NULL ? (size_t)(end - s) : strlen(s);
        while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t'))
            len--;
        if (len == blen && memcmp(s, bare, len) == 0)
            return 1;
        s = end;
    }
    return 0;
}

/* Returns 1 when the real path real lies under the directory dir (whose
 * real path is taken here). */
static int under(const char *real, const char *dir)
{
    char real_dir[PATH_MAX];
    size_t n;

    if (dir == NULL || realpath(dir, real_dir) == NULL)
        return 0;
    n = strlen(real_dir);
    return strncmp(real, real_dir, n) == 0 && real[n] == '/';
}

/* Answers rel under root: the file (streamed), 304, or an error. The
 * file's real path must lie under root or, when not NULL, under also. */
static void serve(http_req *req, http_resp *resp, const char *root,
                  const char *also, const char *rel, enum cache_kind kind)
{
    char want[PATH_MAX], real_root[PATH_MAX], real[PATH_MAX], etag[96];
    const char *type = ctype_of(rel);
    struct stat st;

    if (!rel_ok(rel) || type == NULL) {
        http_error(resp, 404, BERTH_ENOENT, "no such file");
        return;
    }
    if (realpath(root, real_root) == NULL) {
        http_error(resp, 503, BERTH_EUNAVAIL, "the %s directory %s is missing",
                   kind == CACHE_UI ? "UI" : "library", root);
        return;
    }
    if ((size_t)snprintf(want, sizeof(want), "%s/%s", real_root, rel) >=
            sizeof(want) ||
        realpath(want, real) == NULL || stat(real, &st) != 0 ||
        !S_ISREG(st.st_mode)) {
        http_error(resp, 404, BERTH_ENOENT, "no such file");
        return;
    }
    if (!under(real, real_root) && !under(real, also)) {
        http_error(resp, 404, BERTH_ENOENT, "no such file");
        return;
    }
    snprintf(etag, sizeof(etag), "W/\"%llx-%llx-%llx\"",
             (unsigned long long)st.st_ino, (unsigned long long)st.st_size,
             (unsigned long long)st.st_mtim.tv_sec * 1000000000ull +
                 (unsigned long long)st.st_mtim.tv_nsec);
    http_header(resp, "ETag", etag);
    http_header(resp, "Cache-Control",
                kind == CACHE_UI ? "no-cache" : "public, max-age=86400");
    http_header(resp, "X-Content-Type-Options", "nosniff");
    if (strncmp(type, "text/html", 9) == 0) {
        http_header(resp, "Content-Security-Policy", csp);
        http_header(resp, "Referrer-Policy", "no-referrer");
    }
    if (req->if_none_match != NULL && etag_matches(req->if_none_match, etag)) {
        resp->status = 304;
        return;
    }
    resp->status = 200;
    resp->content_type = type;
    resp->file_path = strdup(real);
    if (resp->file_path == NULL)
        http_error(resp, 500, BERTH_ENOMEM, "out of memory");
}

static const char *ui_dir(panel *p)
{
    const char *d = config_str(p->svc.cfg, "BERTH_UI_DIR");

    return d != NULL && d[0] ? d : "ui";
}

void static_index(panel *p, http_req *req, http_resp *resp)
{
    serve(req, resp, ui_dir(p), NULL, "index.html", CACHE_UI);
}

void static_ui(panel *p, http_req *req, http_resp *resp)
{
    serve(req, resp, ui_dir(p), NULL, req->params[0], CACHE_UI);
}

void static_vendor(panel *p, http_req *req, http_resp *resp)
{
    const char *base = config_str(p->svc.cfg, "BERTH_UI_VENDOR_DIR");
    char root[PATH_MAX];
    size_t i;

    if (base == NULL || base[0] == '\0')
        base = "/usr/share/nodejs";
    for (i = 0; i < sizeof(vendors) / sizeof(vendors[0]); i++) {
        if (strcmp(req->params[0], vendors[i].name) != 0)
            continue;
        snprintf(root, sizeof(root), "%s/%s", base, vendors[i].dir);
        serve(req, resp, root, vendors[i].also, req->params[1],
              CACHE_VENDOR);
        return;
    }
    http_error(resp, 404, BERTH_ENOENT, "no such library");
}
