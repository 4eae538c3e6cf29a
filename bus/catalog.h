/* catalog.h - the subject catalog: every subject berth uses, in one table.
 *
 * Each entry names a subject pattern, the message type it carries (and the
 * reply type of a request), who publishes it, who listens, its kind and the
 * JetStream stream that keeps it. Publishing or subscribing on a subject that
 * matches no entry is a programming error: bus_publish() and friends refuse
 * it with BERTH_ESUBJECT, and the tests check every call site through them.
 *
 * Patterns are dot-separated tokens. "{name}" stands for exactly one token
 * (a node id, a site id); a final "{name...}" stands for one or more tokens
 * (a domain such as example.com). Docs, the decode tool, JetStream stream
 * subjects and NATS permissions are all derived from this table.
 */
#ifndef BERTH_BUS_CATALOG_H
#define BERTH_BUS_CATALOG_H

#include <protobuf-c/protobuf-c.h>
#include <stddef.h>

#include "common/buf.h"

enum bus_kind {
    BUS_COMMAND = 1, /* durable, JetStream work queue, one consumer per node */
    BUS_EVENT,       /* JetStream, replayable */
    BUS_TELEMETRY,   /* core NATS, fire and forget */
    BUS_REQUEST,     /* core NATS request/reply */
    BUS_STREAM,      /* core NATS stream of bytes */
};

typedef struct bus_subject {
    const char *pattern;
    enum bus_kind kind;
    const ProtobufCMessageDescriptor *type;
    const ProtobufCMessageDescriptor *reply; /* BUS_REQUEST only */
    const char *publisher;                   /* "panel", "daemon", ... */
    const char *subscriber;
    const char *stream; /* JetStream stream name or NULL */
    const char *summary;
} bus_subject;

/* The catalog, terminated by an entry with a NULL pattern. */
extern const bus_subject bus_catalog[];

/* Returns the entry a concrete subject (no wildcards) matches, or NULL. */
const bus_subject *bus_catalog_find(const char *subject);

/* Returns 0 when the subscription filter (which may use * and >) overlaps
 * at least one catalog pattern, BERTH_ESUBJECT otherwise. */
int bus_catalog_check_filter(const char *filter);

/* Returns 1 when the concrete subject matches the NATS filter (which may
 * use * and >), 0 otherwise. */
int bus_filter_matches(const char *filter, const char *subject);

/* Writes the NATS form of an entry's pattern ("site.status.*.*",
 * "cert.status.>") into out. */
int bus_catalog_wildcard(const bus_subject *s, buf *out);

/* Writes the pattern with the given placeholder bound to value and every
 * other placeholder as a wildcard: ("site.create.{node}", "node", "n1") ->
 * "site.create.n1". */
int bus_catalog_bind(const bus_subject *s, const char *name, const char *value,
                     buf *out);

/* Returns 1 when value can stand for one token: non-empty, no '.', '*',
 * '>', whitespace or control characters, at most 128 bytes. */
int bus_token_valid(const char *value);

/* Copies token idx (0-based) of a dotted subject into out (size bytes):
 * ("site.status.n1.blog", 2) -> "n1". Returns 0 or BERTH_EINVAL when the
 * token is missing, empty or too long. */
int bus_subject_token(const char *subject, int idx, char *out, size_t size);

/* Returns "command", "event", ... */
const char *bus_kind_name(enum bus_kind k);

/* Writes the catalog as a Markdown document (docs/subjects.md). */
int bus_catalog_markdown(buf *out);

#endif
