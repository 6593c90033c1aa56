-- Custom domains (issue 13). A domain is keyed by app and environment, as
-- the design says, so environments need no migration later. It is claimed
-- (routed, given a certificate) only once verified by a TXT record holding
-- its random token; among verified domains a hostname belongs to one app,
-- while unverified claims of the same name by others may wait beside it
-- (they can never verify, and go when their app does).
CREATE TABLE domains (
    id uuid PRIMARY KEY,
    app_id uuid NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    environment text NOT NULL DEFAULT 'production',
    hostname text NOT NULL CHECK (hostname = lower(hostname) AND length(hostname) BETWEEN 3 AND 253),
    verification_token text NOT NULL,
    verified_at timestamptz,
    -- The last DNS check, and what it found wrong (NULL: nothing).
    checked_at timestamptz,
    check_error text,
    -- What the router served the last time berth looked (a TLS handshake
    -- with the domain's name): NULL until a certificate was seen.
    certificate_issuer text,
    certificate_expires_at timestamptz,
    certificate_checked_at timestamptz,
    certificate_error text,
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (app_id, environment, hostname)
);

CREATE UNIQUE INDEX domains_verified_hostname ON domains (hostname) WHERE verified_at IS NOT NULL;
CREATE INDEX domains_app ON domains (app_id);
