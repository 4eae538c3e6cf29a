/* sftp_io.c - SFTP READ and WRITE in large pieces.
 *
 * Clients move files in small requests (OpenSSH: 32 KiB, 64 at a time),
 * and every files.op request costs a bus round trip and a path lookup in
 * the daemon. So:
 *
 * READ with read-ahead. Each open file keeps up to SFTP_CHUNKS chunks of
 * SFTP_CHUNK bytes. A READ inside a chunk that is there is answered at
 * once; one inside a chunk being fetched waits on it; any other fetches
 * the chunk starting at its offset. After each READ the chunks ahead of
 * the reader are topped up, so a sequential reader finds its data waiting.
 * Chunks fetched before a change to any file of the channel (a WRITE,
 * REMOVE, RENAME, ...) are not used for later READs.
 *
 * WRITE in batches. Contiguous WRITEs to one handle are gathered, up to
 * SFTP_CHUNK bytes, into one files.op WRITE; each gets its own answer
 * when the batch is written (or the batch's error). A batch goes out when
 * it is full, when a WRITE does not continue it, before any other request
 * (so that nothing overtakes it), or at the end of a pump pass when the
 * channel has no job in flight: while jobs run, more WRITEs arrive and
 * the batch grows; once nothing runs, waiting would only add latency.
 */
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/log.h"
#include "svc-shell/sftp_int.h"

/* ------------------------------------------------------------ chunks */

static void chunk_clear(shell_sftp *s, struct sftp_chunk *c)
{
    if (c->rep != NULL) {
        protobuf_c_message_free_unpacked(&c->rep->base, NULL);
        c->rep = NULL;
        s->cached -= c->len;
    }
    c->state = CHUNK_EMPTY;
    c->len = 0;
    c->eof = 0;
}

static int chunk_fresh(const shell_sftp *s, const struct sftp_chunk *c)
{
    return c->state == CHUNK_READY && c->gen == s->wgen;
}

/* The chunk that answers a READ at off: fresh and holding off, or holding
 * the end of the file before off. */
static struct sftp_chunk *chunk_ready(shell_sftp *s, struct sftp_handle *h,
                                      uint64_t off)
{
    int i;

    for (i = 0; i < SFTP_CHUNKS; i++) {
        struct sftp_chunk *c = &h->chunks[i];

        if (!chunk_fresh(s, c) || off < c->off)
            continue;
        if (off < c->off + c->len || c->eof)
            return c;
    }
    return NULL;
}

static struct sftp_chunk *chunk_fetching(struct sftp_handle *h, uint64_t off)
{
    int i;

    for (i = 0; i < SFTP_CHUNKS; i++) {
        struct sftp_chunk *c = &h->chunks[i];

        if (c->state == CHUNK_FETCHING && off >= c->off &&
            off < c->off + SFTP_CHUNK)
            return c;
    }
    return NULL;
}

/* A slot for a new chunk: an empty one, a stale one, or one wholly behind
 * the reader at off. NULL when all are in use. */
static struct sftp_chunk *chunk_slot(shell_sftp *s, struct sftp_handle *h,
                                     uint64_t off)
{
    struct sftp_chunk *behind = NULL;
    int i;

    for (i = 0; i < SFTP_CHUNKS; i++) {
        struct sftp_chunk *c = &h->chunks[i];

        if (c->state == CHUNK_EMPTY)
            return c;
        if (c->state == CHUNK_READY && !chunk_fresh(s, c)) {
            chunk_clear(s, c);
            return c;
        }
        if (c->state == CHUNK_READY && c->off + c->len <= off &&
            (behind == NULL || c->off < behind->off))
            behind = c;
    }
    if (behind != NULL)
        chunk_clear(s, behind);
    return behind;
}

static void done_chunk(shell_job *j);

