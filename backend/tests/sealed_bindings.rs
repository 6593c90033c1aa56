//! Sealed values are bound to their owner and purpose: a blob moved to
//! another app does not open there, and values sealed before bindings are
//! sealed again once, at start, and refused after that.

mod common;

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use axum::http::StatusCode;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use berth_backend::github::store::{insert_state, upsert_account, Account, NewState};
use berth_backend::outbox;
use berth_backend::sealing::rebind_legacy;
use berth_proto::{
    AppRef, Binding, DeployRequested, Envelope, Release, ReleaseConfig, Sealed, SecretKey,
};
use common::{id_of, TestApp};
use serde_json::{json, Value};
use sqlx::types::Json as SqlJson;
use std::collections::BTreeMap;
use uuid::Uuid;

/// A key the test knows, so it can seal the way berth did before bindings.
struct Legacy(String);

impl Legacy {
    fn new() -> Self {
        Self(SecretKey::generate_base64())
    }

    fn key(&self) -> SecretKey {
        SecretKey::from_base64(&self.0).unwrap()
    }

    /// AES-256-GCM without associated data and without a format marker.
    fn seal(&self, plaintext: &[u8]) -> Sealed {
        let cipher = Aes256Gcm::new_from_slice(&B64.decode(&self.0).unwrap()).unwrap();
        let nonce: [u8; 12] = rand_nonce();
        let ciphertext = cipher
            .encrypt(Nonce::from_slice(&nonce), plaintext)
            .unwrap();
        let sealed: Sealed = serde_json::from_value(
            json!({"nonce": B64.encode(nonce), "ciphertext": B64.encode(ciphertext)}),
        )
        .unwrap();
        assert!(sealed.is_legacy());
        sealed
    }

    fn seal_env(&self, env: &[(&str, &str)]) -> Sealed {
        let env: BTreeMap<&str, &str> = env.iter().copied().collect();
        self.seal(&serde_json::to_vec(&env).unwrap())
    }
}

fn rand_nonce() -> [u8; 12] {
    let mut nonce = [0u8; 12];
    nonce[..8].copy_from_slice(&Uuid::new_v4().as_bytes()[..8]);
    nonce
}

async fn set_env(app: &TestApp, app_id: Uuid, sealed: &Sealed) {
    sqlx::query("UPDATE apps SET env_sealed = $2 WHERE id = $1")
        .bind(app_id)
        .bind(SqlJson(sealed))
        .execute(app.pool())
        .await
        .unwrap();
}

async fn env_sealed(app: &TestApp, app_id: Uuid) -> Sealed {
    let SqlJson(sealed) = sqlx::query_scalar("SELECT env_sealed FROM apps WHERE id = $1")
        .bind(app_id)
        .fetch_one(app.pool())
        .await
        .unwrap();
    sealed
}

#[tokio::test]
async fn an_env_copied_from_another_app_does_not_open() {
    let app = TestApp::new().await;
    let alice = app.token("alice").await;
    let mallory = app.token("mallory").await;
    let victim = id_of(
        &app.create_app(
            &alice,
            json!({"name": "web", "repo_url": "https://github.com/a/web", "env": {"SECRET": "alice-only"}}),
        )
        .await,
    );
    let thief = id_of(
        &app.create_app(
            &mallory,
            json!({"name": "web", "repo_url": "https://github.com/m/web"}),
        )
        .await,
    );
    let own = app.get(&format!("/api/v1/apps/{victim}/env"), &alice).await;
    assert_eq!(own.body["env"]["SECRET"], "alice-only");

    // Someone who can write the database moves alice's blob to mallory's app.
    set_env(&app, thief, &env_sealed(&app, victim).await).await;
    let stolen = app
        .get(&format!("/api/v1/apps/{thief}/env"), &mallory)
        .await;
    stolen.assert_problem(StatusCode::INTERNAL_SERVER_ERROR, "internal");
    assert!(!stolen.body.to_string().contains("alice-only"));
    // Nor does a deploy of mallory's app carry it anywhere it would open.
    let key = &app.state.key;
    let moved = env_sealed(&app, thief).await;
    assert!(key
        .open(&Binding::app_env("mallory", thief), &moved)
        .is_err());
}

