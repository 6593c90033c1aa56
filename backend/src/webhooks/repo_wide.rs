//! The repository-wide payload URL, `POST /webhooks/github`: one URL for
//! every app, for hooks set up by hand. berth shows and registers the
//! per-app URL; this one exists for people who give GitHub one URL.
//!
//! The URL does not say which secret to check, so the body is read first,
//! but only for the repository it names: nothing in it is acted on before a
//! signature verifies. The candidates are the live apps with a webhook
//! whose `repo_url` is a usual spelling of that repository (`https://` or
//! `http://`, with or without `.git` and a trailing `/`, case-insensitive;
//! a local repository's path or `file://` URL); an app spelled otherwise is
//! reached at its own URL only. Each candidate's secret is checked in
//! constant time, and the delivery is handled, as at the app's own URL, for
//! exactly the apps whose secret verifies. Anything else, an unknown or
//! unreadable repository included, is the per-app URL's `401`.

use super::deliver::{self, Verified};
use super::push::{repo_key, Repository};
use super::DeliveryOutcome;
use super::{header, payload_json, read_body, status, store, unauthorized};
use crate::audit::SourceAddr;
use crate::error::{Error, Result};
use crate::extract::Json;
use crate::state::AppState;
use crate::webhook_guard::signature;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use berth_proto::Binding;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// At most this many apps' secrets are checked per delivery (the oldest
/// webhooks of the repository first): each check hashes the whole body,
/// and anyone can post here. Apps beyond it, on a repository with more
/// hooked apps than this, are reached at their own URL.
pub const MAX_CANDIDATES: i64 = 50;
/// At most this many of one owner's apps are candidates (their oldest
/// webhooks): an account cannot make a delivery cost more by hooking many
/// apps to one repository.
pub const MAX_CANDIDATES_PER_OWNER: i64 = 5;
/// Bodies are read up to this size here (GitHub's cap, 25 MB, stays for the
/// per-app URL, which checks one secret): a larger push is a 413 before it
/// is all read, and reaches its apps at their own URLs.
pub const MAX_BODY_BYTES: usize = 5 * 1024 * 1024;

/// What a delivery did for each app whose secret signed it.
#[derive(Debug, Serialize, ToSchema)]
pub struct RepoDeliveryOutcome {
    pub deliveries: Vec<AppDeliveryOutcome>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AppDeliveryOutcome {
    pub app_id: Uuid,
    #[serde(flatten)]
    pub outcome: DeliveryOutcome,
}

/// Only the repository of the (not yet verified) payload.
#[derive(Deserialize)]
struct Identity {
    repository: Repository,
}

/// The keys (`push::repo_key`) of the repository the payload names; none
/// when it names none.
pub(super) fn repository_keys(headers: &HeaderMap, body: &[u8]) -> Vec<String> {
    let Ok(json) = payload_json(headers, body) else {
        return Vec::new();
    };
    let Ok(Identity { repository }) = serde_json::from_slice::<Identity>(&json) else {
        return Vec::new();
    };
    let mut keys: Vec<String> = [repository.html_url, repository.clone_url]
        .into_iter()
        .flatten()
        .filter_map(|url| repo_key(&url))
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

/// The `repo_url`s an app of one of `keys` is looked up by: compared
/// ignoring case (hosted repositories) and as they are (local paths).
fn spellings(keys: &[String]) -> (Vec<String>, Vec<String>) {
    let (mut folded, mut exact) = (Vec::new(), Vec::new());
    for key in keys {
        if let Some(path) = key.strip_prefix("file://") {
            exact.extend([
                key.clone(),
                format!("{key}/"),
                path.into(),
                format!("{path}/"),
            ]);
            continue;
        }
        for scheme in ["https://", "http://"] {
            for suffix in ["", "/", ".git", ".git/"] {
                folded.push(format!("{scheme}{key}{suffix}"));
            }
        }
    }
    (folded, exact)
}

/// Receive a GitHub webhook delivery for whichever apps of the payload's
/// repository signed it (a hook set up by hand on one URL). Each app whose
/// secret verifies handles it as at its own URL; at most 50 apps are
/// checked.
#[utoipa::path(post, path = "/api/v1/webhooks/github", tag = "webhooks",
    params(("X-Hub-Signature-256" = String, Header, description = "sha256=<HMAC of the body>"),
           ("X-GitHub-Event" = String, Header, description = "push, ping, ..."),
           ("X-GitHub-Delivery" = String, Header, description = "the event's id")),
    request_body(content = Object, description = "GitHub's event payload (JSON or form), naming its repository"),
    responses(
        (status = 202, body = RepoDeliveryOutcome, description = "a deployment was requested for some app"),
        (status = 200, body = RepoDeliveryOutcome, description = "ping, replay or ignored event"),
        (status = 400, body = crate::error::Problem),
        (status = 401, body = crate::error::Problem, description = "no app of the repository has the secret that signed it"),
        (status = 413, body = crate::error::Problem),
        (status = 429, body = crate::error::Problem, description = "too many deliveries from this address, or being checked")))]
