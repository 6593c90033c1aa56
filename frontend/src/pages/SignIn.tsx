import { useState, type FormEvent } from "react";
import { Link, useNavigate, useSearchParams } from "react-router";
import { useSession } from "../api/session";
import { Field, mergeErrors, ProblemBanner } from "../components/forms";
import { safeNext } from "../components/Layout";
import { hasErrors, validateSignIn, type Errors } from "../lib/validation";

export function SignIn() {
  const { client, signIn } = useSession();
  const navigate = useNavigate();
  const [params] = useSearchParams();
  const [login, setLogin] = useState("");
  const [password, setPassword] = useState("");
  const [checks, setChecks] = useState<Errors<"login" | "password">>({});
  const [problem, setProblem] = useState<unknown>(null);
  const [busy, setBusy] = useState<"password" | "github" | null>(null);
  const githubError = params.get("error");

  const onSubmit = async (e: FormEvent) => {
    e.preventDefault();
    const found = validateSignIn({ login, password });
    setChecks(found);
    setProblem(null);
    if (hasErrors(found)) return;
    setBusy("password");
    try {
      await signIn(login.trim(), password);
      navigate(safeNext(params.get("next")), { replace: true });
    } catch (err) {
      setProblem(err);
      setBusy(null);
    }
  };

  const onGitHub = async () => {
    setProblem(null);
    setBusy("github");
    try {
      window.location.assign(await client.githubSignInUrl());
    } catch (err) {
      setProblem(err);
      setBusy(null);
    }
  };

  const errors = mergeErrors(checks, problem);
  return (
    <section className="card narrow" aria-labelledby="signin-title">
      <h1 id="signin-title">Sign in</h1>
      {githubError && !problem && (
        <div className="banner banner-error" role="alert">
          GitHub sign-in did not work: {githubError}
        </div>
      )}
      <ProblemBanner problem={problem} shownFields={["login", "password"]} />
      <form onSubmit={onSubmit} noValidate>
        <Field
          label="Username or email"
          name="login"
          autoComplete="username"
          value={login}
          onChange={(e) => setLogin(e.target.value)}
          error={errors.login}
          required
          autoFocus
        />
        <Field
          label="Password"
          name="password"
          type="password"
          autoComplete="current-password"
          value={password}
          onChange={(e) => setPassword(e.target.value)}
          error={errors.password}
          required
        />
        <button type="submit" className="primary" disabled={busy !== null}>
          {busy === "password" ? "Signing in…" : "Sign in"}
        </button>
      </form>
      <div className="divider" role="separator">
        or
      </div>
      <button type="button" className="secondary wide" onClick={onGitHub} disabled={busy !== null}>
        {busy === "github" ? "Opening GitHub…" : "Sign in with GitHub"}
      </button>
      <p className="links">
        <Link to="/forgot-password">Forgot your password?</Link>
        <Link to="/register">Create an account</Link>
      </p>
    </section>
  );
}
