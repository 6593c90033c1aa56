import { useEffect, useRef, useState, type FormEvent } from "react";
import { Link, useNavigate } from "react-router";
import { ApiProblem, withSubject } from "../api/problem";
import { useSession } from "../api/session";
import { Field, ProblemBanner, useFormErrors } from "../components/forms";
import { SelectField } from "../components/Select";
import { buildCreateApp, DEFAULT_PORT, envRowField, suggestName, type AppFormValues, type EnvRow } from "../lib/appForm";
import { useAsync } from "../lib/useAsync";
import { useTitle } from "../lib/useTitle";

type Source = "github" | "url";

export function CreateApp() {
  useTitle("New app");
  const { client } = useSession();
  const navigate = useNavigate();
  const profile = useAsync((signal) => client.me(signal), [client]);
  const githubLogin = profile.data?.github_login ?? null;
  const [source, setSource] = useState<Source>("url");
  const chosenSource = useRef(false);
  // Once we know GitHub is linked, start from its repositories (unless the user already chose).
  useEffect(() => {
    if (githubLogin && !chosenSource.current) setSource("github");
  }, [githubLogin]);

  const nextId = useRef(2);
  const [values, setValues] = useState<AppFormValues>({
    name: "",
    repoUrl: "",
    branch: "",
    subdirectory: "",
    port: String(DEFAULT_PORT),
    env: [{ id: 1, name: "", value: "" }],
  });
  const [repoName, setRepoName] = useState("");
  const [deployNow, setDeployNow] = useState(true);
  const [busy, setBusy] = useState(false);
  const { errors, problem, submit, fail, edit } = useFormErrors<string>();

  const repos = useAsync(
    (signal) => (source === "github" ? client.githubRepos(signal) : Promise.resolve([])),
    [client, source],
  );
  const branches = useAsync(
    (signal) => (source === "github" && repoName ? client.githubBranches(repoName, signal) : Promise.resolve([])),
    [client, source, repoName],
  );

  const set = (field: keyof Omit<AppFormValues, "env">, errorField: string = field) => (value: string) => {
    setValues((v) => ({ ...v, [field]: value }));
    edit(errorField);
  };
  const setRow = (id: number, patch: Partial<EnvRow>) => {
    const row = values.env.find((r) => r.id === id);
    if (row) edit(envRowField(row));
    setValues((v) => ({ ...v, env: v.env.map((r) => (r.id === id ? { ...r, ...patch } : r)) }));
  };
  const addRow = () =>
    setValues((v) => ({ ...v, env: [...v.env, { id: nextId.current++, name: "", value: "" }] }));
  const removeRow = (id: number) => setValues((v) => ({ ...v, env: v.env.filter((r) => r.id !== id) }));

  const chooseSource = (s: Source) => {
    chosenSource.current = true;
    setSource(s);
    setRepoName("");
    setValues((v) => ({ ...v, repoUrl: "", branch: "" }));
  };

  const chooseRepo = (fullName: string) => {
    setRepoName(fullName);
    const repo = repos.data?.find((r) => r.full_name === fullName);
    setValues((v) => ({
      ...v,
      repoUrl: repo?.clone_url ?? "",
      branch: repo?.default_branch ?? "main",
      // A new app's name: the repository's, made a valid app name.
      name: v.name || suggestName(fullName),
    }));
    edit("repo_url");
  };

  const onSubmit = async (e: FormEvent) => {
    e.preventDefault();
    // The server decides whether local folders are allowed (local mode).
    const { errors: found, body } = buildCreateApp(values, { allowLocal: true });
    if (!submit(found) || !body) return;
    setBusy(true);
    try {
      const app = await client.createApp(body);
      if (deployNow) {
        try {
          await client.deploy(app.id);
        } catch {
          // The app exists; its page has the Deploy button and shows any problem.
        }
      }
      navigate(`/apps/${app.id}`);
    } catch (err) {
      fail(err);
      setBusy(false);
    }
  };

  const envFields = values.env.map(envRowField);
  const shown = ["name", "repo_url", "branch", "subdirectory", "port", "env", ...envFields];
  const githubUnavailable = repos.error instanceof ApiProblem && repos.error.status === 409;

  return (
    <section className="card" aria-labelledby="create-title">
      <p className="breadcrumb">
        <Link to="/">← Apps</Link>
      </p>
      <h1 id="create-title">New app</h1>
      <ProblemBanner problem={problem} shownFields={shown} />
      <form onSubmit={onSubmit} noValidate>
        <fieldset className="choice">
          <legend>Code from</legend>
          <label>
            <input
              type="radio"
              name="source"
              value="github"
              checked={source === "github"}
              onChange={() => chooseSource("github")}
              disabled={!githubLogin}
            />{" "}
            A GitHub repository{githubLogin ? ` (${githubLogin})` : ""}
          </label>
          <label>
            <input type="radio" name="source" value="url" checked={source === "url"} onChange={() => chooseSource("url")} />{" "}
            A Git URL
          </label>
          {!githubLogin && profile.data && (
            <p className="field-hint">Sign in with GitHub once to pick from your repositories.</p>
          )}
        </fieldset>

        {source === "github" ? (
          <>
            {repos.loading && !repos.data ? (
              <p className="muted">Loading your repositories…</p>
            ) : repos.error ? (
              <div className="banner banner-error" role="alert">
                {githubUnavailable
                  ? "GitHub no longer accepts berth's access: sign in with GitHub again, or give a Git URL."
                  : "Your repositories could not be loaded."}{" "}
                <button type="button" className="link-button" onClick={repos.reload}>
                  Try again
                </button>
              </div>
            ) : (
              <SelectField
                label="Repository"
                name="repo"
                value={repoName}
                onChange={(e) => chooseRepo(e.target.value)}
                error={errors.repo_url}
                required
              >
                <option value="">{repos.data?.length ? "Choose a repository" : "No repositories found"}</option>
                {repos.data?.map((r) => (
                  <option key={r.full_name} value={r.full_name}>
                    {r.full_name}
                    {r.private ? " (private)" : ""}
                  </option>
                ))}
              </SelectField>
            )}
            {repoName &&
              (branches.data && branches.data.length > 0 ? (
                <SelectField
                  label="Branch"
                  name="branch"
                  value={values.branch}
                  onChange={(e) => set("branch")(e.target.value)}
                  error={errors.branch}
                >
                  {!branches.data.some((b) => b.name === values.branch) && values.branch && (
                    <option value={values.branch}>{values.branch}</option>
                  )}
                  {branches.data.map((b) => (
                    <option key={b.name} value={b.name}>
                      {b.name}
                    </option>
                  ))}
                </SelectField>
              ) : (
                <Field
                  label="Branch"
                  name="branch"
                  value={values.branch}
                  onChange={(e) => set("branch")(e.target.value)}
                  error={errors.branch}
                  hint={branches.loading ? "Loading branches…" : undefined}
                />
              ))}
          </>
        ) : (
          <>
            <Field
              label="Git URL"
              name="repo_url"
              type="url"
              inputMode="url"
              autoCapitalize="none"
              spellCheck={false}
              placeholder="https://github.com/you/app.git"
              value={values.repoUrl}
              onChange={(e) => set("repoUrl", "repo_url")(e.target.value)}
              error={errors.repo_url}
              required
            />
            <Field
              label="Branch"
              name="branch"
              placeholder="main"
              autoCapitalize="none"
              spellCheck={false}
              value={values.branch}
              onChange={(e) => set("branch")(e.target.value)}
              error={errors.branch}
            />
          </>
        )}

        <Field
          label="Name"
          name="name"
          autoCapitalize="none"
          spellCheck={false}
          value={values.name}
          onChange={(e) => set("name")(e.target.value)}
          error={errors.name}
          hint="Lowercase letters, digits and '-', starting with a letter. It is part of the app's address."
          required
        />
        <Field
          label="Subdirectory"
          name="subdirectory"
          placeholder="(the repository's root)"
          autoCapitalize="none"
          spellCheck={false}
          value={values.subdirectory}
          onChange={(e) => set("subdirectory")(e.target.value)}
          error={errors.subdirectory}
          hint="The folder that holds the app, when it is not the root."
        />
        <Field
          label="Port"
          name="port"
          inputMode="numeric"
          value={values.port}
          onChange={(e) => set("port")(e.target.value)}
          error={errors.port}
          hint="The port your app listens on; it also gets it in PORT."
        />

        <fieldset className="env">
          <legend>Environment variables</legend>
          {errors.env && <p className="field-error">{errors.env}</p>}
          {values.env.map((row, i) => {
            const error = errors[envRowField(row)];
            return (
              <div key={row.id} className={error ? "env-row field-invalid" : "env-row"}>
                <div className="field">
                  <label htmlFor={`env-name-${row.id}`}>Name {i + 1}</label>
                  <input
                    id={`env-name-${row.id}`}
                    value={row.name}
                    autoCapitalize="none"
                    spellCheck={false}
                    aria-invalid={error ? true : undefined}
                    aria-describedby={error ? `env-error-${row.id}` : undefined}
                    onChange={(e) => setRow(row.id, { name: e.target.value })}
                  />
                </div>
                <div className="field">
                  <label htmlFor={`env-value-${row.id}`}>Value {i + 1}</label>
                  <input
                    id={`env-value-${row.id}`}
                    value={row.value}
                    autoCapitalize="none"
                    spellCheck={false}
                    onChange={(e) => setRow(row.id, { value: e.target.value })}
                  />
                </div>
                <button
                  type="button"
                  className="secondary"
                  onClick={() => removeRow(row.id)}
                  aria-label={`Remove variable ${row.name || i + 1}`}
                >
                  Remove
                </button>
                {error && (
                  <p className="field-error env-error" id={`env-error-${row.id}`}>
                    {withSubject(row.name.trim() || `Variable ${i + 1}`, error)}
                  </p>
                )}
              </div>
            );
          })}
          <button type="button" className="secondary" onClick={addRow}>
            Add a variable
          </button>
        </fieldset>

        <label className="check">
          <input type="checkbox" checked={deployNow} onChange={(e) => setDeployNow(e.target.checked)} /> Deploy it now
        </label>
        <button type="submit" className="primary" disabled={busy}>
          {busy ? "Creating…" : "Create app"}
        </button>
      </form>
    </section>
  );
}
