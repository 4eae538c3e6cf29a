-- 001_init.sql - the panel's first schema: roles and users, grants, refresh
-- tokens, SSH keys, nodes, sites, domains, commands and the audit log.
--
-- Applied once by db_open() (svc-panel/db.c) in a transaction together with
-- its row in schema_migrations, so this file holds no BEGIN or COMMIT. A
-- released migration is never edited: changes go into a new NNN_name.sql.
--
-- Conventions. Constraints are named, because db_last_constraint() hands
-- the name of a violated one to the API's 409 messages. Every text column
-- has a length CHECK. Timestamps are timestamptz, read back through
-- rfc3339(). updated_at is kept by the touch_updated_at() trigger, so
-- statements never set it. Deleting a user or a site deletes what hangs
-- off it (ON DELETE CASCADE); roles and nodes in use cannot be deleted.

-- Formats a timestamp the way the API and the logs do:
-- 2026-11-22T03:50:01.123Z.
CREATE FUNCTION rfc3339(t timestamptz) RETURNS text
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') $$;

CREATE FUNCTION touch_updated_at() RETURNS trigger
    LANGUAGE plpgsql
    AS $$ BEGIN NEW.updated_at := now(); RETURN NEW; END $$;

-- ---------------------------------------------------------------- roles

CREATE TABLE roles (
    id          serial PRIMARY KEY,
    name        text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT roles_name_key UNIQUE (name),
    CONSTRAINT roles_name_check CHECK (char_length(name) BETWEEN 1 AND 64)
);

-- Permission names are those of AUTH_PERM_MAP (svc-panel/auth.h), "*" or a
-- prefix wildcard such as "site.*".
CREATE TABLE role_permissions (
    role_id     int NOT NULL REFERENCES roles (id) ON DELETE CASCADE,
    permission  text NOT NULL,
    CONSTRAINT role_permissions_pkey PRIMARY KEY (role_id, permission),
    CONSTRAINT role_permissions_permission_check
        CHECK (permission ~ '^(\*|[a-z][a-z0-9_]*(\.([a-z0-9_]+|\*))*)$'
               AND char_length(permission) <= 64)
);

-- ---------------------------------------------------------------- users

CREATE TABLE users (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name           text NOT NULL,
    email          text NOT NULL,
    password_hash  text NOT NULL,
    role_id        int REFERENCES roles (id) ON DELETE RESTRICT,
    pfp            text,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT users_name_key UNIQUE (name),
    CONSTRAINT users_name_check CHECK (char_length(name) BETWEEN 1 AND 64),
    CONSTRAINT users_email_check
        CHECK (char_length(email) BETWEEN 3 AND 254 AND email LIKE '%_@_%'),
    CONSTRAINT users_password_hash_check
        CHECK (char_length(password_hash) BETWEEN 1 AND 512),
    CONSTRAINT users_pfp_check CHECK (char_length(pfp) <= 256)
);

-- Addresses differ by more than case, so "Ann@x.org" cannot sign up twice.
CREATE UNIQUE INDEX users_email_key ON users (lower(email));
CREATE INDEX users_role_id_idx ON users (role_id);

CREATE TRIGGER users_touch BEFORE UPDATE ON users
    FOR EACH ROW EXECUTE FUNCTION touch_updated_at();
CREATE TRIGGER roles_touch BEFORE UPDATE ON roles
    FOR EACH ROW EXECUTE FUNCTION touch_updated_at();

-- Only the SHA-256 of a refresh token is stored. A family is one login;
-- reusing a rotated token revokes the family. Rows stay until they expire,
-- so reuse of a rotated token is still recognised.
CREATE TABLE refresh_tokens (
    hash        text PRIMARY KEY,
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    family      uuid NOT NULL,
    expires_at  timestamptz NOT NULL,
    rotated_at  timestamptz,
    revoked_at  timestamptz,
    created_at  timestamptz NOT NULL DEFAULT now(),
    ip          text,
    CONSTRAINT refresh_tokens_hash_check CHECK (char_length(hash) BETWEEN 1 AND 128),
    CONSTRAINT refresh_tokens_ip_check CHECK (char_length(ip) <= 64)
);

CREATE INDEX refresh_tokens_user_id_idx ON refresh_tokens (user_id);
CREATE INDEX refresh_tokens_family_idx ON refresh_tokens (family);
CREATE INDEX refresh_tokens_expires_at_idx ON refresh_tokens (expires_at);

CREATE TABLE ssh_keys (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id      uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name         text NOT NULL,
    type         text NOT NULL,
    public_key   text NOT NULL,
    fingerprint  text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT ssh_keys_fingerprint_key UNIQUE (user_id, fingerprint),
    CONSTRAINT ssh_keys_name_check CHECK (char_length(name) BETWEEN 1 AND 64),
    CONSTRAINT ssh_keys_type_check CHECK (char_length(type) BETWEEN 1 AND 64),
    CONSTRAINT ssh_keys_public_key_check
        CHECK (char_length(public_key) BETWEEN 1 AND 16384),
    CONSTRAINT ssh_keys_fingerprint_check
        CHECK (char_length(fingerprint) BETWEEN 1 AND 128)
);

-- berth-shell looks a presented key up by its fingerprint.
CREATE INDEX ssh_keys_fingerprint_idx ON ssh_keys (fingerprint);

-- ---------------------------------------------------------------- nodes

