//! The fake GitHub's deployments and commit statuses: create a Deployment,
//! add a deployment status, set a commit status (GitHub's REST API, answers
//! shaped like its documented ones). It checks the token and the
//! repository, remembers every call with its body and time, and can be told
//! to fail the next calls (a 500, a 429 with `Retry-After`, ...).

use super::fake_github::{answer, Answer, FakeGitHub};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::time::Instant;

/// A call to the status endpoints, as received.
#[derive(Debug, Clone)]
pub struct StatusCall {
    pub path: String,
    pub authorization: Option<String>,
    pub body: Value,
    pub at: Instant,
    /// The status answered.
    pub answered: u16,
}

/// A failure to answer instead of the real thing.
#[derive(Debug, Clone)]
pub struct Failure {
    pub status: StatusCode,
    pub retry_after: Option<u64>,
}

#[derive(Default)]
pub(super) struct StatusState {
    calls: Vec<StatusCall>,
    failures: VecDeque<Failure>,
    /// Created deployments; GitHub's id is the index + 1.
    deployments: Vec<Value>,
}

pub(super) fn routes() -> Router<FakeGitHub> {
    Router::new()
        .route("/repos/{owner}/{repo}/deployments", post(create_deployment))
        .route(
            "/repos/{owner}/{repo}/deployments/{id}/statuses",
            post(create_deployment_status),
        )
        .route("/repos/{owner}/{repo}/statuses/{sha}", post(create_status))
}

impl FakeGitHub {
    /// Every call to the deployment and status endpoints, in order.
    pub fn status_calls(&self) -> Vec<StatusCall> {
        self.inner.lock().unwrap().status.calls.clone()
    }

    /// Answers the next calls with these failures, one each.
    pub fn fail_next(&self, failures: impl IntoIterator<Item = Failure>) {
        self.inner.lock().unwrap().status.failures.extend(failures);
    }

    /// Corrects what the last call was answered.
    fn answered_last(&self, status: StatusCode) {
        if let Some(call) = self.inner.lock().unwrap().status.calls.last_mut() {
            call.answered = status.as_u16();
        }
    }

    /// Records the call, then answers a queued failure, a wrong token or
    /// another repository; `None` when the call may proceed.
    fn admit_status(
        &self,
        path: String,
        (owner, repo): (&str, &str),
        headers: &HeaderMap,
        body: &Value,
    ) -> Option<Response> {
        let mut inner = self.inner.lock().unwrap();
        let authorization = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let refusal = if let Some(failure) = inner.status.failures.pop_front() {
            let message = if failure.status == StatusCode::TOO_MANY_REQUESTS {
                "You have exceeded a secondary rate limit. Please wait a few minutes before you try again."
            } else {
                "Server Error"
            };
            let mut response = answer(failure.status, json!({"message": message})).into_response();
            if let Some(seconds) = failure.retry_after {
                response
                    .headers_mut()
                    .insert("retry-after", HeaderValue::from(seconds));
            }
            Some(response)
        } else if authorization.as_deref() != Some(&format!("Bearer {}", self.token)) {
            Some(
                answer(
                    StatusCode::UNAUTHORIZED,
                    json!({"message": "Bad credentials"}),
                )
                .into_response(),
            )
        } else if (owner, repo) != (self.repo.0.as_str(), self.repo.1.as_str()) {
            Some(answer(StatusCode::NOT_FOUND, json!({"message": "Not Found"})).into_response())
        } else {
            None
        };
        inner.status.calls.push(StatusCall {
            path,
            authorization,
            body: body.clone(),
            at: Instant::now(),
            answered: refusal.as_ref().map_or(201, |r| r.status().as_u16()),
        });
        refusal
    }
}

async fn create_deployment(
    State(fake): State<FakeGitHub>,
    Path((owner, repo)): Path<(String, String)>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let path = format!("/repos/{owner}/{repo}/deployments");
    if let Some(refused) = fake.admit_status(path, (&owner, &repo), &headers, &body) {
        return refused;
    }
    let mut inner = fake.inner.lock().unwrap();
    let id = inner.status.deployments.len() + 1;
    let deployment = json!({
        "url": format!("https://api.github.com/repos/{owner}/{repo}/deployments/{id}"),
        "id": id, "node_id": "MDEwOkRlcGxveW1lbnQx", "sha": body["ref"], "ref": body["ref"],
        "task": "deploy", "payload": {}, "original_environment": body["environment"],
        "environment": body["environment"], "description": body["description"],
        "creator": {"login": owner, "id": 1, "type": "User"},
        "created_at": "2012-07-20T01:19:13Z", "updated_at": "2012-07-20T01:19:13Z",
        "statuses_url": format!("https://api.github.com/repos/{owner}/{repo}/deployments/{id}/statuses"),
        "transient_environment": body["transient_environment"], "production_environment": false
    });
    inner.status.deployments.push(deployment.clone());
    answer(StatusCode::CREATED, deployment).into_response()
}

async fn create_deployment_status(
    State(fake): State<FakeGitHub>,
    Path((owner, repo, id)): Path<(String, String, usize)>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let path = format!("/repos/{owner}/{repo}/deployments/{id}/statuses");
    if let Some(refused) = fake.admit_status(path, (&owner, &repo), &headers, &body) {
        return refused;
    }
    let known = id >= 1 && id <= fake.inner.lock().unwrap().status.deployments.len();
    if !known {
        fake.answered_last(StatusCode::NOT_FOUND);
        return answer(StatusCode::NOT_FOUND, json!({"message": "Not Found"})).into_response();
    }
    let status: Answer = answer(
        StatusCode::CREATED,
        json!({"id": 1, "node_id": "MDE2OkRlcGxveW1lbnRTdGF0dXMx", "state": body["state"],
               "description": body["description"], "environment_url": body["environment_url"],
               "log_url": body["log_url"], "target_url": body["log_url"],
               "deployment_url": format!("https://api.github.com/repos/{owner}/{repo}/deployments/{id}"),
               "created_at": "2012-07-20T01:19:13Z"}),
    );
    status.into_response()
}

async fn create_status(
    State(fake): State<FakeGitHub>,
    Path((owner, repo, sha)): Path<(String, String, String)>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let path = format!("/repos/{owner}/{repo}/statuses/{sha}");
    if let Some(refused) = fake.admit_status(path, (&owner, &repo), &headers, &body) {
        return refused;
    }
    let known = fake
        .inner
        .lock()
        .unwrap()
        .status
        .deployments
        .iter()
        .any(|d| d["sha"] == sha.as_str());
    if !known && sha.len() != 40 {
        fake.answered_last(StatusCode::UNPROCESSABLE_ENTITY);
        return answer(
            StatusCode::UNPROCESSABLE_ENTITY,
            json!({"message": format!("No commit found for SHA: {sha}")}),
        )
        .into_response();
    }
    answer(
        StatusCode::CREATED,
        json!({"id": 1, "node_id": "MDY6U3RhdHVzMQ==", "state": body["state"],
               "description": body["description"], "target_url": body["target_url"],
               "context": body["context"], "created_at": "2012-07-20T01:19:13Z"}),
    )
    .into_response()
}
