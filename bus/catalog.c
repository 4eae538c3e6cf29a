/* catalog.c - the subject catalog table and subject matching. */
#include "catalog.h"

#include <pthread.h>
#include <string.h>

#include "common/err.h"
#include "common.pb-c.h"
#include "console.pb-c.h"
#include "node.pb-c.h"
#include "route.pb-c.h"
#include "shell.pb-c.h"
#include "site.pb-c.h"

#define T(name) (&berth__v1__##name##__descriptor)

/* clang-format off */
const bus_subject bus_catalog[] = {
    /* User-level site operations, answered by the panel. */
    {"site.create", BUS_REQUEST, T(site_create_request), T(site_reply),
     "any", "panel", NULL, "create a site; the panel places it on a node"},
    {"site.power", BUS_REQUEST, T(site_power), T(site_reply),
     "any", "panel", NULL, "start, stop, restart or kill a site"},
    {"site.delete", BUS_REQUEST, T(site_delete), T(ack),
     "any", "panel", NULL, "delete a site"},

    /* Durable commands to one node's daemon. */
    {"site.create.{node}", BUS_COMMAND, T(site_create), NULL,
     "panel", "daemon", "COMMANDS", "create (and start) a site on a node"},
    {"site.power.{node}", BUS_COMMAND, T(site_power), NULL,
     "panel", "daemon", "COMMANDS", "power action for a site on a node"},
    {"site.delete.{node}", BUS_COMMAND, T(site_delete), NULL,
     "panel", "daemon", "COMMANDS", "delete a site's container (and data)"},

    /* Events, kept in JetStream for replay. */
    {"site.status.{node}.{site}", BUS_EVENT, T(site_status), NULL,
     "daemon", "panel, daemon", "EVENTS", "a site's state changed"},
    {"command.result.{node}", BUS_EVENT, T(command_result), NULL,
     "daemon", "panel", "EVENTS", "a durable command finished or failed"},
    {"node.online.{node}", BUS_EVENT, T(node_online), NULL,
     "panel", "any", "EVENTS", "a node came online or went offline"},
    {"access.revoked.{user}", BUS_EVENT, T(access_revoked), NULL,
     "panel", "shell, daemon", "EVENTS",
     "a user lost access (user \"all\": everyone on the site); open "
     "sessions close"},
    {"cert.status.{domain...}", BUS_EVENT, T(cert_status), NULL,
     "edge", "panel", "CERTS", "certificate state of a domain"},
    {"route.set.{site}", BUS_EVENT, T(route_set), NULL,
     "panel", "edge", "ROUTES", "a site's domains and upstream"},
    {"route.del.{site}", BUS_EVENT, T(route_del), NULL,
     "panel", "edge", "ROUTES", "a site's routes are gone"},

    /* Telemetry: core NATS, not kept. */
    {"node.heartbeat.{node}", BUS_TELEMETRY, T(node_heartbeat), NULL,
     "daemon", "panel", NULL, "a daemon is alive"},
    {"node.stats.{node}", BUS_TELEMETRY, T(node_stats), NULL,
     "daemon", "panel", NULL, "node CPU, memory, disk and load"},
    {"container.stats.{node}.{site}", BUS_TELEMETRY, T(container_stats), NULL,
     "daemon", "panel, daemon", NULL, "a site's resource use, 1 Hz"},
    {"site.pull.{node}.{site}", BUS_TELEMETRY, T(image_pull), NULL,
     "daemon", "panel", NULL, "image pull progress"},

    /* Streams of bytes. */
    {"console.out.{node}.{site}", BUS_STREAM, T(console_chunk), NULL,
     "daemon", "panel", NULL, "console output of a site"},
    {"console.in.{node}.{site}", BUS_STREAM, T(console_input), NULL,
     "panel", "daemon", NULL, "console input for a site"},
    {"shell.in.{node}.{session}", BUS_STREAM, T(shell_data), NULL,
     "shell", "daemon", NULL, "bytes from an SSH client to a process"},
    {"shell.out.{node}.{session}", BUS_STREAM, T(shell_data), NULL,
     "daemon", "shell", NULL, "bytes from a process to an SSH client"},
    {"shell.resize.{node}.{session}", BUS_STREAM, T(shell_resize), NULL,
     "shell", "daemon", NULL, "terminal size of a session"},
    {"shell.exit.{node}.{session}", BUS_STREAM, T(shell_exit), NULL,
     "daemon, shell", "shell, daemon", NULL,
     "a session's process exited (daemon), or end it (shell)"},

    /* Requests. */
    {"node.register.{node}", BUS_REQUEST, T(node_register), T(node_registered),
     "daemon", "panel", NULL, "a daemon announces itself and its specs"},
    {"node.sync.{node}", BUS_REQUEST, T(node_sync_request), T(node_sync_reply),
     "daemon", "panel", NULL, "desired state of a node"},
    {"console.replay.{node}.{site}", BUS_REQUEST, T(console_replay_request),
     T(console_replay), "any", "daemon", NULL, "recent console output"},
    {"route.list", BUS_REQUEST, T(route_list_request), T(route_list),
     "edge", "panel", NULL, "every route, to heal missed events"},
    {"shell.auth", BUS_REQUEST, T(shell_auth_request), T(shell_auth_reply),
     "shell", "panel", NULL, "check an SSH login; returns reachable sites"},
    {"shell.open.{node}", BUS_REQUEST, T(shell_open), T(shell_opened),
     "shell", "daemon", NULL, "start a process in a site's container"},
    {"files.op.{node}", BUS_REQUEST, T(file_request), T(file_reply),
     "shell", "daemon", NULL, "one file operation in a site's directory"},
    {"panel.pubkey", BUS_REQUEST, T(empty), T(panel_pubkey),
     "daemon", "panel", NULL, "the panel's token-signing public key"},
    {"sys.echo.{service}", BUS_REQUEST, T(echo), T(echo),
     "any", "every service", NULL, "returns the request; a bus health probe"},

    {NULL, 0, NULL, NULL, NULL, NULL, NULL, NULL},
};
/* clang-format on */

