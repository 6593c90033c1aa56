import { useCallback, useState } from "react";
import { Link, useParams } from "react-router";
import type { AppRuntime, Deployment } from "../api/types";
import { useSession } from "../api/session";
import { ProblemBanner } from "../components/forms";
import { Loading } from "../components/Layout";
import { DeleteApp } from "../components/DeleteApp";
import { DomainsSection } from "../components/DomainsSection";
import { EnvSection } from "../components/EnvSection";
import { LogView } from "../components/LogView";
import { ResourcesSection } from "../components/ResourcesSection";
import { ScaleSection, SettingsSection } from "../components/SettingsSection";
import { StateBadge } from "../components/StateBadge";
import { WebhookSection } from "../components/WebhookSection";
import { duration, queueLabel, shortSha, timeAgo, waitingLabel } from "../lib/format";
import { instanceDisplay, isInProgress, runtimeDisplay, triggerLabel } from "../lib/states";
import { canRollBackTo } from "../lib/appForm";
import { formatCpu, formatMemory } from "../lib/resources";
import { useAsync } from "../lib/useAsync";
import { usePoll } from "../lib/usePoll";
import { useDeploymentEvents } from "../lib/useDeploymentEvents";
import { ApiProblem } from "../api/problem";
import { useTitle } from "../lib/useTitle";

export function AppPage() {
  const { id = "" } = useParams();
  const { client } = useSession();
  const app = useAsync((signal) => client.app(id, signal), [client, id]);
  useTitle(app.data?.name ?? "App");
  const deployments = useAsync((signal) => client.deployments(id, signal), [client, id]);
  const [deployProblem, setDeployProblem] = useState<unknown>(null);
  const [deploying, setDeploying] = useState(false);

  const moving = !!deployments.data?.some((d) => isInProgress(d.state));
  const { reload: reloadApp } = app;
  const { reload: reloadDeployments } = deployments;
  const reloadAll = useCallback(() => {
    reloadApp();
    reloadDeployments();
  }, [reloadApp, reloadDeployments]);
  // Live: a change to one of this app's deployments re-reads the page.
  // Without the stream, poll while a deployment moves.
  const live = useDeploymentEvents((e) => {
    if (!e || e.app_id === id) reloadAll();
  });
  usePoll(reloadAll, 3000, !live && moving);

  const onDeploy = async () => {
    setDeployProblem(null);
    setDeploying(true);
    try {
      await client.deploy(id);
      reloadAll();
    } catch (err) {
      setDeployProblem(err);
    } finally {
      setDeploying(false);
    }
  };

  const onRollBack = async (releaseId: string) => {
    setDeployProblem(null);
    setDeploying(true);
    try {
      await client.rollBack(id, releaseId);
      reloadAll();
    } catch (err) {
      setDeployProblem(err);
    } finally {
      setDeploying(false);
    }
  };

  const onCancel = async (deploymentId: string) => {
    setDeployProblem(null);
    try {
      await client.cancelDeployment(deploymentId);
    } catch (err) {
      setDeployProblem(err);
    } finally {
      reloadAll();
    }
  };

  if (app.error && !app.data) {
    const missing = app.error instanceof ApiProblem && app.error.status === 404;
    return (
      <section>
        <p>
          <Link to="/">← Apps</Link>
        </p>
        {missing ? (
          <div className="empty">
            <h1>App not found</h1>
            <p>It may have been deleted.</p>
          </div>
        ) : (
          <>
            <ProblemBanner problem={app.error} />
            <button type="button" className="secondary" onClick={app.reload}>
              Try again
            </button>
          </>
        )}
      </section>
    );
  }
  if (!app.data) return <Loading what="Loading the app…" />;
  const a = app.data;

  return (
    <section aria-labelledby="app-title">
      <p className="breadcrumb">
        <Link to="/">← Apps</Link>
      </p>
      <div className="page-head">
        <h1 id="app-title">{a.name}</h1>
        <StateBadge state={a.state} />
        <button type="button" className="primary" onClick={onDeploy} disabled={deploying}>
          {deploying ? "Starting…" : "Deploy"}
        </button>
      </div>
      <ProblemBanner problem={deployProblem} />
      <dl className="facts">
        <dt>URL</dt>
        <dd>
          {a.url ? (
            <a href={a.url} target="_blank" rel="noreferrer">
              {a.url}
            </a>
          ) : (
            <span className="muted">None until a deployment is live</span>
          )}
        </dd>
        <dt>Repository</dt>
        <dd>
          <code>{a.repo_url}</code> on <code>{a.branch}</code>
          {a.subdirectory ? (
            <>
              {" "}
              in <code>{a.subdirectory}</code>
            </>
          ) : null}
        </dd>
        <dt>Port</dt>
        <dd>{a.port}</dd>
        <dt>Instances</dt>
        <dd>{a.replicas === 0 ? "stopped" : a.replicas}</dd>
        {a.runtime && <RuntimeFact runtime={a.runtime} />}
        <dt>Each instance</dt>
        <dd>
          {formatMemory(a.resources.memory_mb)} of memory, {formatCpu(a.resources.cpu_millis)}
        </dd>
      </dl>

      <h2>Deployments</h2>
      {deployments.error && !deployments.data ? (
        <>
          <ProblemBanner problem={deployments.error} />
          <button type="button" className="secondary" onClick={deployments.reload}>
            Try again
          </button>
        </>
      ) : !deployments.data ? (
        <Loading what="Loading deployments…" />
      ) : deployments.data.length === 0 ? (
        <p className="empty">No deployments yet. Deploy builds the branch's latest commit.</p>
      ) : (
        <ol className="deployments">
          {deployments.data.map((d) => (
            <DeploymentRow
              key={d.id}
              d={d}
              canRollBack={canRollBackTo(d, a.current_release_id)}
              onRollBack={() => onRollBack(d.release_id)}
              onCancel={() => onCancel(d.id)}
              busy={deploying}
            />
          ))}
        </ol>
      )}

      <h2>Logs</h2>
      <LogView appId={a.id} appName={a.name} />

      <h2>Environment variables</h2>
      <EnvSection appId={a.id} onSaved={reloadAll} />

      <h2>Domains</h2>
      <DomainsSection appId={a.id} />

      <h2>Instances</h2>
      <ScaleSection key={`scale-${a.replicas}`} app={a} onSaved={app.reload} />

      <h2>Resources</h2>
      {/* Keyed by the app only: a save keeps its notice while the page reloads the app. */}
      <ResourcesSection key={`resources-${a.id}`} app={a} onSaved={app.reload} />

      <h2>Settings</h2>
      <SettingsSection key={a.updated_at} app={a} onSaved={app.reload} />

      <h2>Deploy on push</h2>
      <WebhookSection appId={a.id} />

      <h2>Delete</h2>
      <DeleteApp appId={a.id} appName={a.name} />
    </section>
  );
}

