-- Live deployment states for the web UI: every new deployment and every
-- change of state is announced on the `berth_deployments` channel when its
-- transaction commits, whichever code path made it (API, webhook, inform
-- consumer, reaper), so no path can forget to.
CREATE FUNCTION notify_deployment() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('berth_deployments', json_build_object(
        'deployment_id', NEW.id,
        'app_id', NEW.app_id,
        'owner_id', (SELECT owner_id FROM apps WHERE id = NEW.app_id),
        'state', NEW.state,
        'changed_at', NEW.state_changed_at
    )::text);
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER deployments_notify
    AFTER INSERT OR UPDATE OF state ON deployments
    FOR EACH ROW EXECUTE FUNCTION notify_deployment();
