//! One scenario per flow against the fake API server: every request the
//! builder makes is expected (method, path, query, field manager, the body
//! fields that matter) and answered; a missing or an extra one fails.

use super::fake_cluster::*;
use super::fixtures::{grant_key, settings, IMAGE, REGISTRY};
use super::*;
use berth_common::registry_auth::unix_now;
use http::Method;
use serde_json::json;
use std::time::Duration;

#[tokio::test]
async fn a_build_streams_its_context_follows_its_log_and_returns_the_digest() {
    let (build, mut server) = start(settings());
    expect_prepare(&mut server).await;
    let secret = expect_create(&mut server).await;
    expect_started(&mut server).await;
    let (mut socket, log) = expect_attach_and_log(&mut server).await;
    let files = receive_context(&mut socket).await;
    assert!(
        files.contains(&("Dockerfile".into(), "FROM scratch\nCOPY app.txt /\n".into())),
        "{files:?}"
    );
    assert!(
        files.contains(&("app.txt".into(), "hello".into())),
        "{files:?}"
    );
    end_attach(socket).await;
    log.line("\u{1b}[36mINFO\u{1b}[0m[0000] Retrieving image manifest scratch   ");
    log.line("INFO[0001] COPY app.txt /");
    log.line(&format!(
        "INFO[0002] Pushing image to {REGISTRY}/acme/web:0123456789abcdef0123456789abcdef01234567"
    ));
    drop(log);
    expect_finished(
        &mut server,
        json!({"phase": "Succeeded", "containerStatuses":
        kaniko(json!({"terminated": {"exitCode": 0, "reason": "Completed", "message": DIGEST}}))}),
    )
    .await;
    expect_deleted(&mut server).await;
    let (result, lines) = build.result().await;
    assert_eq!(
        result.unwrap(),
        Built::Pushed {
            digest: DIGEST.into()
        }
    );
    server.done().await;
    assert!(
        lines.contains(&"INFO[0000] Retrieving image manifest scratch".to_owned()),
        "{lines:?}"
    );
    assert!(
        lines.contains(&"INFO[0001] COPY app.txt /".to_owned()),
        "{lines:?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("INFO[0002] Pushing image to")),
        "{lines:?}"
    );
    assert!(
        lines.iter().all(|l| !l.contains(&secret.password)),
        "{lines:?}"
    );
}

#[tokio::test]
async fn a_failed_build_quotes_its_last_lines_and_still_deletes_the_pod() {
    let (build, mut server) = start(settings());
    expect_prepare(&mut server).await;
    expect_create(&mut server).await;
    expect_started(&mut server).await;
    let (mut socket, log) = expect_attach_and_log(&mut server).await;
    receive_context(&mut socket).await;
    // The log ends before the attach does.
    log.line("INFO[0003] RUN pip install flaskk");
    log.line("ERROR: No matching distribution found for flaskk");
    log.line("error building image: error building stage: failed to execute command: waiting for process to exit: exit status 1");
    drop(log);
    end_attach(socket).await;
    expect_finished(
        &mut server,
        json!({"phase": "Failed", "containerStatuses":
        kaniko(json!({"terminated": {"exitCode": 1, "reason": "Error"}}))}),
    )
    .await;
    expect_deleted(&mut server).await;
    let (result, lines) = build.result().await;
    assert_eq!(
        result.unwrap_err().to_string(),
        "the build failed at `RUN pip install flaskk`: ERROR: No matching distribution found for flaskk (exit status 1)"
    );
    assert!(lines.contains(&"ERROR: No matching distribution found for flaskk".to_owned()));
    server.done().await;
}

#[tokio::test]
async fn a_build_past_its_deadline_is_a_timeout_and_its_pod_is_deleted() {
    let (build, mut server) = start(settings());
    expect_prepare(&mut server).await;
    expect_create(&mut server).await;
    expect_started(&mut server).await;
    let (mut socket, log) = expect_attach_and_log(&mut server).await;
    receive_context(&mut socket).await;
    end_attach(socket).await;
    log.line("INFO[0004] RUN sleep 100000");
    drop(log);
    expect_finished(
        &mut server,
        json!({"phase": "Failed", "reason": "DeadlineExceeded",
        "message": "Pod was active on the node longer than the specified deadline",
        "containerStatuses": kaniko(json!({"terminated": {"exitCode": 137, "reason": "Error"}}))}),
    )
    .await;
    expect_deleted(&mut server).await;
    let (result, _) = build.result().await;
    assert_eq!(
        result.unwrap_err().to_string(),
        "the deadline of 15m was exceeded while building"
    );
    server.done().await;
}

