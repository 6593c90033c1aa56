//! The crate's one error type, and how it answers over HTTP: an
//! `application/problem+json` document (RFC 9457) with a stable `type`.
//! Internal failures are logged with an id and answered with a generic
//! problem that carries only that id: nothing internal leaks.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// One invalid field of a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No usable credentials; the detail says what is wrong with them.
    #[error("unauthorized: {0}")]
    Unauthorized(&'static str),
    /// Unknown user or wrong password: one answer for both.
    #[error("invalid credentials")]
    InvalidCredentials,
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// The change needs a fresh sign-in (an account without a password has
    /// no password to confirm it with).
    #[error("a recent sign-in is required: {0}")]
    RecentSignInRequired(String),
    /// The named thing does not exist or is not the caller's.
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("conflict: {0}")]
    Conflict(String),
    /// A conflict one field of the request causes (a name in use): a 409
    /// that names the field, so a form can show it there.
    #[error("conflict: {}: {}", .0.field, .0.message)]
    Taken(FieldError),
    #[error("invalid request")]
    Validation(Vec<FieldError>),
    /// The request cannot be read (malformed JSON, bad path or query).
    #[error("bad request: {0}")]
    BadRequest(String),
    /// The body is well-formed but unusable (missing field, wrong type).
    #[error("unprocessable: {0}")]
    Unprocessable(String),
    #[error("unsupported media type: {0}")]
    UnsupportedMediaType(String),
    #[error("payload too large")]
    PayloadTooLarge,
    #[error("too many requests: {0}")]
    TooManyRequests(String),
    /// Over one of the tenant's quotas (`quota::Limit`): a count such as
    /// apps is a 422, something held at once (open streams, log reads,
    /// queued deployments) a 429.
    #[error("quota {limit}: {detail}")]
    QuotaExceeded {
        /// The quota's name, e.g. `apps` or `memory_mb`.
        limit: &'static str,
        detail: String,
        /// Whether waiting (something finishing) can free room: a 429.
        wait: bool,
    },
    /// Refused for now; answered with `Retry-After`.
    #[error("throttled: {detail}")]
    Throttled {
        detail: String,
        retry_after: std::time::Duration,
    },
    /// A dependency is down; retrying later may work.
    #[error("unavailable: {0}")]
    Unavailable(String),
    #[error("no route for this path")]
    NoRoute,
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    #[error("broker: {0}")]
    Broker(#[from] berth_common::BrokerError),
    #[error("sealed data: {0}")]
    Sealed(#[from] berth_proto::SealedError),
    #[error("token: {0}")]
    Token(#[from] jsonwebtoken::errors::Error),
    #[error("{0}")]
    Internal(String),
}

impl Error {
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Validation(vec![FieldError::new(field, message)])
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::Internal(message.into())
    }

    /// A 429 telling the client when to come back.
    pub fn throttled(detail: &str, retry_after: std::time::Duration) -> Self {
        Self::Throttled {
            detail: detail.to_owned(),
            retry_after,
        }
    }

    /// Whole seconds to wait, rounded up, at least 1.
    fn retry_after_secs(retry_after: std::time::Duration) -> u64 {
        retry_after.as_secs_f64().ceil().max(1.0) as u64
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::Unauthorized(_) | Self::InvalidCredentials => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) | Self::RecentSignInRequired(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) | Self::NoRoute => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::Conflict(_) | Self::Taken(_) => StatusCode::CONFLICT,
            Self::Validation(_) | Self::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::TooManyRequests(_) | Self::Throttled { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::QuotaExceeded { wait: true, .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::QuotaExceeded { wait: false, .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Database(_)
            | Self::Migration(_)
            | Self::Broker(_)
            | Self::Sealed(_)
            | Self::Token(_)
            | Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The problem's stable slug: `https://berth.dev/problems/<slug>`.
    fn slug_and_title(&self) -> (&'static str, &'static str) {
        match self {
            Self::Unauthorized(_) => ("unauthorized", "Authentication required"),
            Self::InvalidCredentials => ("invalid-credentials", "Invalid credentials"),
            Self::Forbidden(_) => ("forbidden", "Forbidden"),
            Self::RecentSignInRequired(_) => ("recent-sign-in-required", "Sign in again"),
            Self::NotFound(_) => ("not-found", "Not found"),
            Self::NoRoute => ("no-such-route", "Not found"),
            Self::MethodNotAllowed => ("method-not-allowed", "Method not allowed"),
            Self::Conflict(_) | Self::Taken(_) => ("conflict", "Conflict"),
            Self::Validation(_) | Self::Unprocessable(_) => ("validation", "Invalid request"),
            Self::BadRequest(_) => ("bad-request", "Bad request"),
            Self::UnsupportedMediaType(_) => ("unsupported-media-type", "Unsupported media type"),
            Self::PayloadTooLarge => ("payload-too-large", "Payload too large"),
            Self::TooManyRequests(_) | Self::Throttled { .. } => {
                ("too-many-requests", "Too many requests")
            }
            Self::Unavailable(_) => ("unavailable", "Service unavailable"),
            Self::QuotaExceeded { .. } => ("quota-exceeded", "Over a quota"),
            _ => ("internal", "Internal server error"),
        }
    }

    fn detail(&self) -> String {
        match self {
            Self::Unauthorized(detail) => (*detail).to_owned(),
            Self::InvalidCredentials => "the login or the password is wrong".into(),
            Self::Forbidden(detail)
            | Self::RecentSignInRequired(detail)
            | Self::Conflict(detail)
            | Self::BadRequest(detail)
            | Self::Unprocessable(detail)
            | Self::UnsupportedMediaType(detail)
            | Self::TooManyRequests(detail)
            | Self::QuotaExceeded { detail, .. } => detail.clone(),
            Self::Throttled {
                detail,
                retry_after,
            } => format!(
                "{detail}; try again in {} seconds",
                Self::retry_after_secs(*retry_after)
            ),
            Self::Taken(error) => format!("{}: {}", error.field, error.message),
            Self::NotFound(what) => format!("no such {what}"),
            Self::NoRoute => "there is no API endpoint at this path".into(),
            Self::MethodNotAllowed => "this endpoint does not accept this method".into(),
            Self::Validation(errors) => match errors.as_slice() {
                [one] => format!("{}: {}", one.field, one.message),
                _ => format!("{} fields are invalid", errors.len()),
            },
            Self::PayloadTooLarge => "the request body is too large".into(),
            Self::Unavailable(_) => "a service berth depends on is unavailable; try again".into(),
            _ => "an internal error occurred".into(),
        }
    }

    pub fn to_problem(&self) -> Problem {
        let (slug, title) = self.slug_and_title();
        let status = self.status();
        let mut detail = self.detail();
        let mut error_id = None;
        if status.is_server_error() {
            let id = uuid::Uuid::new_v4().simple().to_string();
            tracing::error!(error_id = %id, error = %self, "request failed");
            detail = format!("{detail} (reference {id})");
            error_id = Some(id);
        }
        Problem {
            kind: format!("https://berth.dev/problems/{slug}"),
            title: title.to_owned(),
            status: status.as_u16(),
            detail,
            errors: match self {
                Self::Validation(errors) => Some(errors.clone()),
                Self::Taken(error) => Some(vec![error.clone()]),
                _ => None,
            },
            error_id,
            limit: match self {
                Self::QuotaExceeded { limit, .. } => Some((*limit).to_owned()),
                _ => None,
            },
        }
    }
}

/// An RFC 9457 problem document.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Problem {
    /// `https://berth.dev/problems/<slug>`
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// For validation problems: every invalid field; for a conflict one
    /// field causes, that field.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors: Option<Vec<FieldError>>,
    /// For internal errors: the id under which the cause was logged.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_id: Option<String>,
    /// For `quota-exceeded`: which quota (`apps`, `queued_deployments`,
    /// `streams`, `log_reads`, `memory_mb`, `cpu_millis`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<String>,
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&self).expect("problems serialize");
        (
            status,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/problem+json"),
            )],
            body,
        )
            .into_response()
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let mut response = self.to_problem().into_response();
        if matches!(self, Self::Unauthorized(_) | Self::InvalidCredentials) {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"berth\""),
            );
        }
        if let Self::Throttled { retry_after, .. } = &self {
            response.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from(Self::retry_after_secs(*retry_after)),
            );
        }
        response
    }
}

