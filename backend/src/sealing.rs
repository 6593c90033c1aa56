//! Sealing values berth stored before bindings existed again, bound.
//!
//! Values sealed by an older berth carry no associated data and no format
//! marker. [`rebind_legacy`] runs once, at the first start after the upgrade
//! (in one transaction, under an advisory lock so that replicas starting
//! together do it once): it opens each such value and seals it for the
//! binding its row implies. The pass is then recorded, and unbound values
//! are refused everywhere from then on (`SealedError::Unbound`), so a copy
//! from an old backup or a message captured before the upgrade cannot be
//! bound to a row it never belonged to. A value that does not open (another
//! key, damaged) is left as it is and keeps the pass open for the next start.

use crate::error::Result;
use berth_proto::{Binding, BuildRequested, DeployRequested, Envelope, Payload, Sealed, SecretKey};
use serde_json::{json, Value};
use sqlx::types::Json as SqlJson;
use sqlx::PgConnection;
use sqlx::PgPool;
use std::collections::BTreeMap;
use uuid::Uuid;

/// The pass that binds the values sealed before format 1.
pub const PASS: &str = "bind-format-1";

/// Serializes the pass across replicas (any constant unique to it).
const LOCK: i64 = 0x6265_7274_685f_7331;

/// What a pass did, by table; `unreadable` counts values left as they were.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Rebound {
    pub counts: BTreeMap<&'static str, u64>,
    pub unreadable: u64,
    /// Whether this call ran the pass (false: an earlier start did).
    pub ran: bool,
}

impl Rebound {
    fn count(&mut self, table: &'static str, result: std::result::Result<bool, ()>) {
        match result {
            Ok(true) => *self.counts.entry(table).or_default() += 1,
            Ok(false) => {}
            Err(()) => self.unreadable += 1,
        }
    }
}

/// `sealed` sealed again for `binding` if it is unbound: `Ok(Some)` when it
/// changed, `Ok(None)` when it was bound already, `Err` when it does not open.
fn rebind(
    key: &SecretKey,
    binding: &Binding,
    sealed: &Sealed,
) -> std::result::Result<Option<Sealed>, ()> {
    if !sealed.is_legacy() {
        return Ok(None);
    }
    key.rebind(binding, sealed).map(Some).map_err(|_| ())
}

/// Runs the pass unless an earlier start finished it.
pub async fn rebind_legacy(db: &PgPool, key: &SecretKey) -> Result<Rebound> {
    let mut tx = db.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(LOCK)
        .execute(&mut *tx)
        .await?;
    let done: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM sealed_value_passes WHERE name = $1)")
            .bind(PASS)
            .fetch_one(&mut *tx)
            .await?;
    let mut report = Rebound::default();
    if done {
        return Ok(report);
    }
    report.ran = true;
    apps(&mut tx, key, &mut report).await?;
    releases(&mut tx, key, &mut report).await?;
    github_accounts(&mut tx, key, &mut report).await?;
    webhooks(&mut tx, key, &mut report).await?;
    oauth_states(&mut tx, key, &mut report).await?;
    outbox(&mut tx, key, &mut report).await?;
    if report.unreadable == 0 {
        sqlx::query("INSERT INTO sealed_value_passes (name, counts) VALUES ($1, $2)")
            .bind(PASS)
            .bind(json!(report.counts))
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(report)
}

async fn apps(tx: &mut PgConnection, key: &SecretKey, report: &mut Rebound) -> Result<()> {
    let rows = sqlx::query_as::<_, (Uuid, String, SqlJson<Sealed>)>(
        "SELECT a.id, u.username, a.env_sealed FROM apps a JOIN users u ON u.id = a.owner_id
         WHERE NOT (a.env_sealed ? 'v')",
    )
    .fetch_all(&mut *tx)
    .await?;
    for (id, tenant, sealed) in rows {
        let result = rebind(key, &Binding::app_env(&tenant, id), &sealed);
        if let Ok(Some(bound)) = &result {
            sqlx::query("UPDATE apps SET env_sealed = $2 WHERE id = $1")
                .bind(id)
                .bind(SqlJson(bound))
                .execute(&mut *tx)
                .await?;
        }
        report.count("apps", result.map(|r| r.is_some()));
    }
    Ok(())
}

async fn releases(tx: &mut PgConnection, key: &SecretKey, report: &mut Rebound) -> Result<()> {
    let rows = sqlx::query_as::<_, (Uuid, Uuid, String, SqlJson<Sealed>)>(
        "SELECT r.id, r.app_id, u.username, r.config->'env' FROM releases r
         JOIN apps a ON a.id = r.app_id JOIN users u ON u.id = a.owner_id
         WHERE NOT (r.config->'env' ? 'v')",
    )
    .fetch_all(&mut *tx)
    .await?;
    for (id, app_id, tenant, sealed) in rows {
        let result = rebind(key, &Binding::app_env(&tenant, app_id), &sealed);
        if let Ok(Some(bound)) = &result {
            sqlx::query(
                "UPDATE releases SET config = jsonb_set(config, '{env}', $2) WHERE id = $1",
            )
            .bind(id)
            .bind(SqlJson(bound))
            .execute(&mut *tx)
            .await?;
        }
        report.count("releases", result.map(|r| r.is_some()));
    }
    Ok(())
}

