-- GitHub push webhooks: a secret per app, the deliveries already handled,
-- and who pushed what a push deployed.

-- The app's webhook secret, sealed with BERTH_SECRET_KEY. Shown once, when
-- it is created or rotated; never returned again.
CREATE TABLE app_webhooks (
    app_id        uuid PRIMARY KEY REFERENCES apps (id) ON DELETE CASCADE,
    secret_sealed jsonb NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    -- When the secret was last rotated (created_at if never).
    rotated_at    timestamptz NOT NULL DEFAULT now()
);

-- Deliveries whose signature was valid, so that a replay does nothing.
-- GitHub's X-GitHub-Delivery identifies the event, and every hook that
-- receives the event gets the same id: two apps of one repository (a
-- monorepo) each see it once, hence the key is (app, delivery). The body's
-- SHA-256 catches a signed body replayed under a made-up delivery id (the
-- header is not covered by the signature).
CREATE TABLE webhook_deliveries (
    app_id        uuid NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    delivery_id   text NOT NULL,
    body_sha256   bytea NOT NULL,
    event         text NOT NULL,
    -- `deployed`, `ignored: <reason>` or `pong`.
    outcome       text,
    deployment_id uuid,
    received_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (app_id, delivery_id)
);
CREATE UNIQUE INDEX webhook_deliveries_body ON webhook_deliveries (app_id, body_sha256);
CREATE INDEX webhook_deliveries_received ON webhook_deliveries (received_at);

-- The GitHub login that pushed, for deployments with trigger = 'push'.
ALTER TABLE deployments ADD COLUMN pushed_by text;
