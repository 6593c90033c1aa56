-- Account management: profile, password reset by email, sign-in backoff,
-- session revocation and account deletion.

ALTER TABLE users ADD COLUMN display_name text;
-- Bumped when every session of the user must end (password change or
-- reset, account deletion); access tokens carry the value they were issued
-- under and are refused once it moved on.
ALTER TABLE users ADD COLUMN session_epoch integer NOT NULL DEFAULT 0;
-- A deleted account keeps its row (and so its username, which is a tenant
-- slug that names namespaces and images and must never be reused), while
-- its email, password and profile are erased.
ALTER TABLE users ADD COLUMN deleted_at timestamptz;
ALTER TABLE users ALTER COLUMN email DROP NOT NULL;

-- One-time password reset tokens, stored as SHA-256 hashes like refresh
-- tokens. A token works once and until it expires.
CREATE TABLE password_resets (
    token_hash bytea PRIMARY KEY,
    user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    used_at    timestamptz
);
CREATE INDEX password_resets_user ON password_resets (user_id, created_at DESC);

-- Failed sign-ins per login as typed (lowercased), whether or not an
-- account has that login, so the backoff says nothing about which exist.
CREATE TABLE login_failures (
    login          text PRIMARY KEY,
    failures       integer NOT NULL,
    last_failed_at timestamptz NOT NULL,
    blocked_until  timestamptz NOT NULL
);

-- A GitHub sign-in started by the web UI ends in a redirect to it with the
-- session cookie, not in a JSON answer.
ALTER TABLE oauth_states ADD COLUMN browser boolean NOT NULL DEFAULT false;
