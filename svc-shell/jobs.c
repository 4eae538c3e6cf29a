/* jobs.c - the pool of threads that run berth-shell's bus requests
 * (shell.open, files.op), so that no loop ever waits for the bus.
 *
 * A loop builds a job (its request and what to do with the answer),
 * submits it, and goes on. A pool thread sends the request with
 * bus_request() and posts the finished job back to the connection's loop,
 * where shell_job_finish() runs the completion. Requests from many
 * connections run side by side, as many at once as there are threads;
 * each SFTP channel also caps its own jobs in flight (sftp.c).
 */
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/err.h"
#include "common/log.h"
#include "svc-shell/shell_int.h"

struct shell_jobs {
    bus *bus;
    pthread_mutex_t mu;
    pthread_cond_t cond;
    shell_job *head, **tail;
    int stop;
    int nthreads;
    pthread_t *threads;
};

shell_job *shell_job_new(shell_chan *chan, shell_job_done_fn done)
{
    shell_job *j = calloc(1, sizeof(*j));

    if (j == NULL)
        return NULL;
    j->chan = chan;
    j->conn = chan->conn;
    j->done = done;
    j->timeout_ms = 10000;
    shell_conn_ref(j->conn);
    chan->jobs++;
    return j;
}

static void job_free(shell_job *j)
{
    size_t i;

    if (j->reply != NULL)
        protobuf_c_message_free_unpacked(j->reply, NULL);
    sftp_client_message_free(j->msg);
    for (i = 0; i < sizeof(j->owned) / sizeof(j->owned[0]); i++)
        free(j->owned[i]);
    shell_conn_unref(j->conn);
    free(j);
}

void shell_job_finish(shell_job *j)
{
    shell_chan *ch = j->chan;

    ch->jobs--;
    if (j->done != NULL)
        j->done(j);
    if (ch->closed && ch->jobs == 0)
        shell_chan_free(ch);
    job_free(j);
}

static void *worker(void *arg)
{
    shell_jobs *js = arg;

    for (;;) {
        shell_job *j;
        shell_post *p;

        pthread_mutex_lock(&js->mu);
        while (js->head == NULL && !js->stop)
            pthread_cond_wait(&js->cond, &js->mu);
        if (js->stop) {
            pthread_mutex_unlock(&js->mu);
            return NULL;
        }
        j = js->head;
        js->head = j->next;
        if (js->head == NULL)
            js->tail = &js->head;
        pthread_mutex_unlock(&js->mu);

        j->next = NULL;
        j->rc = bus_request(js->bus, j->subject, j->req, j->timeout_ms,
                            &j->reply, &j->err);
        if (j->rc != 0 && j->err.message[0] == '\0')
            snprintf(j->err.message, sizeof(j->err.message), "%s",
                     berth_strerror(j->rc));
        p = calloc(1, sizeof(*p));
        if (p == NULL) {
            /* The completion is lost; the channel keeps one job counted
             * and is freed with its connection. */
            log_error("shell: out of memory; job completion lost",
                      "subject=%s", j->subject);
            continue;
        }
        p->kind = SHELL_POST_JOB;
        p->job = j;
        shell_loop_post(j->conn->loop, p);
    }
}

void shell_job_submit(shell_srv *srv, shell_job *j)
{
    shell_jobs *js = srv->jobs;

    j->started_ns = clock_mono_ns();
    pthread_mutex_lock(&js->mu);
    j->next = NULL;
    *js->tail = j;
    js->tail = &j->next;
    pthread_cond_signal(&js->cond);
    pthread_mutex_unlock(&js->mu);
}

int shell_jobs_new(shell_jobs **out, bus *b, int threads)
{
    shell_jobs *js = calloc(1, sizeof(*js));
    int i, rc = 0;

    *out = NULL;
    if (js == NULL)
        return BERTH_ENOMEM;
    js->bus = b;
    js->tail = &js->head;
    pthread_mutex_init(&js->mu, NULL);
    pthread_cond_init(&js->cond, NULL);
    js->threads = calloc((size_t)threads, sizeof(*js->threads));
    if (js->threads == NULL) {
        rc = BERTH_ENOMEM;
        goto out;
    }
    for (i = 0; i < threads; i++) {
        if (pthread_create(&js->threads[i], NULL, worker, js) != 0) {
            rc = BERTH_EINTERNAL;
            goto out;
        }
        js->nthreads++;
    }
    *out = js;
    js = NULL;
out:
    shell_jobs_free(js);
    return rc;
}

void shell_jobs_free(shell_jobs *js)
{
    int i;

    if (js == NULL)
        return;
    pthread_mutex_lock(&js->mu);
    js->stop = 1;
    pthread_cond_broadcast(&js->cond);
    pthread_mutex_unlock(&js->mu);
    for (i = 0; i < js->nthreads; i++)
        pthread_join(js->threads[i], NULL);
    while (js->head != NULL) {
        shell_job *j = js->head;
        js->head = j->next;
        /* The loops have stopped: finish here, as canceled. */
        j->rc = BERTH_ECANCELED;
        shell_job_finish(j);
    }
    free(js->threads);
    pthread_cond_destroy(&js->cond);
    pthread_mutex_destroy(&js->mu);
    free(js);
}
