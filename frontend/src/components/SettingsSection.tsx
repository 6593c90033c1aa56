import { useState, type FormEvent } from "react";
import type { App } from "../api/types";
import { useSession } from "../api/session";
import { buildUpdateApp, MAX_REPLICAS, parseReplicas } from "../lib/appForm";
import { Field, Notice, ProblemBanner, useFormErrors } from "./forms";

/** Where the code comes from and how the app runs; changes apply from the next deployment. */
export function SettingsSection({ app, onSaved }: { app: App; onSaved: () => void }) {
  const { client } = useSession();
  const [values, setValues] = useState({
    repoUrl: app.repo_url,
    branch: app.branch,
    subdirectory: app.subdirectory ?? "",
    port: String(app.port),
    healthCheckPath: app.health_check_path ?? "",
  });
  const [busy, setBusy] = useState(false);
  const [message, setMessage] = useState<string | null>(null);
  const { errors, problem, submit, fail, edit } = useFormErrors<string>();
  const set = (k: keyof typeof values, field: string) => (e: { target: { value: string } }) => {
    setValues((v) => ({ ...v, [k]: e.target.value }));
    setMessage(null);
    edit(field);
  };

  const onSubmit = async (e: FormEvent) => {
    e.preventDefault();
    setMessage(null);
    const { errors: found, body } = buildUpdateApp(values, app);
    if (!submit(found)) return;
    if (!body) {
      setMessage("Nothing changed.");
      return;
    }
    setBusy(true);
    try {
      await client.updateApp(app.id, body);
      setMessage("Saved. It applies from the next deployment.");
      onSaved();
    } catch (err) {
      fail(err);
    } finally {
      setBusy(false);
    }
  };

  return (
    <form onSubmit={onSubmit} noValidate>
      {message && <Notice>{message}</Notice>}
      <ProblemBanner problem={problem} shownFields={["repo_url", "branch", "subdirectory", "port", "health_check_path"]} />
      <Field
        label="Git URL"
        name="repo_url"
        autoCapitalize="none"
        spellCheck={false}
        value={values.repoUrl}
        onChange={set("repoUrl", "repo_url")}
        error={errors.repo_url}
      />
      <Field
        label="Branch"
        name="branch"
        autoCapitalize="none"
        spellCheck={false}
        value={values.branch}
        onChange={set("branch", "branch")}
        error={errors.branch}
      />
      <Field
        label="Subdirectory"
        name="subdirectory"
        placeholder="(the repository's root)"
        autoCapitalize="none"
        spellCheck={false}
        value={values.subdirectory}
        onChange={set("subdirectory", "subdirectory")}
        error={errors.subdirectory}
      />
      <Field
        label="Port"
        name="port"
        inputMode="numeric"
        value={values.port}
        onChange={set("port", "port")}
        error={errors.port}
      />
      <Field
        label="Health check path"
        name="health_check_path"
        placeholder="(none: the port accepting connections is healthy)"
        autoCapitalize="none"
        spellCheck={false}
        value={values.healthCheckPath}
        onChange={set("healthCheckPath", "health_check_path")}
        error={errors.health_check_path}
        hint="An instance gets traffic only while it answers 2xx here, e.g. /healthz."
      />
      <button type="submit" className="primary" disabled={busy}>
        {busy ? "Saving…" : "Save settings"}
      </button>
    </form>
  );
}

/** How many instances run; 0 stops the app and a later scale up resumes it. */
export function ScaleSection({ app, onSaved }: { app: App; onSaved: () => void }) {
  const { client } = useSession();
  const [value, setValue] = useState(String(app.replicas));
  const [busy, setBusy] = useState(false);
  const [message, setMessage] = useState<string | null>(null);
  const { errors, problem, submit, fail, edit } = useFormErrors<"replicas">();

  const apply = async (replicas: number) => {
    setBusy(true);
    setMessage(null);
    try {
      await client.scale(app.id, replicas);
      setValue(String(replicas));
      setMessage(replicas === 0 ? "Stopping the app." : `Running ${replicas} ${replicas === 1 ? "instance" : "instances"}.`);
      onSaved();
    } catch (err) {
      fail(err);
    } finally {
      setBusy(false);
    }
  };

  const onSubmit = (e: FormEvent) => {
    e.preventDefault();
    const parsed = parseReplicas(value);
    if (!submit("error" in parsed ? { replicas: parsed.error } : {}) || "error" in parsed) return;
    void apply(parsed.replicas);
  };

  return (
    <form onSubmit={onSubmit} noValidate>
      {message && <Notice>{message}</Notice>}
      <ProblemBanner problem={problem} shownFields={["replicas"]} />
      <Field
        label="Instances"
        name="replicas"
        inputMode="numeric"
        value={value}
        onChange={(e) => {
          setValue(e.target.value);
          edit("replicas");
        }}
        error={errors.replicas}
        hint={`0 to ${MAX_REPLICAS}; 0 stops the app, and scaling up again resumes it.`}
      />
      <div className="actions">
        <button type="submit" className="primary" disabled={busy}>
          Scale
        </button>
        {app.replicas > 0 ? (
          <button type="button" className="secondary" disabled={busy} onClick={() => void apply(0)}>
            Stop the app
          </button>
        ) : (
          <button type="button" className="secondary" disabled={busy} onClick={() => void apply(1)}>
            Start the app
          </button>
        )}
      </div>
    </form>
  );
}
