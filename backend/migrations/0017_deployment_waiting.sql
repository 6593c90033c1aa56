-- Work of a deployment that hit a passing failure waits for another
-- attempt: why, and when it is tried again. Cleared by every state change.
ALTER TABLE deployments
    ADD COLUMN waiting_reason text,
    ADD COLUMN next_attempt_at timestamptz;
