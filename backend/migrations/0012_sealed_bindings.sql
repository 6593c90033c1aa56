-- Sealed values are bound to their owner and purpose (AES-GCM associated
-- data; berth_proto::Binding) and marked "v": 1. Values sealed before that
-- have no "v" and no binding: the backend re-seals them once, at its first
-- start after this migration (backend/src/sealing.rs), and records the pass
-- here. From then on an unbound value is refused wherever it shows up, so a
-- copy from an old backup or an old queue message cannot be bound to a row
-- it never belonged to.
CREATE TABLE sealed_value_passes (
    name        text PRIMARY KEY,
    finished_at timestamptz NOT NULL DEFAULT now(),
    -- How many values the pass sealed again, by table.
    counts      jsonb NOT NULL
);
