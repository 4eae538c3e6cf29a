/* shell_int.h - the types berth-shell's modules share; not for other
 * services.
 *
 * Objects and their owners:
 *
 *   shell_srv    the server (server.c): the listener, the loops, the job
 *                pool, the connection list and the session registry.
 *                Owned by main().
 *   shell_loop   one event-loop thread (server.c) with its ssh_event, its
 *                wake-up eventfd and its queue of posts. Lives as long as
 *                the server.
 *   shell_conn   one SSH connection. Owned by its handshake thread until
 *                the user is authenticated, then by one loop thread.
 *                Reference counted (atomic): posts and jobs that name it
 *                hold a reference; the libssh session itself is freed by
 *                the owning thread when the connection closes.
 *   shell_chan   one SSH channel (conn.c) of a connection, owned by the
 *                connection's loop. Once closed it is kept alive by the
 *                jobs still naming it (chan->jobs) and freed by the last.
 *   shell_exec   a process in a site's container (exec.c), owned by its
 *                channel; found by nats.c threads through the session
 *                registry, whose mutex (srv->xs_mu) also guards the
 *                session's inbound queue.
 *   shell_sftp   an SFTP subsystem (sftp.c), owned by its channel.
 *   shell_job    one bus request run by the job pool (jobs.c); its
 *                completion runs on the connection's loop.
 *
 * Threads: libssh objects (sessions, channels, the SFTP session) are only
 * touched by the thread that owns the connection. libssh callbacks may run
 * inside any libssh call on that thread (a write polls the loop's whole
 * ssh_event), so callbacks only record what happened; the real work,
 * including every free, happens in the pump functions called from the
 * loop's top level.
 */
#ifndef BERTH_SHELL_INT_H
#define BERTH_SHELL_INT_H

/* The SFTP server half of libssh's sftp.h. */
#ifndef WITH_SERVER
#define WITH_SERVER 1
#endif
#include <libssh/callbacks.h>
#include <libssh/libssh.h>
#include <libssh/server.h>
#include <libssh/sftp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "bus/bus.h"
#include "shell.pb-c.h"

#define SHELL_CHAN_MAX 10          /* channels per SSH connection */
#define SHELL_SITE_NAME_MAX 63     /* as the panel allows */
#define SHELL_NODE_MAX 128         /* a bus token */
#define SHELL_USER_NAME_MAX 64
#define SHELL_LOGIN_MAX (SHELL_USER_NAME_MAX + 1 + SHELL_SITE_NAME_MAX)
#define SHELL_REASON_MAX 160
#define SHELL_TICK_MS 250          /* the loops wake at least this often */
#define SHELL_XS_BUCKETS 256       /* session registry hash buckets */

/* What a user may do on a site, from the panel's permission names. */
enum shell_perm {
    SHELL_PERM_CONSOLE = 1 << 0, /* site.console.write: shell and exec */
    SHELL_PERM_FREAD = 1 << 1,   /* site.files.read */
    SHELL_PERM_FWRITE = 1 << 2,  /* site.files.write */
};

typedef struct shell_site {
    char id[40];
    char name[SHELL_SITE_NAME_MAX + 1];
    char node[SHELL_NODE_MAX + 1];
    unsigned perms; /* enum shell_perm */
} shell_site;

/* The panel's answer to a login, kept for the connection. */
typedef struct shell_user {
    char id[40];
    char name[SHELL_USER_NAME_MAX + 1];
    shell_site *sites; /* owned */
    size_t nsites;
} shell_user;

typedef struct shell_srv shell_srv;
typedef struct shell_loop shell_loop;
typedef struct shell_conn shell_conn;
typedef struct shell_chan shell_chan;
typedef struct shell_exec shell_exec;
typedef struct shell_sftp shell_sftp;
typedef struct shell_job shell_job;
typedef struct shell_jobs shell_jobs;
typedef struct shell_post shell_post;

/* ------------------------------------------------------------ server */

struct shell_loop {
    shell_srv *srv;
    int index;
    pthread_t thread;
    int started;
    ssh_event event;
    int wake_fd;
    atomic_int pending; /* a post or session data waits: do not sleep */
    atomic_int stop;
    pthread_mutex_t mu; /* guards posts */
    shell_post *posts, **posts_tail;
    shell_conn *conns; /* loop-owned list (conn->lnext) */
    int nconns;
};

struct shell_srv {
    bus *bus;
    const char *data_dir;
    ssh_bind bind;
    int listen_fd;
    int port;
    int max_conns;
    int max_handshakes;
    int login_grace_ms;
    shell_loop *loops;
    int nloops;
    atomic_uint next_loop;
    shell_jobs *jobs;
    pthread_t acceptor;
    int acceptor_started;
    atomic_int stopping;
    atomic_int handshakes; /* handshake threads running */
    atomic_int conns;      /* connections alive, handshakes included */

