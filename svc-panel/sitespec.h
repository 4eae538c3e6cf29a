/* sitespec.h - a site's specification: validation, canonical form, and its
 * three JSON shapes.
 *
 * The bus carries berth.v1.SiteSpec. The HTTP API takes and returns a
 * flatter object (limits at the top, restart as a word); PostgreSQL keeps
 * the proto3 JSON of the SiteSpec without the fields that have columns of
 * their own (id, name, node_id, should_run). HTTP bodies are mapped onto
 * proto3 JSON (sitespec_api_merge) and decoded by the bus codec, so the
 * bus and the API share one decoder and one validator (sitespec_check).
 *
 * API fields (POST /sites; PATCH takes the same without name and node):
 *
 *   name         [a-z0-9-], 1..63, starting and ending with a letter/digit
 *   image        a Docker image reference ("nginx:1.25",
 * "reg:5000/a/b@sha256:...") command      [string], at most 64 of at most 4096
 * bytes env          {NAME: value}, at most 256; NAME is
 * [A-Za-z_][A-Za-z0-9_.]* ports        [{containerPort, hostPort?, protocol?:
 * "tcp"|"udp", hostIp?}], at most 32 memoryBytes  integer bytes, 6 MiB .. 1 TiB
 * (default 256 MiB) cpuMillis    1000 = one core, 10 .. 1024000 (default 1000)
 *   pids         16 .. 1000000 (default 1024)
 *   domains      [hostname], at most 32, stored lower-case without a final dot;
 *                at least two labels, no wildcards, no IP addresses,
 *                IDNs as punycode ("xn--...")
 *   node         a node id (default: placement picks one)
 *   httpPort     the container port domains route to (default 80 when domains
 * are set) stopCommand  written to the console to stop the site (default: a
 * signal) restart      "never" | "on-failure" | "always" (default "on-failure")
 *
 * Threads: everything here is pure; any thread may call it.
 */
#ifndef BERTH_PANEL_SITESPEC_H
#define BERTH_PANEL_SITESPEC_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "site.pb-c.h"

#define SITESPEC_NAME_MAX         63
#define SITESPEC_IMAGE_MAX        512
#define SITESPEC_ARGS_MAX         64
#define SITESPEC_ARG_BYTES        4096
#define SITESPEC_ENV_MAX          256
#define SITESPEC_ENV_KEY_MAX      256
#define SITESPEC_ENV_VALUE_MAX    32768
#define SITESPEC_PORTS_MAX        32
#define SITESPEC_DOMAINS_MAX      32
#define SITESPEC_DOMAIN_MAX       253
#define SITESPEC_STOP_COMMAND_MAX 1024

#define SITESPEC_MEMORY_MIN     (6ull << 20)
#define SITESPEC_MEMORY_MAX     (1ull << 40)
#define SITESPEC_MEMORY_DEFAULT (256ull << 20)
#define SITESPEC_CPU_MIN        10
#define SITESPEC_CPU_MAX        1024000
#define SITESPEC_CPU_DEFAULT    1000
#define SITESPEC_PIDS_MIN       16
#define SITESPEC_PIDS_MAX       1000000
#define SITESPEC_PIDS_DEFAULT   1024

/* A validated spec. spec is a shallow copy of the input with defaults
 * filled in and domains normalised; its pointers lead into this struct and
 * into the input, which must outlive it. Nothing here is freed. */
typedef struct sitespec_canon {
    Berth__V1__SiteSpec spec;
    Berth__V1__Limits limits;
    Berth__V1__RestartPolicy restart;
    Berth__V1__PortBinding ports[SITESPEC_PORTS_MAX];
    Berth__V1__PortBinding *port_ptrs[SITESPEC_PORTS_MAX];
    char *domain_ptrs[SITESPEC_DOMAINS_MAX];
    char domains[SITESPEC_DOMAINS_MAX][SITESPEC_DOMAIN_MAX + 1];
} sitespec_canon;

/* The API fields POST /sites and PATCH /sites/:id accept (NULL-ended). */
extern const char *const sitespec_create_fields[];
extern const char *const sitespec_update_fields[];

/* Checks in and writes its canonical form into out (about 10 KiB: callers
 * allocate it). id, node_id and should_run are not checked. Returns 0, or
 * BERTH_EINVAL with a one-line reason in err that names the API field. */
int sitespec_check(const Berth__V1__SiteSpec *in, sitespec_canon *out,
                   char *err, size_t errlen);

int sitespec_name_valid(const char *name);
int sitespec_image_valid(const char *image);

/* Lower-cases in and drops one final dot into out. Returns 0, or
 * BERTH_EINVAL when the result is not a hostname of two or more labels
 * (letters, digits, inner '-'; labels of 1..63, the whole at most 253, the
 * last label not numeric; "--" in a label's third and fourth places only
 * in an IDNA A-label "xn--...": IDNs are given as punycode). */
int sitespec_domain_normalize(const char *in,
                              char out[SITESPEC_DOMAIN_MAX + 1]);

/* Applies the API fields of body onto proto, a SiteSpec in proto3 JSON
 * form (an empty object for a new site): a field given replaces the
 * stored one, null resets it. Field names must have been checked against
 * the lists above. Returns 0 or BERTH_EINVAL with err set. */
int sitespec_api_merge(json_t *body, json_t *proto, char *err, size_t errlen);

/* Decodes proto3 JSON (a json_t or text) into a new SiteSpec the caller
 * frees with protobuf_c_message_free_unpacked(). Returns 0, or a codec
 * code (BERTH_EPROTO ...) with err naming the field. */
int sitespec_decode(json_t *proto, Berth__V1__SiteSpec **out, char *err,
                    size_t errlen);
int sitespec_decode_text(const char *text, Berth__V1__SiteSpec **out, char *err,
                         size_t errlen);

/* The stored form: proto3 JSON of s without id, name, node_id and
 * should_run. Returns NULL on ENOMEM; caller frees with free(). */
char *sitespec_store_json(const Berth__V1__SiteSpec *s);

/* The API shape of s (image, command, env, ports, memoryBytes, cpuMillis,
 * pids, httpPort, stopCommand, restart). Returns a new reference. */
json_t *sitespec_api_json(const Berth__V1__SiteSpec *s);

/* The API word of a restart mode ("on-failure"), of a site state
 * ("running"), and of a power action ("start"); "" / "unknown" when out of
 * range. */
const char *sitespec_restart_name(int mode);
const char *sitespec_state_name(int state);
/* Parses "start", "stop", "restart", "kill"; 0 (unspecified) otherwise. */
int sitespec_power_parse(const char *action);

#endif
