/* ledger.c - the journal of commands worked by the daemon (see ledger.h).
 *
 * Memory: a ring of `keep` entries in the order commands were first seen;
 * lookups search it from the newest (commands are rare, a few thousand
 * string compares cost microseconds).
 */
#include "svc-daemon/ledger.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/err.h"
#include "common/fs.h"
#include "common/log.h"

#define LEDGER_KEEP_DEFAULT 1024 /* 288 KiB at most; a redelivery is of the newest */
#define LEDGER_FILE_MAX     (64u * 1024 * 1024)

typedef struct slot {
    char id[DAEMON_LEDGER_ID_MAX];
    daemon_ledger_entry e;
} slot;

struct daemon_ledger {
    char *path;
    int fd;
    slot *ring;
    int keep;
    int count; /* slots in use, at most keep */
    int next;  /* where the next new id goes */
    long lines; /* in the journal file */
};

static int id_valid(const char *id)
{
    size_t i, n = id != NULL ? strlen(id) : 0;

    if (n == 0 || n >= DAEMON_LEDGER_ID_MAX)
        return 0;
    for (i = 0; i < n; i++) {
        if (id[i] <= ' ' || id[i] > '~')
            return 0;
    }
    return 1;
}

static slot *find(const daemon_ledger *l, const char *id)
{
    int i, k;

    for (i = 0; i < l->count; i++) {
        k = (l->next - 1 - i + l->keep) % l->keep;
        if (strcmp(l->ring[k].id, id) == 0)
            return &l->ring[k];
    }
    return NULL;
}

/* The slot of id, taking the oldest one when id is new. */
static slot *find_or_add(daemon_ledger *l, const char *id)
{
    slot *s = find(l, id);

    if (s != NULL)
        return s;
    s = &l->ring[l->next];
    l->next = (l->next + 1) % l->keep;
    if (l->count < l->keep)
        l->count++;
    memset(s, 0, sizeof(*s));
    snprintf(s->id, sizeof(s->id), "%s", id);
    return s;
}

/* Applies one journal line (without its newline); bad lines are skipped. */
static void replay_line(daemon_ledger *l, char *line)
{
    char *kind = strtok(line, " ");
    char *id = strtok(NULL, " ");
    char *arg = strtok(NULL, " ");
    char *rest = strtok(NULL, "");
    slot *s;

    if (kind == NULL || id == NULL || arg == NULL || !id_valid(id))
        return;
    if (strcmp(kind, "B") == 0) {
        s = find_or_add(l, id);
        if (s->e.state == LEDGER_NEW) {
            s->e.state = LEDGER_BEGUN;
            s->e.begun_ms = strtoll(arg, NULL, 10);
        }
    } else if (strcmp(kind, "D") == 0) {
        s = find_or_add(l, id);
        s->e.state = LEDGER_DONE;
        s->e.code = (int)strtol(arg, NULL, 10);
        snprintf(s->e.message, sizeof(s->e.message), "%s",
                 rest != NULL ? rest : "");
    }
}

static int replay(daemon_ledger *l)
{
    char *text = NULL, *p, *nl;
    size_t len = 0;
    int rc;

    rc = fs_read_file(l->path, LEDGER_FILE_MAX, &text, &len);
    if (rc == BERTH_ENOENT)
        return 0;
    if (rc != 0)
        return rc;
    for (p = text; (nl = strchr(p, '\n')) != NULL; p = nl + 1) {
        *nl = '\0';
        replay_line(l, p);
        l->lines++;
    }
    /* A last line without its newline was torn by a crash: ignored. */
    free(text);
    return 0;
}

/* Writes line (with its newline) and makes it durable. */
static int append(daemon_ledger *l, const char *line)
{
    size_t n = strlen(line), off = 0;
    ssize_t w;

    while (off < n) {
        w = write(l->fd, line + off, n - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0) {
            log_error("command ledger write failed", "path=%s error=%s",
                      l->path, strerror(errno));
            return BERTH_EIO;
        }
        off += (size_t)w;
    }
    if (fdatasync(l->fd) != 0) {
        log_error("command ledger sync failed", "path=%s error=%s", l->path,
                  strerror(errno));
        return BERTH_EIO;
    }
    l->lines++;
    return 0;
}