#define MAX_TOKENS 32
#define CATALOG_MAX 128

_Static_assert(sizeof(bus_catalog) / sizeof(bus_catalog[0]) <= CATALOG_MAX,
               "raise CATALOG_MAX");

/* Splits s at dots into toks (pointers into s, with lengths). Returns the
 * number of tokens, or -1 when there are too many or an empty token. */
static int tokenize_as(const char *s, const char **toks, size_t *lens,
                       int patterns)
{
    int n = 0;

    if (*s == '\0')
        return -1;
    for (;;) {
        /* A placeholder may hold dots ("{domain...}"): skip to its end. */
        const char *end = patterns && *s == '{' ? strchr(s, '}') : NULL;
        const char *dot = strchr(end ? end : s, '.');
        size_t len = dot ? (size_t)(dot - s) : strlen(s);

        if (len == 0 || n == MAX_TOKENS)
            return -1;
        toks[n] = s;
        lens[n] = len;
        n++;
        if (dot == NULL)
            return n;
        s = dot + 1;
    }
}

/* Patterns may hold "{name...}"; subjects and filters are plain tokens. */
static int tokenize(const char *pattern, const char **toks, size_t *lens)
{
    return tokenize_as(pattern, toks, lens, 1);
}

static int tokenize_subject(const char *s, const char **toks, size_t *lens)
{
    return tokenize_as(s, toks, lens, 0);
}

static int is_placeholder(const char *t, size_t len)
{
    return len >= 3 && t[0] == '{' && t[len - 1] == '}';
}

static int is_multi(const char *t, size_t len)
{
    return is_placeholder(t, len) && len >= 6 && memcmp(t + len - 4, "...}", 4) == 0;
}

static int tok_eq(const char *a, size_t alen, const char *b, size_t blen)
{
    return alen == blen && memcmp(a, b, alen) == 0;
}

/* The catalog's patterns, split into tokens once: finding a subject's
 * entry is on every message's path. */
struct compiled {
    const char *toks[MAX_TOKENS];
    size_t lens[MAX_TOKENS];
    unsigned char kind[MAX_TOKENS]; /* 0 literal, 1 {one}, 2 {many...} */
    int n;
};