/* Starts fetching SFTP_CHUNK bytes at off into c. */
static int chunk_fetch(shell_sftp *s, struct sftp_handle *h,
                       struct sftp_chunk *c, uint64_t off)
{
    shell_job *j = shell_sftp_file_job(s, done_chunk, NULL,
                                       BERTH__V1__FILE_OP__FILE_OP_READ, h->path);

    if (j == NULL)
        return BERTH_ENOMEM;
    j->u.file.offset = off;
    j->u.file.length = SFTP_CHUNK;
    j->u64 = (uint64_t)(h - s->handles);
    j->u32 = (uint32_t)(c - h->chunks);
    c->state = CHUNK_FETCHING;
    c->off = off;
    c->gen = s->wgen;
    h->busy++;
    shell_sftp_submit(s, j);
    return 0;
}

/* Keeps chunks coming ahead of a sequential reader at off: finds how far
 * the chunks there or under way reach without a gap, and fetches more
 * until SFTP_CHUNKS - 1 chunks lie ahead, or the file's end is in sight. */
static void read_ahead(shell_sftp *s, struct sftp_handle *h, uint64_t off)
{
    uint64_t end = off;
    int i, pass, grew = 1, found = 0;

    for (pass = 0; grew && pass < SFTP_CHUNKS; pass++) {
        grew = 0;
        for (i = 0; i < SFTP_CHUNKS; i++) {
            const struct sftp_chunk *c = &h->chunks[i];
            uint64_t cend;

            if (c->state == CHUNK_FETCHING)
                cend = c->off + SFTP_CHUNK;
            else if (chunk_fresh(s, c))
                cend = c->off + c->len;
            else
                continue;
            if (c->off > end || cend <= end)
                continue;
            if (chunk_fresh(s, c) && c->eof)
                return;
            end = cend;
            grew = found = 1;
        }
    }
    while (found && end - off < (uint64_t)SFTP_CHUNK * (SFTP_CHUNKS - 1) &&
           s->cached < SFTP_CACHE_MAX) {
        struct sftp_chunk *c = chunk_slot(s, h, off);

        if (c == NULL || chunk_fetch(s, h, c, end) != 0)
            return;
        end += SFTP_CHUNK;
    }
}

/* Answers msg from chunk c. */
static void answer_from(shell_sftp *s, struct sftp_chunk *c,
                        sftp_client_message msg)
{
    uint64_t off = msg->offset;
    size_t n = msg->len < SFTP_READ_MAX ? msg->len : SFTP_READ_MAX;
    size_t have = off < c->off + c->len ? (size_t)(c->off + c->len - off) : 0;
    struct sreply *r;

    if (have == 0) {
        shell_sftp_reply_status(s, msg, SSH_FX_EOF, "");
        return;
    }
    if (n > have)
        n = have;
    r = shell_sftp_reply_new(s, msg, R_DATA);
    if (r == NULL)
        return;
    r->copy = malloc(n > 0 ? n : 1);
    if (r->copy == NULL) {
        r->kind = R_STATUS;
        r->status = SSH_FX_FAILURE;
        snprintf(r->text, sizeof(r->text), "out of memory");
        return;
    }
    memcpy(r->copy, c->rep->data.data + (off - c->off), n);
    r->data = r->copy;
    r->len = n;
    r->need += n;
    s->queued += n;
}

/* Answers a READ, parks it on a chunk under way, or starts one for it. */
static void read_at(shell_sftp *s, struct sftp_handle *h,
                    sftp_client_message msg)
{
    uint64_t off = msg->offset;
    struct sftp_chunk *c = chunk_ready(s, h, off);
    struct sftp_wait *w;

    if (c != NULL) {
        answer_from(s, c, msg);
        read_ahead(s, h, off);
        return;
    }
    w = malloc(sizeof(*w));
    if (w == NULL) {
        shell_sftp_reply_status(s, msg, SSH_FX_FAILURE, "out of memory");
        return;
    }
    w->msg = msg;
    c = chunk_fetching(h, off);
    if (c == NULL) {
        c = chunk_slot(s, h, off);
        if (c != NULL && chunk_fetch(s, h, c, off) != 0) {
            free(w);
            shell_sftp_reply_status(s, msg, SSH_FX_FAILURE, "out of memory");
            return;
        }
    }
    if (c == NULL) {
        /* Every chunk is busy further on: wait for one to come back. */
        w->next = h->later;
        h->later = w;
        return;
    }
    w->next = c->waiters;
    c->waiters = w;
    read_ahead(s, h, off);
}

