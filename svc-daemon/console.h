/* console.h - the sites' consoles: container output to the bus, bus input
 * to the containers, and a replay buffer per site.
 *
 *   daemon_console *c;
 *
 *   rc = daemon_console_new(&(daemon_console_cfg){.bus = b, .node_id = id,
 *                                                 .sock_path = sock}, &c);
 *   rc = daemon_console_attach(c, site, container_id, tty);  before start
 *   ...                                    the container runs and prints
 *   daemon_console_notice(c, site, "site stopped (exit code %d)", 0);
 *   daemon_console_forget(c, site);        the site was deleted
 *   daemon_console_free(c);
 *
 * Output. Each attached container's output (Docker's attach stream on its
 * own unix-socket connection: multiplexed stdout/stderr frames, or the raw
 * stream of a TTY) is read by one console thread (epoll over every
 * connection, a bounded read per connection per turn so that no site can
 * starve the others) and published as ConsoleChunk on
 * console.out.<node>.<site>, with a per-site sequence number that grows by
 * one per chunk. What was read and not yet published waits in a per-site
 * backlog; chunks are coalesced from it up to chunk_bytes.
 *
 * Flow control. When the bus cannot take more (the NATS connection holds
 * more than out_buffered_max bytes not yet sent), chunks are not published
 * but keep coalescing in the backlog; when the backlog passes backlog_max,
 * its oldest bytes are dropped and counted. The next chunk published for
 * that site is preceded by a CONSOLE_STREAM_SYSTEM chunk saying how many
 * bytes were dropped ("[berth] 12345 bytes of output dropped"), which
 * carries the count in dropped_bytes. A chunk that the bus refuses counts
 * as dropped the same way. The container is never blocked by a slow bus,
 * the daemon never waits on it (short of nats.c itself writing a full
 * buffer to a slow socket), and nothing is dropped without that notice.
 * The bus is also "full" while disconnected: output then waits in the
 * backlog (its newest backlog_max bytes) until the connection is back.
 *
 * Replay. The last ring_bytes of what was published (output and notices)
 * of every site are kept in a ring, also after the container stopped;
 * console.replay.<node>.<site> (ConsoleReplayRequest -> ConsoleReplay)
 * returns them (at most max_bytes of the newest when given) with the
 * sequence number the next chunk will carry. The ring is written when a
 * chunk is published, so it holds exactly the chunks before next_seq: a
 * viewer that subscribes first, then asks, and skips live chunks with
 * seq < next_seq sees every byte once. A site never seen has an empty
 * console: empty data, next_seq 0 (not an error).
 *
 * Input. ConsoleInput on console.in.<node>.<site> (its site_id, when set,
 * must be the subject's) is written to the container's stdin through the
 * attach connection, raw, by the console thread (queued up to input_max
 * bytes while the container does not read; more is refused and logged).
 * daemon_console_write() does the same for the daemon itself (a site's
 * stop command).
 *
 * Watching in-process. The daemon's own viewers (the direct server's
 * console websockets) need not go through NATS: daemon_console_watch()
 * installs one function that sees every chunk at the moment it enters the
 * ring, with its sequence number, and daemon_console_replay() reads the
 * ring and next_seq the same way console.replay does. A viewer that starts
 * watching, then reads the replay, and skips chunks with seq < next_seq
 * sees every byte once.
 *
 * Threads: the console thread owns the connections and alone publishes;
 * every function here may be called from any thread. The bus has no
 * unsubscribe, so its handlers outlive the console: after
 * daemon_console_free() they ignore what still arrives.
 */
#ifndef BERTH_DAEMON_CONSOLE_H
#define BERTH_DAEMON_CONSOLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bus/bus.h"

#define DAEMON_CONSOLE_RING_DEFAULT    (64u * 1024)
#define DAEMON_CONSOLE_CHUNK_DEFAULT   (16u * 1024)
#define DAEMON_CONSOLE_BACKLOG_DEFAULT (1024u * 1024)

typedef struct daemon_console daemon_console;

/* Sizes are per site; larger values than the limits in brackets are
 * lowered to them. The strings are copied. */
