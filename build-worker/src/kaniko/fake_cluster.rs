//! The cluster side of the scenario tests: a build started against the fake
//! API server, and the requests each step of a build makes, asserted and
//! answered.

use super::fixtures::{grant_key, job_of, IMAGE, REGISTRY};
use super::{BuildError, Built, KanikoBuilder, KanikoSettings};
use crate::buildlog::{BuildLog, LogSettings};
use crate::docker::ImageBuilder;
use async_trait::async_trait;
use base64::Engine;
use berth_common::kube_fake::{pair, ApiServer, Call, ServerSocket, StreamWriter};
use berth_common::logs::LogError;
use berth_common::registry_auth::{unix_now, Access, Grant};
use berth_common::LogSink;
use berth_proto::LogRecord;
use futures::{SinkExt, StreamExt};
use http::Method;
use serde_json::{json, Value};
use std::io::Read;
use std::sync::{Arc, Mutex};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;

pub(super) const NS: &str = "/api/v1/namespaces/berth-acme-build";
pub(super) const POD: &str =
    "/api/v1/namespaces/berth-acme-build/pods/build-0190a0b1111172228333444455556666";
pub(super) const SECRET: &str =
    "/api/v1/namespaces/berth-acme-build/secrets/build-0190a0b1111172228333444455556666-registry";
pub(super) const DIGEST: &str =
    "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

/// The build log, in memory.
#[derive(Default)]
struct Lines(Mutex<Vec<String>>);

#[async_trait]
impl LogSink for Lines {
    async fn append(
        &self,
        _app: uuid::Uuid,
        _key: &str,
        record: &LogRecord,
    ) -> Result<i64, LogError> {
        let mut lines = self.0.lock().unwrap();
        lines.push(record.line.clone());
        Ok(lines.len() as i64 - 1)
    }
}

pub(super) struct Build {
    pub(super) task: JoinHandle<Result<Built, BuildError>>,
    lines: Arc<Lines>,
    _dir: tempfile::TempDir,
}

impl Build {
    pub(super) async fn result(self) -> (Result<Built, BuildError>, Vec<String>) {
        let result = self.task.await.expect("the build task");
        let lines = self.lines.0.lock().unwrap().clone();
        (result, lines)
    }
}

/// Starts a build of a context holding a Dockerfile, against the fake.
pub(super) fn start(settings: KanikoSettings) -> (Build, ApiServer) {
    start_for("acme", settings)
}

/// Like [`start`], for an app of `tenant`.
pub(super) fn start_for(tenant: &str, settings: KanikoSettings) -> (Build, ApiServer) {
    let (client, server) = pair();
    let dir = tempfile::tempdir().unwrap();
    let app = dir.path().join("app");
    std::fs::create_dir(&app).unwrap();
    std::fs::write(app.join("Dockerfile"), "FROM scratch\nCOPY app.txt /\n").unwrap();
    std::fs::write(app.join("app.txt"), "hello").unwrap();
    let context = dir.path().join("context.tar");
    crate::context::write_context(&app, &app, "", &[], &context).unwrap();
    let lines = Arc::new(Lines::default());
    let sink: Arc<dyn LogSink> = lines.clone();
    let job = job_of(tenant, context);
    let task = tokio::spawn(async move {
        let log = BuildLog::start(sink, job.app.id, job.deployment_id, &LogSettings::default());
        let result = KanikoBuilder::new(client, settings).build(&job, &log).await;
        log.finish().await;
        result
    });
    (
        Build {
            task,
            lines,
            _dir: dir,
        },
        server,
    )
}

/// The build namespace and its fences, server-side applied; no registry
/// Secret shared by the tenant's builds.
pub(super) async fn expect_prepare(server: &mut ApiServer) {
    server
        .expect(Method::PATCH, NS)
        .await
        .assert_server_side_apply()
        .assert_body(
            "/metadata/labels/pod-security.kubernetes.io~1enforce",
            "baseline",
        )
        .respond_applied();
    for path in [
        format!("{NS}/resourcequotas/berth-quota"),
        format!("{NS}/limitranges/berth-limits"),
        "/apis/networking.k8s.io/v1/namespaces/berth-acme-build/networkpolicies/berth-default-deny"
            .to_owned(),
    ] {
        server
            .expect(Method::PATCH, &path)
            .await
            .assert_server_side_apply()
            .respond_applied();
    }
    server
        .expect(
            Method::PATCH,
            &format!("{NS}/serviceaccounts/berth-workload"),
        )
        .await
        .assert_server_side_apply()
        .assert_body("/automountServiceAccountToken", false)
        .respond_applied();
}