/* Reverses a list of waits (they are pushed newest first). */
static struct sftp_wait *oldest_first(struct sftp_wait *w)
{
    struct sftp_wait *rev = NULL, *next;

    while (w != NULL) {
        next = w->next;
        w->next = rev;
        rev = w;
        w = next;
    }
    return rev;
}

static void done_chunk(shell_job *j)
{
    shell_sftp *s = shell_sftp_job_sftp(j);
    struct sftp_handle *h;
    struct sftp_chunk *c;
    struct sftp_wait *w, *next;
    const Berth__V1__FileReply *rep;

    if (s == NULL)
        return;
    h = &s->handles[j->u64];
    c = &h->chunks[j->u32];
    w = c->waiters;
    c->waiters = NULL;
    if (j->rc == 0) {
        rep = (const Berth__V1__FileReply *)j->reply;
        c->rep = (Berth__V1__FileReply *)j->reply;
        j->reply = NULL;
        c->len = rep->data.len;
        c->eof = rep->eof || c->len < SFTP_CHUNK;
        c->state = CHUNK_READY;
        s->cached += c->len;
    } else {
        c->state = CHUNK_EMPTY;
    }
    /* The chunk's waiters, then the READs that found no chunk free, each
     * in the order they came. */
    w = oldest_first(w);
    if (w == NULL) {
        w = oldest_first(h->later);
    } else {
        struct sftp_wait *last = w;

        while (last->next != NULL)
            last = last->next;
        last->next = oldest_first(h->later);
    }
    h->later = NULL;
    for (; w != NULL; w = next) {
        next = w->next;
        if (j->rc != 0)
            shell_sftp_reply_error(s, w->msg, j->rc, j->err.message);
        else if (h->used && h->close_msg == NULL)
            read_at(s, h, w->msg);
        else
            shell_sftp_reply_status(s, w->msg, SSH_FX_FAILURE, "closed");
        free(w);
    }
    shell_sftp_handle_idle(s, h);
}

void shell_sftp_read(shell_sftp *s, sftp_client_message msg)
{
    struct sftp_handle *h = shell_sftp_valid_handle(s, msg, 0);

    if (h == NULL || !shell_sftp_allowed(s, msg, SHELL_PERM_FREAD))
        return;
    read_at(s, h, msg);
}

/* ------------------------------------------------------------ batches */

static void done_batch(shell_job *j)
{
    shell_sftp *s = shell_sftp_job_sftp(j);
    struct sftp_batch *b = j->ctx;
    int i;

    for (i = 0; i < b->n; i++) {
        if (s == NULL)
            sftp_client_message_free(b->msgs[i]);
        else if (j->rc != 0)
            shell_sftp_reply_error(s, b->msgs[i], j->rc, j->err.message);
        else
            shell_sftp_reply_status(s, b->msgs[i], SSH_FX_OK, "");
        b->msgs[i] = NULL;
    }
    if (s == NULL)
        return;
    if (j->rc == 0)
        s->bytes_in += b->len;
    shell_sftp_handle_idle(s, &s->handles[j->u64]);
}