function finishedAt(d: Deployment): string | null {
  if (isInProgress(d.state)) return null;
  const settled = d.states.find((s) => s.state === d.state);
  return settled?.at ?? d.updated_at;
}

function DeploymentRow({
  d,
  canRollBack,
  onRollBack,
  onCancel,
  busy,
}: {
  d: Deployment;
  canRollBack: boolean;
  onRollBack: () => void;
  onCancel: () => void;
  busy: boolean;
}) {
  const took = duration(d.created_at, finishedAt(d));
  return (
    <li className="deployment">
      <div className="deployment-head">
        <StateBadge state={d.state} />
        <span className="commit">
          {d.commit ? <code>{shortSha(d.commit)}</code> : <span className="muted">commit not known yet</span>}
          {d.commit_message && <span className="commit-message"> {d.commit_message}</span>}
        </span>
      </div>
      <div className="muted deployment-meta">
        {triggerLabel(d.trigger, d.pushed_by)} · <time dateTime={d.created_at}>{timeAgo(d.created_at)}</time>
        {took && <> · took {took}</>}
        {d.queue && <> · {queueLabel(d.queue.position, d.queue.estimated_start_secs)}</>}
        {d.release_pruned_at && <> · image removed by retention, so it cannot be rolled back to</>}
      </div>
      {d.reason && <p className="reason">{d.reason}</p>}
      {d.waiting && isInProgress(d.state) && (
        <p className="reason" role="status">
          {waitingLabel(d.waiting.reason, d.waiting.next_attempt_at)}
        </p>
      )}
      {isInProgress(d.state) && (
        <button type="button" className="secondary small" onClick={onCancel}>
          Cancel
        </button>
      )}
      {canRollBack && (
        <button type="button" className="secondary small" onClick={onRollBack} disabled={busy}>
          Roll back to this release
        </button>
      )}
    </li>
  );
}

/** What berth last found running, and why it could not repair a degraded app. */
function RuntimeFact({ runtime }: { runtime: AppRuntime }) {
  const shown = runtimeDisplay(runtime.status);
  return (
    <>
      <dt>Runtime</dt>
      <dd>
        <span className={`badge tone-${shown.tone}`} data-runtime={runtime.status}>
          {shown.label}
        </span>{" "}
        <span className="muted">
          checked <time dateTime={runtime.checked_at}>{timeAgo(runtime.checked_at)}</time>
        </span>
        {runtime.reason && <p className="reason">{runtime.reason}</p>}
        {runtime.instances && runtime.instances.length > 0 && (
          <ul className="instances">
            {runtime.instances.map((instance) => {
              const shown = instanceDisplay(instance);
              return (
                <li key={instance.name} data-instance={instance.name}>
                  <code>{instance.name}</code>{" "}
                  <span className={`badge tone-${shown.tone}`}>{shown.label}</span>
                  {instance.said && <span className="muted"> {instance.said}</span>}
                </li>
              );
            })}
          </ul>
        )}
      </dd>
    </>
  );
}
