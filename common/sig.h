/* sig.h - signal handling for clean shutdown.
 *
 * sig_block() must run in main() before any thread starts: it blocks SIGINT,
 * SIGTERM, SIGHUP and SIGPIPE in the calling thread, and so in every thread
 * created after it. The signals are then taken synchronously with
 * sig_wait(), typically by the main thread or a dedicated one, and never
 * interrupt library code running on other threads.
 */
#ifndef BERTH_COMMON_SIG_H
#define BERTH_COMMON_SIG_H

/* Blocks the shutdown signals. Returns 0 or BERTH_EINTERNAL. */
int sig_block(void);

/* Waits up to timeout_ms (negative: forever) for SIGINT, SIGTERM or SIGHUP.
 * Returns the signal number, or 0 on timeout. */
int sig_wait(int timeout_ms);

/* Runs fn(signo, arg) on a detached thread for every shutdown signal. The
 * callback must only do thread-safe things (set a flag, wake a loop). */
int sig_start_thread(void (*fn)(int signo, void *arg), void *arg);

#endif
