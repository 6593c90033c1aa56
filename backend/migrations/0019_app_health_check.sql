-- An app's HTTP health check path (issue 13): an instance gets traffic only
-- while it answers 2xx there. NULL: accepting connections is healthy.
-- Frozen into each release's config, so a rollback checks what its release
-- was made with.
ALTER TABLE apps ADD COLUMN health_check_path text
    CHECK (health_check_path IS NULL OR (health_check_path LIKE '/%' AND length(health_check_path) <= 256));
