//! axum's extractors, wrapped so that their rejections (malformed JSON,
//! wrong types, missing fields, bad UUIDs in the path, bad query strings)
//! answer problem+json like every other error.

use crate::error::{Error, FieldError};
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, OptionalFromRequest, Request};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

#[derive(Debug, Clone, Copy, Default, FromRequest)]
#[from_request(via(axum::Json), rejection(Error))]
pub struct Json<T>(pub T);

/// An optional body: a request without `Content-Type` has none.
impl<T, S> OptionalFromRequest<S> for Json<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Error;

    async fn from_request(request: Request, state: &S) -> Result<Option<Self>, Error> {
        let json = <axum::Json<T> as OptionalFromRequest<S>>::from_request(request, state).await?;
        Ok(json.map(|axum::Json(value)| Json(value)))
    }
}

impl<T: serde::Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

#[derive(Debug, Clone, Copy, FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(Error))]
pub struct Path<T>(pub T);

#[derive(Debug, Clone, Copy, Default, FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(Error))]
pub struct Query<T>(pub T);

/// `<prefix>: <rest>` → `<rest>`.
fn after_prefix(text: &str) -> &str {
    text.split_once(": ").map_or(text, |(_, rest)| rest)
}

/// Turns serde's message into a field error: `name: invalid type ...` or
/// ``missing field `name` at line 1 column 2``.
fn field_error(message: &str, whole: &str) -> FieldError {
    let message = message
        .rsplit_once(" at line ")
        .map_or(message, |(head, _)| head);
    if let Some(field) = message
        .strip_prefix("missing field `")
        .and_then(|rest| rest.strip_suffix('`'))
    {
        return FieldError::new(field, "is required");
    }
    match message.split_once(": ") {
        Some((path, reason)) if !path.contains(' ') && path != "." => FieldError::new(path, reason),
        _ => FieldError::new(whole, message),
    }
}

impl From<JsonRejection> for Error {
    fn from(rejection: JsonRejection) -> Self {
        match rejection {
            JsonRejection::JsonDataError(error) => {
                Error::Validation(vec![field_error(after_prefix(&error.body_text()), "body")])
            }
            JsonRejection::JsonSyntaxError(error) => Error::BadRequest(format!(
                "the body is not valid JSON: {}",
                after_prefix(&error.body_text())
            )),
            JsonRejection::MissingJsonContentType(_) => Error::UnsupportedMediaType(
                "send the body as JSON with `Content-Type: application/json`".into(),
            ),
            JsonRejection::BytesRejection(error)
                if error.status() == StatusCode::PAYLOAD_TOO_LARGE =>
            {
                Error::PayloadTooLarge
            }
            other => Error::BadRequest(format!("the body cannot be read: {}", other.body_text())),
        }
    }
}

impl From<PathRejection> for Error {
    fn from(rejection: PathRejection) -> Self {
        match rejection {
            PathRejection::FailedToDeserializePathParams(error) => Error::BadRequest(format!(
                "invalid path parameter: {}",
                after_prefix(&error.body_text())
            )),
            other => Error::internal(other.body_text()),
        }
    }
}

impl From<QueryRejection> for Error {
    fn from(rejection: QueryRejection) -> Self {
        let text = rejection.body_text();
        Error::Validation(vec![field_error(after_prefix(&text), "query")])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_messages_name_the_field() {
        assert_eq!(
            field_error("missing field `password` at line 1 column 20", "body"),
            FieldError::new("password", "is required")
        );
        assert_eq!(
            field_error(
                "port: invalid type: string \"x\", expected u16 at line 1 column 12",
                "body"
            ),
            FieldError::new("port", "invalid type: string \"x\", expected u16")
        );
        assert_eq!(
            field_error(
                "invalid type: integer `1`, expected a map at line 1 column 1",
                "body"
            )
            .field,
            "body"
        );
    }
}