static struct compiled compiled[CATALOG_MAX];
static pthread_once_t compiled_once = PTHREAD_ONCE_INIT;

static void compile_catalog(void)
{
    int e, i;

    for (e = 0; bus_catalog[e].pattern != NULL && e < CATALOG_MAX; e++) {
        struct compiled *c = &compiled[e];

        c->n = tokenize(bus_catalog[e].pattern, c->toks, c->lens);
        for (i = 0; i < c->n; i++) {
            c->kind[i] = is_multi(c->toks[i], c->lens[i])         ? 2
                         : is_placeholder(c->toks[i], c->lens[i]) ? 1
                                                                  : 0;
        }
    }
}

static int compiled_matches(const struct compiled *c, const char **st,
                            const size_t *sl, int ns)
{
    int i;

    if (c->n < 0)
        return 0;
    for (i = 0; i < c->n; i++) {
        if (c->kind[i] == 2)
            return ns > i;
        if (i >= ns)
            return 0;
        if (c->kind[i] == 0 && !tok_eq(c->toks[i], c->lens[i], st[i], sl[i]))
            return 0;
    }
    return c->n == ns;
}

const bus_subject *bus_catalog_find(const char *subject)
{
    const char *st[MAX_TOKENS];
    size_t sl[MAX_TOKENS];
    int ns;
    int e;

    if (subject == NULL || strpbrk(subject, "*> \t\r\n") != NULL)
        return NULL;
    ns = tokenize_subject(subject, st, sl);
    if (ns < 0)
        return NULL;
    pthread_once(&compiled_once, compile_catalog);
    for (e = 0; bus_catalog[e].pattern != NULL && e < CATALOG_MAX; e++) {
        if (compiled_matches(&compiled[e], st, sl, ns))
            return &bus_catalog[e];
    }
    return NULL;
}

/* Returns 1 when filter f (with * and >) and catalog pattern p share at
 * least one concrete subject. */
static int overlaps(const char **ft, const size_t *fl, int nf, const char **pt,
                    const size_t *pl, int np)
{
    int i;

    for (i = 0;; i++) {
        if (i == nf || i == np)
            return i == nf && i == np;
        if (tok_eq(ft[i], fl[i], ">", 1))
            return 1;
        if (is_multi(pt[i], pl[i]))
            return 1;
        if (tok_eq(ft[i], fl[i], "*", 1) || is_placeholder(pt[i], pl[i]))
            continue;
        if (!tok_eq(ft[i], fl[i], pt[i], pl[i]))
            return 0;
    }
}

int bus_catalog_check_filter(const char *filter)
{
    const char *ft[MAX_TOKENS], *pt[MAX_TOKENS];
    size_t fl[MAX_TOKENS], pl[MAX_TOKENS];
    const bus_subject *s;
    int nf;
    int i;

    if (filter == NULL)
        return BERTH_ESUBJECT;
    nf = tokenize_subject(filter, ft, fl);
    if (nf < 0)
        return BERTH_ESUBJECT;
    for (i = 0; i < nf; i++) {
        /* '>' only as the last token; wildcards only as whole tokens. */
        if (memchr(ft[i], '>', fl[i]) && (i != nf - 1 || fl[i] != 1))
            return BERTH_ESUBJECT;
        if (memchr(ft[i], '*', fl[i]) && fl[i] != 1)
            return BERTH_ESUBJECT;
    }
    for (s = bus_catalog; s->pattern != NULL; s++) {
        int np = tokenize(s->pattern, pt, pl);
        if (np > 0 && overlaps(ft, fl, nf, pt, pl, np))
            return 0;
    }
    return BERTH_ESUBJECT;
}

int bus_filter_matches(const char *filter, const char *subject)
{
    const char *ft[MAX_TOKENS], *st[MAX_TOKENS];
    size_t fl[MAX_TOKENS], sl[MAX_TOKENS];
    int nf, ns, i;

    if (filter == NULL || subject == NULL)
        return 0;
    nf = tokenize_subject(filter, ft, fl);
    ns = tokenize_subject(subject, st, sl);
    if (nf < 0 || ns < 0)
        return 0;
    for (i = 0; i < nf; i++) {
        if (tok_eq(ft[i], fl[i], ">", 1))
            return ns > i;
        if (i >= ns)
            return 0;
        if (!tok_eq(ft[i], fl[i], "*", 1) && !tok_eq(ft[i], fl[i], st[i], sl[i]))
            return 0;
    }
    return nf == ns;
}