-- Node ids are the UUID strings the daemons generate and keep.
CREATE TABLE nodes (
    id             text PRIMARY KEY,
    name           text NOT NULL,
    hostname       text NOT NULL DEFAULT '',
    specs          jsonb NOT NULL DEFAULT '{}',
    public_url     text NOT NULL DEFAULT '',
    online         boolean NOT NULL DEFAULT false,
    last_seen      timestamptz,
    registered_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT nodes_id_check CHECK (char_length(id) BETWEEN 1 AND 64),
    CONSTRAINT nodes_name_check CHECK (char_length(name) BETWEEN 1 AND 64),
    CONSTRAINT nodes_hostname_check CHECK (char_length(hostname) <= 253),
    CONSTRAINT nodes_public_url_check CHECK (char_length(public_url) <= 2048)
);

-- ---------------------------------------------------------------- sites

CREATE TABLE sites (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name           text NOT NULL,
    node_id        text NOT NULL REFERENCES nodes (id) ON DELETE RESTRICT,
    spec           jsonb NOT NULL DEFAULT '{}',
    desired_state  text NOT NULL DEFAULT 'stopped',
    status         text NOT NULL DEFAULT 'unknown',
    status_reason  text,
    exit_code      int,
    status_at      timestamptz,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT sites_name_key UNIQUE (name),
    CONSTRAINT sites_name_check CHECK (char_length(name) BETWEEN 1 AND 64),
    CONSTRAINT sites_desired_state_check
        CHECK (desired_state IN ('running', 'stopped')),
    CONSTRAINT sites_status_check CHECK (char_length(status) BETWEEN 1 AND 32),
    CONSTRAINT sites_status_reason_check CHECK (char_length(status_reason) <= 1024)
);

CREATE INDEX sites_node_id_idx ON sites (node_id);

CREATE TRIGGER sites_touch BEFORE UPDATE ON sites
    FOR EACH ROW EXECUTE FUNCTION touch_updated_at();

-- Per-site permissions of a user (the site-scoped names of auth.h).
CREATE TABLE site_grants (
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    site_id     uuid NOT NULL REFERENCES sites (id) ON DELETE CASCADE,
    permission  text NOT NULL,
    CONSTRAINT site_grants_pkey PRIMARY KEY (user_id, site_id, permission),
    CONSTRAINT site_grants_permission_check
        CHECK (permission ~ '^(\*|[a-z][a-z0-9_]*(\.([a-z0-9_]+|\*))*)$'
               AND char_length(permission) <= 64)
);

CREATE INDEX site_grants_site_id_idx ON site_grants (site_id);

-- One site per domain; names are stored lower-case, without a final dot.
CREATE TABLE domains (
    name        text PRIMARY KEY,
    site_id     uuid NOT NULL REFERENCES sites (id) ON DELETE CASCADE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT domains_name_check
        CHECK (char_length(name) BETWEEN 1 AND 253 AND name = lower(name)
               AND name ~ '^[a-z0-9*]([a-z0-9.-]*[a-z0-9])?$')
);

CREATE INDEX domains_site_id_idx ON domains (site_id);

-- ---------------------------------------------------------------- commands

-- Commands sent to a node's daemon, kept for their outcome. site_id is
-- NULL for commands about the node itself.
CREATE TABLE commands (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    site_id     uuid REFERENCES sites (id) ON DELETE CASCADE,
    node_id     text NOT NULL REFERENCES nodes (id) ON DELETE CASCADE,
    kind        text NOT NULL,
    payload     jsonb NOT NULL DEFAULT '{}',
    state       text NOT NULL DEFAULT 'pending',
    error       text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    user_id     uuid REFERENCES users (id) ON DELETE SET NULL,
    CONSTRAINT commands_kind_check CHECK (char_length(kind) BETWEEN 1 AND 64),
    CONSTRAINT commands_state_check
        CHECK (state IN ('pending', 'sent', 'done', 'failed')),
    CONSTRAINT commands_error_check CHECK (char_length(error) <= 4096)
);

CREATE INDEX commands_site_id_idx ON commands (site_id, created_at);
CREATE INDEX commands_open_idx ON commands (node_id, created_at)
    WHERE state IN ('pending', 'sent');

CREATE TRIGGER commands_touch BEFORE UPDATE ON commands
    FOR EACH ROW EXECUTE FUNCTION touch_updated_at();

-- ---------------------------------------------------------------- audit

-- Who did what. user_id has no foreign key: the trail outlives the user.
CREATE TABLE audit_log (
    id       bigserial PRIMARY KEY,
    at       timestamptz NOT NULL DEFAULT now(),
    user_id  uuid,
    action   text NOT NULL,
    target   text,
    ip       text,
    result   text NOT NULL,
    detail   jsonb,
    CONSTRAINT audit_log_action_check CHECK (char_length(action) BETWEEN 1 AND 64),
    CONSTRAINT audit_log_target_check CHECK (char_length(target) <= 256),
    CONSTRAINT audit_log_ip_check CHECK (char_length(ip) <= 64),
    CONSTRAINT audit_log_result_check CHECK (char_length(result) BETWEEN 1 AND 32)
);

CREATE INDEX audit_log_at_idx ON audit_log (at);
CREATE INDEX audit_log_user_id_idx ON audit_log (user_id, at);
CREATE INDEX audit_log_action_idx ON audit_log (action, at);
CREATE INDEX audit_log_target_idx ON audit_log (target, at);