/* Sends h's batch as one WRITE. */
static void batch_send(shell_sftp *s, struct sftp_handle *h)
{
    struct sftp_batch *b = h->batch;
    shell_job *j;
    int i;

    h->batch = NULL;
    s->batches--;
    j = shell_sftp_file_job(s, done_batch, NULL,
                            BERTH__V1__FILE_OP__FILE_OP_WRITE, h->path);
    if (j == NULL) {
        for (i = 0; i < b->n; i++)
            shell_sftp_reply_status(s, b->msgs[i], SSH_FX_FAILURE,
                                    "out of memory");
        free(b->data);
        free(b);
        return;
    }
    j->owned[1] = b->data;
    j->owned[2] = b;
    j->ctx = b;
    j->u.file.offset = b->off;
    j->u.file.data.data = b->data;
    j->u.file.data.len = b->len;
    j->u64 = (uint64_t)(h - s->handles);
    h->busy++;
    shell_sftp_submit(s, j);
}

void shell_sftp_flush_writes(shell_sftp *s)
{
    int i;

    for (i = 0; i < SFTP_HANDLES && s->batches > 0; i++) {
        if (s->handles[i].batch != NULL)
            batch_send(s, &s->handles[i]);
    }
}

void shell_sftp_flush_idle(shell_sftp *s)
{
    if (s->jobs == 0)
        shell_sftp_flush_writes(s);
}

void shell_sftp_write(shell_sftp *s, sftp_client_message msg)
{
    struct sftp_handle *h = shell_sftp_valid_handle(s, msg, 0);
    struct sftp_batch *b;
    size_t len;
    uint64_t off;

    if (h == NULL || !shell_sftp_allowed(s, msg, SHELL_PERM_FWRITE))
        return;
    if ((h->pflags & (SSH_FXF_WRITE | SSH_FXF_APPEND)) == 0) {
        shell_sftp_reply_status(s, msg, SSH_FX_PERMISSION_DENIED,
                                "not open for writing");
        return;
    }
    len = ssh_string_len(msg->data);
    if (len > SFTP_CHUNK) {
        shell_sftp_reply_status(s, msg, SSH_FX_FAILURE, "write too large");
        return;
    }
    off = h->append ? h->append_off : msg->offset;
    if (h->append)
        h->append_off += len;
    s->wgen++;
    b = h->batch;
    if (b != NULL && (b->off + b->len != off || b->len + len > SFTP_CHUNK ||
                      b->n == SFTP_BATCH_MSGS)) {
        batch_send(s, h);
        b = NULL;
    }
    if (b == NULL) {
        b = calloc(1, sizeof(*b));
        if (b != NULL)
            b->data = malloc(SFTP_CHUNK);
        if (b == NULL || b->data == NULL) {
            free(b);
            shell_sftp_reply_status(s, msg, SSH_FX_FAILURE, "out of memory");
            return;
        }
        b->off = off;
        h->batch = b;
        s->batches++;
    }
    memcpy(b->data + b->len, ssh_string_data(msg->data), len);
    b->len += len;
    b->msgs[b->n++] = msg;
    /* The bytes are in the batch: the request keeps only its id. */
    ssh_string_free(msg->data);
    msg->data = NULL;
    if (b->len == SFTP_CHUNK || b->n == SFTP_BATCH_MSGS)
        batch_send(s, h);
}

void shell_sftp_handle_drop(shell_sftp *s, struct sftp_handle *h)
{
    int i;

    while (h->later != NULL) {
        struct sftp_wait *next = h->later->next;
        sftp_client_message_free(h->later->msg);
        free(h->later);
        h->later = next;
    }

    for (i = 0; i < SFTP_CHUNKS; i++) {
        struct sftp_wait *w = h->chunks[i].waiters;

        while (w != NULL) {
            struct sftp_wait *next = w->next;
            sftp_client_message_free(w->msg);
            free(w);
            w = next;
        }
        h->chunks[i].waiters = NULL;
        chunk_clear(s, &h->chunks[i]);
    }
    if (h->batch != NULL) {
        s->batches--;
        for (i = 0; i < h->batch->n; i++)
            sftp_client_message_free(h->batch->msgs[i]);
        free(h->batch->data);
        free(h->batch);
        h->batch = NULL;
    }
}