#[tracing::instrument(skip_all, fields(delivery, event, apps))]
pub async fn receive_github_repo(
    State(state): State<AppState>,
    source: SourceAddr,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<RepoDeliveryOutcome>)> {
    state.webhooks.admit(source.0)?;
    let Some(signature) = header(&headers, signature::HEADER).map(str::to_owned) else {
        return Err(unauthorized());
    };
    let body = read_body(&headers, body, MAX_BODY_BYTES).await?;
    let keys = repository_keys(&headers, &body);
    let (folded, exact) = spellings(&keys);
    let candidates = if keys.is_empty() {
        Vec::new()
    } else {
        let limits = store::CandidateLimits {
            total: MAX_CANDIDATES,
            per_owner: MAX_CANDIDATES_PER_OWNER,
        };
        store::candidates(&state.db, &folded, &exact, limits).await?
    };
    let mut secrets = Vec::new();
    for candidate in candidates {
        if repo_key(&candidate.repo_url).is_some_and(|key| keys.contains(&key)) {
            let binding = Binding::webhook_secret(candidate.app_id);
            let secret = state.key.open(&binding, &candidate.secret_sealed.0)?;
            secrets.push(((candidate.owner_id, candidate.app_id), secret));
        }
    }
    // Off the runtime, within the process's bound on checks at once; with
    // no candidate a decoy check is still made, so an unknown repository
    // does not answer faster than a known one.
    let signed = state
        .webhooks
        .signed_by(secrets, body.clone(), signature)
        .await?;
    if signed.is_empty() {
        tracing::warn!("repository-wide webhook delivery no app's secret signed refused");
        return Err(unauthorized());
    }
    tracing::Span::current().record("apps", signed.len() as u64);
    let verified = Verified::read(&headers, &body)?;
    let mut deliveries = Vec::with_capacity(signed.len());
    for (owner, app_id) in signed {
        let outcome = match deliver::handle(&state, source, owner, app_id, &verified).await {
            Ok(outcome) => outcome,
            // One owner's full queue does not stop the other apps; the
            // delivery is not remembered for it, so a redelivery deploys.
            Err(Error::QuotaExceeded { detail, .. }) => DeliveryOutcome::ignored(detail),
            Err(error) => return Err(error),
        };
        deliveries.push(AppDeliveryOutcome { app_id, outcome });
    }
    let deployed = deliveries.iter().any(|d| d.outcome.deployment_id.is_some());
    Ok((status(deployed), Json(RepoDeliveryOutcome { deliveries })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_spelling_looked_up_is_the_same_repository() {
        let keys = vec![
            "github.com/codertocat/hello-world".to_owned(),
            "file:///tmp/Berth-App".to_owned(),
        ];
        let (folded, exact) = spellings(&keys);
        assert_eq!(folded.len(), 8);
        assert!(folded.contains(&"https://github.com/codertocat/hello-world.git".to_owned()));
        for url in &folded {
            assert_eq!(repo_key(url).as_ref(), Some(&keys[0]), "{url}");
        }
        assert_eq!(
            exact,
            [
                "file:///tmp/Berth-App",
                "file:///tmp/Berth-App/",
                "/tmp/Berth-App",
                "/tmp/Berth-App/"
            ]
        );
        for url in &exact {
            assert_eq!(repo_key(url).as_ref(), Some(&keys[1]), "{url}");
        }
    }

    #[test]
    fn only_the_payloads_repository_is_read() {
        let headers = HeaderMap::new();
        let push = br#"{"ref": "x", "repository": {"full_name": "Codertocat/Hello-World",
            "html_url": "https://github.com/Codertocat/Hello-World",
            "clone_url": "https://github.com/Codertocat/Hello-World.git",
            "pushed_at": "2019-05-15T15:20:33Z"}}"#;
        assert_eq!(
            repository_keys(&headers, push),
            ["github.com/codertocat/hello-world"]
        );
        for nothing in [&b"{"[..], b"{}", br#"{"repository": {}}"#, b"[1]"] {
            assert!(repository_keys(&headers, nothing).is_empty());
        }
    }
}
