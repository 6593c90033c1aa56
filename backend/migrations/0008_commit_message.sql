-- The first line of the deployed commit's message, for the history: from
-- the push that triggered the deployment, or reported once it is cloned.
ALTER TABLE deployments ADD COLUMN commit_message text;
