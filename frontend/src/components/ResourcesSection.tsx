import { useState, type FormEvent } from "react";
import type { App } from "../api/types";
import { useSession } from "../api/session";
import { useAsync } from "../lib/useAsync";
import { buildResources, formatCpu, formatMemory, quotaLines } from "../lib/resources";
import { Field, Notice, ProblemBanner, useFormErrors } from "./forms";

/**
 * Each instance's memory and CPU, and what the account's quotas (set by the
 * operator) leave: memory and CPU count every app times its instances.
 * Changes apply from the next deployment.
 */
export function ResourcesSection({ app, onSaved }: { app: App; onSaved: () => void }) {
  const { client } = useSession();
  const quota = useAsync((signal) => client.quota(signal), [client]);
  const [values, setValues] = useState({
    memoryMb: String(app.resources.memory_mb),
    cpuMillis: String(app.resources.cpu_millis),
  });
  const [busy, setBusy] = useState(false);
  const [message, setMessage] = useState<string | null>(null);
  const { errors, problem, submit, fail, edit } = useFormErrors<"resources.memory_mb" | "resources.cpu_millis">();
  const set = (k: keyof typeof values, field: "resources.memory_mb" | "resources.cpu_millis") => (e: {
    target: { value: string };
  }) => {
    setValues((v) => ({ ...v, [k]: e.target.value }));
    setMessage(null);
    edit(field);
  };

  const onSubmit = async (e: FormEvent) => {
    e.preventDefault();
    setMessage(null);
    const { errors: found, body } = buildResources(values, app.resources, quota.data?.app_max);
    if (!submit(found)) return;
    if (!body) {
      setMessage("Nothing changed.");
      return;
    }
    setBusy(true);
    try {
      await client.updateApp(app.id, { resources: body });
      setMessage("Saved. It applies from the next deployment.");
      quota.reload();
      onSaved();
    } catch (err) {
      fail(err);
    } finally {
      setBusy(false);
    }
  };

  const max = quota.data?.app_max;
  const instances = app.replicas;
  return (
    <>
      <p>
        Each instance may use {formatMemory(app.resources.memory_mb)} of memory and {formatCpu(app.resources.cpu_millis)}
        {instances > 1
          ? `; its ${instances} instances take ${formatMemory(app.resources.memory_mb * instances)} and ${formatCpu(
              app.resources.cpu_millis * instances,
            )} of your account's quota.`
          : "."}{" "}
        An instance that goes over its memory is stopped and restarted.
      </p>
      {quota.data && (
        <dl className="facts" aria-label="Your account's quotas">
          {quotaLines(quota.data).map((line) => (
            <div key={line.label}>
              <dt>{line.label}</dt>
              <dd className={line.full ? "quota-full" : undefined}>
                {line.used} of {line.limit}
                {line.full ? " (full)" : ""}
              </dd>
            </div>
          ))}
        </dl>
      )}
      <form onSubmit={onSubmit} noValidate>
        {message && <Notice>{message}</Notice>}
        <ProblemBanner problem={problem} shownFields={["resources.memory_mb", "resources.cpu_millis"]} />
        <Field
          label="Memory (MB)"
          name="memory_mb"
          inputMode="numeric"
          value={values.memoryMb}
          onChange={set("memoryMb", "resources.memory_mb")}
          error={errors["resources.memory_mb"]}
          hint={max ? `Per instance, up to ${formatMemory(max.memory_mb)}.` : "Per instance."}
        />
        <Field
          label="CPU (millicores)"
          name="cpu_millis"
          inputMode="numeric"
          value={values.cpuMillis}
          onChange={set("cpuMillis", "resources.cpu_millis")}
          error={errors["resources.cpu_millis"]}
          hint={`Per instance; 1000 is one core${max ? `, up to ${formatCpu(max.cpu_millis)}` : ""}.`}
        />
        <button type="submit" className="primary" disabled={busy}>
          {busy ? "Saving…" : "Save resources"}
        </button>
      </form>
    </>
  );
}
