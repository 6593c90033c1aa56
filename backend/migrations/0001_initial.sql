-- berth's backend schema: accounts, apps, releases, deployments, the outbox.

CREATE TABLE users (
    id            uuid PRIMARY KEY,
    -- A DNS-1123 label; also the tenant slug (namespaces, image paths).
    username      text NOT NULL UNIQUE,
    email         text NOT NULL,
    password_hash text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX users_email_key ON users (lower(email));

-- Refresh tokens are stored only as SHA-256 hashes. Rotation keeps the
-- family: presenting a revoked token revokes every token of its family.
CREATE TABLE refresh_tokens (
    id          uuid PRIMARY KEY,
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    family_id   uuid NOT NULL,
    token_hash  bytea NOT NULL UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    revoked_at  timestamptz,
    replaced_by uuid
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);

-- Single-use WebSocket tickets (hashes), valid for a minute.
CREATE TABLE ws_tickets (
    ticket_hash bytea PRIMARY KEY,
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    expires_at  timestamptz NOT NULL
);

CREATE TABLE apps (
    id                 uuid PRIMARY KEY,
    owner_id           uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name               text NOT NULL,
    repo_url           text NOT NULL,
    branch             text NOT NULL,
    subdirectory       text,
    port               integer NOT NULL CHECK (port BETWEEN 1 AND 65535),
    replicas           integer NOT NULL DEFAULT 1,
    -- The env var set, sealed with BERTH_SECRET_KEY: {"nonce": .., "ciphertext": ..}.
    env_sealed         jsonb NOT NULL,
    env_version        bigint NOT NULL DEFAULT 1,
    current_release_id uuid,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    -- Deleted apps are kept (their history stays) but free their name.
    deleted_at         timestamptz
);
CREATE UNIQUE INDEX apps_owner_name ON apps (owner_id, name) WHERE deleted_at IS NULL;

-- Immutable: a commit, its image by digest and the config it runs with.
CREATE TABLE releases (
    id            uuid PRIMARY KEY,
    app_id        uuid NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    deployment_id uuid,
    commit_sha    text NOT NULL,
    image         text NOT NULL,
    -- berth_proto::ReleaseConfig as JSON; its env is sealed.
    config        jsonb NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX releases_app ON releases (app_id, created_at DESC);

CREATE TABLE deployments (
    -- UUIDv7: ids order by creation.
    id               uuid PRIMARY KEY,
    app_id           uuid NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    state            text NOT NULL,
    state_changed_at timestamptz NOT NULL DEFAULT now(),
    trigger          text NOT NULL,
    git_ref          text,
    commit_sha       text,
    -- Reserved when the build is requested; the release row appears once
    -- the image is pushed. For a rollback, the release deployed again.
    release_id       uuid NOT NULL,
    image            text,
    endpoint         text,
    reason           text,
    created_by       uuid REFERENCES users (id) ON DELETE SET NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX deployments_app ON deployments (app_id, id DESC);
CREATE INDEX deployments_in_progress ON deployments (state, state_changed_at)
    WHERE state IN ('queued', 'cloning', 'building', 'pushing', 'deploying');
CREATE INDEX deployments_live ON deployments (app_id) WHERE state = 'live';

-- Each state a deployment reached, and when.
CREATE TABLE deployment_states (
    deployment_id uuid NOT NULL REFERENCES deployments (id) ON DELETE CASCADE,
    state         text NOT NULL,
    at            timestamptz NOT NULL,
    PRIMARY KEY (deployment_id, state)
);

-- Messages written in the same transaction as the intent they carry; the
-- relay publishes them and marks them published.
CREATE TABLE outbox (
    id           bigserial PRIMARY KEY,
    routing_key  text NOT NULL,
    envelope     jsonb NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    published_at timestamptz,
    attempts     integer NOT NULL DEFAULT 0,
    last_error   text
);
CREATE INDEX outbox_unpublished ON outbox (id) WHERE published_at IS NULL;
