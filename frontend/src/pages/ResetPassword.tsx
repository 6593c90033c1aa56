import { useEffect, useState, type FormEvent } from "react";
import { Link } from "react-router";
import { ApiProblem } from "../api/problem";
import { useSession } from "../api/session";
import { Field, Notice, ProblemBanner, useFormErrors } from "../components/forms";
import { MIN_PASSWORD_CHARS, tokenFromHash, validateResetConfirm } from "../lib/validation";
import { useTitle } from "../lib/useTitle";

/** Reached from the mail's link `/reset-password#token=…`: the token is in the fragment, never sent to a server but here. */
export function ResetPassword() {
  useTitle("Set a new password");
  const { client } = useSession();
  const [token] = useState(() => tokenFromHash(window.location.hash));
  const [values, setValues] = useState({ password: "", confirm: "" });
  // The API calls the field `new_password`.
  const { errors, problem, submit, fail, edit } = useFormErrors<"password" | "confirm">({ new_password: "password" });
  const [busy, setBusy] = useState(false);
  const [done, setDone] = useState(false);

  // Take the token out of the address bar (and so out of the history).
  useEffect(() => {
    if (window.location.hash) {
      window.history.replaceState(null, "", window.location.pathname + window.location.search);
    }
  }, []);

  const onSubmit = async (e: FormEvent) => {
    e.preventDefault();
    if (!submit(validateResetConfirm(values)) || !token) return;
    setBusy(true);
    try {
      await client.confirmPasswordReset(token, values.password);
      setDone(true);
    } catch (err) {
      fail(err);
    } finally {
      setBusy(false);
    }
  };

  return (
    <section className="card narrow" aria-labelledby="reset-title">
      <h1 id="reset-title">Set a new password</h1>
      {!token ? (
        <div className="banner banner-error" role="alert">
          This link has no reset token. Open the link from the mail again, or{" "}
          <Link to="/forgot-password">ask for a new one</Link>.
        </div>
      ) : done ? (
        <Notice>
          Your password is set, and every session was signed out. <Link to="/sign-in">Sign in</Link> with the new
          password.
        </Notice>
      ) : (
        <>
          <ProblemBanner problem={problem} shownFields={["new_password"]} />
          {problem instanceof ApiProblem && problem.errors.some((e) => e.field === "token") && (
            <p>
              <Link to="/forgot-password">Ask for a new link</Link>
            </p>
          )}
          <form onSubmit={onSubmit} noValidate>
            <Field
              label="New password"
              name="password"
              type="password"
              autoComplete="new-password"
              value={values.password}
              onChange={(e) => {
                setValues((v) => ({ ...v, password: e.target.value }));
                edit("password");
              }}
              error={errors.password}
              hint={`At least ${MIN_PASSWORD_CHARS} characters.`}
              required
              autoFocus
            />
            <Field
              label="Repeat password"
              name="confirm"
              type="password"
              autoComplete="new-password"
              value={values.confirm}
              onChange={(e) => {
                setValues((v) => ({ ...v, confirm: e.target.value }));
                edit("confirm");
              }}
              error={errors.confirm}
              required
            />
            <button type="submit" className="primary" disabled={busy}>
              {busy ? "Saving…" : "Set password"}
            </button>
          </form>
        </>
      )}
    </section>
  );
}
