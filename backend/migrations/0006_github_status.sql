-- Reporting deployments back to GitHub: a GitHub Deployment per berth
-- deployment of a repository on GitHub whose owner linked a GitHub account,
-- and the queue of calls that report its progress. Reports are written in
-- the same transaction as the state they report, and sent by the backend's
-- status reporter: GitHub being slow or down never holds up a deployment.

-- A berth deployment that is reported to GitHub.
CREATE TABLE github_deployments (
    deployment_id uuid PRIMARY KEY REFERENCES deployments (id) ON DELETE CASCADE,
    -- The repository as it was when the deployment was requested.
    owner         text NOT NULL,
    repo          text NOT NULL,
    -- The GitHub environment: the app's name.
    environment   text NOT NULL,
    -- The full commit SHA; set when reporting starts, which is when the
    -- SHA is known (at the request, or once the build-worker resolved the ref).
    commit_sha    text,
    -- GitHub's id of the Deployment, once created.
    github_id     bigint,
    created_at    timestamptz NOT NULL DEFAULT now()
);

-- One GitHub call each, sent in id order per deployment: a report is sent
-- only after every earlier report of its deployment was sent or abandoned.
CREATE TABLE github_status_reports (
    id              bigserial PRIMARY KEY,
    deployment_id   uuid NOT NULL REFERENCES github_deployments (deployment_id) ON DELETE CASCADE,
    -- `deployment` (create it), `deployment_status` or `commit_status`.
    kind            text NOT NULL
        CHECK (kind IN ('deployment', 'deployment_status', 'commit_status')),
    -- GitHub's state: queued, in_progress, success, failure, error, inactive
    -- (deployment statuses); pending, success, failure, error (commit statuses).
    state           text,
    description     text NOT NULL DEFAULT '',
    environment_url text,
    attempts        integer NOT NULL DEFAULT 0,
    -- Also a lease: a reporter that takes a report pushes this forward.
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_error      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    sent_at         timestamptz,
    -- Given up (too many attempts, too old, or refused by GitHub): last_error says why.
    abandoned_at    timestamptz
);
CREATE INDEX github_status_reports_pending ON github_status_reports (deployment_id, id)
    WHERE sent_at IS NULL AND abandoned_at IS NULL;
