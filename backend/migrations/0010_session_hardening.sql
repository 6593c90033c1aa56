-- Accounts and sessions hardening (issue 11, findings H4, M1, M2, M3, L9).

-- H4: a GitHub sign-in is bound to the browser that started it. `start`
-- gives that browser a cookie holding a random nonce; the state keeps the
-- nonce's SHA-256 and the callback wants the cookie back. States started
-- before this migration have no nonce: they could not finish anyway.
DELETE FROM oauth_states;
ALTER TABLE oauth_states ADD COLUMN nonce_hash bytea NOT NULL;

-- M1: when the session (refresh token family) signed in, carried from
-- token to token on each refresh, so "signed in recently" is not "refreshed
-- recently".
ALTER TABLE refresh_tokens ADD COLUMN signed_in_at timestamptz;
UPDATE refresh_tokens r SET signed_in_at = f.started
FROM (SELECT family_id, min(created_at) AS started FROM refresh_tokens GROUP BY family_id) f
WHERE r.family_id = f.family_id;
ALTER TABLE refresh_tokens ALTER COLUMN signed_in_at SET NOT NULL;
ALTER TABLE refresh_tokens ALTER COLUMN signed_in_at SET DEFAULT now();

-- M2: every request checks that its access token's session still has a
-- live refresh token.
CREATE INDEX refresh_tokens_live ON refresh_tokens (family_id) WHERE revoked_at IS NULL;

-- M2: a session that ends (logout, signed out from the session list,
-- password change or reset, account deletion, a reused refresh token) is
-- announced on `berth_sessions` with its id when the transaction commits,
-- so each backend process closes that session's log sockets and event
-- streams at once. Rotation (a refresh) replaces the token and names its
-- successor: the session goes on, nothing is announced.
CREATE FUNCTION berth_announce_session_end() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('berth_sessions', NEW.family_id::text);
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER refresh_tokens_session_end
AFTER UPDATE OF revoked_at ON refresh_tokens
FOR EACH ROW
WHEN (OLD.revoked_at IS NULL AND NEW.revoked_at IS NOT NULL AND NEW.replaced_by IS NULL)
EXECUTE FUNCTION berth_announce_session_end();

-- M2: a WebSocket ticket belongs to the session that asked for it and dies
-- with it. Tickets live a minute: the old ones are simply dropped.
DELETE FROM ws_tickets;
ALTER TABLE ws_tickets ADD COLUMN session_id uuid NOT NULL;
CREATE INDEX ws_tickets_user ON ws_tickets (user_id, expires_at);
CREATE INDEX ws_tickets_expires ON ws_tickets (expires_at);

-- M3: the per-address rate limit on the public auth endpoints, shared by
-- every backend replica. One row per endpoint and client (an IPv4 address
-- or an IPv6 /64): the GCRA's theoretical arrival time. A row whose `tat`
-- has passed holds no information (the budget is full again) and is
-- pruned. Unlogged: losing it in a crash only refills the budgets.
CREATE UNLOGGED TABLE auth_rate_limits (
    route  text NOT NULL,
    client text NOT NULL,
    tat    timestamptz NOT NULL,
    PRIMARY KEY (route, client)
);
CREATE INDEX auth_rate_limits_tat ON auth_rate_limits (tat);

-- L9: the reaper prunes failures nobody counts any more.
CREATE INDEX login_failures_last ON login_failures (last_failed_at);