/// Unique-constraint violations name their constraint; turn the ones a user
/// can cause into a conflict on the request's `field`.
pub fn conflict_on<'a>(
    constraint: &'a str,
    field: &'a str,
    message: &str,
) -> impl FnOnce(sqlx::Error) -> Error + 'a {
    let message = message.to_owned();
    move |error| match &error {
        sqlx::Error::Database(db) if db.constraint() == Some(constraint) => {
            Error::Taken(FieldError::new(field, message))
        }
        _ => Error::Database(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_errors_answer_a_generic_problem_with_a_reference() {
        let problem = Error::internal("secret connection string postgres://x").to_problem();
        assert_eq!(problem.status, 500);
        assert!(!problem.detail.contains("postgres"));
        assert!(problem
            .detail
            .contains(problem.error_id.as_deref().unwrap()));
        assert_eq!(problem.kind, "https://berth.dev/problems/internal");
    }

    #[test]
    fn validation_problems_list_the_fields() {
        let problem = Error::Validation(vec![
            FieldError::new("name", "bad"),
            FieldError::new("port", "bad"),
        ])
        .to_problem();
        assert_eq!(problem.status, 422);
        assert_eq!(problem.errors.unwrap().len(), 2);
        assert_eq!(problem.detail, "2 fields are invalid");
    }

    #[test]
    fn a_taken_name_is_a_conflict_at_its_field() {
        let problem = Error::Taken(FieldError::new("name", "is taken")).to_problem();
        assert_eq!(problem.status, 409);
        assert_eq!(problem.kind, "https://berth.dev/problems/conflict");
        assert_eq!(
            problem.errors,
            Some(vec![FieldError::new("name", "is taken")])
        );
        assert_eq!(problem.detail, "name: is taken");
    }

    #[test]
    fn throttled_answers_say_when_to_come_back() {
        let wait = std::time::Duration::from_millis(2_300);
        let response = Error::throttled("slow down", wait).into_response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[header::RETRY_AFTER], "3");
        let problem = Error::throttled("slow down", wait).to_problem();
        assert_eq!(problem.detail, "slow down; try again in 3 seconds");
    }

    #[test]
    fn quotas_name_their_limit_with_422_for_counts_and_429_for_waits() {
        let count = Error::QuotaExceeded {
            limit: "apps",
            detail: "you have 20 apps, the limit of your account".into(),
            wait: false,
        }
        .to_problem();
        assert_eq!(count.status, 422);
        assert_eq!(count.kind, "https://berth.dev/problems/quota-exceeded");
        assert_eq!(count.limit.as_deref(), Some("apps"));
        assert_eq!(count.detail, "you have 20 apps, the limit of your account");
        let held = Error::QuotaExceeded {
            limit: "streams",
            detail: "x".into(),
            wait: true,
        };
        assert_eq!(held.status(), StatusCode::TOO_MANY_REQUESTS);
    }

    #[test]
    fn unauthorized_answers_carry_www_authenticate() {
        let response = Error::InvalidCredentials.into_response();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert!(response.headers().contains_key(header::WWW_AUTHENTICATE));
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            "application/problem+json"
        );
    }
}
