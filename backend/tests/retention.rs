//! Retention against the real registry (Debian's docker-registry with token
//! auth): releases beyond what rollback reaches, and every release of a
//! deleted app, lose their image; a release that is current, in use or
//! shares its image with a kept one is never deleted from under it.

mod common;

use axum::http::StatusCode;
use berth_backend::background::retention::registry::RegistryImages;
use berth_backend::background::retention::{Pruned, Retention, RetentionSettings};
use berth_common::log_topics::LogTopics;
use berth_common::registry_auth::{Access, RegistryCredentials};
use berth_common::testing::registry::TestRegistry;
use berth_common::testing::registry_client::RegistryClient;
use berth_common::testing::tansu::PrivateTansu;
use berth_common::{LogProducer, LogSink};
use berth_proto::{Binding, LogRecord, LogSource, LogStream, ReleaseConfig};
use common::{id_of, TestApp};
use serde_json::json;
use sqlx::PgPool;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

const GRANT_KEY: &str = "CQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQk=";

struct Fixture {
    app: TestApp,
    token: String,
    registry: TestRegistry,
    client: RegistryClient,
}

impl Fixture {
    async fn new() -> Self {
        let app = TestApp::new().await;
        let token = app.token("alice").await;
        let registry = TestRegistry::start(GRANT_KEY).await;
        let grant = TestRegistry::grants(GRANT_KEY).for_tenant("alice", Access::Push);
        let client = RegistryClient::new(&registry, grant);
        Self {
            app,
            token,
            registry,
            client,
        }
    }

    fn db(&self) -> &PgPool {
        self.app.pool()
    }

    async fn create_app(&self, name: &str) -> Uuid {
        id_of(
            &self
                .app
                .create_app(
                    &self.token,
                    json!({"name": name, "repo_url": "https://x.example/r"}),
                )
                .await,
        )
    }

    /// Pushes an image to `alice/<app>:<tag>`; its reference by digest.
    async fn push(&self, app: &str, tag: &str) -> String {
        let digest = self
            .client
            .push(&format!("alice/{app}"), tag)
            .await
            .unwrap_or_else(|e| panic!("{e:?}\n{}", self.registry.log()));
        format!("{}/alice/{app}@{digest}", self.registry.address)
    }

    /// Records a release `age_minutes` old with `image`; its id.
    async fn release(&self, app_id: Uuid, image: &str, age_minutes: i32) -> Uuid {
        let id = Uuid::now_v7();
        let config = ReleaseConfig {
            port: 8000,
            env: self
                .app
                .state
                .key
                .seal_json(&Binding::app_env("alice", app_id), &json!({})),
            env_version: 1,
            replicas: 1,
            resources: Default::default(),
            health_check_path: None,
        };
        sqlx::query(
            "INSERT INTO releases (id, app_id, commit_sha, image, config, created_at)
             VALUES ($1, $2, $3, $4, $5, now() - make_interval(mins => $6))",
        )
        .bind(id)
        .bind(app_id)
        .bind(format!("{:040x}", age_minutes))
        .bind(image)
        .bind(sqlx::types::Json(config))
        .bind(age_minutes)
        .execute(self.db())
        .await
        .unwrap();
        id
    }

    async fn present(&self, image: &str) -> bool {
        let (name, digest) = image
            .split_once('/')
            .and_then(|(_, rest)| rest.split_once('@'))
            .unwrap();
        match self.client.head(name, digest).await {
            StatusCode::OK => true,
            StatusCode::NOT_FOUND => false,
            other => panic!("HEAD {image}: {other}\n{}", self.registry.log()),
        }
    }

    async fn pruned(&self, release: Uuid) -> bool {
        sqlx::query_scalar::<_, bool>("SELECT pruned_at IS NOT NULL FROM releases WHERE id = $1")
            .bind(release)
            .fetch_one(self.db())
            .await
            .unwrap()
    }

    fn retention(&self, keep: u32, topics: Option<LogTopics>) -> Retention<RegistryImages> {
        let issuer = Arc::new(self.registry.signing.issuer(GRANT_KEY));
        let images = RegistryImages::new(&self.registry.address, issuer).unwrap();
        let settings = RetentionSettings {
            rollback_releases: keep,
            topic_grace: Duration::from_secs(600),
            interval: Duration::from_secs(3600),
        };
        Retention::new(self.db().clone(), images, topics, settings)
    }
}