    pthread_mutex_t conns_mu; /* guards all (conn->next, conn->prev) */
    shell_conn *all;          /* authenticated connections */

    pthread_mutex_t xs_mu; /* the session registry and sessions' inbound data */
    shell_exec *xs[SHELL_XS_BUCKETS];
};

/* What a loop is asked to do by other threads. */
enum shell_post_kind {
    SHELL_POST_CONN = 1, /* take over an authenticated connection */
    SHELL_POST_JOB,      /* a bus request finished */
    SHELL_POST_REVOKE,   /* the user lost access to site (or to all) */
};

struct shell_post {
    shell_post *next;
    int kind;
    shell_conn *conn; /* a reference, handed to the loop */
    shell_job *job;
    char site_id[40];
    char reason[SHELL_REASON_MAX];
};

/* Queues p for loop l and wakes it; takes ownership of p. */
void shell_loop_post(shell_loop *l, shell_post *p);

/* Wakes loop l (session data arrived). Any thread. */
void shell_loop_wake(shell_loop *l);

/* ------------------------------------------------------------ connections */

struct shell_conn {
    atomic_int refs;
    shell_srv *srv;
    shell_loop *loop; /* set when a loop takes the connection over */
    ssh_session ssh;
    struct ssh_server_callbacks_struct scb;
    char remote[64];
    char login[SHELL_LOGIN_MAX + 1];              /* as the client gave it */
    char username[SHELL_USER_NAME_MAX + 1];       /* before '+' */
    char site_name[SHELL_SITE_NAME_MAX + 1];      /* after '+', or "" */

    /* Authentication, on the handshake thread. */
    int auth_tries;
    int authed;
    unsigned char key_hash[32]; /* the key the panel approved */
    int key_ok;
    shell_user user;

    /* Loop-owned. */
    shell_chan *chans[SHELL_CHAN_MAX];
    uint32_t next_chan_id;
    int registered; /* in srv->all */
    int closing;
    int64_t closing_since_ms;
    int64_t last_keepalive_ms;
    shell_conn *next, *prev; /* srv->all */
    shell_conn *lnext;       /* loop->conns */
};

shell_conn *shell_conn_new(shell_srv *srv, ssh_session ssh,
                           const char *remote);
void shell_conn_ref(shell_conn *c);
/* Drops a reference; the last one frees the struct (the ssh session must
 * be gone by then). */
void shell_conn_unref(shell_conn *c);

/* Sets the server callbacks (channel opens, the default replies) on a
 * fresh session. */
void shell_conn_setup(shell_conn *c);

/* Runs one pass over the connection on its loop: pending channel
 * requests, output, SFTP, timers, closing. Returns 1 when the connection
 * is finished and has been released by the loop. */
int shell_conn_pump(shell_conn *c);

/* Closes every channel of c with message (to stderr, may be NULL) and
 * disconnects. Loop thread; the loop frees it at the end of its pass. */
void shell_conn_close(shell_conn *c, const char *message);

/* A revocation reached c's loop: site_id "" means every site. */
void shell_conn_revoke(shell_conn *c, const char *site_id, const char *reason);

/* Finds the user's site by name or id; NULL when the user has none. */
const shell_site *shell_user_site(const shell_user *u, const char *name);
void shell_user_clear(shell_user *u);

/* ------------------------------------------------------------ channels */

enum shell_chan_req {
    SHELL_REQ_NONE = 0,
    SHELL_REQ_SHELL,
    SHELL_REQ_EXEC,
    SHELL_REQ_SFTP,
};

enum shell_chan_kind {
    SHELL_CH_NEW = 0, /* no request yet */
    SHELL_CH_MENU,    /* choosing a site */
    SHELL_CH_EXEC,    /* a process runs (or is starting) */
    SHELL_CH_SFTP,
    SHELL_CH_DONE, /* ending: output drained, then closed */
};

#define SHELL_ENV_MAX 16

struct shell_chan {
    shell_conn *conn;
    uint32_t id;
    ssh_channel ch;
    struct ssh_channel_callbacks_struct cb;
    int kind;
    int req; /* a request waiting for the pump */
    int pty;
    char term[64];
    unsigned cols, rows;
    int resized;
    char *command; /* exec request, owned */
    char *env_k[SHELL_ENV_MAX], *env_v[SHELL_ENV_MAX];
    int nenv;
    shell_site site; /* the chosen site, once chosen */
    int has_site;
    int client_eof;
    int client_closed;
    int closed; /* our side is done; freed once jobs == 0 */
    int jobs;   /* jobs naming this channel */
    /* The site menu: keys not yet looked at, and the line being typed. */
    char keys[256];
    size_t nkeys;
    char line[64];
    size_t line_len;
    int menu_shown;
    char *ahead; /* keys typed after the choice, for the process (owned) */
    size_t nahead;
    int64_t menu_deadline_ms;
    shell_exec *xs;
    shell_sftp *sftp;
    unsigned sftp_ready; /* whole SFTP packets in libssh's buffer */
    int sftp_broken;     /* a packet larger than the SFTP limit came */
};

