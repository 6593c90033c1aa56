//! The `berth-backend` binary: `migrate` prepares the database and the
//! broker, `serve` answers until SIGTERM and then stops cleanly.

mod common;

use berth_common::testing::TestVhost;
use berth_proto::SecretKey;
use common::TestDb;
use lapin::options::QueueDeclareOptions;
use lapin::types::FieldTable;
use serde_json::json;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn backend(db: &TestDb, amqp_url: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_berth-backend"));
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RUST_LOG", "info")
        .env("BERTH_DATABASE_URL", db.url())
        .env("BERTH_AMQP_URL", amqp_url)
        .env("BERTH_SECRET_KEY", SecretKey::generate_base64())
        .env("BERTH_KAFKA_BROKERS", "127.0.0.1:1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    command
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test(flavor = "multi_thread")]
async fn migrate_then_serve_until_sigterm() {
    let db = TestDb::empty().await;
    let vhost = tokio::task::spawn_blocking(TestVhost::new).await.unwrap();
    let amqp_url = vhost.url.clone();

    let migrate = backend(&db, &amqp_url).arg("migrate").output().unwrap();
    assert!(
        migrate.status.success(),
        "{}",
        String::from_utf8_lossy(&migrate.stderr)
    );
    let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert!(applied >= 1);
    let connection = lapin::Connection::connect(&amqp_url, Default::default())
        .await
        .unwrap();
    let channel = connection.create_channel().await.unwrap();
    for queue in [
        "berth.builds",
        "berth.deploys",
        "berth.inform",
        "berth.inform.dead",
    ] {
        channel
            .queue_declare(
                queue.into(),
                QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .unwrap_or_else(|e| panic!("{queue} was not declared: {e}"));
    }

    // A short JWT secret is refused, and so is a long one that holds little.
    for secret in ["too-short".to_owned(), "x".repeat(40)] {
        let weak = backend(&db, &amqp_url)
            .env("BERTH_JWT_SECRET", secret)
            .output()
            .unwrap();
        assert!(!weak.status.success());
        assert!(String::from_utf8_lossy(&weak.stderr).contains("BERTH_JWT_SECRET"));
    }

    let port = free_port();
    let ops_port = free_port();
    let mut child = backend(&db, &amqp_url)
        // 32 random bytes in hex, as `openssl rand -hex 32` makes them.
        .env(
            "BERTH_JWT_SECRET",
            format!(
                "{}{}",
                uuid::Uuid::new_v4().simple(),
                uuid::Uuid::new_v4().simple()
            ),
        )
        .env("BERTH_LISTEN", format!("127.0.0.1:{port}"))
        .env("BERTH_OPS_ADDR", format!("127.0.0.1:{ops_port}"))
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ready = http.get(format!("{base}/readyz")).send().await;
        if ready.is_ok_and(|r| r.status().is_success()) {
            break;
        }
        assert!(Instant::now() < deadline, "never ready");
        assert!(child.try_wait().unwrap().is_none(), "the server exited");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let registered = http
        .post(format!("{base}/api/v1/auth/register"))
        .json(&json!({"username": "alice", "email": "a@example.com", "password": "correct horse battery"}))
        .send()
        .await
        .unwrap();
    assert_eq!(registered.status(), 201);
    assert_eq!(
        registered.headers()["x-content-type-options"],
        "nosniff",
        "security headers on API answers"
    );
    // L3: /metrics is on the ops listener, not on the public one.
    let public = http.get(format!("{base}/metrics")).send().await.unwrap();
    assert_eq!(public.status(), 404);
    let ops = format!("http://127.0.0.1:{ops_port}");
    let metrics = http.get(format!("{ops}/metrics")).send().await.unwrap();
    assert_eq!(metrics.status(), 200);
    let text = metrics.text().await.unwrap();
    assert!(text.contains("berth_"), "{text}");
    for probe in ["/healthz", "/readyz"] {
        let answer = http.get(format!("{ops}{probe}")).send().await.unwrap();
        assert_eq!(answer.status(), 200, "{probe} on the ops listener");
    }

    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "did not stop after SIGTERM");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert!(status.success(), "{status}: {stderr}");
    assert!(stderr.contains("stopped"), "{stderr}");
}