#[tokio::test]
async fn a_kaniko_image_that_cannot_be_pulled_fails_with_its_name() {
    let (build, mut server) = start(settings());
    expect_prepare(&mut server).await;
    expect_create(&mut server).await;
    expect_finished(
        &mut server,
        json!({"phase": "Pending", "containerStatuses": kaniko(json!({"waiting": {
        "reason": "ErrImagePull", "message": "failed to pull and unpack image: not found"}}))}),
    )
    .await;
    expect_deleted(&mut server).await;
    let (result, _) = build.result().await;
    assert_eq!(
        result.unwrap_err().to_string(),
        format!(
            "the build could not start: the Kaniko image `{IMAGE}` could not be pulled: \
                 ErrImagePull (failed to pull and unpack image: not found)"
        )
    );
    server.done().await;
}

#[tokio::test]
async fn a_pod_kubernetes_never_stops_meets_the_workers_own_timer() {
    let mut settings = settings();
    settings.deadline = Duration::from_secs(1);
    settings.grace = Duration::ZERO;
    settings.poll_interval = Duration::from_millis(50);
    let (build, mut server) = start(settings);
    expect_prepare(&mut server).await;
    server.expect(Method::GET, POD).await.respond_not_found();
    server
        .expect(Method::PATCH, SECRET)
        .await
        .assert_server_side_apply()
        .respond_applied();
    let call = server
        .expect(Method::POST, &format!("{NS}/pods"))
        .await
        .assert_body("/spec/activeDeadlineSeconds", 1);
    let body = call.json();
    call.respond_json(body);
    // Never scheduled: Pending until the worker gives up and deletes it.
    loop {
        let call = server.next("GET or DELETE of the pod").await;
        assert_eq!(call.path(), POD);
        if call.method == Method::DELETE {
            call.respond_json(pod(json!({"phase": "Pending"})));
            break;
        }
        assert_eq!(call.method, Method::GET);
        call.respond_json(pod(json!({"phase": "Pending"})));
    }
    expect_secret_deleted(&mut server, SECRET).await;
    let (result, _) = build.result().await;
    assert_eq!(
        result.unwrap_err().to_string(),
        "the deadline of 1s was exceeded while building"
    );
    server.done().await;
}

#[tokio::test]
async fn a_build_that_is_dropped_still_deletes_its_pod() {
    let (build, mut server) = start(settings());
    expect_prepare(&mut server).await;
    expect_create(&mut server).await;
    let running = server.expect(Method::GET, POD).await;
    // The worker's own deadline or its shutdown drops the build here.
    build.task.abort();
    drop(running);
    expect_deleted(&mut server).await;
    server.done().await;
}

#[tokio::test]
async fn a_pod_left_by_an_earlier_attempt_is_replaced_and_a_full_quota_is_reported() {
    let (build, mut server) = start(settings());
    expect_prepare(&mut server).await;
    // Stamped long ago: the attempt that made it is gone.
    server
        .expect(Method::GET, POD)
        .await
        .respond_json(stamped(json!({"phase": "Running"}), 120));
    server
        .expect(Method::DELETE, POD)
        .await
        .assert_body("/gracePeriodSeconds", 0)
        .assert_body("/propagationPolicy", "Background")
        .respond_json(pod(json!({"phase": "Running"})));
    server
        .expect(Method::GET, POD)
        .await
        .respond_json(pod(json!({"phase": "Running"})));
    server.expect(Method::GET, POD).await.respond_not_found();
    expect_build_secret(&mut server, NS, "acme").await;
    server
        .expect(Method::POST, &format!("{NS}/pods"))
        .await
        .respond_status(
        403,
        "Forbidden",
        "pods \"build-0190a0b1111172228333444455556666\" is forbidden: exceeded quota: berth-quota",
    );
    // No Pod, but its Secret was made: it goes.
    expect_secret_deleted(&mut server, SECRET).await;
    let (result, lines) = build.result().await;
    assert_eq!(
        result.unwrap_err().to_string(),
        "the Kubernetes API failed (creating the build pod: pods \"build-0190a0b1111172228333444455556666\" \
         is forbidden: exceeded quota: berth-quota); try again later"
    );
    assert!(
        lines.iter().any(|l| l.contains("an earlier attempt left")),
        "{lines:?}"
    );
    server.done().await;
}

