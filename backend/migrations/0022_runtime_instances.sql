-- What the reconciler last found each instance of an app's live deployment
-- doing (issue 13): name, running, healthy and what a failing check got.
-- Shown with the app's runtime status; replaced by each pass.
ALTER TABLE apps ADD COLUMN runtime_instances jsonb NOT NULL DEFAULT '[]';
