/* db.c - the panel's PostgreSQL: a pool of libpq connections, the table of
 * prepared statements, SQLSTATE mapping, transactions and migrations.
 *
 * Layout: the statement table, the pool's types, connecting (with the
 * statements prepared), error mapping, the pool (acquire, release), running
 * statements and transactions, then migrations and db_open().
 *
 * Pool. size slots, each with at most one PGconn, opened lazily by the
 * thread that acquires the slot (outside the lock, so a slow connect holds
 * up no one else). A slot handed out is checked first: an idle connection
 * whose server went away has its end-of-file waiting, which is read without
 * a round trip, and the slot reconnects once. A failed connect marks the
 * database down for DB_DOWN_MS, during which acquiring a slot without a
 * connection fails at once with BERTH_EUNAVAIL instead of knocking again;
 * after that the next acquire tries again, which is how the pool recovers
 * by itself. A connection released broken (lost, or stuck mid-query) is
 * closed; one released inside a transaction is rolled back.
 *
 * Secrets. Parameters and the DSN are never logged. Server messages are
 * logged only for SQLSTATE classes whose messages describe the statement or
 * the server (syntax, connection, resources), never for data errors, whose
 * messages quote the offending value.
 */
#include "svc-panel/db.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/clock.h"
#include "common/err.h"
#include "common/fs.h"
#include "common/log.h"

#define DB_POOL_MAX 64              /* connections per pool */
#define DB_DOWN_MS 1000             /* how long a failed connect is believed */
#define DB_CONSTRAINT_MAX 64        /* NAMEDATALEN */
#define DB_MIGRATIONS_MAX 1000      /* versions 000 to 999 */
#define DB_MIGRATION_NAME_MAX 64    /* the part between NNN_ and .sql */
#define DB_MIGRATION_BYTES (4u << 20) /* largest migration file */
/* pg_advisory_xact_lock key of migrations: "berth" read as a big-endian
 * number, so that two panels starting at once migrate one after the other. */
#define DB_MIGRATE_LOCK "422608794728"

/* Defaults put before the DSN's own settings (which win): fail a connect
 * after 2 s, talk UTF-8, and notice a dead peer within about half a minute
 * instead of the kernel's two hours. */
static const char *const conn_keys[] = {
    "connect_timeout", "client_encoding", "application_name", "keepalives",
    "keepalives_idle", "keepalives_interval", "keepalives_count",
    "tcp_user_timeout", "dbname", NULL};
#define CONN_DEFAULTS "2", "UTF8", "berth-panel", "1", "10", "5", "3", "15000"

/* ---------------------------------------------------------------- statements */

/* One prepared statement. Parameters are text ($1 = params[0]); NULL is
 * SQL NULL. Results are text: uuids in canonical form, booleans "t"/"f",
 * jsonb as JSON text, timestamps as RFC 3339 UTC with milliseconds
 * ("2026-11-22T03:50:01.123Z", via rfc3339() in sql/001_init.sql). */
typedef struct db_stmt {
    const char *name;
    const char *sql;
    int nparams;
} db_stmt;

/* Column lists shared by the statements of one table; the comments on the
 * statements name them (USER row, ROLE row, ...). */
#define USER_COLS                                                              \
    "id, name, email, role_id, pfp, rfc3339(created_at), rfc3339(updated_at)"
/* permissions: the role's permission names, sorted, joined with ','. */
#define ROLE_COLS                                                              \
    "r.id, r.name, rfc3339(r.created_at), rfc3339(r.updated_at), "             \
    "(SELECT coalesce(string_agg(permission, ',' ORDER BY permission), '') "   \
    "FROM role_permissions WHERE role_id = r.id)"
/* expired: "t" once expires_at has passed. */
#define TOKEN_COLS                                                             \
    "hash, user_id, family, rfc3339(expires_at), rfc3339(rotated_at), "        \
    "rfc3339(revoked_at), rfc3339(created_at), ip, expires_at <= now()"
#define SSH_KEY_COLS                                                           \
    "id, user_id, name, type, public_key, fingerprint, rfc3339(created_at)"
#define NODE_COLS                                                              \
    "id, name, hostname, specs, public_url, online, rfc3339(last_seen), "      \
    "rfc3339(registered_at)"
#define SITE_COLS                                                              \
    "id, name, node_id, spec, desired_state, status, status_reason, "          \
    "exit_code, rfc3339(status_at), rfc3339(created_at), rfc3339(updated_at)"
#define COMMAND_COLS                                                           \
    "id, site_id, node_id, kind, payload, state, error, rfc3339(created_at), " \
    "rfc3339(updated_at), user_id"
/* ROUTE row (sql/002_edge.sql): domains joined with ','. */
#define ROUTE_COLS                                                             \
    "s.id, coalesce(s.upstream, ''), s.route_running, s.route_revision, "     \
    "s.routed, coalesce((SELECT string_agg(d.name, ',' ORDER BY d.name) "     \
    "FROM domains d WHERE d.site_id = s.id), '')"
#define AUDIT_COLS                                                             \
    "id, rfc3339(at), user_id, action, target, ip, result, detail"
/* The filters of audit_list and audit_count: $1 user_id, $2 action,
 * $3 target, $4 since (inclusive), $5 until (exclusive); NULL = any. */
#define AUDIT_WHERE                                                            \
    " WHERE ($1::uuid IS NULL OR user_id = $1::uuid)"                          \
    " AND ($2::text IS NULL OR action = $2::text)"                             \
    " AND ($3::text IS NULL OR target = $3::text)"                             \
    " AND ($4::timestamptz IS NULL OR at >= $4::timestamptz)"                  \
    " AND ($5::timestamptz IS NULL OR at < $5::timestamptz)"

/* Every statement the panel runs. Each connection prepares all of them
 * once, right after connecting, so a statement that no longer matches the
 * schema stops the panel at start-up. Lists are ordered (name, time) so
 * pages are stable. "Returns nothing" statements suit db_run().
 *
 * Adding one: an entry here, named table_verb, with a comment giving its
 * parameters ($n and what NULL means) and its result columns; cast a
 * parameter ($1::uuid) wherever PostgreSQL cannot infer its type. */
