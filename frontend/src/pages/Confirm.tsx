import { useEffect, useRef, useState } from "react";
import { Link, useNavigate } from "react-router";
import { useSession } from "../api/session";
import { Notice, ProblemBanner } from "../components/forms";
import { Loading } from "../components/Layout";
import { tokenFromHash } from "../lib/validation";
import { useTitle } from "../lib/useTitle";

type Outcome = { phase: "missing" } | { phase: "working" } | { phase: "done" } | { phase: "failed"; problem: unknown };

/**
 * Spends the token of a mailed link (`…#token=…`) once: the fragment never
 * reaches a server but through this call, and leaves the address bar (and
 * the history) at once. The ref keeps StrictMode's second effect from
 * spending it twice.
 */
function useMailedToken(spend: (token: string) => Promise<void>): Outcome {
  const [token] = useState(() => tokenFromHash(window.location.hash));
  const [outcome, setOutcome] = useState<Outcome>(token ? { phase: "working" } : { phase: "missing" });
  const started = useRef(false);
  useEffect(() => {
    if (window.location.hash) {
      window.history.replaceState(null, "", window.location.pathname + window.location.search);
    }
    if (!token || started.current) return;
    started.current = true;
    spend(token).then(
      () => setOutcome({ phase: "done" }),
      (problem: unknown) => setOutcome({ phase: "failed", problem }),
    );
  }, [token, spend]);
  return outcome;
}

/** The link in the sign-up mail: makes the account and signs it in. */
export function ConfirmRegistration() {
  useTitle("Confirm your account");
  const { client } = useSession();
  const navigate = useNavigate();
  const [spend] = useState(() => (token: string) => client.confirmRegistration(token));
  const outcome = useMailedToken(spend);
  useEffect(() => {
    if (outcome.phase === "done") navigate("/", { replace: true });
  }, [outcome.phase, navigate]);
  return (
    <section className="card narrow" aria-labelledby="confirm-title">
      <h1 id="confirm-title">Confirm your account</h1>
      {outcome.phase === "working" || outcome.phase === "done" ? (
        <Loading what="Creating your account…" />
      ) : (
        <>
          {outcome.phase === "missing" ? (
            <div className="banner banner-error" role="alert">
              This link has no confirmation token. Open the link from the mail again.
            </div>
          ) : (
            <ProblemBanner problem={outcome.problem} />
          )}
          <p className="links">
            <Link to="/register">Sign up again</Link> · <Link to="/sign-in">Sign in</Link>
          </p>
        </>
      )}
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
