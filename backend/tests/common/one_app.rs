//! One user with one app (`alice`'s `web`), for tests that move its
//! deployments through their states.

use super::broker::eventually;
use super::{id_of, TestApp};
use axum::http::{Method, StatusCode};
use berth_proto::{AppRef, Binding, Release, ReleaseConfig};
use serde_json::{json, Value};
use std::time::Duration;
use uuid::Uuid;

pub struct OneApp {
    pub app: TestApp,
    pub token: String,
    pub app_id: Uuid,
}

impl OneApp {
    pub async fn new() -> Self {
        let app = TestApp::new().await;
        let token = app.token("alice").await;
        let app_id = id_of(
            &app.create_app(
                &token,
                json!({"name": "web", "repo_url": "https://x.example/web"}),
            )
            .await,
        );
        Self { app, token, app_id }
    }

    /// Requests a deployment of the app's branch (no body at all).
    pub async fn deploy(&self) -> Value {
        let uri = format!("/api/v1/apps/{}/deployments", self.app_id);
        let response = self
            .app
            .call(Method::POST, &uri, Some(&self.token), None)
            .await;
        assert_eq!(response.status, StatusCode::ACCEPTED, "{}", response.body);
        assert_eq!(response.body["ref"], "main");
        response.body
    }

    pub async fn deployment(&self, id: Uuid) -> Value {
        self.app
            .get(&format!("/api/v1/deployments/{id}"), &self.token)
            .await
            .body
    }

    pub async fn wait_for_state(&self, id: Uuid, state: &str) -> Value {
        eventually(Duration::from_secs(10), || async {
            let deployment = self.deployment(id).await;
            (deployment["state"] == state).then_some(deployment)
        })
        .await
        .unwrap_or_else(|| panic!("deployment {id} never became {state}"))
    }

    /// The release a worker would report for `deployment`.
    pub fn release(&self, deployment: &Value) -> Release {
        Release {
            id: deployment["release_id"].as_str().unwrap().parse().unwrap(),
            app: AppRef {
                id: self.app_id,
                name: "web".into(),
                tenant: "alice".into(),
            },
            commit: "0123456789abcdef0123456789abcdef01234567".into(),
            image: format!("127.0.0.1:5000/alice/web@sha256:{}", "a".repeat(64)),
            config: ReleaseConfig {
                port: 8000,
                env: self
                    .app
                    .state
                    .key
                    .seal_json(&Binding::app_env("alice", self.app_id), &json!({})),
                env_version: 1,
                replicas: 1,
                resources: Default::default(),
                health_check_path: None,
            },
        }
    }
}
