import { useState, type FormEvent } from "react";
import { Link, useNavigate } from "react-router";
import type { Profile } from "../api/types";
import { useSession } from "../api/session";
import { Field, Notice, ProblemBanner, useFormErrors } from "../components/forms";
import { GitHubSection, RecentSignInHint } from "../components/GitHubSection";
import { Loading } from "../components/Layout";
import { timeAgo } from "../lib/format";
import { useAsync } from "../lib/useAsync";
import { collect, email as checkEmail, hasErrors, password as checkPassword, confirmation, MIN_PASSWORD_CHARS } from "../lib/validation";
import { useTitle } from "../lib/useTitle";

export function Account() {
  useTitle("Your account");
  const { client } = useSession();
  const profile = useAsync((signal) => client.me(signal), [client]);
  if (profile.error && !profile.data) {
    return (
      <section>
        <ProblemBanner problem={profile.error} />
        <button type="button" className="secondary" onClick={profile.reload}>
          Try again
        </button>
      </section>
    );
  }
  if (!profile.data) return <Loading what="Loading your account…" />;
  const p = profile.data;
  return (
    <section aria-labelledby="account-title" className="stack">
      <h1 id="account-title">Your account</h1>
      <ProfileForm profile={p} onSaved={profile.reload} />
      <PasswordForm profile={p} />
      <GitHubSection profile={p} onChanged={profile.reload} />
      <Sessions />
      <DeleteAccount profile={p} />
    </section>
  );
}

function ProfileForm({ profile, onSaved }: { profile: Profile; onSaved: () => void }) {
  const { client } = useSession();
  const [displayName, setDisplayName] = useState(profile.display_name ?? "");
  const [email, setEmail] = useState(profile.email);
  const [currentPassword, setCurrentPassword] = useState("");
  const [saved, setSaved] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const { errors, problem, submit, fail, edit } = useFormErrors<"display_name" | "email" | "current_password">();
  const emailChanged = email.trim() !== profile.email;

  const onSubmit = async (e: FormEvent) => {
    e.preventDefault();
    setSaved(null);
    const found = collect({
      display_name: [...displayName].length > 100 ? "must be at most 100 characters" : null,
      email: checkEmail(email.trim()),
      current_password:
        emailChanged && profile.has_password && !currentPassword ? "is needed to change the email address" : null,
    });
    if (!submit(found)) return;
    setBusy(true);
    try {
      const updated = await client.updateProfile({
        display_name: displayName.trim() || null,
        ...(emailChanged ? { email: email.trim(), current_password: currentPassword || undefined } : {}),
      });
      setCurrentPassword("");
      // A new address waits for its link: the form shows the one in use.
      setEmail(updated.email);
      setSaved(
        emailChanged && updated.pending_email
          ? `Saved. We sent a link to ${updated.pending_email}: the account uses the new address once you open it.`
          : "Saved.",
      );
      onSaved();
    } catch (err) {
      fail(err);
    } finally {
      setBusy(false);
    }
  };

  return (
    <form className="card" onSubmit={onSubmit} noValidate aria-labelledby="profile-title">
      <h2 id="profile-title">Profile</h2>
      <p>
        Username: <strong>{profile.username}</strong> <span className="muted">(it names your apps; it cannot change)</span>
      </p>
      {saved && <Notice>{saved}</Notice>}
      <ProblemBanner problem={problem} shownFields={["display_name", "email", "current_password"]} />
      <RecentSignInHint problem={problem} />
      <Field
        label="Display name"
        name="display_name"
        autoComplete="name"
        value={displayName}
        onChange={(e) => {
          setDisplayName(e.target.value);
          edit("display_name");
        }}
        error={errors.display_name}
      />
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
        hint={
          profile.pending_email
            ? `Waiting for confirmation: ${profile.pending_email} (open the link mailed there).`
            : undefined
        }
      />
      {emailChanged && profile.has_password && (
        <Field
          label="Current password"
          name="current_password"
          type="password"
          autoComplete="current-password"
          value={currentPassword}
          onChange={(e) => {
            setCurrentPassword(e.target.value);
            edit("current_password");
          }}
          error={errors.current_password}
          hint="Needed to change the email address."
        />
      )}
      <button type="submit" className="primary" disabled={busy}>
        {busy ? "Saving…" : "Save profile"}
      </button>
    </form>
  );
}

