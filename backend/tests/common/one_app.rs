//! One user with one app (`alice`'s `web`), for tests that move its
//! deployments through their states.

use super::broker::eventually;
use super::{id_of, TestApp};
use axum::http::{Method, StatusCode};
use berth_backend::background::inform::{Applied, InformHandler};
use berth_proto::{
    AppRef, Binding, DeploymentProgress, DeploymentState, Envelope, Release, ReleaseConfig,
};
use serde_json::{json, Value};
use sqlx::types::Json as SqlJson;
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

/// [`OneApp`] with the `berth.inform` handler its workers' reports go
/// through, for tests that move deployments as workers would.
pub struct Informed {
    pub one: OneApp,
    pub inform: InformHandler,
}

impl std::ops::Deref for Informed {
    type Target = OneApp;
    fn deref(&self) -> &OneApp {
        &self.one
    }
}

impl Informed {
    pub async fn new() -> Self {
        let one = OneApp::new().await;
        let inform = InformHandler::new(one.app.pool().clone());
        Self { one, inform }
    }

    pub async fn report(&self, id: Uuid, progress: DeploymentProgress) -> Applied {
        self.inform.apply(id, &progress).await.unwrap()
    }

    /// Takes a deployment through `deploying` to `live`.
    pub async fn go_live(&self, deployment: &Value) -> Release {
        let id = id_of(deployment);
        let release = self.release(deployment);
        self.report(id, deploying(&release)).await;
        self.report(id, live(&release)).await;
        release
    }

    /// Unpublished outbox messages of `kind`, oldest first.
    pub async fn outbox(&self, kind: &str) -> Vec<Envelope> {
        sqlx::query_scalar::<_, SqlJson<Envelope>>(
            "SELECT envelope FROM outbox WHERE published_at IS NULL AND envelope->>'type' = $1
             ORDER BY id",
        )
        .bind(kind)
        .fetch_all(self.app.pool())
        .await
        .unwrap()
        .into_iter()
        .map(|json| json.0)
        .collect()
    }
}

pub fn deploying(release: &Release) -> DeploymentProgress {
    DeploymentProgress::new(DeploymentState::Deploying).with_release(release.clone())
}

pub fn live(release: &Release) -> DeploymentProgress {
    DeploymentProgress::new(DeploymentState::Live)
        .with_release(release.clone())
        .with_endpoint("http://127.0.0.1:40001")
}
