/* sftp_int.h - what the SFTP subsystem's two files share: sftp.c (packets,
 * answers, handles, the metadata operations) and sftp_io.c (READ with
 * read-ahead, WRITE with batching). Not for the rest of berth-shell.
 */
#ifndef BERTH_SHELL_SFTP_INT_H
#define BERTH_SHELL_SFTP_INT_H

#include "svc-shell/shell_int.h"

#define SFTP_JOBS_MAX 32
#define SFTP_PACKET_MAX ((256u << 10) + 4096) /* a 256 KiB write and its header */
#define SFTP_READ_MAX (128u << 10)             /* bytes in one DATA answer */
#define SFTP_LIST_PAGE 128                     /* entries in one NAME answer */
#define SFTP_HANDLES 256
#define SFTP_PATH_MAX 4095
#define SFTP_TIMEOUT_MS 30000
#define SFTP_QUEUE_MAX (8u << 20) /* answer bytes waiting for the window */
#define SFTP_CHUNK (256u << 10)   /* bytes of one read-ahead or batched write */
#define SFTP_CHUNKS 8             /* read-ahead chunks per handle */
#define SFTP_CACHE_MAX (8u << 20) /* read-ahead bytes per channel */
#define SFTP_BATCH_MSGS 64        /* WRITE requests in one batch */

enum sftp_reply_kind { R_STATUS, R_DATA, R_HANDLE, R_ATTR, R_NAMES };

/* An answer waiting for the client's window. */
struct sreply {
    struct sreply *next;
    sftp_client_message msg;
    int kind;
    uint32_t status;
    char text[160];
    const void *data;
    size_t len;
    void *copy; /* holds data, freed with the answer */
    uint32_t handle[2];
    struct sftp_attributes_struct attr;
    size_t need; /* window bytes it takes */
};

/* A READ waiting for a chunk being fetched. */
struct sftp_wait {
    struct sftp_wait *next;
    sftp_client_message msg;
};

enum sftp_chunk_state { CHUNK_EMPTY = 0, CHUNK_FETCHING, CHUNK_READY };

/* SFTP_CHUNK bytes of a file read ahead of the client. */
struct sftp_chunk {
    int state;
    uint64_t off;
    size_t len;   /* bytes held once READY */
    int eof;      /* the file ends at off + len */
    uint64_t gen; /* the channel's write generation when fetched */
    Berth__V1__FileReply *rep; /* holds the bytes */
    struct sftp_wait *waiters;
};

/* Contiguous WRITE requests gathered into one files.op WRITE. */
struct sftp_batch {
    uint64_t off;
    size_t len;
    unsigned char *data; /* SFTP_CHUNK bytes */
    sftp_client_message msgs[SFTP_BATCH_MSGS];
    int n;
};

struct sftp_handle {
    int used;
    uint32_t gen;
    int is_dir;
    uint32_t pflags;
    char *path;
    uint64_t list_off;
    int list_eof;
    int append;
    uint64_t append_off;
    int busy; /* jobs in flight on this handle */
    sftp_client_message close_msg;
    struct sftp_chunk chunks[SFTP_CHUNKS];
    struct sftp_wait *later; /* READs that found every chunk in use */
    struct sftp_batch *batch;
};

struct shell_sftp {
    shell_chan *ch;
    sftp_session sftp;
    int inited;
    int jobs;
    struct sftp_handle handles[SFTP_HANDLES];
    struct sreply *outq, **outq_tail;
    size_t queued;  /* DATA bytes in outq */
    size_t cached;  /* bytes held by read-ahead chunks */
    uint64_t wgen;  /* bumped by every change to files */
    int batches;    /* handles with a batch gathering */
    uint64_t ops, bytes_in, bytes_out;
    int64_t job_ns; /* time the jobs took, summed */
};

/* sftp.c */
struct sreply *shell_sftp_reply_new(shell_sftp *s, sftp_client_message msg,
                                    int kind);
void shell_sftp_reply_status(shell_sftp *s, sftp_client_message msg,
                             uint32_t status, const char *text);
void shell_sftp_reply_error(shell_sftp *s, sftp_client_message msg, int rc,
                            const char *text);
int shell_sftp_allowed(shell_sftp *s, sftp_client_message msg, unsigned perms);
shell_job *shell_sftp_file_job(shell_sftp *s, shell_job_done_fn done,
                               sftp_client_message msg, int op,
                               const char *path);
void shell_sftp_submit(shell_sftp *s, shell_job *j);
shell_sftp *shell_sftp_job_sftp(shell_job *j);
struct sftp_handle *shell_sftp_valid_handle(shell_sftp *s,
                                            sftp_client_message msg, int dir);
void shell_sftp_handle_idle(shell_sftp *s, struct sftp_handle *h);

/* sftp_io.c */
void shell_sftp_read(shell_sftp *s, sftp_client_message msg);
void shell_sftp_write(shell_sftp *s, sftp_client_message msg);
/* Sends every gathered batch (before any other request, for ordering). */
void shell_sftp_flush_writes(shell_sftp *s);
/* Sends gathered batches when nothing else is in flight. */
void shell_sftp_flush_idle(shell_sftp *s);
/* Frees a handle's chunks, waiters and batch (closing, ending). */
void shell_sftp_handle_drop(shell_sftp *s, struct sftp_handle *h);

#endif