/// What a build's registry Secret holds: the one registry it names, and
/// the grant it carries there, checked with the installation's key.
#[derive(Debug)]
pub(super) struct BuildSecret {
    pub(super) registries: Vec<String>,
    pub(super) username: String,
    pub(super) password: String,
    pub(super) grant: Grant,
}

/// Reads the dockerconfigjson of an applied Secret.
pub(super) fn build_secret_of(call: &Call) -> BuildSecret {
    let body = call.json();
    assert_eq!(body["type"], "kubernetes.io/dockerconfigjson", "{body:#}");
    let data = body["data"][".dockerconfigjson"].as_str().unwrap();
    let config: Value = serde_json::from_slice(
        &base64::engine::general_purpose::STANDARD
            .decode(data)
            .unwrap(),
    )
    .unwrap();
    let auths = config["auths"].as_object().unwrap();
    let (host, auth) = auths.iter().next().unwrap();
    let username = auth["username"].as_str().unwrap().to_owned();
    let password = auth["password"].as_str().unwrap().to_owned();
    let basic = base64::engine::general_purpose::STANDARD
        .decode(auth["auth"].as_str().unwrap())
        .unwrap();
    assert_eq!(basic, format!("{username}:{password}").into_bytes());
    let grant = grant_key()
        .verify(&username, &password, unix_now())
        .unwrap_or_else(|e| panic!("{username}: {e}"));
    assert_eq!(host, REGISTRY);
    BuildSecret {
        registries: auths.keys().cloned().collect(),
        username,
        password,
        grant,
    }
}

/// The build's own registry Secret, applied in `namespace`: a push grant
/// of `tenant` that lives about as long as the Pod may run.
pub(super) async fn expect_build_secret(
    server: &mut ApiServer,
    namespace: &str,
    tenant: &str,
) -> BuildSecret {
    let call = server
        .expect(
            Method::PATCH,
            &format!("{namespace}/secrets/build-0190a0b1111172228333444455556666-registry"),
        )
        .await
        .assert_server_side_apply()
        .assert_body("/metadata/labels/berth.dev~1role", "build")
        .assert_body(
            "/metadata/labels/berth.dev~1deployment",
            "0190a0b1-1111-7222-8333-444455556666",
        );
    let secret = build_secret_of(&call);
    call.respond_applied();
    assert_eq!(secret.registries, [REGISTRY]);
    assert_eq!(secret.grant.tenant, tenant);
    assert_eq!(secret.grant.access, Access::Push);
    let lifetime = secret.grant.expires_at - unix_now();
    assert!((955..=960).contains(&lifetime), "{lifetime}");
    secret
}

/// No Pod left by an earlier attempt, the build's registry Secret, then
/// the Pod that mounts it.
pub(super) async fn expect_create(server: &mut ApiServer) -> BuildSecret {
    server.expect(Method::GET, POD).await.respond_not_found();
    let secret = expect_build_secret(server, NS, "acme").await;
    let call = server
        .expect(Method::POST, &format!("{NS}/pods"))
        .await
        .assert_body("/metadata/name", "build-0190a0b1111172228333444455556666")
        .assert_body_matches("/metadata/annotations/berth.dev~1attempt-alive-at", |at| {
            at.as_str()
                .and_then(|at| chrono::DateTime::parse_from_rfc3339(at).ok())
                .is_some()
        })
        .assert_body("/metadata/labels/berth.dev~1role", "build")
        .assert_body("/spec/automountServiceAccountToken", false)
        .assert_body("/spec/activeDeadlineSeconds", 900)
        .assert_body("/spec/restartPolicy", "Never")
        .assert_body("/spec/containers/0/image", IMAGE)
        .assert_body("/spec/containers/0/stdin", true)
        .assert_body("/spec/containers/0/args/0", "--context=tar://stdin")
        .assert_body("/spec/containers/0/resources/limits/memory", "4Gi")
        .assert_body(
            "/spec/volumes/0/secret/secretName",
            "build-0190a0b1111172228333444455556666-registry",
        );
    let body = call.json();
    call.respond_json(body);
    secret
}

