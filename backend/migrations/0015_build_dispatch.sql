-- Builds wait in the database until the relay dispatches them, fairly across
-- tenants and within the build slots; a queued deployment's deadline counts
-- from its dispatch, so a backlog is never overdue. Everything queued so far
-- was published when it was queued.
ALTER TABLE deployments ADD COLUMN dispatched_at timestamptz;
UPDATE deployments SET dispatched_at = created_at;
CREATE INDEX deployments_waiting_for_dispatch ON deployments (id)
    WHERE state = 'queued' AND dispatched_at IS NULL;
