import { useState } from "react";
import type { AuditEvent } from "../api/types";
import { useSession } from "../api/session";
import { ProblemBanner } from "../components/forms";
import { Loading } from "../components/Layout";
import { actionLabel, detailsText } from "../lib/audit";
import { timeAgo } from "../lib/format";
import { useAsync } from "../lib/useAsync";
import { useTitle } from "../lib/useTitle";

const PAGE = 50;

export function Audit() {
  useTitle("Audit log");
  const { client } = useSession();
  const first = useAsync((signal) => client.audit({ limit: PAGE }, signal), [client]);
  const [more, setMore] = useState<AuditEvent[]>([]);
  const [exhausted, setExhausted] = useState(false);
  const [loadingMore, setLoadingMore] = useState(false);
  const [moreProblem, setMoreProblem] = useState<unknown>(null);

  const events = [...(first.data ?? []), ...more];
  const done = exhausted || (first.data !== undefined && first.data.length < PAGE && more.length === 0);

  const loadMore = async () => {
    const last = events.at(-1);
    if (!last) return;
    setLoadingMore(true);
    setMoreProblem(null);
    try {
      const page = await client.audit({ before: last.id, limit: PAGE });
      setMore((m) => [...m, ...page]);
      if (page.length < PAGE) setExhausted(true);
    } catch (err) {
      setMoreProblem(err);
    } finally {
      setLoadingMore(false);
    }
  };

  return (
    <section aria-labelledby="audit-title">
      <h1 id="audit-title">Audit log</h1>
      <p className="muted">What happened in your account, newest first.</p>
      {first.error && !first.data ? (
        <>
          <ProblemBanner problem={first.error} />
          <button type="button" className="secondary" onClick={first.reload}>
            Try again
          </button>
        </>
      ) : !first.data ? (
        <Loading what="Loading the audit log…" />
      ) : events.length === 0 ? (
        <p className="empty">Nothing recorded yet.</p>
      ) : (
        <>
          <ol className="audit">
            {events.map((e) => (
              <li key={e.id}>
                <div>
                  <strong>{actionLabel(e.action)}</strong> <span className="muted">by {e.actor}</span>
                </div>
                <div className="muted audit-meta">
                  <time dateTime={e.created_at} title={e.created_at}>
                    {timeAgo(e.created_at)}
                  </time>
                  {e.source_ip ? ` · from ${e.source_ip}` : ""}
                  {detailsText(e.details) ? ` · ${detailsText(e.details)}` : ""}
                </div>
              </li>
            ))}
          </ol>
          <ProblemBanner problem={moreProblem} />
          {!done && (
            <button type="button" className="secondary" onClick={loadMore} disabled={loadingMore}>
              {loadingMore ? "Loading…" : "Show older events"}
            </button>
          )}
        </>
      )}
    </section>
  );
}