pub(super) fn pod(status: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": "build-0190a0b1111172228333444455556666", "namespace": "berth-acme-build"},
           "status": status})
}

pub(super) fn kaniko(state: Value) -> Value {
    json!([{"name": "kaniko", "image": IMAGE, "imageID": "", "ready": false, "restartCount": 0, "state": state}])
}

/// Pending while the image is pulled, then running.
pub(super) async fn expect_started(server: &mut ApiServer) {
    server
        .expect(Method::GET, POD)
        .await
        .respond_json(pod(json!({"phase": "Pending",
        "containerStatuses": kaniko(json!({"waiting": {"reason": "ContainerCreating"}}))})));
    server
        .expect(Method::GET, POD)
        .await
        .respond_json(pod(json!({"phase": "Running",
        "containerStatuses": kaniko(json!({"running": {"startedAt": "2026-01-01T00:00:00Z"}}))})));
}

/// The attach (stdin only) and the followed log, in whichever order they come.
pub(super) async fn expect_attach_and_log(server: &mut ApiServer) -> (ServerSocket, StreamWriter) {
    let attach = server
        .expect_unordered(Method::GET, &format!("{POD}/attach"))
        .await
        .assert_query("container", "kaniko")
        .assert_query("stdin", "true");
    assert_ne!(attach.query("stdout").as_deref(), Some("true"));
    let log = server
        .expect_unordered(Method::GET, &format!("{POD}/log"))
        .await
        .assert_query("container", "kaniko")
        .assert_query("follow", "true");
    let socket = attach.respond_upgrade().await;
    (socket, log.respond_stream())
}

/// Reads stdin until the client closes it; returns the files of the context.
pub(super) async fn receive_context(socket: &mut ServerSocket) -> Vec<(String, String)> {
    let mut received = Vec::new();
    while let Some(Ok(message)) = socket.next().await {
        match message {
            Message::Binary(data) if data.first() == Some(&0) => {
                received.extend_from_slice(&data[1..])
            }
            // v5.channel.k8s.io: the client closed stdin.
            Message::Binary(data) if data[..] == [255, 0] => break,
            Message::Close(_) => break,
            _ => {}
        }
    }
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(received.as_slice()));
    tar.entries()
        .expect("stdin carries a gzipped tar")
        .map(|entry| {
            let mut entry = entry.unwrap();
            let path = entry.path().unwrap().to_string_lossy().into_owned();
            let mut text = String::new();
            entry.read_to_string(&mut text).unwrap();
            (path, text)
        })
        .collect()
}

pub(super) async fn end_attach(mut socket: ServerSocket) {
    let mut status = vec![3];
    status.extend_from_slice(br#"{"metadata":{},"status":"Success"}"#);
    socket.send(Message::Binary(status.into())).await.unwrap();
    socket.close(None).await.ok();
}

pub(super) async fn expect_finished(server: &mut ApiServer, status: Value) {
    server
        .expect(Method::GET, POD)
        .await
        .respond_json(pod(status));
}

/// The Pod, then its registry Secret.
pub(super) async fn expect_deleted(server: &mut ApiServer) {
    let call = server
        .expect(Method::DELETE, POD)
        .await
        .assert_body("/gracePeriodSeconds", 0);
    call.respond_json(pod(json!({"phase": "Succeeded"})));
    expect_secret_deleted(server, SECRET).await;
}

pub(super) async fn expect_secret_deleted(server: &mut ApiServer, path: &str) {
    server
        .expect(Method::DELETE, path)
        .await
        .respond_json(json!({"kind": "Status", "apiVersion": "v1", "status": "Success"}));
}