static const db_stmt db_stmts[] = {
    /* ---- users ---- */
    /* $1 name, $2 email, $3 password_hash, $4 role_id (NULL: none).
     * Returns the USER row. EEXIST: users_name_key, users_email_key. */
    {"user_insert",
     "INSERT INTO users (name, email, password_hash, role_id)"
     " VALUES ($1, $2, $3, $4) RETURNING " USER_COLS,
     4},
    /* $1 id. Returns the USER row, or no row. */
    {"user_get", "SELECT " USER_COLS " FROM users WHERE id = $1", 1},
    /* $1 name. */
    {"user_get_by_name", "SELECT " USER_COLS " FROM users WHERE name = $1", 1},
    /* $1 email, compared without case. */
    {"user_get_by_email",
     "SELECT " USER_COLS " FROM users WHERE lower(email) = lower($1)", 1},
    /* $1 name or email, as typed at login. Returns id, password_hash of
     * the user with that name, else of the one with that email. */
    {"user_login",
     "SELECT id, password_hash FROM users"
     " WHERE name = $1::text OR lower(email) = lower($1::text)"
     " ORDER BY name = $1::text DESC LIMIT 1",
     1},
    /* $1 limit (NULL: all), $2 offset (NULL: 0). USER rows by name. */
    {"user_list",
     "SELECT " USER_COLS " FROM users ORDER BY name"
     " LIMIT $1::bigint OFFSET coalesce($2::bigint, 0)",
     2},
    /* Returns count. */
    {"user_count", "SELECT count(*) FROM users", 0},
    /* $1 id, $2 name, $3 email; NULL keeps the current value. Returns the
     * USER row, or no row when there is no such user. */
    {"user_update",
     "UPDATE users SET name = coalesce($2, name), email = coalesce($3, email)"
     " WHERE id = $1 RETURNING " USER_COLS,
     3},
    /* $1 id, $2 role_id (NULL: none). Returns the USER row. */
    {"user_set_role",
     "UPDATE users SET role_id = $2 WHERE id = $1 RETURNING " USER_COLS, 2},
    /* $1 id, $2 password_hash. Returns id. */
    {"user_set_password",
     "UPDATE users SET password_hash = $2 WHERE id = $1 RETURNING id", 2},
    /* $1 id, $2 pfp file name (NULL: none). Returns the USER row. */
    {"user_set_pfp",
     "UPDATE users SET pfp = $2 WHERE id = $1 RETURNING " USER_COLS, 2},
    /* $1 id. Deletes the user with its tokens, keys and grants. Returns
     * id, or no row. */
    {"user_delete", "DELETE FROM users WHERE id = $1 RETURNING id", 1},

    /* ---- roles ---- */
    /* $1 name. Returns the ROLE row. EEXIST: roles_name_key. */
    {"role_insert",
     "INSERT INTO roles AS r (name) VALUES ($1) RETURNING " ROLE_COLS, 1},
    /* $1 id. Returns the ROLE row, or no row. */
    {"role_get", "SELECT " ROLE_COLS " FROM roles r WHERE r.id = $1", 1},
    /* $1 name. */
    {"role_get_by_name",
     "SELECT " ROLE_COLS " FROM roles r WHERE r.name = $1", 1},
    /* ROLE rows by name. */
    {"role_list", "SELECT " ROLE_COLS " FROM roles r ORDER BY r.name", 0},
    /* $1 id, $2 name. Returns the ROLE row, or no row. */
    {"role_update",
     "UPDATE roles AS r SET name = $2 WHERE r.id = $1 RETURNING " ROLE_COLS,
     2},
    /* $1 id. Returns id, or no row. EINVAL while users hold the role. */
    {"role_delete", "DELETE FROM roles WHERE id = $1 RETURNING id", 1},
    /* $1 id. Returns count: the users holding the role. */
    {"role_user_count", "SELECT count(*) FROM users WHERE role_id = $1", 1},
    /* $1 role_id. Returns permission, sorted. */
    {"role_perm_list",
     "SELECT permission FROM role_permissions WHERE role_id = $1"
     " ORDER BY permission",
     1},
    /* Returns role_id, permission for every role (loading the store). */
    {"role_perm_list_all",
     "SELECT role_id, permission FROM role_permissions"
     " ORDER BY role_id, permission",
     0},
    /* $1 role_id, $2 permission. Returns nothing; adding twice is fine. */
    {"role_perm_add",
     "INSERT INTO role_permissions (role_id, permission) VALUES ($1, $2)"
     " ON CONFLICT DO NOTHING",
     2},
    /* $1 role_id, $2 permission. Returns nothing. */
    {"role_perm_remove",
     "DELETE FROM role_permissions WHERE role_id = $1 AND permission = $2", 2},
    /* $1 role_id, $2 the complete set, comma-separated ("" = none).
     * Replaces the role's permissions. Returns nothing. */
    {"role_perm_set",
     "WITH wanted AS (SELECT DISTINCT p FROM"
     "   unnest(string_to_array($2::text, ',')) AS p WHERE p <> ''),"
     " gone AS (DELETE FROM role_permissions WHERE role_id = $1::int"
     "   AND permission NOT IN (SELECT p FROM wanted))"
     " INSERT INTO role_permissions (role_id, permission)"
     " SELECT $1::int, p FROM wanted ON CONFLICT DO NOTHING",
     2},

    /* ---- per-site grants ---- */
    /* $1 user_id, $2 site_id, $3 permission. Returns nothing; granting
     * twice is fine. */
    {"site_grant_add",
     "INSERT INTO site_grants (user_id, site_id, permission)"
     " VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
     3},
    /* $1 user_id, $2 site_id, $3 permission. Returns nothing. */
    {"site_grant_remove",
     "DELETE FROM site_grants"
     " WHERE user_id = $1 AND site_id = $2 AND permission = $3",
     3},
    /* $1 user_id, $2 site_id, $3 the complete set, comma-separated ("" =
     * none). Replaces the user's grants on the site. Returns nothing. */
    {"site_grant_set",
     "WITH wanted AS (SELECT DISTINCT p FROM"
     "   unnest(string_to_array($3::text, ',')) AS p WHERE p <> ''),"
     " gone AS (DELETE FROM site_grants WHERE user_id = $1::uuid"
     "   AND site_id = $2::uuid AND permission NOT IN (SELECT p FROM wanted))"
     " INSERT INTO site_grants (user_id, site_id, permission)"
     " SELECT $1::uuid, $2::uuid, p FROM wanted ON CONFLICT DO NOTHING",
     3},
    /* $1 user_id, $2 site_id. Drops every grant of the user on the site.
     * Returns nothing. */
    {"site_grant_delete",
     "DELETE FROM site_grants WHERE user_id = $1 AND site_id = $2", 2},
    /* $1 user_id. Returns site_id, permission. */
    {"site_grant_list_user",
     "SELECT site_id, permission FROM site_grants WHERE user_id = $1"
     " ORDER BY site_id, permission",
     1},
    /* $1 site_id. Returns user_id, permission. */
    {"site_grant_list_site",
     "SELECT user_id, permission FROM site_grants WHERE site_id = $1"
     " ORDER BY user_id, permission",
     1},
    /* Returns user_id, site_id, permission (loading the store). */
    {"site_grant_list_all",
     "SELECT user_id, site_id, permission FROM site_grants"
     " ORDER BY user_id, site_id, permission",
     0},

    /* ---- refresh tokens ---- */
    /* $1 hash (hex SHA-256), $2 user_id, $3 family, $4 expires_at,
     * $5 ip (NULL: unknown). Returns nothing. */
    {"token_insert",
     "INSERT INTO refresh_tokens (hash, user_id, family, expires_at, ip)"
     " VALUES ($1, $2, $3, $4, $5)",
     5},
    /* $1 hash. Returns the TOKEN row, or no row. */
    {"token_get", "SELECT " TOKEN_COLS " FROM refresh_tokens WHERE hash = $1",
     1},
    /* $1 hash. Marks a live token rotated, atomically: of two concurrent
     * refreshes one gets user_id, family and the other no row (then
     * token_get tells reuse from expiry). */
    {"token_rotate",
     "UPDATE refresh_tokens SET rotated_at = now() WHERE hash = $1"
     " AND rotated_at IS NULL AND revoked_at IS NULL AND expires_at > now()"
     " RETURNING user_id, family",
     1},
    /* $1 hash. Revokes one token (logout). Returns nothing. */
    {"token_revoke",
     "UPDATE refresh_tokens SET revoked_at = now()"
     " WHERE hash = $1 AND revoked_at IS NULL",
     1},
    /* $1 family. Revokes a whole login (reuse detected). Returns nothing. */
    {"token_revoke_family",
     "UPDATE refresh_tokens SET revoked_at = now()"
     " WHERE family = $1 AND revoked_at IS NULL",
     1},
    /* $1 user_id. Revokes every login of a user (password change).
     * Returns nothing. */
    {"token_revoke_user",
     "UPDATE refresh_tokens SET revoked_at = now()"
     " WHERE user_id = $1 AND revoked_at IS NULL",
     1},
    /* Deletes expired tokens. Returns nothing; affected = rows deleted. */
    {"token_delete_expired",
     "DELETE FROM refresh_tokens WHERE expires_at < now()", 0},

    /* ---- SSH keys ---- */
    /* $1 user_id, $2 name, $3 type ("ssh-ed25519"), $4 public_key (the
     * authorized_keys line), $5 fingerprint ("SHA256:..."). Returns the
     * SSH_KEY row. EEXIST: ssh_keys_fingerprint_key. */
    {"ssh_key_insert",
     "INSERT INTO ssh_keys (user_id, name, type, public_key, fingerprint)"
     " VALUES ($1, $2, $3, $4, $5) RETURNING " SSH_KEY_COLS,
     5},
    /* $1 id. Returns the SSH_KEY row, or no row. */
    {"ssh_key_get", "SELECT " SSH_KEY_COLS " FROM ssh_keys WHERE id = $1", 1},
    /* $1 user_id. SSH_KEY rows by name. */
    {"ssh_key_list",
     "SELECT " SSH_KEY_COLS " FROM ssh_keys WHERE user_id = $1"
     " ORDER BY name, created_at",
     1},
    /* $1 fingerprint. SSH_KEY rows of every user holding that key (SSH
     * authentication). */
    {"ssh_key_find",
     "SELECT " SSH_KEY_COLS " FROM ssh_keys WHERE fingerprint = $1"
     " ORDER BY created_at",
     1},
    /* $1 id, $2 user_id (the owner). Returns id, or no row. */
    {"ssh_key_delete",
     "DELETE FROM ssh_keys WHERE id = $1 AND user_id = $2 RETURNING id", 2},

    /* ---- nodes ---- */
    /* $1 id, $2 name, $3 hostname, $4 specs (JSON object), $5 public_url;
     * NULL: "" ({} for specs). Registers or updates a node and marks it
     * online. Returns the NODE row. */
    {"node_upsert",
     "INSERT INTO nodes (id, name, hostname, specs, public_url, online,"
     " last_seen) VALUES ($1, $2, coalesce($3, ''),"
     " coalesce($4::jsonb, '{}'), coalesce($5, ''), true, now())"
     " ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name,"
     " hostname = EXCLUDED.hostname, specs = EXCLUDED.specs,"
     " public_url = EXCLUDED.public_url, online = true, last_seen = now()"
     " RETURNING " NODE_COLS,
     5},
    /* $1 id. Returns the NODE row, or no row. */
    {"node_get", "SELECT " NODE_COLS " FROM nodes WHERE id = $1", 1},
    /* NODE rows by name. */
    {"node_list", "SELECT " NODE_COLS " FROM nodes ORDER BY name, id", 0},
    /* $1 id, $2 online ("true"/"false"). Online also refreshes last_seen.
     * Returns id, or no row. */
    {"node_set_online",
     "UPDATE nodes SET online = $2::boolean, last_seen = CASE WHEN"
     " $2::boolean THEN now() ELSE last_seen END WHERE id = $1 RETURNING id",
     2},
    /* Marks every node offline (panel start, before heartbeats arrive).
     * Returns nothing. */
    {"node_set_all_offline", "UPDATE nodes SET online = false WHERE online",
     0},
    /* $1 id. Returns id, or no row. EINVAL while sites live on it. */
    {"node_delete", "DELETE FROM nodes WHERE id = $1 RETURNING id", 1},

    /* ---- sites ---- */
    /* $1 name, $2 node_id, $3 spec (JSON; NULL: {}), $4 desired_state
     * (NULL: stopped). Returns the SITE row. EEXIST: sites_name_key. */
    {"site_insert",
     "INSERT INTO sites (name, node_id, spec, desired_state)"
     " VALUES ($1, $2, coalesce($3::jsonb, '{}'), coalesce($4, 'stopped'))"
     " RETURNING " SITE_COLS,
     4},
    /* $1 id. Returns the SITE row, or no row. */
    {"site_get", "SELECT " SITE_COLS " FROM sites WHERE id = $1", 1},
    /* $1 name. */
    {"site_get_by_name", "SELECT " SITE_COLS " FROM sites WHERE name = $1",
     1},
    /* SITE rows by name. */
    {"site_list", "SELECT " SITE_COLS " FROM sites ORDER BY name", 0},
    /* Returns node_id, memory: the sum of the sites' memory limits
     * (spec.limits.memoryBytes) per node, for placement. */
    {"site_memory_by_node",
     "SELECT node_id, coalesce(sum((spec->'limits'->>'memoryBytes')::numeric),"
     " 0)::bigint FROM sites GROUP BY node_id",
     0},
    /* $1 node_id. SITE rows by name. */
    {"site_list_node",
     "SELECT " SITE_COLS " FROM sites WHERE node_id = $1 ORDER BY name", 1},
    /* $1 user_id. SITE rows the user holds any grant on, by name. */
    {"site_list_user",
     "SELECT " SITE_COLS " FROM sites WHERE id IN"
     " (SELECT site_id FROM site_grants WHERE user_id = $1) ORDER BY name",
     1},
    /* $1 id, $2 name, $3 spec (JSON), $4 desired_state; NULL keeps the
     * current value. Returns the SITE row, or no row. */
    {"site_update",
     "UPDATE sites SET name = coalesce($2, name),"
     " spec = coalesce($3::jsonb, spec),"
     " desired_state = coalesce($4, desired_state)"
     " WHERE id = $1 RETURNING " SITE_COLS,
     4},
    /* $1 id, $2 status, $3 status_reason, $4 exit_code (NULL: none),
     * $5 status_at (NULL: now). Returns id, or no row. */
    {"site_set_status",
     "UPDATE sites SET status = $2, status_reason = $3, exit_code = $4,"
     " status_at = coalesce($5::timestamptz, now()) WHERE id = $1"
     " RETURNING id",
     5},
    /* $1 id. Deletes the site with its domains, grants and commands.
     * Returns id, or no row. */
    {"site_delete", "DELETE FROM sites WHERE id = $1 RETURNING id", 1},

    /* ---- domains ---- */
    /* $1 name (stored lower-case), $2 site_id. Returns name, site_id.
     * EEXIST: domains_pkey (the domain belongs to a site already). */
    {"domain_insert",
     "INSERT INTO domains (name, site_id) VALUES (lower($1), $2)"
     " RETURNING name, site_id",
     2},
    /* $1 name. Returns name, site_id, or no row. */
    {"domain_get",
     "SELECT name, site_id FROM domains WHERE name = lower($1)", 1},
    /* $1 name. Returns site_id, or no row. */
    {"domain_delete",
     "DELETE FROM domains WHERE name = lower($1) RETURNING site_id", 1},
    /* Returns name, site_id for every domain (the edge's routes). */
    {"domain_list", "SELECT name, site_id FROM domains ORDER BY name", 0},
    /* $1 site_id. Returns name. */
    {"domain_list_site",
     "SELECT name FROM domains WHERE site_id = $1 ORDER BY name", 1},
    /* $1 site_id. Drops every domain of the site (before writing its new
     * list in the same transaction). Returns nothing. */
    {"domain_delete_site", "DELETE FROM domains WHERE site_id = $1", 1},

    /* ---- routes and certificates (edge.c) ---- */
    /* Takes the next route revision; the row stays locked until the
     * transaction ends, so revisions follow commit order. Returns
     * revision. */
    {"route_clock_next",
     "UPDATE route_clock SET revision = revision + 1 RETURNING revision", 0},
    /* $1 site id. Locks the site's row. Returns upstream ('' unknown),
     * route_running, routed, has_domains; no row for an unknown site. */
    {"site_route_lock",
     "SELECT coalesce(s.upstream, ''), s.route_running, s.routed,"
     " EXISTS (SELECT 1 FROM domains d WHERE d.site_id = s.id)"
     " FROM sites s WHERE s.id = $1 FOR UPDATE",
     1},
    /* $1 id, $2 upstream (NULL: keep), $3 route_running, $4 route_revision
     * (NULL: keep), $5 routed (NULL: keep). Returns id, or no row. */
    {"site_route_set",
     "UPDATE sites SET upstream = coalesce($2, upstream),"
     " route_running = $3::boolean,"
     " route_revision = coalesce($4::bigint, route_revision),"
     " routed = coalesce($5::boolean, routed) WHERE id = $1 RETURNING id",
     5},
    /* $1 site id. Returns the ROUTE row, or no row. */
    {"site_route_get", "SELECT " ROUTE_COLS " FROM sites s WHERE s.id = $1",
     1},
    /* Returns the clock's revision then a ROUTE row for every site with
     * domains, in one snapshot; one row of NULLs after the revision when
     * there is none. */
    {"route_list",
     "SELECT c.revision, r.* FROM route_clock c LEFT JOIN (SELECT " ROUTE_COLS
     " FROM sites s WHERE EXISTS (SELECT 1 FROM domains d"
     " WHERE d.site_id = s.id)) r ON true ORDER BY 2",
     0},
    /* $1 domain, $2 site_id (NULL: unknown), $3 state, $4 not_after,
     * $5 reason, $6 next_attempt (NULL: none), $7 event_ns. Keeps the
     * newest event of each domain. Returns domain, or no row when a newer
     * event was applied already. */
    {"cert_upsert",
     "INSERT INTO certificates (domain, site_id, state, not_after, reason,"
     " next_attempt, event_ns) VALUES ($1, $2::uuid, $3, $4::timestamptz, $5,"
     " $6::timestamptz, $7::bigint) ON CONFLICT (domain) DO UPDATE SET"
     " site_id = EXCLUDED.site_id, state = EXCLUDED.state,"
     " not_after = EXCLUDED.not_after, reason = EXCLUDED.reason,"
     " next_attempt = EXCLUDED.next_attempt, event_ns = EXCLUDED.event_ns"
     " WHERE certificates.event_ns <= EXCLUDED.event_ns RETURNING domain",
     7},
    /* $1 site id. Returns domain, state ('unknown' without a status),
     * not_after, reason, next_attempt for every domain of the site. */
    {"cert_list_site",
     "SELECT d.name, coalesce(c.state, 'unknown'), rfc3339(c.not_after),"
     " c.reason, rfc3339(c.next_attempt) FROM domains d"
     " LEFT JOIN certificates c ON c.domain = d.name"
     " WHERE d.site_id = $1 ORDER BY d.name",
     1},

    /* ---- commands ---- */
    /* $1 site_id (NULL: about the node), $2 node_id, $3 kind, $4 payload
     * (JSON; NULL: {}), $5 user_id (NULL: the system). Returns the COMMAND
     * row, state pending. */
    {"command_insert",
     "INSERT INTO commands (site_id, node_id, kind, payload, user_id)"
     " VALUES ($1, $2, $3, coalesce($4::jsonb, '{}'), $5)"
     " RETURNING " COMMAND_COLS,
     5},
    /* $1 id. Returns the COMMAND row, or no row. */
    {"command_get", "SELECT " COMMAND_COLS " FROM commands WHERE id = $1", 1},
    /* $1 id, $2 state (pending, sent, done, failed), $3 error (NULL: none).
     * Returns the COMMAND row, or no row. */
    {"command_set_state",
     "UPDATE commands SET state = $2, error = $3 WHERE id = $1"
     " RETURNING " COMMAND_COLS,
     3},
    /* $1 id. Marks a command sent unless its result came first. Returns
     * id, or no row. */
    {"command_mark_sent",
     "UPDATE commands SET state = 'sent' WHERE id = $1 AND state = 'pending'"
     " RETURNING id",
     1},
    /* $1 site_id, $2 limit (NULL: 50). COMMAND rows, newest first. */
    {"command_list_site",
     "SELECT " COMMAND_COLS " FROM commands WHERE site_id = $1"
     " ORDER BY created_at DESC, id LIMIT coalesce($2::bigint, 50)",
     2},
    /* $1 node_id. COMMAND rows still pending or sent, oldest first (what
     * a reconnecting daemon may still have to do). */
    {"command_list_open",
     "SELECT " COMMAND_COLS " FROM commands WHERE node_id = $1"
     " AND state IN ('pending', 'sent') ORDER BY created_at, id",
     1},

    /* ---- audit ---- */
    /* $1 user_id (NULL: the system), $2 action, $3 target, $4 ip,
     * $5 result, $6 detail (JSON; NULL: none). Returns id, at. */
    {"audit_insert",
     "INSERT INTO audit_log (user_id, action, target, ip, result, detail)"
     " VALUES ($1, $2, $3, $4, $5, $6::jsonb) RETURNING id, rfc3339(at)",
     6},
    /* AUDIT_WHERE filters $1..$5, $6 limit (NULL: 100; at most 1000),
     * $7 offset (NULL: 0). AUDIT rows, newest first. */
    {"audit_list",
     "SELECT " AUDIT_COLS " FROM audit_log" AUDIT_WHERE
     " ORDER BY at DESC, id DESC"
     " LIMIT least(coalesce($6::bigint, 100), 1000)"
     " OFFSET coalesce($7::bigint, 0)",
     7},
    /* AUDIT_WHERE filters $1..$5. Returns count (for paging). */
    {"audit_count", "SELECT count(*) FROM audit_log" AUDIT_WHERE, 5},
    /* $1 time. Deletes entries older than it (retention). Returns nothing;
     * affected = rows deleted. */
    {"audit_delete_before",
     "DELETE FROM audit_log WHERE at < $1::timestamptz", 1},
};

