-- `Idempotency-Key` on POST /apps/{id}/deployments: the deployment a key
-- made, so the same key again (a retry after a timeout, a double click)
-- answers it instead of making another. Kept 24 hours.
CREATE TABLE deployment_requests (
    app_id        uuid NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    key           text NOT NULL,
    deployment_id uuid NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (app_id, key)
);
