import { useState, type FormEvent } from "react";
import { Link, useNavigate, useSearchParams } from "react-router";
import { useSession } from "../api/session";
import { Field, ProblemBanner, useFormErrors } from "../components/forms";
import { safeNext } from "../components/Layout";
import { validateSignIn } from "../lib/validation";
import { useTitle } from "../lib/useTitle";

export function SignIn() {
  useTitle("Sign in");
  const { client, signIn } = useSession();
  const navigate = useNavigate();
  const [params] = useSearchParams();
  const [login, setLogin] = useState("");
  const [password, setPassword] = useState("");
  const { errors, problem, submit, fail, edit, clearProblem } = useFormErrors<"login" | "password">();
  const [busy, setBusy] = useState<"password" | "github" | null>(null);
  const githubError = params.get("error");

  const onSubmit = async (e: FormEvent) => {
    e.preventDefault();
    if (!submit(validateSignIn({ login, password }))) return;
    setBusy("password");
    try {
      await signIn(login.trim(), password);
      navigate(safeNext(params.get("next")), { replace: true });
    } catch (err) {
      fail(err);
      setBusy(null);
    }
  };

  const onGitHub = async () => {
    clearProblem();
    setBusy("github");
    try {
      window.location.assign(await client.githubSignInUrl());
    } catch (err) {
      fail(err);
      setBusy(null);
    }
  };

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
          onChange={(e) => {
            setLogin(e.target.value);
            edit("login");
          }}
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
          onChange={(e) => {
            setPassword(e.target.value);
            edit("password");
          }}
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
