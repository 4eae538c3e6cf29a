/* sig.c - synchronous signal handling with sigtimedwait. */
#include "sig.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <time.h>

#include "err.h"

static void shutdown_set(sigset_t *set)
{
    sigemptyset(set);
    sigaddset(set, SIGINT);
    sigaddset(set, SIGTERM);
    sigaddset(set, SIGHUP);
}

int sig_block(void)
{
    sigset_t set;

    shutdown_set(&set);
    sigaddset(&set, SIGPIPE);
    if (pthread_sigmask(SIG_BLOCK, &set, NULL) != 0)
        return BERTH_EINTERNAL;
    return 0;
}

int sig_wait(int timeout_ms)
{
    sigset_t set;
    struct timespec ts;
    int s;

    shutdown_set(&set);
    for (;;) {
        if (timeout_ms < 0) {
            s = sigwaitinfo(&set, NULL);
        } else {
            ts.tv_sec = timeout_ms / 1000;
            ts.tv_nsec = (long)(timeout_ms % 1000) * 1000000;
            s = sigtimedwait(&set, NULL, &ts);
        }
        if (s > 0)
            return s;
        if (errno == EAGAIN)
            return 0;
        if (errno != EINTR)
            return 0;
    }
}

struct sig_thread {
    void (*fn)(int, void *);
    void *arg;
};

static void *sig_thread_main(void *p)
{
    struct sig_thread t = *(struct sig_thread *)p;

    free(p);
    for (;;) {
        int s = sig_wait(-1);
        if (s > 0)
            t.fn(s, t.arg);
    }
    return NULL;
}

int sig_start_thread(void (*fn)(int signo, void *arg), void *arg)
{
    struct sig_thread *t;
    pthread_t tid;

    t = malloc(sizeof(*t));
    if (t == NULL)
        return BERTH_ENOMEM;
    t->fn = fn;
    t->arg = arg;
    if (pthread_create(&tid, NULL, sig_thread_main, t) != 0) {
        free(t);
        return BERTH_EINTERNAL;
    }
    pthread_detach(tid);
    return 0;
}
