import { useState, type FormEvent } from "react";
import type { Domain } from "../api/types";
import { useSession } from "../api/session";
import { certificateText, domainBadge, hostnameProblem } from "../lib/domains";
import { timeAgo } from "../lib/format";
import { useAsync } from "../lib/useAsync";
import { usePoll } from "../lib/usePoll";
import { Field, ProblemBanner, useFormErrors } from "./forms";
import { Loading } from "./Layout";

/**
 * Custom domains: add one, see the DNS records to create at the domain's
 * DNS provider and how verification and the certificate stand. berth
 * checks waiting domains by itself; the list refreshes while any waits.
 */
export function DomainsSection({ appId }: { appId: string }) {
  const { client } = useSession();
  const list = useAsync((signal) => client.domains(appId, signal), [client, appId]);
  const [hostname, setHostname] = useState("");
  const [busy, setBusy] = useState(false);
  const { errors, problem, submit, fail, edit } = useFormErrors<"hostname">();
  const waiting = (list.data ?? []).some(
    (d) => d.status === "pending_verification" || d.certificate.state === "pending",
  );
  usePoll(list.reload, 5000, waiting);

  const onAdd = async (e: FormEvent) => {
    e.preventDefault();
    if (!submit({ hostname: hostnameProblem(hostname) ?? undefined })) return;
    setBusy(true);
    try {
      await client.addDomain(appId, hostname.trim());
      setHostname("");
      list.reload();
    } catch (err) {
      fail(err);
    } finally {
      setBusy(false);
    }
  };

  const act = async (what: () => Promise<unknown>) => {
    setBusy(true);
    try {
      await what();
      list.reload();
    } catch (err) {
      fail(err);
    } finally {
      setBusy(false);
    }
  };

  if (list.error && !list.data) {
    return (
      <>
        <ProblemBanner problem={list.error} />
        <button type="button" className="secondary" onClick={list.reload}>
          Try again
        </button>
      </>
    );
  }
  if (!list.data) return <Loading what="Loading the domains…" />;

  return (
    <div className="domains">
      <ProblemBanner problem={problem} shownFields={["hostname"]} />
      {list.data.length === 0 && <p>No custom domain yet: the app answers on its own address above.</p>}
      <ul className="domain-list">
        {list.data.map((d) => (
          <DomainItem
            key={`${d.environment}/${d.hostname}`}
            domain={d}
            busy={busy}
            onVerify={() => act(() => client.verifyDomain(appId, d.hostname))}
            onRemove={() => act(() => client.removeDomain(appId, d.hostname))}
          />
        ))}
      </ul>
      <form onSubmit={onAdd} noValidate>
        <Field
          label="Domain"
          name="hostname"
          placeholder="www.example.com"
          autoComplete="off"
          value={hostname}
          onChange={(e) => {
            setHostname(e.target.value);
            edit("hostname");
          }}
          error={errors.hostname}
          hint="berth shows the DNS records to create; the domain serves once they are seen, with a certificate obtained automatically."
        />
        <div className="actions">
          <button type="submit" className="primary" disabled={busy}>
            Add the domain
          </button>
        </div>
      </form>
    </div>
  );
}

function DomainItem({
  domain: d,
  busy,
  onVerify,
  onRemove,
}: {
  domain: Domain;
  busy: boolean;
  onVerify: () => void;
  onRemove: () => void;
}) {
  const badge = domainBadge(d);
  const certificate = certificateText(d);
  const pending = d.status === "pending_verification";
  return (
    <li className="domain" data-hostname={d.hostname}>
      <p>
        {pending ? <strong>{d.hostname}</strong> : <a href={d.url}>{d.hostname}</a>}{" "}
        <span className={`badge tone-${badge.tone}`} data-status={d.status}>
          {badge.label}
        </span>
      </p>
      {pending && (
        <>
          <p>Create these records at the domain's DNS provider:</p>
          <table className="dns-records">
            <thead>
              <tr>
                <th>Type</th>
                <th>Name</th>
                <th>Value</th>
              </tr>
            </thead>
            <tbody>
              {d.dns_records.map((r) => (
                <tr key={r.type + r.name} title={r.purpose}>
                  <td>{r.type}</td>
                  <td>
                    <code>{r.name}</code>
                  </td>
                  <td>
                    <code>{r.value}</code>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
          <p className={d.verification.error ? "reason" : "note"}>
            {d.verification.error ?? "berth looks for the TXT record every half minute."}
            {d.verification.checked_at && ` Last checked ${timeAgo(d.verification.checked_at)}.`}
          </p>
        </>
      )}
      {certificate && <p className={d.certificate.state === "failed" ? "reason" : "note"}>{certificate}</p>}
      <div className="actions">
        {pending && (
          <button type="button" className="secondary" onClick={onVerify} disabled={busy}>
            Check now
          </button>
        )}
        <button type="button" className="secondary" onClick={onRemove} disabled={busy}>
          Remove
        </button>
      </div>
    </li>
  );
}
