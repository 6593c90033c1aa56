import { useState, type FormEvent } from "react";
import type { WebhookSecret } from "../api/types";
import { useSession } from "../api/session";
import { timeAgo } from "../lib/format";
import { useAsync } from "../lib/useAsync";
import { Field, Notice, ProblemBanner, useFormErrors } from "./forms";
import { Loading } from "./Layout";

/**
 * Push to deploy: a GitHub webhook with a secret berth makes. The secret is
 * shown once, right after it is made; berth can register the hook itself
 * with a GitHub token used for that request only.
 */
export function WebhookSection({ appId }: { appId: string }) {
  const { client } = useSession();
  const hook = useAsync((signal) => client.webhook(appId, signal), [client, appId]);
  const [token, setToken] = useState("");
  const [secret, setSecret] = useState<WebhookSecret | null>(null);
  const [busy, setBusy] = useState(false);
  const [removed, setRemoved] = useState(false);
  const { errors, problem, submit, fail, edit } = useFormErrors<"github_token">();

  const onCreate = async (e: FormEvent) => {
    e.preventDefault();
    setRemoved(false);
    if (!submit({})) return;
    setBusy(true);
    try {
      setSecret(await client.createWebhook(appId, token.trim() || undefined));
      setToken("");
      hook.reload();
    } catch (err) {
      fail(err);
    } finally {
      setBusy(false);
    }
  };

  const onDelete = async () => {
    setBusy(true);
    try {
      await client.deleteWebhook(appId);
      setSecret(null);
      setRemoved(true);
      hook.reload();
    } catch (err) {
      fail(err);
    } finally {
      setBusy(false);
    }
  };

  if (hook.error && !hook.data) {
    return (
      <>
        <ProblemBanner problem={hook.error} />
        <button type="button" className="secondary" onClick={hook.reload}>
          Try again
        </button>
      </>
    );
  }
  if (!hook.data) return <Loading what="Loading the webhook…" />;
  const h = hook.data;
  const payloadUrl = secret?.url ?? h.url ?? null;

  return (
    <div className="webhook">
      <ProblemBanner problem={problem} shownFields={["github_token"]} />
      {removed && <Notice>The webhook is removed: pushes no longer deploy.</Notice>}
      {secret && (
        <div className="banner banner-info" role="status">
          <p>
            <strong>Copy the secret now: it is not shown again.</strong>
            {secret.registered
              ? " berth registered the hook on the repository."
              : " Add it on GitHub: the repository's Settings → Webhooks → Add webhook."}
          </p>
          <dl className="facts">
            <dt>Payload URL</dt>
            <dd>
              <code>{payloadUrl ?? `<berth's address>${secret.path}`}</code>
            </dd>
            <dt>Content type</dt>
            <dd>
              <code>{secret.content_type}</code>
            </dd>
            <dt>Secret</dt>
            <dd>
              <code className="secret">{secret.secret}</code>
            </dd>
            <dt>Events</dt>
            <dd>{secret.events.join(", ")}</dd>
          </dl>
        </div>
      )}
      {h.configured ? (
        <p>
          Pushes to the app's branch deploy it. Set up {h.created_at ? timeAgo(h.created_at) : ""}
          {h.rotated_at && h.rotated_at !== h.created_at ? `, secret changed ${timeAgo(h.rotated_at)}` : ""}.{" "}
          {h.last_delivery
            ? `Last delivery: ${h.last_delivery.event}, ${timeAgo(h.last_delivery.received_at)}${h.last_delivery.outcome ? ` (${h.last_delivery.outcome})` : ""}.`
            : "No delivery yet."}{" "}
          A new secret replaces the old one at once.
        </p>
      ) : (
        <p>No webhook yet: set one up so that a push to the app's branch deploys it.</p>
      )}
      <form onSubmit={onCreate} noValidate>
        <Field
          label="GitHub token (optional)"
          name="github_token"
          type="password"
          autoComplete="off"
          value={token}
          onChange={(e) => {
            setToken(e.target.value);
            edit("github_token");
          }}
          error={errors.github_token}
          hint="With a token allowed to manage the repository's hooks, berth registers the hook itself. It is used for this request only, never stored."
        />
        <div className="actions">
          <button type="submit" className="primary" disabled={busy}>
            {h.configured ? "Make a new secret" : "Set up the webhook"}
          </button>
          {h.configured && (
            <button type="button" className="secondary" onClick={onDelete} disabled={busy}>
              Remove the webhook
            </button>
          )}
        </div>
      </form>
    </div>
  );
}