static void format_slot(buf *b, const slot *s)
{
    if (s->e.state == LEDGER_NEW)
        return;
    buf_printf(b, "B %s %lld\n", s->id, (long long)s->e.begun_ms);
    if (s->e.state == LEDGER_DONE)
        buf_printf(b, "D %s %d %s\n", s->id, s->e.code, s->e.message);
}

/* Rewrites the journal with what is remembered, oldest first. */
static int compact(daemon_ledger *l)
{
    buf b;
    int i, fd, rc;

    buf_init(&b, LEDGER_FILE_MAX);
    for (i = 0; i < l->count; i++)
        format_slot(&b, &l->ring[(l->next - l->count + i + l->keep) % l->keep]);
    rc = fs_write_atomic(l->path, b.data != NULL ? b.data : "", b.len, 0600);
    if (rc == 0) {
        fd = open(l->path, O_WRONLY | O_APPEND | O_CLOEXEC);
        if (fd < 0) {
            rc = BERTH_EIO;
        } else {
            close(l->fd);
            l->fd = fd;
            l->lines = 2L * l->count;
        }
    }
    buf_free(&b);
    return rc;
}

int daemon_ledger_open(const char *path, int keep, daemon_ledger **out)
{
    daemon_ledger *l;
    int rc;

    *out = NULL;
    l = calloc(1, sizeof(*l));
    if (l == NULL)
        return BERTH_ENOMEM;
    l->fd = -1;
    l->keep = keep > 0 ? keep : LEDGER_KEEP_DEFAULT;
    l->path = strdup(path);
    l->ring = calloc((size_t)l->keep, sizeof(slot));
    if (l->path == NULL || l->ring == NULL) {
        rc = BERTH_ENOMEM;
        goto out;
    }
    rc = replay(l);
    if (rc != 0)
        goto out;
    l->fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (l->fd < 0) {
        log_error("command ledger open failed", "path=%s error=%s", path,
                  strerror(errno));
        rc = berth_err_from_errno(errno);
        goto out;
    }
    /* A journal cut off mid-line gets its newline back, so the next line
     * starts clean. */
    if (l->lines > 0 || lseek(l->fd, 0, SEEK_END) > 0)
        rc = compact(l);
    if (rc != 0)
        goto out;
    *out = l;
    l = NULL;
out:
    daemon_ledger_close(l);
    return rc;
}

void daemon_ledger_close(daemon_ledger *l)
{
    if (l == NULL)
        return;
    if (l->fd >= 0)
        close(l->fd);
    free(l->ring);
    free(l->path);
    free(l);
}

void daemon_ledger_get(const daemon_ledger *l, const char *id,
                       daemon_ledger_entry *e)
{
    const slot *s = id_valid(id) ? find(l, id) : NULL;

    if (s != NULL)
        *e = s->e;
    else
        memset(e, 0, sizeof(*e));
}

int daemon_ledger_begin(daemon_ledger *l, const char *id, int64_t now_ms)
{
    char line[DAEMON_LEDGER_ID_MAX + 40];
    slot *s;

    if (!id_valid(id))
        return BERTH_EINVAL;
    s = find_or_add(l, id);
    if (s->e.state != LEDGER_NEW)
        return 0;
    s->e.state = LEDGER_BEGUN;
    s->e.begun_ms = now_ms;
    snprintf(line, sizeof(line), "B %s %lld\n", id, (long long)now_ms);
    return append(l, line);
}

int daemon_ledger_done(daemon_ledger *l, const char *id, int code,
                       const char *message)
{
    char line[DAEMON_LEDGER_ID_MAX + DAEMON_LEDGER_MSG_MAX + 32];
    slot *s;
    char *p;
    int rc;

    if (!id_valid(id))
        return BERTH_EINVAL;
    s = find_or_add(l, id);
    if (s->e.state == LEDGER_NEW)
        s->e.begun_ms = 0;
    s->e.state = LEDGER_DONE;
    s->e.code = code;
    snprintf(s->e.message, sizeof(s->e.message), "%s",
             message != NULL ? message : "");
    for (p = s->e.message; *p != '\0'; p++) {
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    }
    snprintf(line, sizeof(line), "D %s %d %s\n", id, code, s->e.message);
    rc = append(l, line);
    if (rc == 0 && l->lines > 4L * l->keep)
        rc = compact(l);
    return rc;
}