#define DB_NSTMTS ((int)(sizeof(db_stmts) / sizeof(db_stmts[0])))

static const db_stmt *stmt_find(const char *name)
{
    int i;

    for (i = 0; i < DB_NSTMTS; i++) {
        if (strcmp(db_stmts[i].name, name) == 0)
            return &db_stmts[i];
    }
    return NULL;
}

/* Refuses a table with a duplicate name or an impossible parameter count,
 * which would otherwise surface as a confusing prepare error. */
static int stmt_table_check(void)
{
    int i;
    int j;

    for (i = 0; i < DB_NSTMTS; i++) {
        if (db_stmts[i].nparams < 0 || db_stmts[i].nparams > 32) {
            log_error("bad statement table", "stmt=%s nparams=%d",
                      db_stmts[i].name, db_stmts[i].nparams);
            return BERTH_EINTERNAL;
        }
        for (j = 0; j < i; j++) {
            if (strcmp(db_stmts[i].name, db_stmts[j].name) == 0) {
                log_error("bad statement table", "duplicate=%s",
                          db_stmts[i].name);
                return BERTH_EINTERNAL;
            }
        }
    }
    return 0;
}

/* ---------------------------------------------------------------- types */

struct db_conn {
    PGconn *pg;     /* NULL until connected, and after being found broken */
    db_pool *pool;
    int busy;       /* lent out; guarded by pool->mu */
    char constraint[DB_CONSTRAINT_MAX]; /* of the last failed statement */
};