/// No Pod is made (a full quota): the build's Secret still goes.
async fn secret_of_a_refused_build(tenant: &str) -> BuildSecret {
    let (build, mut server) = start_for(tenant, settings());
    let namespace = format!("/api/v1/namespaces/berth-{tenant}-build");
    let pod = format!("{namespace}/pods/build-0190a0b1111172228333444455556666");
    for path in [
        namespace.clone(),
        format!("{namespace}/resourcequotas/berth-quota"),
        format!("{namespace}/limitranges/berth-limits"),
        format!(
            "/apis/networking.k8s.io/v1/namespaces/berth-{tenant}-build/networkpolicies/berth-default-deny"
        ),
        format!("{namespace}/serviceaccounts/berth-workload"),
    ] {
        server.expect(Method::PATCH, &path).await.respond_applied();
    }
    server.expect(Method::GET, &pod).await.respond_not_found();
    let secret = expect_build_secret(&mut server, &namespace, tenant).await;
    server
        .expect(Method::POST, &format!("{namespace}/pods"))
        .await
        .respond_status(403, "Forbidden", "exceeded quota: berth-quota");
    expect_secret_deleted(
        &mut server,
        &format!("{namespace}/secrets/build-0190a0b1111172228333444455556666-registry"),
    )
    .await;
    assert!(build.result().await.0.is_err());
    server.done().await;
    secret
}

#[tokio::test]
async fn each_build_gets_a_secret_of_its_own_tenants_push_grant_only() {
    let acme = secret_of_a_refused_build("acme").await;
    let other = secret_of_a_refused_build("other").await;
    // Each names only its own tenant (checked against the installation's
    // key by `expect_build_secret`), so they differ, and neither is a
    // platform-wide user.
    assert_eq!(acme.username, "push.acme");
    assert_eq!(other.username, "push.other");
    assert_ne!(acme.password, other.password);
    assert_eq!(
        grant_key()
            .verify(&acme.username, &other.password, unix_now())
            .unwrap_err(),
        berth_common::registry_auth::GrantError::Forged
    );
}

#[tokio::test]
async fn a_pod_that_ends_before_it_runs_shows_its_output() {
    let (build, mut server) = start(settings());
    expect_prepare(&mut server).await;
    expect_create(&mut server).await;
    expect_finished(
        &mut server,
        json!({"phase": "Failed", "containerStatuses":
            kaniko(json!({"terminated": {"exitCode": 1, "reason": "Error"}}))}),
    )
    .await;
    let log = server
        .expect(Method::GET, &format!("{POD}/log"))
        .await
        .assert_query("container", "kaniko")
        .respond_stream();
    log.line("Error: unknown flag: --frobnicate");
    drop(log);
    expect_deleted(&mut server).await;
    let (result, lines) = build.result().await;
    assert_eq!(
        result.unwrap_err().to_string(),
        "the build failed at the start, before any step ran: unknown flag: --frobnicate"
    );
    assert!(lines.contains(&"Error: unknown flag: --frobnicate".to_owned()));
    server.done().await;
}

#[tokio::test]
async fn a_refused_apply_stops_the_build_before_any_pod() {
    let (build, mut server) = start(settings());
    server.expect(Method::PATCH, NS).await.respond_status(
        403,
        "Forbidden",
        "namespaces \"berth-acme-build\" is forbidden: User \"system:serviceaccount:berth:build-worker\" cannot patch resource \"namespaces\"",
    );
    let (result, _) = build.result().await;
    assert_eq!(
        result.unwrap_err().to_string(),
        "the Kubernetes API failed (applying Namespace `berth-acme-build`: namespaces \
         \"berth-acme-build\" is forbidden: User \"system:serviceaccount:berth:build-worker\" \
         cannot patch resource \"namespaces\"); try again later"
    );
    server.done().await;
}

