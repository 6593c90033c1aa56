import { useRef, useState } from "react";
import { withSubject } from "../api/problem";
import { useSession } from "../api/session";
import { buildEnv, envRowField, envRows, sameEnv, type EnvRow } from "../lib/appForm";
import { useAsync } from "../lib/useAsync";
import { Notice, ProblemBanner, useFormErrors } from "./forms";
import { Loading } from "./Layout";

/**
 * The app's env vars. Values are hidden (password inputs) until revealed;
 * saving replaces the whole set and takes effect at the next deploy, which
 * "Save and deploy" starts at once.
 */
export function EnvSection({ appId, onSaved }: { appId: string; onSaved: () => void }) {
  const { client } = useSession();
  const nextId = useRef(1);
  const [rows, setRows] = useState<EnvRow[] | null>(null);
  const [saved, setSaved] = useState<Record<string, string>>({});
  const [reveal, setReveal] = useState(false);
  const [busy, setBusy] = useState(false);
  const [message, setMessage] = useState<string | null>(null);
  const { errors, problem, submit, fail, edit } = useFormErrors<string>();
  const loaded = useAsync(async (signal) => {
    const { env } = await client.appEnv(appId, signal);
    const fresh = envRows(env, nextId.current);
    nextId.current += fresh.length + 1;
    setRows(fresh);
    setSaved(env);
    return env;
  }, [client, appId]);

  if (loaded.error && !rows) {
    return (
      <>
        <ProblemBanner problem={loaded.error} />
        <button type="button" className="secondary" onClick={loaded.reload}>
          Try again
        </button>
      </>
    );
  }
  if (!rows) return <Loading what="Loading env vars…" />;

  const { env, errors: found } = buildEnv(rows);
  const changed = !sameEnv(env, saved);
  const setRow = (id: number, patch: Partial<EnvRow>) => {
    const row = rows.find((r) => r.id === id);
    if (row) edit(envRowField(row));
    setMessage(null);
    setRows(rows.map((r) => (r.id === id ? { ...r, ...patch } : r)));
  };

  const save = async (deploy: boolean) => {
    setMessage(null);
    if (!submit(found)) return;
    setBusy(true);
    try {
      await client.updateApp(appId, { env });
      setSaved(env);
      if (deploy) await client.deploy(appId);
      setMessage(deploy ? "Saved. A deployment with the new values has started." : "Saved. The values apply from the next deployment.");
      onSaved();
    } catch (err) {
      fail(err);
    } finally {
      setBusy(false);
    }
  };

  return (
    <form
      className="env"
      onSubmit={(e) => {
        e.preventDefault();
        void save(false);
      }}
      noValidate
    >
      <ProblemBanner problem={problem} shownFields={["env", ...rows.map(envRowField)]} />
      {message && <Notice>{message}</Notice>}
      {errors.env && <p className="field-error">{errors.env}</p>}
      {rows.length === 0 && <p className="muted">No env vars.</p>}
      {rows.map((row, i) => {
        const error = errors[envRowField(row)];
        return (
          <div key={row.id} className={error ? "env-row field-invalid" : "env-row"}>
            <div className="field">
              <label htmlFor={`envs-name-${row.id}`}>Name {i + 1}</label>
              <input
                id={`envs-name-${row.id}`}
                value={row.name}
                autoCapitalize="none"
                spellCheck={false}
                aria-invalid={error ? true : undefined}
                aria-describedby={error ? `envs-error-${row.id}` : undefined}
                onChange={(e) => setRow(row.id, { name: e.target.value })}
              />
            </div>
            <div className="field">
              <label htmlFor={`envs-value-${row.id}`}>Value {i + 1}</label>
              <input
                id={`envs-value-${row.id}`}
                type={reveal ? "text" : "password"}
                autoComplete="off"
                spellCheck={false}
                value={row.value}
                onChange={(e) => setRow(row.id, { value: e.target.value })}
              />
            </div>
            <button
              type="button"
              className="secondary"
              onClick={() => setRows(rows.filter((r) => r.id !== row.id))}
              aria-label={`Remove variable ${row.name || i + 1}`}
            >
              Remove
            </button>
            {error && (
              <p className="field-error env-error" id={`envs-error-${row.id}`}>
                {withSubject(row.name.trim() || `Variable ${i + 1}`, error)}
              </p>
            )}
          </div>
        );
      })}
      <div className="actions">
        <button
          type="button"
          className="secondary"
          onClick={() => setRows([...rows, { id: nextId.current++, name: "", value: "" }])}
        >
          Add a variable
        </button>
        <button type="button" className="secondary" onClick={() => setReveal(!reveal)} aria-pressed={reveal}>
          {reveal ? "Hide values" : "Show values"}
        </button>
        <button type="submit" className="secondary" disabled={busy || !changed}>
          Save
        </button>
        <button type="button" className="primary" disabled={busy || !changed} onClick={() => void save(true)}>
          {busy ? "Saving…" : "Save and deploy"}
        </button>
      </div>
    </form>
  );
}