struct db_pool {
    pthread_mutex_t mu;
    pthread_cond_t cv;  /* a slot was released */
    char *dsn;          /* owned; never logged */
    int size;
    int busy;
    int version;        /* newest applied migration */
    atomic_llong down_until; /* monotonic ms: connects fail fast before */
    atomic_long errors;
    db_conn conns[];    /* size slots */
};

/* ---------------------------------------------------------------- messages */

/* Copies a libpq message without its final newline (for one log line). */
static const char *one_line(const char *msg, char *dst, size_t size)
{
    size_t n;

    snprintf(dst, size, "%s", msg != NULL ? msg : "");
    n = strlen(dst);
    while (n > 0 && (dst[n - 1] == '\n' || dst[n - 1] == ' '))
        dst[--n] = '\0';
    return dst;
}

/* Server notices (e.g. "terminating connection due to administrator
 * command" on an idle connection) go to the debug log, not stderr. */
static void on_notice(void *arg, const char *message)
{
    char line[512];

    (void)arg;
    log_debug("postgres notice", "text=%s",
              one_line(message, line, sizeof(line)));
}

/* 1 when a server message of this SQLSTATE cannot quote a parameter:
 * connection (08), syntax and access (42), resources (53, 54), object
 * state (55), operator intervention (57), system (58). */