#[tokio::test]
async fn a_hiccup_of_the_api_server_is_retried_and_a_deleted_pod_is_reported() {
    let (build, mut server) = start(settings());
    expect_prepare(&mut server).await;
    expect_create(&mut server).await;
    server.expect(Method::GET, POD).await.respond_status(
        503,
        "ServiceUnavailable",
        "the server is currently unable to handle the request",
    );
    server.expect(Method::GET, POD).await.respond_not_found();
    expect_deleted(&mut server).await;
    let (result, _) = build.result().await;
    assert_eq!(
        result.unwrap_err().to_string(),
        "the build could not start: the build pod build-0190a0b1111172228333444455556666 was \
         deleted before the build ended"
    );
    server.done().await;
}

/// The build Pod with `status`, stamped alive `ago_secs` ago.
fn stamped(status: serde_json::Value, ago_secs: i64) -> serde_json::Value {
    let mut pod = pod(status);
    let at = chrono::Utc::now() - chrono::Duration::seconds(ago_secs);
    pod["metadata"]["annotations"] = json!({"berth.dev/attempt-alive-at": at.to_rfc3339()});
    pod
}

/// F12: a duplicate delivery of a build whose attempt is alive (on this
/// worker or another) neither deletes that attempt's Pod nor fails.
#[tokio::test]
async fn a_duplicate_attempt_leaves_a_live_attempts_pod_alone() {
    let (build, mut server) = start(settings());
    expect_prepare(&mut server).await;
    server
        .expect(Method::GET, POD)
        .await
        .respond_json(stamped(json!({"phase": "Running"}), 5));
    let (result, _) = build.result().await;
    let error = result.unwrap_err();
    assert!(
        matches!(error, BuildError::AttemptInProgress(ref pod) if pod == "build-0190a0b1111172228333444455556666"),
        "{error}"
    );
    server.done().await;
}

#[tokio::test]
async fn a_finished_pod_is_replaced_even_when_freshly_stamped() {
    let (build, mut server) = start(settings());
    expect_prepare(&mut server).await;
    server
        .expect(Method::GET, POD)
        .await
        .respond_json(stamped(json!({"phase": "Failed"}), 1));
    server
        .expect(Method::DELETE, POD)
        .await
        .respond_json(pod(json!({"phase": "Failed"})));
    server.expect(Method::GET, POD).await.respond_not_found();
    expect_build_secret(&mut server, NS, "acme").await;
    server
        .expect(Method::POST, &format!("{NS}/pods"))
        .await
        .respond_status(403, "Forbidden", "exceeded quota: berth-quota");
    expect_secret_deleted(&mut server, SECRET).await;
    let (result, _) = build.result().await;
    assert!(matches!(result, Err(BuildError::Kubernetes { .. })));
    server.done().await;
}

/// The running attempt stamps its Pod while it waits for the build.
#[tokio::test]
async fn a_running_attempt_stamps_its_pod_as_alive() {
    let mut settings = settings();
    settings.lease_renew = Duration::from_millis(200);
    settings.poll_interval = Duration::from_secs(5);
    let (build, mut server) = start(settings);
    expect_prepare(&mut server).await;
    expect_create(&mut server).await;
    // The first look at the Pod: still pending; the next one is 5 s away,
    // so the renewal comes first.
    server
        .expect(Method::GET, POD)
        .await
        .respond_json(pod(json!({"phase": "Pending"})));
    let stamp = server.expect(Method::PATCH, POD).await.assert_body_matches(
        "/metadata/annotations/berth.dev~1attempt-alive-at",
        |at| {
            at.as_str()
                .and_then(|at| chrono::DateTime::parse_from_rfc3339(at).ok())
                .is_some_and(|at| (chrono::Utc::now() - at.to_utc()).num_seconds() < 5)
        },
    );
    let body = stamp.json();
    stamp.respond_json(body);
    build.task.abort();
    expect_deleted(&mut server).await;
    server.done().await;
}
