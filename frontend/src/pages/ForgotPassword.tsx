import { useState, type FormEvent } from "react";
import { Link } from "react-router";
import { useSession } from "../api/session";
import { Field, Notice, ProblemBanner, useFormErrors } from "../components/forms";
import { collect, email as checkEmail } from "../lib/validation";
import { useTitle } from "../lib/useTitle";

export function ForgotPassword() {
  useTitle("Reset your password");
  const { client } = useSession();
  const [email, setEmail] = useState("");
  const { errors, problem, submit, fail, edit } = useFormErrors<"email">();
  const [busy, setBusy] = useState(false);
  const [sent, setSent] = useState(false);

  const onSubmit = async (e: FormEvent) => {
    e.preventDefault();
    if (!submit(collect({ email: checkEmail(email.trim()) }))) return;
    setBusy(true);
    try {
      await client.requestPasswordReset(email.trim());
      setSent(true);
    } catch (err) {
      fail(err);
    } finally {
      setBusy(false);
    }
  };

  return (
    <section className="card narrow" aria-labelledby="forgot-title">
      <h1 id="forgot-title">Reset your password</h1>
      {sent ? (
        <Notice>
          If an account uses <strong>{email.trim()}</strong>, a link to set a new password is on its way. It works
          once, for 30 minutes.
        </Notice>
      ) : (
        <>
          <p>Enter your account's email address and we will send you a link to set a new password.</p>
          <ProblemBanner problem={problem} shownFields={["email"]} />
          <form onSubmit={onSubmit} noValidate>
            <Field
              label="Email"
              name="email"
              type="email"
              autoComplete="email"
              value={email}
              onChange={(e) => {
                setEmail(e.target.value);
                edit("email");
              }}
              error={errors.email}
              required
              autoFocus
            />
            <button type="submit" className="primary" disabled={busy}>
              {busy ? "Sending…" : "Send the link"}
            </button>
          </form>
        </>
      )}
      <p className="links">
        <Link to="/sign-in">Back to sign in</Link>
      </p>
    </section>
  );
}