static int message_is_safe(const char *state)
{
    static const char *const classes[] = {"08", "42", "53", "54",
                                          "55", "57", "58", NULL};
    int i;

    for (i = 0; state != NULL && classes[i] != NULL; i++) {
        if (strncmp(state, classes[i], 2) == 0)
            return 1;
    }
    return 0;
}

/* ---------------------------------------------------------------- connecting */

/* Connects to p->dsn. Returns 0 and *out (caller closes with PQfinish), or
 * BERTH_EUNAVAIL after logging why. */
static int conn_connect(db_pool *p, PGconn **out)
{
    const char *const vals[] = {CONN_DEFAULTS, p->dsn, NULL};
    char line[512];
    PGconn *pg;
    int rc = 0;

    _Static_assert(sizeof(vals) == sizeof(conn_keys), "conn_keys and values");
    *out = NULL;
    pg = PQconnectdbParams(conn_keys, vals, 1);
    if (pg == NULL) {
        rc = BERTH_ENOMEM;
        goto out;
    }
    if (PQstatus(pg) != CONNECTION_OK) {
        log_warn("postgres unreachable", "error=%s",
                 one_line(PQerrorMessage(pg), line, sizeof(line)));
        rc = BERTH_EUNAVAIL;
        goto out;
    }
    PQsetNoticeProcessor(pg, on_notice, NULL);
    *out = pg;
    pg = NULL;
out:
    PQfinish(pg);
    return rc;
}

/* Prepares every statement of the table on pg. Returns 0, BERTH_EUNAVAIL
 * when the connection drops, or BERTH_EIO when a statement does not match
 * the schema (logged with the server's message: it describes the SQL). */
static int conn_prepare(PGconn *pg)
{
    PGresult *res = NULL;
    char line[512];
    int i;
    int rc = 0;

    for (i = 0; i < DB_NSTMTS; i++) {
        const db_stmt *s = &db_stmts[i];

        res = PQprepare(pg, s->name, s->sql, s->nparams, NULL);
        if (PQresultStatus(res) != PGRES_COMMAND_OK) {
            rc = PQstatus(pg) == CONNECTION_OK ? BERTH_EIO : BERTH_EUNAVAIL;
            log_error("cannot prepare statement", "stmt=%s sqlstate=%s error=%s",
                      s->name,
                      res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : "",
                      one_line(PQerrorMessage(pg), line, sizeof(line)));
            goto out;
        }
        PQclear(res);
        res = NULL;
    }
out:
    PQclear(res);
    return rc;
}

/* Connects and prepares. Returns 0 and *out, or a berth code. */
static int conn_open(db_pool *p, PGconn **out)
{
    PGconn *pg = NULL;
    int rc;

    *out = NULL;
    rc = conn_connect(p, &pg);
    if (rc != 0)
        goto out;
    rc = conn_prepare(pg);
    if (rc != 0)
        goto out;
    *out = pg;
    pg = NULL;
out:
    PQfinish(pg);
    return rc;
}

/* 1 when an idle connection still looks usable. A server that shut down
 * or ended the session has sent its goodbye and end-of-file, which are
 * read here without a round trip. */
static int conn_alive(PGconn *pg)
{
    int i;

    /* The goodbye message and the end-of-file take one read each. */
    for (i = 0; i < 4; i++) {
        struct pollfd pfd;
        PGnotify *n;

        if (PQstatus(pg) != CONNECTION_OK || PQsocket(pg) < 0)
            return 0;
        pfd.fd = PQsocket(pg);
        pfd.events = POLLIN;
        pfd.revents = 0;
        if (poll(&pfd, 1, 0) <= 0)
            break;
        if (!PQconsumeInput(pg))
            return 0;
        while ((n = PQnotifies(pg)) != NULL)
            PQfreemem(n);
    }
    return PQstatus(pg) == CONNECTION_OK;
}

/* ---------------------------------------------------------------- errors */

/* Turns a failed result into a berth code, remembers the constraint, logs
 * the failure (never the parameters) and counts it. res may be NULL. */
