/* ledger.h - the daemon's record of the commands it has worked, so a
 * command delivered twice (JetStream redelivers what was not acknowledged,
 * e.g. after the daemon was killed) takes effect once.
 *
 *   daemon_ledger *l;
 *   daemon_ledger_entry e;
 *
 *   rc = daemon_ledger_open("<data dir>/commands.log", 1024, &l);
 *   daemon_ledger_get(l, id, &e);          LEDGER_NEW, _BEGUN or _DONE
 *   rc = daemon_ledger_begin(l, id, now);  before the first effect
 *   ...                                    the command's effects
 *   rc = daemon_ledger_done(l, id, rc, message);
 *   daemon_ledger_close(l);
 *
 * The file is a text journal of lines "B <id> <wall ms>" and
 * "D <id> <code> <message>", each written with fdatasync() before the call
 * returns, and read back at open (a torn last line is ignored). The newest
 * `keep` commands are remembered; when the journal holds four times that
 * many lines it is rewritten (atomically) with only those.
 *
 * A command found BEGUN was interrupted between its first effect and its
 * result: the caller redoes it in a way that checks what already happened
 * (begun_ms tells since when).
 *
 * Not thread safe: one thread (the command worker) uses a ledger.
 */
#ifndef BERTH_DAEMON_LEDGER_H
#define BERTH_DAEMON_LEDGER_H

#include <stdint.h>

#define DAEMON_LEDGER_ID_MAX 64 /* ids are UUIDs; bus tokens up to 63 */
#define DAEMON_LEDGER_MSG_MAX 200

typedef enum daemon_ledger_state {
    LEDGER_NEW = 0, /* never seen (or forgotten long ago) */
    LEDGER_BEGUN,
    LEDGER_DONE,
} daemon_ledger_state;

typedef struct daemon_ledger_entry {
    daemon_ledger_state state;
    int64_t begun_ms; /* wall time of begin */
    int code;         /* DONE: 0 or the berth code it failed with */
    char message[DAEMON_LEDGER_MSG_MAX];
} daemon_ledger_entry;

typedef struct daemon_ledger daemon_ledger;

/* Opens (creating, 0600) and reads the journal at path, remembering at
 * most keep commands (0: 1024). Returns 0 and *out, or a berth code. */
int daemon_ledger_open(const char *path, int keep, daemon_ledger **out);

void daemon_ledger_close(daemon_ledger *l);

/* Fills e with what is known of id (state LEDGER_NEW when nothing). */
void daemon_ledger_get(const daemon_ledger *l, const char *id,
                       daemon_ledger_entry *e);

/* Records that id starts now (wall ms). Returns 0, BERTH_EINVAL for an
 * id that is not 1..63 printable characters without spaces, or
 * BERTH_EIO when the journal cannot be written. */
int daemon_ledger_begin(daemon_ledger *l, const char *id, int64_t now_ms);

/* Records id's outcome: code 0 or a berth code, message (may be NULL) a
 * sentence for the failure (newlines become spaces). */
int daemon_ledger_done(daemon_ledger *l, const char *id, int code,
                       const char *message);

#endif
