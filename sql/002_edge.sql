-- 002_edge.sql - routes for berth-edge and the certificate states it
-- reports (svc-panel/edge.c).
--
-- A site's route is what the edge needs to serve its domains: the domains
-- (table domains), the upstream its daemon reported last, and whether it
-- runs. Every change of a route takes the next revision of the one-row
-- route_clock, under that row's lock, inside the transaction making the
-- change; so revisions follow commit order, and route.list, reading the
-- clock and the routes in one statement, says exactly which revision its
-- snapshot reflects.

CREATE TABLE route_clock (
    id        boolean PRIMARY KEY DEFAULT true,
    revision  bigint NOT NULL DEFAULT 0,
    CONSTRAINT route_clock_one CHECK (id)
);

INSERT INTO route_clock DEFAULT VALUES;

-- upstream: "ip:port" from the last site.status that carried one (kept
-- while the site is stopped). route_running: the site reported starting
-- or running with an upstream. route_revision: the revision of the route
-- last announced (0: never). routed: the last announcement was a
-- route.set (false: none, or a route.del).
ALTER TABLE sites
    ADD COLUMN upstream text,
    ADD COLUMN route_running boolean NOT NULL DEFAULT false,
    ADD COLUMN route_revision bigint NOT NULL DEFAULT 0,
    ADD COLUMN routed boolean NOT NULL DEFAULT false,
    ADD CONSTRAINT sites_upstream_check CHECK (char_length(upstream) <= 64);

-- The newest cert.status.<domain> of each domain. event_ns is the
-- JetStream time of the event applied, so a redelivered older event never
-- overwrites a newer one. No foreign key: a status may arrive for a domain
-- that has just left its site.
CREATE TABLE certificates (
    domain        text PRIMARY KEY,
    site_id       uuid,
    state         text NOT NULL,
    not_after     timestamptz,
    reason        text,
    next_attempt  timestamptz,
    event_ns      bigint NOT NULL DEFAULT 0,
    updated_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT certificates_domain_check
        CHECK (char_length(domain) BETWEEN 1 AND 253 AND domain = lower(domain)),
    CONSTRAINT certificates_state_check
        CHECK (state IN ('unknown', 'pending', 'valid', 'failed', 'removed')),
    CONSTRAINT certificates_reason_check CHECK (char_length(reason) <= 1024)
);

CREATE TRIGGER certificates_touch BEFORE UPDATE ON certificates
    FOR EACH ROW EXECUTE FUNCTION touch_updated_at();