static int fail(db_conn *c, const PGresult *res, const char *what)
{
    const char *state = NULL;
    const char *cons = NULL;
    char line[512] = "";
    int rc;

    if (res != NULL) {
        state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
        cons = PQresultErrorField(res, PG_DIAG_CONSTRAINT_NAME);
    }
    if (cons != NULL)
        snprintf(c->constraint, sizeof(c->constraint), "%s", cons);
    if (PQstatus(c->pg) != CONNECTION_OK)
        rc = BERTH_EUNAVAIL;
    else if (state == NULL)
        rc = BERTH_EIO;
    else if (strcmp(state, "23505") == 0)
        rc = BERTH_EEXIST;
    else if (strncmp(state, "22", 2) == 0 || strcmp(state, "23502") == 0 ||
             strcmp(state, "23503") == 0 || strcmp(state, "23514") == 0)
        rc = BERTH_EINVAL; /* data exceptions (22001, 22P02, ...), NOT
                              NULL, foreign key, check */
    else if (strncmp(state, "08", 2) == 0 || strcmp(state, "57P01") == 0 ||
             strcmp(state, "57P02") == 0 || strcmp(state, "57P03") == 0)
        rc = BERTH_EUNAVAIL;
    else
        rc = BERTH_EIO;
    if (rc == BERTH_EUNAVAIL || message_is_safe(state))
        one_line(PQerrorMessage(c->pg), line, sizeof(line));
    atomic_fetch_add(&c->pool->errors, 1);
    /* A violated constraint is the client's doing (a 409 or 400), not
     * trouble with the database. */
    log_emit(rc == BERTH_EEXIST || rc == BERTH_EINVAL ? LOG_INFO : LOG_WARN,
             "statement failed", "stmt=%s rc=%s sqlstate=%s constraint=%s error=%s",
             what, berth_errname(rc), state != NULL ? state : "",
             cons != NULL ? cons : "", line);
    return rc;
}

/* ---------------------------------------------------------------- pool */

static struct timespec deadline_in(int timeout_ms)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += timeout_ms / 1000;
    ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return ts;
}

/* A free slot, preferring one with a connection. Called under p->mu. */
static db_conn *pick(db_pool *p)
{
    db_conn *empty = NULL;
    int i;

    for (i = 0; i < p->size; i++) {
        db_conn *c = &p->conns[i];

        if (c->busy)
            continue;
        if (c->pg != NULL)
            return c;
        if (empty == NULL)
            empty = c;
    }
    return empty;
}

/* Gives slot c back to the pool (its connection, if any, stays). */
static void slot_free(db_pool *p, db_conn *c)
{
    c->constraint[0] = '\0';
    pthread_mutex_lock(&p->mu);
    c->busy = 0;
    p->busy--;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

int db_acquire(db_pool *p, int timeout_ms, db_conn **out)
{
    struct timespec deadline = deadline_in(timeout_ms > 0 ? timeout_ms : 0);
    db_conn *c = NULL;
    int rc = 0;

    *out = NULL;
    if (p == NULL)
        return BERTH_EINVAL;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        c = pick(p);
        if (c != NULL)
            break;
        if (pthread_cond_timedwait(&p->cv, &p->mu, &deadline) == ETIMEDOUT) {
            c = pick(p);
            break;
        }
    }
    if (c != NULL) {
        c->busy = 1;
        p->busy++;
    }
    pthread_mutex_unlock(&p->mu);
    if (c == NULL) {
        rc = BERTH_ETIMEDOUT;
        goto out;
    }
    if (c->pg != NULL && !conn_alive(c->pg)) {
        log_info("postgres connection lost while idle; reconnecting",
                 "slot=%d", (int)(c - p->conns));
        PQfinish(c->pg);
        c->pg = NULL;
    }
    if (c->pg == NULL) {
        /* One attempt per acquire, and none while a recent one failed. */
        if (clock_mono_ms() < atomic_load(&p->down_until)) {
            rc = BERTH_EUNAVAIL;
        } else {
            rc = conn_open(p, &c->pg);
            if (rc == BERTH_EUNAVAIL)
                atomic_store(&p->down_until, clock_mono_ms() + DB_DOWN_MS);
        }
        if (rc != 0) {
            atomic_fetch_add(&p->errors, 1);
            slot_free(p, c);
            goto out;
        }
    }
    *out = c;
out:
    return rc;
}

void db_release(db_pool *p, db_conn *c)
{
    if (p == NULL || c == NULL)
        return;
    if (c->pg != NULL && PQstatus(c->pg) == CONNECTION_OK) {
        PGTransactionStatusType ts = PQtransactionStatus(c->pg);

        if (ts == PQTRANS_INTRANS || ts == PQTRANS_INERROR) {
            log_debug("connection released inside a transaction; rolling back",
                      "slot=%d", (int)(c - p->conns));
            PQclear(PQexec(c->pg, "ROLLBACK"));
            ts = PQtransactionStatus(c->pg);
        }
        if (ts != PQTRANS_IDLE) {
            /* Mid-query or confused: not worth saving. */
            PQfinish(c->pg);
            c->pg = NULL;
        }
    }
    if (c->pg != NULL && PQstatus(c->pg) != CONNECTION_OK) {
        PQfinish(c->pg);
        c->pg = NULL;
    }
    slot_free(p, c);
}

void db_stats(db_pool *p, int *size, int *busy, long *errors)
{
    pthread_mutex_lock(&p->mu);
    if (size != NULL)
        *size = p->size;
    if (busy != NULL)
        *busy = p->busy;
    pthread_mutex_unlock(&p->mu);
    if (errors != NULL)
        *errors = atomic_load(&p->errors);
}

int db_schema_version(db_pool *p)
{
    return p->version;
}

/* ---------------------------------------------------------------- statements */

int db_exec(db_conn *c, const char *name, int nparams,
            const char *const *params, PGresult **res)
{
    const db_stmt *s;
    PGresult *r = NULL;
    ExecStatusType st;
    int rc = 0;

    *res = NULL;
    c->constraint[0] = '\0';
    s = stmt_find(name);
    if (s == NULL || s->nparams != nparams || (nparams > 0 && params == NULL)) {
        log_error("bad statement call", "stmt=%s nparams=%d expected=%d",
                  name, nparams, s != NULL ? s->nparams : -1);
        rc = BERTH_EINVAL;
        goto out;
    }
    if (c->pg == NULL) {
        rc = BERTH_EUNAVAIL;
        goto out;
    }
    r = PQexecPrepared(c->pg, name, nparams, params, NULL, NULL, 0);
    st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        rc = fail(c, r, name);
        goto out;
    }
    *res = r;
    r = NULL;
out:
    PQclear(r);
    return rc;
}

int db_run(db_conn *c, const char *name, int nparams,
           const char *const *params, long *affected)
{
    PGresult *res = NULL;
    int rc;

    if (affected != NULL)
        *affected = 0;
    rc = db_exec(c, name, nparams, params, &res);
    if (rc != 0)
        goto out;
    if (affected != NULL)
        *affected = strtol(PQcmdTuples(res), NULL, 10);
out:
    PQclear(res);
    return rc;
}

/* Runs a fixed command (BEGIN, COMMIT) with the simple protocol. Returns 0
 * and, when tag is not NULL, the command tag copied into it. */
