import { Link } from "react-router";
import type { App } from "../api/types";
import { useSession } from "../api/session";
import { ProblemBanner } from "../components/forms";
import { Loading } from "../components/Layout";
import { StateBadge } from "../components/StateBadge";
import { shortSha, timeAgo } from "../lib/format";
import { isInProgress, triggerLabel } from "../lib/states";
import { usePoll } from "../lib/usePoll";
import { useAsync } from "../lib/useAsync";
import { useDeploymentEvents } from "../lib/useDeploymentEvents";
import { useTitle } from "../lib/useTitle";

export function Apps() {
  useTitle("Apps");
  const { client } = useSession();
  const { data: apps, error, loading, reload } = useAsync((signal) => client.apps(signal), [client]);
  // Live: any deployment change re-reads the list (state, URL, last deploy).
  // Without the stream, poll while a deployment moves.
  const live = useDeploymentEvents(reload);
  usePoll(reload, 4000, !live && !!apps?.some((a) => isInProgress(a.state)));

  return (
    <section aria-labelledby="apps-title">
      <div className="page-head">
        <h1 id="apps-title">Apps</h1>
        <Link to="/apps/new" className="button primary">
          New app
        </Link>
      </div>
      {error && !apps ? (
        <div>
          <ProblemBanner problem={error} />
          <button type="button" className="secondary" onClick={reload}>
            Try again
          </button>
        </div>
      ) : !apps ? (
        loading && <Loading what="Loading your apps…" />
      ) : apps.length === 0 ? (
        <div className="empty">
          <h2>No apps yet</h2>
          <p>Create one from a GitHub repository or any Git URL; berth builds and runs it.</p>
          <p>
            <Link to="/apps/new" className="button primary">
              Create your first app
            </Link>
          </p>
        </div>
      ) : (
        <>
          {error ? <ProblemBanner problem={error} /> : null}
          <ul className="app-list">
            {apps.map((app) => (
              <AppRow key={app.id} app={app} />
            ))}
          </ul>
        </>
      )}
    </section>
  );
}

function AppRow({ app }: { app: App }) {
  const last = app.last_deploy;
  return (
    <li className="app-row">
      <div className="app-row-main">
        <Link to={`/apps/${app.id}`} className="app-name">
          {app.name}
        </Link>
        <StateBadge state={app.state} />
      </div>
      <div className="app-row-meta">
        {app.url ? (
          <a href={app.url} target="_blank" rel="noreferrer" className="app-url">
            {app.url.replace(/^https?:\/\//, "")}
          </a>
        ) : (
          <span className="muted">No URL yet</span>
        )}
        <span className="muted">
          {last ? (
            <>
              Last deploy {timeAgo(last.created_at)} · {triggerLabel(last.trigger, last.pushed_by)}
              {last.commit && (
                <>
                  {" · "}
                  <code>{shortSha(last.commit)}</code>
                </>
              )}
            </>
          ) : (
            "Never deployed"
          )}
        </span>
      </div>
    </li>
  );
}
