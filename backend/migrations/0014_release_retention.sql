-- Releases beyond what rollback reaches are pruned: their image is deleted
-- from the registry and rollback refuses them.
ALTER TABLE releases ADD COLUMN pruned_at timestamptz;