static int simple(db_conn *c, const char *sql, char *tag, size_t tag_size)
{
    PGresult *res = NULL;
    int rc = 0;

    c->constraint[0] = '\0';
    if (c->pg == NULL) {
        rc = BERTH_EUNAVAIL;
        goto out;
    }
    res = PQexec(c->pg, sql);
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        rc = fail(c, res, sql);
        goto out;
    }
    if (tag != NULL)
        snprintf(tag, tag_size, "%s", PQcmdStatus(res));
out:
    PQclear(res);
    return rc;
}

int db_query(db_pool *p, int timeout_ms, const char *name, int nparams,
             const char *const *params, PGresult **res)
{
    db_conn *c = NULL;
    int rc;

    *res = NULL;
    rc = db_acquire(p, timeout_ms, &c);
    if (rc != 0)
        return rc;
    rc = db_exec(c, name, nparams, params, res);
    db_release(p, c);
    return rc;
}

int db_query_run(db_pool *p, int timeout_ms, const char *name, int nparams,
                 const char *const *params, long *affected)
{
    db_conn *c = NULL;
    int rc;

    rc = db_acquire(p, timeout_ms, &c);
    if (rc != 0)
        return rc;
    rc = db_run(c, name, nparams, params, affected);
    db_release(p, c);
    return rc;
}

int db_begin(db_conn *c)
{
    return simple(c, "BEGIN", NULL, 0);
}

/* COMMIT of a transaction that already failed answers "ROLLBACK" instead
 * of an error: that is a failure too. Deferred constraints report here. */
int db_commit(db_conn *c)
{
    char tag[32];
    int rc;

    rc = simple(c, "COMMIT", tag, sizeof(tag));
    if (rc == 0 && strcmp(tag, "COMMIT") != 0) {
        log_warn("commit of a failed transaction rolled it back", "tag=%s",
                 tag);
        rc = BERTH_EIO;
    }
    return rc;
}

void db_rollback(db_conn *c)
{
    if (c->pg != NULL)
        PQclear(PQexec(c->pg, "ROLLBACK"));
}

const char *db_last_constraint(db_conn *c)
{
    return c != NULL ? c->constraint : "";
}

/* ---------------------------------------------------------------- migrations */

typedef struct migration {
    int version;
    char name[DB_MIGRATION_NAME_MAX + 1];
    char file[DB_MIGRATION_NAME_MAX + 16]; /* NNN_name.sql */
} migration;

/* Parses a file name of the form ^[0-9]{3}_[a-z0-9_]+\.sql$. Returns 1 and
 * fills m, 0 for a name that is not a migration, -1 for one whose name
 * part is too long to be accepted. */
static int migration_parse(const char *file, migration *m)
{
    size_t len = strlen(file);
    size_t i;

    if (len < 9 || strcmp(file + len - 4, ".sql") != 0 || file[3] != '_')
        return 0;
    for (i = 0; i < 3; i++) {
        if (file[i] < '0' || file[i] > '9')
            return 0;
    }
    for (i = 4; i < len - 4; i++) {
        char ch = file[i];

        if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
              ch == '_'))
            return 0;
    }
    if (len - 8 > DB_MIGRATION_NAME_MAX)
        return -1;
    m->version = (file[0] - '0') * 100 + (file[1] - '0') * 10 + (file[2] - '0');
    memcpy(m->name, file + 4, len - 8);
    m->name[len - 8] = '\0';
    memcpy(m->file, file, len + 1);
    return 1;
}

static int migration_cmp(const void *a, const void *b)
{
    return ((const migration *)a)->version - ((const migration *)b)->version;
}

/* Lists the migrations of dir, sorted. Returns 0 and *out (caller frees)
 * with *n entries, or BERTH_ECONFIG for a missing directory, a duplicate
 * version or a name too long. */
static int migrations_scan(const char *dir, migration **out, int *n)
{
    migration *list = NULL;
    DIR *d = NULL;
    struct dirent *e;
    int count = 0;
    int i;
    int rc = 0;

    *out = NULL;
    *n = 0;
    list = calloc(DB_MIGRATIONS_MAX, sizeof(*list));
    if (list == NULL) {
        rc = BERTH_ENOMEM;
        goto out;
    }
    d = opendir(dir);
    if (d == NULL) {
        log_error("cannot read the migrations directory", "dir=%s error=%s",
                  dir, strerror(errno));
        rc = BERTH_ECONFIG;
        goto out;
    }
    while ((e = readdir(d)) != NULL) {
        migration m;
        int r = migration_parse(e->d_name, &m);

        if (r == 0)
            continue;
        if (r < 0) {
            log_error("migration name too long", "dir=%s file=%s", dir,
                      e->d_name);
            rc = BERTH_ECONFIG;
            goto out;
        }
        if (count == DB_MIGRATIONS_MAX) {
            rc = BERTH_ECONFIG; /* unreachable: versions are unique */
            goto out;
        }
        list[count++] = m;
    }
    qsort(list, (size_t)count, sizeof(*list), migration_cmp);
    for (i = 1; i < count; i++) {
        if (list[i].version == list[i - 1].version) {
            log_error("two migrations share a version", "dir=%s a=%s b=%s",
                      dir, list[i - 1].file, list[i].file);
            rc = BERTH_ECONFIG;
            goto out;
        }
    }
    *out = list;
    *n = count;
    list = NULL;
out:
    if (d != NULL)
        closedir(d);
    free(list);
    return rc;
}

/* Runs sql (one or more statements) on the migration connection. On error
 * an open transaction is rolled back. Returns 0, BERTH_EUNAVAIL when the
 * connection dropped, or fallback after logging the server's message
 * (schema SQL holds no secrets). res_out, when not NULL, receives the
 * result of a query (caller clears). */
static int mig_exec(PGconn *pg, const char *sql, int nparams,
                    const char *const *params, int fallback,
                    const char *what, PGresult **res_out)
{
    PGresult *res = NULL;
    ExecStatusType st;
    char line[1024];
    int rc = 0;

    if (nparams > 0)
        res = PQexecParams(pg, sql, nparams, NULL, params, NULL, NULL, 0);
    else
        res = PQexec(pg, sql);
    st = PQresultStatus(res);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        rc = PQstatus(pg) == CONNECTION_OK ? fallback : BERTH_EUNAVAIL;
        log_error("migration failed", "step=%s sqlstate=%s error=%s", what,
                  res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : "",
                  one_line(PQerrorMessage(pg), line, sizeof(line)));
        if (PQtransactionStatus(pg) != PQTRANS_IDLE)
            PQclear(PQexec(pg, "ROLLBACK"));
        goto out;
    }
    if (res_out != NULL) {
        *res_out = res;
        res = NULL;
    }
out:
    PQclear(res);
    return rc;
}

/* Applies migration m unless another panel did meanwhile: its SQL and its
 * schema_migrations row in one transaction, under the migration lock. */