#[tokio::test]
async fn releases_beyond_rollback_and_of_deleted_apps_lose_their_images() {
    let f = Fixture::new().await;
    let web = f.create_app("web").await;
    // Five releases, oldest first; rollback reaches the newest two.
    let images = [
        f.push("web", "r1").await,
        f.push("web", "r2").await,
        f.push("web", "r3").await,
        f.push("web", "r4").await,
    ];
    let current = f.release(web, &images[0], 50).await;
    let shared_old = f.release(web, &images[3], 40).await;
    let beyond = f.release(web, &images[1], 30).await;
    let in_use = f.release(web, &images[2], 25).await;
    let newest = [
        f.release(web, &images[3], 20).await,
        f.release(
            web,
            &format!("{}/alice/web@sha256:{}", f.registry.address, "b".repeat(64)),
            10,
        )
        .await,
    ];
    sqlx::query("UPDATE apps SET current_release_id = $2 WHERE id = $1")
        .bind(web)
        .bind(current)
        .execute(f.db())
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO deployments (id, app_id, state, trigger, release_id)
         VALUES ($1, $2, 'deploying', 'rollback', $3)",
    )
    .bind(Uuid::now_v7())
    .bind(web)
    .bind(in_use)
    .execute(f.db())
    .await
    .unwrap();
    // The deployment that once made `beyond` live: its view says the
    // release can no longer be rolled back to.
    let went_live = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO deployments (id, app_id, state, trigger, release_id)
         VALUES ($1, $2, 'superseded', 'user', $3)",
    )
    .bind(went_live)
    .bind(web)
    .bind(beyond)
    .execute(f.db())
    .await
    .unwrap();
    let old = f.create_app("old").await;
    let old_image = f.push("old", "r1").await;
    let old_release = f.release(old, &old_image, 60).await;
    sqlx::query("UPDATE apps SET deleted_at = now() WHERE id = $1")
        .bind(old)
        .execute(f.db())
        .await
        .unwrap();

    let pruned = f.retention(2, None).prune().await.unwrap();

    assert_eq!(
        pruned,
        Pruned {
            releases: 3,
            images: 2,
            log_topics: 0
        }
    );
    for release in [beyond, shared_old, old_release] {
        assert!(f.pruned(release).await, "{release} should be pruned");
    }
    for release in [current, in_use, newest[0], newest[1]] {
        assert!(!f.pruned(release).await, "{release} should be kept");
    }
    assert!(!f.present(&images[1]).await, "beyond rollback: deleted");
    assert!(!f.present(&old_image).await, "of a deleted app: deleted");
    assert!(f.present(&images[0]).await, "current: kept");
    assert!(f.present(&images[2]).await, "in use by a deployment: kept");
    assert!(
        f.present(&images[3]).await,
        "shared with a kept release: kept"
    );

    // Rollback refuses what was pruned, and says why.
    let refused = f
        .app
        .post(
            &format!("/api/v1/apps/{web}/deployments"),
            &f.token,
            json!({"release_id": beyond}),
        )
        .await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{}", refused.body);
    let detail = refused.body["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("was pruned"), "{}", refused.body);
    let listed = f
        .app
        .get(&format!("/api/v1/apps/{web}/releases"), &f.token)
        .await;
    let beyond_view = listed
        .body
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == beyond.to_string());
    assert!(
        beyond_view.unwrap()["pruned_at"].is_string(),
        "{}",
        listed.body
    );
    let deployment = f
        .app
        .get(&format!("/api/v1/deployments/{went_live}"), &f.token)
        .await;
    assert!(
        deployment.body["release_pruned_at"].is_string(),
        "{}",
        deployment.body
    );
    let kept = f
        .app
        .get(&format!("/api/v1/apps/{web}/deployments"), &f.token)
        .await;
    let in_use_view = kept
        .body
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["release_id"] == in_use.to_string());
    assert!(
        in_use_view.unwrap()["release_pruned_at"].is_null(),
        "{}",
        kept.body
    );

    let again = f.retention(2, None).prune().await.unwrap();
    assert_eq!(again, Pruned::default(), "a second pass has nothing left");
}

#[tokio::test]
async fn a_deleted_apps_log_topic_goes_after_the_grace() {
    let f = Fixture::new().await;
    let tansu = PrivateTansu::start().await;
    let old = f.create_app("old").await;
    let record = LogRecord {
        ts: chrono::Utc::now(),
        source: LogSource::App,
        instance: "web-1".into(),
        stream: LogStream::Stdout,
        line: "bye".into(),
    };
    LogProducer::new(&tansu.brokers, 1)
        .unwrap()
        .append(old, "key", &record)
        .await
        .unwrap();
    let topics = LogTopics::new(&tansu.brokers).unwrap();
    sqlx::query("UPDATE apps SET deleted_at = now() WHERE id = $1")
        .bind(old)
        .execute(f.db())
        .await
        .unwrap();

    let within_grace = f.retention(10, Some(topics.clone())).prune().await.unwrap();
    assert_eq!(
        within_grace.log_topics, 0,
        "the log-streamer may still ship its last lines"
    );
    assert!(topics.apps().await.unwrap().contains(&old));

    sqlx::query("UPDATE apps SET deleted_at = now() - interval '1 hour' WHERE id = $1")
        .bind(old)
        .execute(f.db())
        .await
        .unwrap();
    let after = f.retention(10, Some(topics.clone())).prune().await.unwrap();
    assert_eq!(after.log_topics, 1);
    assert!(!topics.apps().await.unwrap().contains(&old));
}
