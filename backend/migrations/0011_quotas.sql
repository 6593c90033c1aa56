-- Quotas and per-app resources.
--
-- An app's memory and CPU, or NULL to follow the operator's defaults
-- (BERTH_APP_DEFAULT_MEMORY_MB, BERTH_APP_DEFAULT_CPU_MILLIS). Every release
-- carries the effective values; the tenant's quota is checked against the
-- sum over its live apps of each one's value times its replicas.
ALTER TABLE apps
    ADD COLUMN memory_mb  integer CHECK (memory_mb > 0),
    ADD COLUMN cpu_millis integer CHECK (cpu_millis > 0);

-- What a user holds open or in progress (log sockets and event streams,
-- REST log reads), counted across every backend process. A process
-- refreshes `seen_at` of its own rows while it runs; rows of a process that
-- stopped without removing them are ignored once stale, and pruned.
CREATE TABLE open_slots (
    id         uuid PRIMARY KEY,
    user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind       text NOT NULL,
    process_id uuid NOT NULL,
    opened_at  timestamptz NOT NULL DEFAULT now(),
    seen_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX open_slots_user_kind ON open_slots (user_id, kind);
CREATE INDEX open_slots_process ON open_slots (process_id);

-- Counting a tenant's queued deployments.
CREATE INDEX deployments_queued ON deployments (app_id) WHERE state = 'queued';