int bus_catalog_bind(const bus_subject *s, const char *name, const char *value,
                     buf *out)
{
    const char *pt[MAX_TOKENS];
    size_t pl[MAX_TOKENS];
    size_t nlen = name ? strlen(name) : 0;
    int np = tokenize(s->pattern, pt, pl);
    int i;
    int rc = 0;

    if (np < 0)
        return BERTH_EINVAL;
    for (i = 0; i < np && rc == 0; i++) {
        if (i > 0)
            rc = buf_putc(out, '.');
        if (rc != 0)
            break;
        if (!is_placeholder(pt[i], pl[i])) {
            rc = buf_append(out, pt[i], pl[i]);
        } else if (name != NULL && pl[i] >= nlen + 2 &&
                   memcmp(pt[i] + 1, name, nlen) == 0 &&
                   (pt[i][nlen + 1] == '}' || pt[i][nlen + 1] == '.')) {
            rc = buf_puts(out, value);
        } else {
            rc = buf_puts(out, is_multi(pt[i], pl[i]) ? ">" : "*");
        }
    }
    return rc;
}

int bus_catalog_wildcard(const bus_subject *s, buf *out)
{
    return bus_catalog_bind(s, NULL, NULL, out);
}

int bus_token_valid(const char *value)
{
    size_t n;

    if (value == NULL)
        return 0;
    n = strlen(value);
    if (n == 0 || n > 128)
        return 0;
    for (; *value; value++) {
        unsigned char c = (unsigned char)*value;
        if (c <= ' ' || c == 0x7f || c == '.' || c == '*' || c == '>')
            return 0;
    }
    return 1;
}

int bus_subject_token(const char *subject, int idx, char *out, size_t size)
{
    const char *s = subject;
    size_t len;

    while (idx-- > 0) {
        s = strchr(s, '.');
        if (s == NULL)
            return BERTH_EINVAL;
        s++;
    }
    len = strcspn(s, ".");
    if (len == 0 || len >= size)
        return BERTH_EINVAL;
    memcpy(out, s, len);
    out[len] = '\0';
    return 0;
}

const char *bus_kind_name(enum bus_kind k)
{
    switch (k) {
    case BUS_COMMAND:
        return "command";
    case BUS_EVENT:
        return "event";
    case BUS_TELEMETRY:
        return "telemetry";
    case BUS_REQUEST:
        return "request";
    case BUS_STREAM:
        return "stream";
    }
    return "unknown";
}

int bus_catalog_markdown(buf *out)
{
    const bus_subject *s;
    int rc;

    rc = buf_puts(out,
                  "<!-- Generated by `berth-bus subjects --markdown` from "
                  "bus/catalog.c; do not edit. -->\n"
                  "# Bus subjects\n\n"
                  "Every subject berth publishes or subscribes to. `{name}` is "
                  "one subject token, `{name...}` one or more (a domain). "
                  "Messages are protobuf (`schemas/`); send "
                  "`Content-Type: application/json` to use the proto3 JSON "
                  "mapping instead.\n\n"
                  "| Subject | Kind | Message | Reply | Publisher | Subscriber "
                  "| Stream | Purpose |\n"
                  "|---|---|---|---|---|---|---|---|\n");
    for (s = bus_catalog; rc == 0 && s->pattern != NULL; s++) {
        rc = buf_printf(out, "| `%s` | %s | `%s` | %s%s%s | %s | %s | %s | %s |\n",
                        s->pattern, bus_kind_name(s->kind), s->type->name,
                        s->reply ? "`" : "", s->reply ? s->reply->name : "-",
                        s->reply ? "`" : "", s->publisher, s->subscriber,
                        s->stream ? s->stream : "-", s->summary);
    }
    return rc;
}
