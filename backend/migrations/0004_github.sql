-- GitHub sign-in: the pending authorizations (state and PKCE verifier) and
-- the GitHub account linked to a berth user, with its token sealed.

-- Accounts made by GitHub sign-in have no password (they sign in with GitHub).
ALTER TABLE users ALTER COLUMN password_hash DROP NOT NULL;

-- One row per started sign-in; consumed (deleted) by the callback, so a
-- state works once. Stored as the SHA-256 of the state, like refresh tokens.
CREATE TABLE oauth_states (
    state_hash           bytea PRIMARY KEY,
    -- The PKCE code verifier, sealed with BERTH_SECRET_KEY.
    pkce_verifier_sealed jsonb NOT NULL,
    -- Set when a signed-in user links GitHub to their account.
    link_user_id         uuid REFERENCES users (id) ON DELETE CASCADE,
    created_at           timestamptz NOT NULL DEFAULT now(),
    expires_at           timestamptz NOT NULL
);
CREATE INDEX oauth_states_expires ON oauth_states (expires_at);

-- A berth user's GitHub account. The token is sealed with BERTH_SECRET_KEY
-- and never returned by the API.
CREATE TABLE github_accounts (
    user_id      uuid PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    github_id    bigint NOT NULL UNIQUE,
    login        text NOT NULL,
    token_sealed jsonb NOT NULL,
    scopes       text NOT NULL DEFAULT '',
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);