/* Writes text to the channel's stderr (stdout on a PTY, where both end up
 * on the terminal; "\n" becomes "\r\n" there). Never blocks: what does
 * not fit the window is dropped. */
void shell_chan_say(shell_chan *ch, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Ends the channel: sends exit-status (when status >= 0), EOF and close. */
void shell_chan_finish(shell_chan *ch, int status);

/* ------------------------------------------------------------ exec (exec.c) */

/* Starts a process for ch on its site: the channel's request, PTY and
 * environment. Returns 0 or a berth code (the channel is told why). */
int shell_exec_start(shell_chan *ch);

/* Relays what is due: queued output into the channel, stdin, resizes,
 * EOF, keepalives, the end. Returns 1 once the session is over (the
 * channel has been finished). */
int shell_exec_pump(shell_chan *ch);

/* Data from the SSH client (channel data callback). Returns the bytes
 * taken; the rest stays in libssh's buffer until credit arrives. */
uint32_t shell_exec_input(shell_chan *ch, const void *data, uint32_t len);

/* Ends the process (publishes ShellExit with reason) and frees the
 * session. NULL is a no-op. Loop thread. */
void shell_exec_end(shell_exec *xs, const char *reason);

/* The nats.c side: shell.out and shell.exit messages. */
int shell_exec_on_out(bus_msg *m, void *ud);
int shell_exec_on_exit(bus_msg *m, void *ud);

/* ------------------------------------------------------------ SFTP (sftp.c) */

/* Starts the SFTP subsystem on ch (its site chosen). Returns 0 or a berth
 * code. */
int shell_sftp_start(shell_chan *ch);

/* Channel data callback (also before the subsystem started): counts the
 * whole packets in libssh's buffer and returns 0, the bytes taken: the
 * SFTP reader takes them from that buffer in the pump. */
uint32_t shell_sftp_input(shell_chan *ch, const void *data, uint32_t len);

/* Reads and answers requests. Returns 1 once the subsystem is over. */
int shell_sftp_pump(shell_chan *ch);

/* Frees the subsystem; answers nothing more. NULL is a no-op. */
void shell_sftp_end(shell_chan *ch);

/* ------------------------------------------------------------ jobs (jobs.c) */

typedef void (*shell_job_done_fn)(shell_job *j);

struct shell_job {
    shell_job *next;
    shell_conn *conn; /* a reference */
    shell_chan *chan; /* chan->jobs counts this job */
    shell_job_done_fn done;
    char subject[256];
    int timeout_ms;
    int64_t started_ns; /* submitted */
    /* The request, built in u, owned by the job. */
    union {
        Berth__V1__FileRequest file;
        Berth__V1__ShellOpen open;
    } u;
    const ProtobufCMessage *req;
    void *owned[4]; /* freed with the job */
    /* The outcome. */
    int rc;
    bus_error err;
    ProtobufCMessage *reply; /* freed with the job */
    /* The caller's context. */
    sftp_client_message msg; /* freed with the job unless taken */
    void *ctx;
    uint64_t u64;
    uint32_t u32;
};

/* A job for chan (whose jobs count it takes); conn reference taken. */
shell_job *shell_job_new(shell_chan *chan, shell_job_done_fn done);

/* Runs j's request on a pool thread and posts it back to the loop.
 * Takes ownership of j. */
void shell_job_submit(shell_srv *srv, shell_job *j);

/* Runs on the loop when a SHELL_POST_JOB is taken: calls done, releases
 * the channel's count (freeing a closed channel with the last job) and
 * frees the job. */
void shell_job_finish(shell_job *j);

int shell_jobs_new(shell_jobs **out, bus *b, int threads);
/* Stops the pool once the requests under way have returned; jobs still
 * queued are finished as BERTH_ECANCELED on the calling thread, so the
 * loops must have stopped. NULL is a no-op. */
void shell_jobs_free(shell_jobs *js);

/* Frees a channel struct (after close, once no job names it). */
void shell_chan_free(shell_chan *ch);

/* ------------------------------------------------------------ login (login.c) */

/* Splits "alice+blog" into user and site. Returns 0 or BERTH_EINVAL. */
int shell_login_split(const char *login, char user[SHELL_USER_NAME_MAX + 1],
                      char site[SHELL_SITE_NAME_MAX + 1]);

/* The libssh authentication callbacks (userdata: the connection). */
int shell_login_password(ssh_session s, const char *user, const char *pw,
                         void *ud);
int shell_login_pubkey(ssh_session s, const char *user, struct ssh_key_struct *key,
                       char state, void *ud);

#endif
