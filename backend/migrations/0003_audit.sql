-- The audit log: account actions, logins (failed ones too), app changes and
-- deploy triggers, each with who, what, on what, when and from where.
-- Written in the same transaction as the change it records.

CREATE TABLE audit_events (
    -- UUIDv7: ids order by creation (the list pages by id).
    id          uuid PRIMARY KEY,
    -- Whose log the event is in. NULL for a failed login naming no account:
    -- recorded, but listed to nobody. No foreign key: the log outlives
    -- what it talks about.
    user_id     uuid,
    -- The username; `github:<login>` for a push webhook; for a failed login
    -- the login that was tried.
    actor       text NOT NULL,
    -- `auth.login`, `app.create`, `deployment.create`, ...
    action      text NOT NULL,
    -- `user`, `app`, `deployment`.
    target_type text NOT NULL,
    target_id   uuid,
    -- Never secrets, tokens or env values.
    details     jsonb NOT NULL DEFAULT '{}'::jsonb,
    source_ip   inet,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX audit_events_user_time ON audit_events (user_id, created_at DESC);
-- The list's keyset paging walks ids.
CREATE INDEX audit_events_user_id ON audit_events (user_id, id DESC);