function PasswordForm({ profile }: { profile: Profile }) {
  const { client } = useSession();
  const [values, setValues] = useState({ current: "", next: "", confirm: "" });
  const [done, setDone] = useState(false);
  const [busy, setBusy] = useState(false);
  const { errors, problem, submit, fail, edit } = useFormErrors<"current" | "next" | "confirm">({
    current_password: "current",
    new_password: "next",
  });
  if (!profile.has_password) {
    return (
      <div className="card">
        <h2>Password</h2>
        <p>
          This account signs in with GitHub and has no password. To set one,{" "}
          <Link to="/forgot-password">ask for a reset link</Link> for {profile.email}.
        </p>
      </div>
    );
  }
  const set = (k: "current" | "next" | "confirm") => (e: { target: { value: string } }) => {
    setValues((v) => ({ ...v, [k]: e.target.value }));
    edit(k);
  };
  const onSubmit = async (e: FormEvent) => {
    e.preventDefault();
    setDone(false);
    const found = collect({
      current: values.current ? null : "is required",
      next: checkPassword(values.next),
      confirm: !checkPassword(values.next) ? confirmation(values.confirm, values.next) : null,
    });
    if (!submit(found)) return;
    setBusy(true);
    try {
      await client.changePassword(values.current, values.next);
      setValues({ current: "", next: "", confirm: "" });
      setDone(true);
    } catch (err) {
      fail(err);
    } finally {
      setBusy(false);
    }
  };
  return (
    <form className="card" onSubmit={onSubmit} noValidate aria-labelledby="password-title">
      <h2 id="password-title">Password</h2>
      {done && <Notice>Password changed. Every other session was signed out.</Notice>}
      <ProblemBanner problem={problem} shownFields={["current_password", "new_password"]} />
      <Field
        label="Current password"
        name="current"
        type="password"
        autoComplete="current-password"
        value={values.current}
        onChange={set("current")}
        error={errors.current}
      />
      <Field
        label="New password"
        name="next"
        type="password"
        autoComplete="new-password"
        value={values.next}
        onChange={set("next")}
        error={errors.next}
        hint={`At least ${MIN_PASSWORD_CHARS} characters. Changing it signs out every other session.`}
      />
      <Field
        label="Repeat new password"
        name="confirm"
        type="password"
        autoComplete="new-password"
        value={values.confirm}
        onChange={set("confirm")}
        error={errors.confirm}
      />
      <button type="submit" className="primary" disabled={busy}>
        {busy ? "Changing…" : "Change password"}
      </button>
    </form>
  );
}

function Sessions() {
  const { client, signOut } = useSession();
  const sessions = useAsync((signal) => client.sessions(signal), [client]);
  const [problem, setProblem] = useState<unknown>(null);
  const end = async (id: string) => {
    setProblem(null);
    try {
      await client.endSession(id);
      sessions.reload();
    } catch (err) {
      setProblem(err);
    }
  };
  return (
    <div className="card">
      <h2>Sessions</h2>
      <p className="muted">Browsers and tools signed in to this account. Signing one out ends it at once, with its open log views and live updates.</p>
      <ProblemBanner problem={problem ?? (sessions.data ? null : sessions.error)} />
      {!sessions.data ? (
        sessions.loading && <Loading what="Loading sessions…" />
      ) : sessions.data.length === 0 ? (
        <p>No sessions.</p>
      ) : (
        <ul className="plain-list">
          {sessions.data.map((s) => (
            <li key={s.id}>
              <span>
                {s.current && <strong>This browser: </strong>}
                Signed in {timeAgo(s.started_at)}, last active {timeAgo(s.refreshed_at)}
              </span>
              {/* This browser signs out at once, as the header's Sign out does. */}
              <button type="button" className="secondary" onClick={() => (s.current ? signOut() : end(s.id))}>
                Sign out
              </button>
            </li>
          ))}
        </ul>
      )}
    </div>
  );
}

function DeleteAccount({ profile }: { profile: Profile }) {
  const { client } = useSession();
  const navigate = useNavigate();
  const [confirm, setConfirm] = useState("");
  const [password, setPassword] = useState("");
  const [busy, setBusy] = useState(false);
  const { errors, problem, submit, fail, edit } = useFormErrors<"confirm" | "password">();
  const onSubmit = async (e: FormEvent) => {
    e.preventDefault();
    const found = collect({
      confirm: confirm === profile.username ? null : "this does not match your username",
      password: profile.has_password && !password ? "is required" : null,
    });
    if (!submit(found) || hasErrors(found)) return;
    setBusy(true);
    try {
      await client.deleteAccount(confirm, profile.has_password ? password : null);
      navigate("/sign-in", { replace: true });
    } catch (err) {
      fail(err);
      setBusy(false);
    }
  };
  return (
    <form className="card danger" onSubmit={onSubmit} noValidate aria-labelledby="delete-account-title">
      <h2 id="delete-account-title">Delete your account</h2>
      <p>
        Every app is deleted, and your email, password, profile and GitHub link are erased. Your username stays
        reserved. This cannot be undone.
      </p>
      <ProblemBanner problem={problem} shownFields={["confirm", "password"]} />
      <RecentSignInHint problem={problem} />
      <Field
        label="Type your username to confirm"
        name="confirm"
        autoComplete="off"
        autoCapitalize="none"
        spellCheck={false}
        value={confirm}
        onChange={(e) => {
          setConfirm(e.target.value);
          edit("confirm");
        }}
        error={errors.confirm}
      />
      {profile.has_password && (
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
        />
      )}
      <button type="submit" className="danger-button" disabled={busy || confirm !== profile.username}>
        {busy ? "Deleting…" : "Delete my account"}
      </button>
    </form>
  );
}
