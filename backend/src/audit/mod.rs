//! The audit log: account actions, logins (failed ones too), app changes
//! and deploy triggers. An event is written in the same transaction as the
//! change it records, so both commit or neither does. Token refreshes are
//! not recorded: clients refresh every few minutes and would drown the rest.
//! `GET /audit` lists the caller's own events (`accounts::audit_log`, above
//! `auth`, which records here: this module takes no `CurrentUser`).

pub mod source;

pub use source::SourceAddr;

use crate::error::{Error, FieldError, Result};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::types::Json as SqlJson;
use sqlx::{PgConnection, PgPool};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

pub const DEFAULT_PAGE: i64 = 50;
pub const MAX_PAGE: i64 = 200;
/// Longer attempted logins are cut: the log is not a place to store blobs.
const MAX_ACTOR_CHARS: usize = 200;

/// One event to record. `details` must never hold secrets, tokens or env values.
#[derive(Debug, Clone)]
pub struct Event {
    /// Whose log it goes in; `None` lists it to nobody.
    pub user_id: Option<Uuid>,
    /// `None`: the username of `user_id`.
    pub actor: Option<String>,
    pub action: &'static str,
    pub target_type: &'static str,
    pub target_id: Option<Uuid>,
    pub details: Value,
    pub source: SourceAddr,
}

impl Event {
    /// `user` did `action` on `target_type` `target_id`.
    pub fn new(
        user: Uuid,
        action: &'static str,
        target_type: &'static str,
        target_id: Uuid,
        source: SourceAddr,
    ) -> Self {
        Self {
            user_id: Some(user),
            actor: None,
            action,
            target_type,
            target_id: Some(target_id),
            details: Value::Object(Default::default()),
            source,
        }
    }

    pub fn details(mut self, details: Value) -> Self {
        self.details = details;
        self
    }

    pub fn actor(mut self, actor: impl Into<String>) -> Self {
        self.actor = Some(actor.into().chars().take(MAX_ACTOR_CHARS).collect());
        self
    }
}

/// A repository URL fit for the log: without credentials or query.
pub fn repo_url(text: &str) -> String {
    match url::Url::parse(text) {
        Ok(mut url) => {
            let _ = url.set_username("");
            let _ = url.set_password(None);
            url.set_query(None);
            url.to_string()
        }
        Err(_) => text.to_owned(),
    }
}

/// Writes `event` on `conn`: pass the transaction of the change it records.
pub async fn record(conn: &mut PgConnection, event: Event) -> Result<()> {
    sqlx::query(
        "INSERT INTO audit_events
           (id, user_id, actor, action, target_type, target_id, details, source_ip)
         VALUES ($1, $2, COALESCE($3, (SELECT username FROM users WHERE id = $2), ''),
                 $4, $5, $6, $7, $8::inet)",
    )
    .bind(Uuid::now_v7())
    .bind(event.user_id)
    .bind(event.actor)
    .bind(event.action)
    .bind(event.target_type)
    .bind(event.target_id)
    .bind(SqlJson(event.details))
    .bind(event.source.0.map(|ip| ip.to_string()))
    .execute(conn)
    .await?;
    Ok(())
}

/// A recorded event.
#[derive(Debug, Serialize, sqlx::FromRow, ToSchema)]
pub struct AuditEvent {
    /// A UUIDv7: pass the last one of a page as `before` for the next.
    pub id: Uuid,
    /// Your username; `github:<login>` for a push webhook; for a failed
    /// login, the login that was tried.
    #[schema(example = "alice")]
    pub actor: String,
    /// `auth.register`, `auth.login`, `auth.login_failed`, `auth.logout`,
    /// `app.create`, `app.update`, `app.delete`, `app.scale`,
    /// `app.webhook_set`, `app.webhook_deleted`, `domain.add`,
    /// `domain.remove` or `deployment.create`.
    #[schema(example = "app.create")]
    pub action: String,
    /// `user`, `app` or `deployment`.
    pub target_type: String,
    pub target_id: Option<Uuid>,
    /// What changed (never secrets or env values); for a deployment its
    /// `trigger` (`user`, `rollback` or `push`).
    #[schema(value_type = Object)]
    pub details: SqlJson<Value>,
    /// The client's address, when known.
    #[schema(example = "203.0.113.9")]
    pub source_ip: Option<String>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListAudit {
    /// Only this action, e.g. `app.create`.
    pub action: Option<String>,
    /// Only events about this app, deployment or user.
    pub target_id: Option<Uuid>,
    /// Only events at or after this time (RFC 3339).
    pub since: Option<DateTime<Utc>>,
    /// Only events before this time (RFC 3339).
    pub until: Option<DateTime<Utc>>,
    /// Only events older than this one (the last id of the previous page).
    pub before: Option<Uuid>,
    /// Page size, 1 to 200 (50 when absent).
    pub limit: Option<i64>,
}

impl ListAudit {
    fn validate(&self) -> Result<i64> {
        let mut errors = Vec::new();
        let limit = self.limit.unwrap_or(DEFAULT_PAGE);
        if !(1..=MAX_PAGE).contains(&limit) {
            errors.push(FieldError::new(
                "limit",
                format!("must be between 1 and {MAX_PAGE}"),
            ));
        }
        if let Some(action) = &self.action {
            let valid = !action.is_empty()
                && action.len() <= 64
                && action
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c == '.' || c == '_');
            if !valid {
                errors.push(FieldError::new(
                    "action",
                    "must be an action name such as app.create",
                ));
            }
        }
        if let (Some(since), Some(until)) = (self.since, self.until) {
            if since > until {
                errors.push(FieldError::new("until", "must not be before since"));
            }
        }
        if errors.is_empty() {
            Ok(limit)
        } else {
            Err(Error::Validation(errors))
        }
    }
}

/// A page of `user`'s events matching `query`, newest first.
pub async fn list(db: &PgPool, user: Uuid, query: ListAudit) -> Result<Vec<AuditEvent>> {
    let limit = query.validate()?;
    let events = sqlx::query_as::<_, AuditEvent>(
        "SELECT id, actor, action, target_type, target_id, details,
                host(source_ip) AS source_ip, created_at
         FROM audit_events
         WHERE user_id = $1
           AND ($2::text IS NULL OR action = $2)
           AND ($3::uuid IS NULL OR target_id = $3)
           AND ($4::timestamptz IS NULL OR created_at >= $4)
           AND ($5::timestamptz IS NULL OR created_at < $5)
           AND ($6::uuid IS NULL OR id < $6)
         ORDER BY id DESC LIMIT $7",
    )
    .bind(user)
    .bind(query.action)
    .bind(query.target_id)
    .bind(query.since)
    .bind(query.until)
    .bind(query.before)
    .bind(limit)
    .fetch_all(db)
    .await?;
    Ok(events)
}