typedef struct daemon_console_cfg {
    bus *bus;
    const char *node_id;     /* a subject token */
    const char *sock_path;   /* Docker's socket; NULL: the default */
    size_t ring_bytes;       /* 0: DAEMON_CONSOLE_RING_DEFAULT [64 MiB] */
    size_t chunk_bytes;      /* 0: DAEMON_CONSOLE_CHUNK_DEFAULT [512 KiB] */
    size_t backlog_max;      /* 0: DAEMON_CONSOLE_BACKLOG_DEFAULT [1 GiB] */
    size_t out_buffered_max; /* 0: 4 MiB */
    size_t input_max;        /* 0: 64 KiB [16 MiB] */
} daemon_console_cfg;

/* Subscribes console.in.<node>.* and serves console.replay.<node>.*,
 * starts the console thread. Returns 0 and *out, BERTH_EINVAL without a
 * bus or a valid node id, or another berth code. */
int daemon_console_new(const daemon_console_cfg *cfg, daemon_console **out);

/* Stops the thread, closes every connection, frees c. Call it before the
 * bus is closed (the thread publishes on it); no other call on c may be
 * running or follow. NULL is a no-op. */
void daemon_console_free(daemon_console *c);

/* Attaches to container (id) of site and returns once Docker accepted the
 * attach, so a container started afterwards loses no output. Blocks the
 * calling thread (at most 5 s), never the console thread. The connection
 * ends when the container stops: attach before every start. Attaching
 * again to the same container while attached does nothing (but a stream
 * that Docker already ended, and the thread has not yet read to its end,
 * is drained first, at most 2 s, and replaced); attaching to another
 * container replaces the old connection (the ring and sequence numbers
 * continue). tty says how the container was created. Returns 0,
 * BERTH_EUNAVAIL / BERTH_ETIMEDOUT when Docker does not answer,
 * BERTH_ENOENT for an unknown container, BERTH_ECONFLICT when Docker
 * refuses (a paused container), BERTH_EINVAL for a site id that cannot be
 * a subject token or a container ref outside [A-Za-z0-9_.-], or another
 * berth code. */
int daemon_console_attach(daemon_console *c, const char *site,
                          const char *container, bool tty);

/* Whether site has a live attach connection (it ends with the container's
 * output, i.e. when the container stops). */
bool daemon_console_attached(daemon_console *c, const char *site);

/* Closes the site's connection, keeps its ring. */
void daemon_console_detach(daemon_console *c, const char *site);

/* Closes the connection and forgets the ring (the site was deleted). */
void daemon_console_forget(daemon_console *c, const char *site);

/* Queues data for the site's stdin (all of it or nothing); the console
 * thread writes it. Returns 0, BERTH_ENOENT when not attached,
 * BERTH_ETOOBIG when the input queue would pass input_max. */
int daemon_console_write(daemon_console *c, const char *site,
                         const void *data, size_t len);

/* Called on the console thread, with the console's lock held, for every
 * chunk as it enters site's ring: seq as published, stream one of
 * BERTH__V1__CONSOLE_STREAM__*, data valid during the call only. It must
 * be quick and must not call back into the console. */
typedef void (*daemon_console_watch_fn)(void *ud, const char *site,
                                        uint64_t seq, int stream,
                                        const void *data, size_t len);

/* Installs fn (NULL: none) as the console's one watcher. Once this
 * returns, the previous watcher is no longer called. */
void daemon_console_watch(daemon_console *c, daemon_console_watch_fn fn,
                          void *ud);

/* Copies the newest max bytes (0: all) of site's ring into *data (caller
 * frees; NULL when empty) and its length into *len, and the sequence
 * number the next chunk will carry into *next_seq. A site never seen has
 * an empty ring and next_seq 0. Returns 0 or BERTH_ENOMEM. */
int daemon_console_replay(daemon_console *c, const char *site, size_t max,
                          char **data, size_t *len, uint64_t *next_seq);

/* Publishes one line from berth itself (CONSOLE_STREAM_SYSTEM, "[berth] "
 * prefixed, newline added) on the site's console and keeps it in the
 * ring. Creates the site's ring when needed. */
void daemon_console_notice(daemon_console *c, const char *site,
                           const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
