-- A release that crash-looped after it went live (issue 13's automatic
-- rollback): berth rolled away from it and never rolls back onto it.
ALTER TABLE releases ADD COLUMN failed_at timestamptz;
ALTER TABLE releases ADD COLUMN failed_reason text;