#[tokio::test]
async fn values_sealed_before_bindings_are_sealed_again_once_at_start() {
    let legacy = Legacy::new();
    let app = TestApp::new().await.with_key(legacy.key());
    let key = legacy.key();
    let alice = app.token("alice").await;
    let app_id = id_of(
        &app.create_app(
            &alice,
            json!({"name": "web", "repo_url": "https://github.com/a/web"}),
        )
        .await,
    );
    let user_id: Uuid = sqlx::query_scalar("SELECT id FROM users WHERE username = 'alice'")
        .fetch_one(app.pool())
        .await
        .unwrap();

    // Every kind of row an older berth sealed, as it sealed them.
    set_env(&app, app_id, &legacy.seal_env(&[("SECRET", "old")])).await;
    let release_id = Uuid::now_v7();
    let release = Release {
        id: release_id,
        app: AppRef {
            id: app_id,
            name: "web".into(),
            tenant: "alice".into(),
        },
        commit: "a".repeat(40),
        image: "r/alice/web@sha256:0".into(),
        config: ReleaseConfig {
            port: 8000,
            env: legacy.seal_env(&[("SECRET", "released")]),
            env_version: 1,
            replicas: 1,
            resources: Default::default(),
            health_check_path: None,
        },
    };
    sqlx::query(
        "INSERT INTO releases (id, app_id, commit_sha, image, config) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(release_id)
    .bind(app_id)
    .bind(&release.commit)
    .bind(&release.image)
    .bind(SqlJson(&release.config))
    .execute(app.pool())
    .await
    .unwrap();
    let mut conn = app.pool().acquire().await.unwrap();
    let token = legacy.seal(b"gho_old");
    let account = Account {
        user_id,
        github_id: 7,
        login: "alice-gh",
        token: &token,
        scopes: "repo",
    };
    upsert_account(&mut conn, account).await.unwrap();
    sqlx::query("INSERT INTO app_webhooks (app_id, secret_sealed) VALUES ($1, $2)")
        .bind(app_id)
        .bind(SqlJson(legacy.seal(b"hook-secret")))
        .execute(app.pool())
        .await
        .unwrap();
    let verifier = legacy.seal(b"verifier");
    let new = NewState {
        state: "the-state",
        nonce: "the-nonce",
        verifier: &verifier,
        link_user_id: None,
        browser: false,
    };
    insert_state(app.pool(), new).await.unwrap();
    outbox::enqueue(&mut conn, None, &DeployRequested { release })
        .await
        .unwrap();
    drop(conn);

    // Before the pass, the API refuses what it cannot prove is the app's.
    app.get(&format!("/api/v1/apps/{app_id}/env"), &alice)
        .await
        .assert_problem(StatusCode::INTERNAL_SERVER_ERROR, "internal");

    let report = rebind_legacy(app.pool(), &key).await.unwrap();
    assert!(report.ran);
    assert_eq!(report.unreadable, 0);
    let counts: Vec<(&str, u64)> = report.counts.into_iter().collect();
    assert_eq!(
        counts,
        [
            ("app_webhooks", 1),
            ("apps", 1),
            ("github_accounts", 1),
            ("oauth_states", 1),
            ("outbox", 1),
            ("releases", 1)
        ]
    );

    let env = app.get(&format!("/api/v1/apps/{app_id}/env"), &alice).await;
    assert_eq!(env.body["env"]["SECRET"], "old", "{}", env.body);
    let releases = app
        .get(&format!("/api/v1/apps/{app_id}/releases"), &alice)
        .await;
    assert_eq!(releases.body[0]["config"]["env_names"], json!(["SECRET"]));
    let SqlJson(stored): SqlJson<Sealed> =
        sqlx::query_scalar("SELECT token_sealed FROM github_accounts")
            .fetch_one(app.pool())
            .await
            .unwrap();
    assert_eq!(
        key.open(&Binding::github_token(user_id), &stored).unwrap(),
        b"gho_old"
    );
    let SqlJson(hook): SqlJson<Sealed> =
        sqlx::query_scalar("SELECT secret_sealed FROM app_webhooks")
            .fetch_one(app.pool())
            .await
            .unwrap();
    assert_eq!(
        key.open(&Binding::webhook_secret(app_id), &hook).unwrap(),
        b"hook-secret"
    );
    let (hash, SqlJson(verifier)): (Vec<u8>, SqlJson<Sealed>) =
        sqlx::query_as("SELECT state_hash, pkce_verifier_sealed FROM oauth_states")
            .fetch_one(app.pool())
            .await
            .unwrap();
    assert_eq!(
        key.open(&Binding::pkce_verifier(&hash), &verifier).unwrap(),
        b"verifier"
    );
    let SqlJson(envelope): SqlJson<Envelope> =
        sqlx::query_scalar("SELECT envelope FROM outbox WHERE published_at IS NULL")
            .fetch_one(app.pool())
            .await
            .unwrap();
    let deploy: DeployRequested = envelope.payload().unwrap();
    let env: BTreeMap<String, String> = key
        .open_json(
            &Binding::app_env("alice", app_id),
            &deploy.release.config.env,
        )
        .unwrap();
    assert_eq!(env["SECRET"], "released");

    // The pass ran once: an unbound value that shows up later (from a
    // backup, a captured message) is refused, not bound to its new row.
    let again = rebind_legacy(app.pool(), &key).await.unwrap();
    assert!(!again.ran);
    set_env(&app, app_id, &legacy.seal_env(&[("SECRET", "planted")])).await;
    assert!(!rebind_legacy(app.pool(), &key).await.unwrap().ran);
    let refused = app.get(&format!("/api/v1/apps/{app_id}/env"), &alice).await;
    refused.assert_problem(StatusCode::INTERNAL_SERVER_ERROR, "internal");
    assert!(!refused.body.to_string().contains("planted"));
}

#[tokio::test]
async fn a_value_that_does_not_open_keeps_the_pass_open() {
    let legacy = Legacy::new();
    let app = TestApp::new().await.with_key(legacy.key());
    let alice = app.token("alice").await;
    let app_id = id_of(
        &app.create_app(
            &alice,
            json!({"name": "web", "repo_url": "https://github.com/a/web"}),
        )
        .await,
    );
    // Sealed with some other key: nothing can open it.
    set_env(&app, app_id, &Legacy::new().seal_env(&[])).await;
    let report = rebind_legacy(app.pool(), &legacy.key()).await.unwrap();
    assert_eq!((report.ran, report.unreadable), (true, 1));
    let pass: Option<Value> = sqlx::query_scalar("SELECT counts FROM sealed_value_passes")
        .fetch_optional(app.pool())
        .await
        .unwrap();
    assert_eq!(pass, None, "tried again at the next start");
    assert!(rebind_legacy(app.pool(), &legacy.key()).await.unwrap().ran);
}
