-- The outbox relay backs off per row: a message the broker refuses (no
-- queue bound, nacked) waits on its own instead of holding back every
-- later one, and after enough attempts it is parked and its deployment
-- fails with the reason.
ALTER TABLE outbox
    ADD COLUMN next_attempt_at timestamptz,
    ADD COLUMN parked_at       timestamptz;

DROP INDEX outbox_unpublished;
CREATE INDEX outbox_unpublished ON outbox (id) WHERE published_at IS NULL AND parked_at IS NULL;
