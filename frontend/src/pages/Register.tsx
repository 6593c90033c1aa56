import { useState, type FormEvent } from "react";
import { Link, useNavigate } from "react-router";
import { useSession } from "../api/session";
import { Field, Notice, ProblemBanner, useFormErrors } from "../components/forms";
import { MIN_PASSWORD_CHARS, validateRegister } from "../lib/validation";
import { useTitle } from "../lib/useTitle";

type RegisterField = "username" | "email" | "password" | "confirm";

export function Register() {
  useTitle("Create an account");
  const { client, signIn } = useSession();
  const navigate = useNavigate();
  const [values, setValues] = useState({ username: "", email: "", password: "", confirm: "" });
  const { errors, problem, submit, fail, edit } = useFormErrors<RegisterField>();
  const [busy, setBusy] = useState(false);
  const [mailedTo, setMailedTo] = useState<string | null>(null);
  const set = (field: RegisterField) => (e: { target: { value: string } }) => {
    setValues((v) => ({ ...v, [field]: e.target.value }));
    edit(field);
  };

  const onSubmit = async (e: FormEvent) => {
    e.preventDefault();
    if (!submit(validateRegister(values))) return;
    setBusy(true);
    try {
      const email = values.email.trim();
      if ((await client.register(values.username, email, values.password)) === "mailed") {
        setMailedTo(email);
        return;
      }
      await signIn(values.username, values.password);
      navigate("/", { replace: true });
    } catch (err) {
      fail(err);
    } finally {
      setBusy(false);
    }
  };

  if (mailedTo) {
    return (
      <section className="card narrow" aria-labelledby="register-title">
        <h1 id="register-title">Check your inbox</h1>
        <Notice>
          We sent a link to <strong>{mailedTo}</strong>. Open it within 24 hours to finish creating your account.
        </Notice>
        <p className="muted">No mail after a few minutes? Look in the spam folder, or sign up again.</p>
        <button type="button" className="secondary" onClick={() => setMailedTo(null)}>
          Sign up again
        </button>
      </section>
    );
  }

  return (
    <section className="card narrow" aria-labelledby="register-title">
      <h1 id="register-title">Create an account</h1>
      <ProblemBanner problem={problem} shownFields={["username", "email", "password"]} />
      <form onSubmit={onSubmit} noValidate>
        <Field
          label="Username"
          name="username"
          autoComplete="username"
          value={values.username}
          onChange={set("username")}
          error={errors.username}
          hint="Lowercase letters, digits and '-'. It appears in your apps' addresses and cannot change."
          autoCapitalize="none"
          spellCheck={false}
          required
          autoFocus
        />
        <Field
          label="Email"
          name="email"
          type="email"
          autoComplete="email"
          value={values.email}
          onChange={set("email")}
          error={errors.email}
          required
        />
        <Field
          label="Password"
          name="password"
          type="password"
          autoComplete="new-password"
          value={values.password}
          onChange={set("password")}
          error={errors.password}
          hint={`At least ${MIN_PASSWORD_CHARS} characters.`}
          required
        />
        <Field
          label="Repeat password"
          name="confirm"
          type="password"
          autoComplete="new-password"
          value={values.confirm}
          onChange={set("confirm")}
          error={errors.confirm}
          required
        />
        <button type="submit" className="primary" disabled={busy}>
          {busy ? "Creating your account…" : "Create account"}
        </button>
      </form>
      <p className="links">
        <Link to="/sign-in">Already have an account? Sign in</Link>
      </p>
    </section>
  );
}
