import { useState, type FormEvent } from "react";
import { useSearchParams } from "react-router";
import { ApiProblem } from "../api/problem";
import type { Profile } from "../api/types";
import { useSession } from "../api/session";
import { Field, Notice, ProblemBanner, useFormErrors } from "./forms";

/**
 * The account's GitHub link. Linking lets GitHub sign-in open the account
 * from then on, so it asks for the password (an account without one must
 * have signed in recently), and never replaces a link: unlink first.
 * GitHub sends the browser back to `/account?github=linked`, or
 * `?github_error=...`.
 */
export function GitHubSection({ profile, onChanged }: { profile: Profile; onChanged: () => void }) {
  const { client } = useSession();
  const [params, setParams] = useSearchParams();
  const [password, setPassword] = useState("");
  const [busy, setBusy] = useState(false);
  const { errors, problem, submit, fail, edit, clearProblem } = useFormErrors<"current_password">();
  const returned = params.get("github");
  const returnedError = params.get("github_error");
  const forgetReturn = () => {
    if (returned || returnedError) setParams({}, { replace: true });
  };

  const onLink = async (e: FormEvent) => {
    e.preventDefault();
    forgetReturn();
    const needsPassword = profile.has_password && !password;
    if (!submit(needsPassword ? { current_password: "is needed to link GitHub" } : {})) return;
    setBusy(true);
    try {
      window.location.assign(await client.githubLinkUrl(profile.has_password ? password : null));
    } catch (err) {
      fail(err);
      setBusy(false);
    }
  };
  const onUnlink = async () => {
    forgetReturn();
    clearProblem();
    setBusy(true);
    try {
      await client.unlinkGithub();
      onChanged();
    } catch (err) {
      fail(err);
    } finally {
      setBusy(false);
    }
  };

  return (
    <div className="card">
      <h2>GitHub</h2>
      {returned === "linked" && profile.github_login && <Notice>GitHub is linked.</Notice>}
      {returnedError && !problem && (
        <div className="banner banner-error" role="alert">
          Linking GitHub did not work: {returnedError}
        </div>
      )}
      <ProblemBanner problem={problem} shownFields={["current_password"]} />
      <RecentSignInHint problem={problem} />
      {profile.github_login ? (
        <>
          <p>
            Linked to <strong>{profile.github_login}</strong>: you can sign in with GitHub and pick its repositories.
          </p>
          <button type="button" className="secondary" disabled={busy || !profile.has_password} onClick={onUnlink}>
            Unlink GitHub
          </button>
          {!profile.has_password && (
            <p className="field-hint">Set a password first: without one, GitHub is your only way to sign in.</p>
          )}
        </>
      ) : (
        <form onSubmit={onLink} noValidate>
          <p>Link a GitHub account to sign in with it and create apps from its repositories.</p>
          {profile.has_password && (
            <Field
              label="Current password"
              name="link_password"
              type="password"
              autoComplete="current-password"
              value={password}
              onChange={(e) => {
                setPassword(e.target.value);
                edit("current_password");
              }}
              error={errors.current_password}
              hint="Linking lets that GitHub account sign in to this one, so it needs your password."
            />
          )}
          <button type="submit" className="secondary" disabled={busy}>
            {busy ? "Opening GitHub…" : "Link GitHub"}
          </button>
        </form>
      )}
    </div>
  );
}

/**
 * For an account without a password, some changes need a recent sign-in:
 * when the API says so, offer to sign in with GitHub again (which comes
 * back signed in afresh; then the change can be made again).
 */
export function RecentSignInHint({ problem }: { problem: unknown }) {
  const { client } = useSession();
  const [failed, setFailed] = useState<unknown>(null);
  if (!(problem instanceof ApiProblem) || problem.slug !== "recent-sign-in-required") return null;
  return (
    <div>
      <button
        type="button"
        className="secondary"
        onClick={async () => {
          try {
            window.location.assign(await client.githubSignInUrl());
          } catch (err) {
            setFailed(err);
          }
        }}
      >
        Sign in with GitHub again
      </button>
      <ProblemBanner problem={failed} />
    </div>
  );
}