static int migration_apply(PGconn *pg, const char *dir, const migration *m)
{
    char path[PATH_MAX];
    char version[16];
    const char *params[2] = {version, m->name};
    PGresult *res = NULL;
    char *sql = NULL;
    size_t len = 0;
    int64_t t0 = clock_mono_ms();
    int rc;

    snprintf(version, sizeof(version), "%d", m->version);
    if (snprintf(path, sizeof(path), "%s/%s", dir, m->file) >=
        (int)sizeof(path)) {
        rc = BERTH_ECONFIG;
        goto out;
    }
    rc = fs_read_file(path, DB_MIGRATION_BYTES, &sql, &len);
    if (rc != 0 || strlen(sql) != len) {
        log_error("cannot read migration", "file=%s error=%s", path,
                  rc != 0 ? berth_strerror(rc) : "NUL byte in file");
        rc = BERTH_ECONFIG;
        goto out;
    }
    rc = mig_exec(pg, "BEGIN; SELECT pg_advisory_xact_lock(" DB_MIGRATE_LOCK
                      ")", 0, NULL, BERTH_EIO, "lock", NULL);
    if (rc != 0)
        goto out;
    rc = mig_exec(pg, "SELECT 1 FROM schema_migrations WHERE version = $1", 1,
                  params, BERTH_EIO, "check", &res);
    if (rc != 0)
        goto out;
    if (PQntuples(res) > 0) {
        rc = mig_exec(pg, "ROLLBACK", 0, NULL, BERTH_EIO, "rollback", NULL);
        goto out;
    }
    rc = mig_exec(pg, sql, 0, NULL, BERTH_ECONFIG, m->file, NULL);
    if (rc != 0)
        goto out;
    rc = mig_exec(pg,
                  "INSERT INTO schema_migrations (version, name)"
                  " VALUES ($1, $2)",
                  2, params, BERTH_EIO, "record", NULL);
    if (rc != 0)
        goto out;
    rc = mig_exec(pg, "COMMIT", 0, NULL, BERTH_EIO, "commit", NULL);
    if (rc != 0)
        goto out;
    log_info("migration applied", "version=%d name=%s ms=%lld", m->version,
             m->name, (long long)(clock_mono_ms() - t0));
out:
    PQclear(res);
    free(sql);
    return rc;
}

/* Brings the database up to the newest migration in dir and sets
 * *version to the newest one applied. Refuses (BERTH_ECONFIG) a database
 * that has a migration newer than any in dir. */
static int migrate(PGconn *pg, const char *dir, int *version)
{
    migration *list = NULL;
    PGresult *res = NULL;
    unsigned char *applied = NULL; /* [v] = 1 when version v is applied */
    int newest_file;
    int newest_db = 0;
    int n = 0;
    int i;
    int rc;

    rc = migrations_scan(dir, &list, &n);
    if (rc != 0)
        goto out;
    newest_file = n > 0 ? list[n - 1].version : 0;
    rc = mig_exec(pg,
                  "BEGIN;"
                  " SELECT pg_advisory_xact_lock(" DB_MIGRATE_LOCK ");"
                  " CREATE TABLE IF NOT EXISTS schema_migrations ("
                  "  version int PRIMARY KEY,"
                  "  name text NOT NULL,"
                  "  applied_at timestamptz NOT NULL DEFAULT now());"
                  " COMMIT",
                  0, NULL, BERTH_EIO, "schema_migrations", NULL);
    if (rc != 0)
        goto out;
    rc = mig_exec(pg, "SELECT version FROM schema_migrations", 0, NULL,
                  BERTH_EIO, "read", &res);
    if (rc != 0)
        goto out;
    applied = calloc(DB_MIGRATIONS_MAX, 1);
    if (applied == NULL) {
        rc = BERTH_ENOMEM;
        goto out;
    }
    for (i = 0; i < PQntuples(res); i++) {
        int v = atoi(PQgetvalue(res, i, 0));

        if (v > newest_db)
            newest_db = v;
        if (v >= 0 && v < DB_MIGRATIONS_MAX)
            applied[v] = 1;
    }
    if (newest_db > newest_file) {
        char msg[160];

        snprintf(msg, sizeof(msg),
                 "database schema %d is newer than this panel knows (%d)",
                 newest_db, newest_file);
        log_error(msg, "sql_dir=%s", dir);
        rc = BERTH_ECONFIG;
        goto out;
    }
    for (i = 0; i < n; i++) {
        if (applied[list[i].version])
            continue;
        rc = migration_apply(pg, dir, &list[i]);
        if (rc != 0)
            goto out;
    }
    *version = newest_file;
out:
    PQclear(res);
    free(applied);
    free(list);
    return rc;
}

/* Without a migrations directory: the newest version recorded, 0 when the
 * database has none. */
static int read_version(PGconn *pg, int *version)
{
    PGresult *res = NULL;
    int rc;

    *version = 0;
    rc = mig_exec(pg, "SELECT to_regclass('schema_migrations') IS NOT NULL",
                  0, NULL, BERTH_EIO, "read", &res);
    if (rc != 0 || strcmp(PQgetvalue(res, 0, 0), "t") != 0)
        goto out;
    PQclear(res);
    res = NULL;
    rc = mig_exec(pg, "SELECT coalesce(max(version), 0) FROM schema_migrations",
                  0, NULL, BERTH_EIO, "read", &res);
    if (rc == 0)
        *version = atoi(PQgetvalue(res, 0, 0));
out:
    PQclear(res);
    return rc;
}

/* ---------------------------------------------------------------- open, close */

int db_open(db_pool **out, const char *dsn, int size, const char *sql_dir)
{
    pthread_condattr_t ca;
    db_pool *p = NULL;
    db_conn *c = NULL;
    int rc;
    int i;

    *out = NULL;
    if (dsn == NULL || size < 1 || size > DB_POOL_MAX) {
        log_error("bad database settings", "size=%d max=%d", size,
                  DB_POOL_MAX);
        rc = BERTH_EINVAL;
        goto out;
    }
    rc = stmt_table_check();
    if (rc != 0)
        goto out;
    p = calloc(1, sizeof(*p) + (size_t)size * sizeof(p->conns[0]));
    if (p == NULL) {
        rc = BERTH_ENOMEM;
        goto out;
    }
    pthread_mutex_init(&p->mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&p->cv, &ca);
    pthread_condattr_destroy(&ca);
    p->size = size;
    for (i = 0; i < size; i++)
        p->conns[i].pool = p;
    p->dsn = strdup(dsn);
    if (p->dsn == NULL) {
        rc = BERTH_ENOMEM;
        goto out;
    }
    /* The first connection migrates before it prepares: the statements
     * name tables the migrations create. */
    c = &p->conns[0];
    c->busy = 1;
    p->busy = 1;
    rc = conn_connect(p, &c->pg);
    if (rc != 0)
        goto out;
    if (sql_dir != NULL)
        rc = migrate(c->pg, sql_dir, &p->version);
    else
        rc = read_version(c->pg, &p->version);
    if (rc != 0)
        goto out;
    rc = conn_prepare(c->pg);
    if (rc != 0)
        goto out;
    db_release(p, c);
    log_info("database ready", "schema=%d pool=%d statements=%d", p->version,
             size, DB_NSTMTS);
    *out = p;
    p = NULL;
out:
    db_close(p);
    return rc;
}

/* Every connection must have been released. */
void db_close(db_pool *p)
{
    int i;

    if (p == NULL)
        return;
    for (i = 0; i < p->size; i++)
        PQfinish(p->conns[i].pg);
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    free(p->dsn);
    free(p);
}
