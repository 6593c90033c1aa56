import { useEffect, useRef, useState, type FormEvent } from "react";
import { Link, useNavigate } from "react-router";
import { useSession } from "../api/session";
import { Field, Notice, ProblemBanner, useFormErrors } from "../components/forms";
import { Loading } from "../components/Layout";
import { collect, tokenFromHash } from "../lib/validation";
import { useTitle } from "../lib/useTitle";

type Outcome = { phase: "missing" } | { phase: "working" } | { phase: "done" } | { phase: "failed"; problem: unknown };

/**
 * The token of a mailed link (`…#token=…`), read once: the fragment never
 * reaches a server but through the page's own call, and leaves the address
 * bar (and the history) at once.
 */
function useLinkToken(): string | null {
  const [token] = useState(() => tokenFromHash(window.location.hash));
  useEffect(() => {
    if (window.location.hash) {
      window.history.replaceState(null, "", window.location.pathname + window.location.search);
    }
  }, []);
  return token;
}

/**
 * Spends the token of a mailed link once. The ref keeps StrictMode's
 * second effect from spending it twice.
 */
function useMailedToken(spend: (token: string) => Promise<void>): Outcome {
  const token = useLinkToken();
  const [outcome, setOutcome] = useState<Outcome>(token ? { phase: "working" } : { phase: "missing" });
  const started = useRef(false);
  useEffect(() => {
    if (!token || started.current) return;
    started.current = true;
    spend(token).then(
      () => setOutcome({ phase: "done" }),
      (problem: unknown) => setOutcome({ phase: "failed", problem }),
    );
  }, [token, spend]);
  return outcome;
}

/**
 * The link in the sign-up mail: with the password chosen when signing up,
 * makes the account and signs it in. Asking for the password means that
 * whoever only reads the mailbox cannot finish a sign-up a stranger made
 * with its address (and then share an account whose password the stranger
 * knows); a wrong password leaves the link usable.
 */
export function ConfirmRegistration() {
  useTitle("Confirm your account");
  const { client } = useSession();
  const navigate = useNavigate();
  const token = useLinkToken();
  const [password, setPassword] = useState("");
  const [busy, setBusy] = useState(false);
  const { errors, problem, submit, fail, edit } = useFormErrors<"password">();
  const onSubmit = async (e: FormEvent) => {
    e.preventDefault();
    if (!token || !submit(collect({ password: password ? null : "is required" }))) return;
    setBusy(true);
    try {
      await client.confirmRegistration(token, password);
      navigate("/", { replace: true });
    } catch (err) {
      fail(err);
      setBusy(false);
    }
  };
  return (
    <section className="card narrow" aria-labelledby="confirm-title">
      <h1 id="confirm-title">Confirm your account</h1>
      {!token ? (
        <div className="banner banner-error" role="alert">
          This link has no confirmation token. Open the link from the mail again.
        </div>
      ) : (
        <form onSubmit={onSubmit} noValidate>
          <p>To finish signing up, type the password you chose when you signed up.</p>
          <ProblemBanner problem={problem} shownFields={["password"]} />
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
            hint="If you did not sign up for berth, ignore the mail: nobody can finish this without that password."
            required
            autoFocus
          />
          <button type="submit" className="primary" disabled={busy}>
            {busy ? "Creating your account…" : "Create account"}
          </button>
        </form>
      )}
      <p className="links">
        <Link to="/register">Sign up again</Link> · <Link to="/sign-in">Sign in</Link>
      </p>
    </section>
  );
}

/** The link in the mail to a new address: the account moves to it. */
export function ConfirmEmail() {
  useTitle("Confirm your email address");
  const { client, status } = useSession();
  const [spend] = useState(() => (token: string) => client.confirmEmailChange(token));
  const outcome = useMailedToken(spend);
  const next = status === "signed-in" ? <Link to="/account">Go to your account</Link> : <Link to="/sign-in">Sign in</Link>;
  return (
    <section className="card narrow" aria-labelledby="confirm-email-title">
      <h1 id="confirm-email-title">Confirm your email address</h1>
      {outcome.phase === "working" ? (
        <Loading what="Confirming…" />
      ) : outcome.phase === "done" ? (
        <Notice>Your account now uses this email address. {next}</Notice>
      ) : outcome.phase === "missing" ? (
        <div className="banner banner-error" role="alert">
          This link has no confirmation token. Open the link from the mail again.
        </div>
      ) : (
        <>
          <ProblemBanner problem={outcome.problem} />
          <p className="links">{next}</p>
        </>
      )}
    </section>
  );
}
