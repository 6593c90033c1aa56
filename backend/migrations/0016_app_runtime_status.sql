-- What the reconciler last found each app running: running, degraded (with
-- why) or stopped; null until a deploy-worker has looked.
ALTER TABLE apps
    ADD COLUMN runtime_status text CHECK (runtime_status IN ('running', 'degraded', 'stopped')),
    ADD COLUMN runtime_reason text,
    ADD COLUMN runtime_checked_at timestamptz;
