/* pebble.h - the real Pebble ACME test server (Debian's `pebble` package)
 * and its DNS companion pebble-challtestsrv, for certificate tests.
 *
 *   h_pebble pb;
 *   buf root;
 *
 *   ck_assert_int_eq(h_pebble_start(&pb, &(h_pebble_opts){
 *                                            .http_port = http01_port}), 0);
 *   ... an ACME client on pb.directory_url trusting pb.ca_bundle ...
 *   buf_init(&root, 65536);
 *   ck_assert_int_eq(h_pebble_get(&pb, "/roots/0", &root), 200);
 *   h_pebble_stop(&pb);
 *
 * The TLS certificate Pebble listens with is made here: a throw-away CA
 * (pb.ca_bundle) and a P-256 certificate for localhost and 127.0.0.1 that
 * it signs. Pebble listens on 127.0.0.1 (ACME and management on free
 * ports), validates HTTP-01 on opts.http_port and resolves every name
 * through pebble-challtestsrv, which answers A queries with 127.0.0.1 and
 * AAAA queries with nothing, and serves no challenges of its own: the test
 * answers HTTP-01 itself. Pebble runs with PEBBLE_VA_NOSLEEP=1 and its
 * default nonce rejection (5 % of good nonces are refused with badNonce).
 *
 * Errors follow harness.h: 0 or a negative BERTH_E* code after a line
 * starting with "harness:" on stderr. Start and stop from the test's main
 * thread.
 */
#ifndef BERTH_TESTS_HARNESS_PEBBLE_H
#define BERTH_TESTS_HARNESS_PEBBLE_H

#include <limits.h>

#include "common/buf.h"
#include "tests/harness/harness.h"

typedef struct h_pebble_opts {
    int http_port;        /* where Pebble fetches HTTP-01 answers; required */
    long validity_s;      /* certificate lifetime; 0: Pebble's default */
    const char *const *env; /* more "K=V" for Pebble (PEBBLE_*), or NULL */
} h_pebble_opts;

/* The caller owns the struct; h_pebble_start() fills every field and dir
 * belongs to the handle (pebble.log, challtestsrv.log, the TLS files). */
typedef struct h_pebble {
    h_proc proc;       /* pebble */
    h_proc dns;        /* pebble-challtestsrv */
    char *dir;
    int port;          /* ACME on https://127.0.0.1:port */
    int mgmt_port;     /* management: /roots/0, /intermediates/0 */
    int dns_port;
    char directory_url[64];     /* "https://127.0.0.1:PORT/dir" */
    char ca_bundle[PATH_MAX];   /* trust for directory_url */
    char log[PATH_MAX];         /* dir/pebble.log */
} h_pebble;

/* Starts pebble-challtestsrv and pebble and waits until the directory is
 * served. p is overwritten. Returns 0, BERTH_ENOENT when the binaries are
 * not installed, or another berth code after cleaning up and printing the
 * log's tail. */
int h_pebble_start(h_pebble *p, const h_pebble_opts *o);

/* Stops both processes and removes dir (kept with BERTH_KEEP_TEST_DIRS).
 * Safe on a zeroed or stopped handle. */
void h_pebble_stop(h_pebble *p);

/* GETs path from the management interface into out (appended; out keeps
 * its cap). Returns the HTTP status, or a negative berth code. */
int h_pebble_get(h_pebble *p, const char *path, buf *out);

#endif