async fn github_accounts(
    tx: &mut PgConnection,
    key: &SecretKey,
    report: &mut Rebound,
) -> Result<()> {
    let rows = sqlx::query_as::<_, (Uuid, SqlJson<Sealed>)>(
        "SELECT user_id, token_sealed FROM github_accounts WHERE NOT (token_sealed ? 'v')",
    )
    .fetch_all(&mut *tx)
    .await?;
    for (user_id, sealed) in rows {
        let result = rebind(key, &Binding::github_token(user_id), &sealed);
        if let Ok(Some(bound)) = &result {
            sqlx::query("UPDATE github_accounts SET token_sealed = $2 WHERE user_id = $1")
                .bind(user_id)
                .bind(SqlJson(bound))
                .execute(&mut *tx)
                .await?;
        }
        report.count("github_accounts", result.map(|r| r.is_some()));
    }
    Ok(())
}

async fn webhooks(tx: &mut PgConnection, key: &SecretKey, report: &mut Rebound) -> Result<()> {
    let rows = sqlx::query_as::<_, (Uuid, SqlJson<Sealed>)>(
        "SELECT app_id, secret_sealed FROM app_webhooks WHERE NOT (secret_sealed ? 'v')",
    )
    .fetch_all(&mut *tx)
    .await?;
    for (app_id, sealed) in rows {
        let result = rebind(key, &Binding::webhook_secret(app_id), &sealed);
        if let Ok(Some(bound)) = &result {
            sqlx::query("UPDATE app_webhooks SET secret_sealed = $2 WHERE app_id = $1")
                .bind(app_id)
                .bind(SqlJson(bound))
                .execute(&mut *tx)
                .await?;
        }
        report.count("app_webhooks", result.map(|r| r.is_some()));
    }
    Ok(())
}

async fn oauth_states(tx: &mut PgConnection, key: &SecretKey, report: &mut Rebound) -> Result<()> {
    let rows = sqlx::query_as::<_, (Vec<u8>, SqlJson<Sealed>)>(
        "SELECT state_hash, pkce_verifier_sealed FROM oauth_states
         WHERE NOT (pkce_verifier_sealed ? 'v')",
    )
    .fetch_all(&mut *tx)
    .await?;
    for (state_hash, sealed) in rows {
        let result = rebind(key, &Binding::pkce_verifier(&state_hash), &sealed);
        if let Ok(Some(bound)) = &result {
            sqlx::query("UPDATE oauth_states SET pkce_verifier_sealed = $2 WHERE state_hash = $1")
                .bind(&state_hash)
                .bind(SqlJson(bound))
                .execute(&mut *tx)
                .await?;
        }
        report.count("oauth_states", result.map(|r| r.is_some()));
    }
    Ok(())
}

/// Messages not published yet carry the values as they were sealed when
/// the intent was written: an app's env, and for a build the owner's token
/// (stored bound to the user; in a message, bound to the app's builds).
async fn outbox(tx: &mut PgConnection, key: &SecretKey, report: &mut Rebound) -> Result<()> {
    let rows = sqlx::query_as::<_, (i64, SqlJson<Envelope>)>(
        "SELECT id, envelope FROM outbox WHERE published_at IS NULL ORDER BY id",
    )
    .fetch_all(&mut *tx)
    .await?;
    for (id, SqlJson(mut envelope)) in rows {
        let result = rebind_message(key, &mut envelope);
        if let Ok(true) = result {
            sqlx::query("UPDATE outbox SET envelope = $2 WHERE id = $1")
                .bind(id)
                .bind(SqlJson(&envelope))
                .execute(&mut *tx)
                .await?;
        }
        report.count("outbox", result);
    }
    Ok(())
}

fn rebind_message(key: &SecretKey, envelope: &mut Envelope) -> std::result::Result<bool, ()> {
    let payload = match envelope.kind.as_str() {
        BuildRequested::TYPE => {
            let Ok(mut build) = envelope.payload::<BuildRequested>() else {
                return Ok(false);
            };
            let app = &build.app;
            let env = rebind(
                key,
                &Binding::app_env(&app.tenant, app.id),
                &build.config.env,
            )?;
            let token = match &build.source.token {
                Some(token) => rebind(key, &Binding::build_token(&app.tenant, app.id), token)?,
                None => None,
            };
            if env.is_none() && token.is_none() {
                return Ok(false);
            }
            if let Some(env) = env {
                build.config.env = env;
            }
            if let Some(token) = token {
                build.source.token = Some(token);
            }
            to_value(&build)
        }
        DeployRequested::TYPE => {
            let Ok(mut deploy) = envelope.payload::<DeployRequested>() else {
                return Ok(false);
            };
            let app = &deploy.release.app;
            let binding = Binding::app_env(&app.tenant, app.id);
            let Some(env) = rebind(key, &binding, &deploy.release.config.env)? else {
                return Ok(false);
            };
            deploy.release.config.env = env;
            to_value(&deploy)
        }
        _ => return Ok(false),
    };
    envelope.payload = payload;
    Ok(true)
}

fn to_value<P: Payload>(payload: &P) -> Value {
    serde_json::to_value(payload).expect("payloads serialize")
}
