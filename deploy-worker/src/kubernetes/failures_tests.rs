//! Crash and health failures of the apps' pods, as the Kubernetes driver
//! sees them, against a scripted API server: each look lists the
//! namespaces that run berth's apps, then their pods.

use super::failures::{look, Seen};
use crate::crash_loop::{Failure, FailureKind};
use berth_common::kube_fake::{self, ApiServer};
use chrono::{DateTime, Duration, Utc};
use http::Method;
use serde_json::{json, Value};
use uuid::Uuid;

const APP: &str = "0190c2d5-0000-7000-8000-000000000001";
const DEPLOYMENT: &str = "0190c2d5-0000-7000-8000-0000000000d1";

fn pod(name: &str, made: DateTime<Utc>, restarts: i32, last: Value, ready: Value) -> Value {
    json!({
        "metadata": {"name": name, "namespace": "berth-acme", "creationTimestamp": made.to_rfc3339(),
            "labels": {"berth.dev/app": APP, "berth.dev/app-name": "web", "berth.dev/tenant": "acme",
                       "berth.dev/deployment": DEPLOYMENT}},
        "status": {
            "conditions": [ready],
            "containerStatuses": [{"name": "app", "image": "x", "imageID": "", "ready": false,
                "restartCount": restarts, "state": {"running": {"startedAt": made.to_rfc3339()}},
                "lastState": last}],
        },
    })
}

fn ended(code: i32, reason: &str, at: DateTime<Utc>) -> Value {
    json!({"terminated": {"exitCode": code, "reason": reason, "finishedAt": at.to_rfc3339()}})
}

fn ready(status: bool, since: DateTime<Utc>) -> Value {
    json!({"type": "Ready", "status": if status { "True" } else { "False" },
           "lastTransitionTime": since.to_rfc3339()})
}

async fn answer(server: &mut ApiServer, pods: Vec<Value>) {
    server
        .expect(Method::GET, "/apis/apps/v1/deployments")
        .await
        .assert_query("labelSelector", "app.kubernetes.io/managed-by=berth,berth.dev/app")
        .respond_json(json!({"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadataList",
            "metadata": {}, "items": [{"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata",
                "metadata": {"name": "web", "namespace": "berth-acme"}}]}));
    server
        .expect(Method::GET, "/api/v1/namespaces/berth-acme/pods")
        .await
        .assert_query(
            "labelSelector",
            "app.kubernetes.io/managed-by=berth,berth.dev/app",
        )
        .respond_json(
            json!({"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": pods}),
        );
}

/// One look, answered with `pods`.
async fn looked(
    seen: &mut Seen,
    started: DateTime<Utc>,
    now: DateTime<Utc>,
    pods: Vec<Value>,
) -> Vec<Failure> {
    let (client, mut server) = kube_fake::pair();
    let answering = tokio::spawn(async move {
        answer(&mut server, pods).await;
        server.done().await;
    });
    let failures = look(&client, seen, started, now).await.unwrap();
    answering.await.unwrap();
    failures
}

#[tokio::test]
async fn each_restart_since_the_last_look_is_a_crash_with_how_the_run_ended() {
    let started = Utc::now() - Duration::minutes(10);
    let now = Utc::now();
    let made = started + Duration::minutes(1);
    // A ready pod that restarted `restarts` times, its last run `last`.
    let restarted =
        |name: &str, made, restarts, last| pod(name, made, restarts, last, ready(true, made));
    let mut seen = Seen::default();
    // Made after berth started looking: its first restart counts.
    let first = looked(
        &mut seen,
        started,
        now,
        vec![restarted("web-1", made, 1, ended(1, "Error", now))],
    )
    .await;
    assert_eq!(first.len(), 1);
    let crash = &first[0];
    assert_eq!(crash.deployment_id.to_string(), DEPLOYMENT);
    assert_eq!(
        (crash.app.name.as_str(), crash.app.tenant.as_str()),
        ("web", "acme")
    );
    assert_eq!(
        crash.kind,
        FailureKind::Crashed {
            instance: "web-1".into(),
            exit_code: Some(1),
            oom: false
        }
    );
    // Nothing new: nothing reported again.
    let same = looked(
        &mut seen,
        started,
        now,
        vec![restarted("web-1", made, 1, ended(1, "Error", now))],
    )
    .await;
    assert!(same.is_empty(), "{same:?}");
    // Killed for its memory.
    let oom = looked(
        &mut seen,
        started,
        now,
        vec![restarted("web-1", made, 2, ended(137, "OOMKilled", now))],
    )
    .await;
    assert_eq!(
        oom[0].kind,
        FailureKind::Crashed {
            instance: "web-1".into(),
            exit_code: Some(137),
            oom: true
        }
    );
    // A pod older than the worker's first look: its past restarts are not
    // news, only those after.
    let old = started - Duration::hours(1);
    let mut fresh = Seen::default();
    let past = looked(
        &mut fresh,
        started,
        now,
        vec![restarted("web-2", old, 7, ended(1, "Error", old))],
    )
    .await;
    assert!(past.is_empty(), "{past:?}");
    let next = looked(
        &mut fresh,
        started,
        now,
        vec![restarted("web-2", old, 8, ended(2, "Error", now))],
    )
    .await;
    assert_eq!(next.len(), 1);
}

#[tokio::test]
async fn a_deployment_none_of_whose_pods_was_ready_for_a_minute_is_unhealthy() {
    let now = Utc::now();
    let started = now - Duration::minutes(10);
    let made = now - Duration::minutes(5);
    // A running pod, not ready for `secs` (`None`: ready).
    let pod_unready_for = |name: &str, secs: Option<i64>| {
        let condition = match secs {
            Some(secs) => ready(false, now - Duration::seconds(secs)),
            None => ready(true, made),
        };
        pod(name, made, 0, json!({}), condition)
    };
    let mut seen = Seen::default();
    let recently = looked(
        &mut seen,
        started,
        now,
        vec![
            pod_unready_for("web-1", Some(90)),
            pod_unready_for("web-2", Some(20)),
        ],
    )
    .await;
    assert!(
        recently.is_empty(),
        "one pod failed for only 20 s: {recently:?}"
    );
    let one_ready = looked(
        &mut seen,
        started,
        now,
        vec![
            pod_unready_for("web-1", Some(90)),
            pod_unready_for("web-2", None),
        ],
    )
    .await;
    assert!(one_ready.is_empty(), "{one_ready:?}");
    let failing = looked(
        &mut seen,
        started,
        now,
        vec![
            pod_unready_for("web-1", Some(90)),
            pod_unready_for("web-2", Some(61)),
        ],
    )
    .await;
    assert_eq!(failing.len(), 1);
    assert!(matches!(failing[0].kind, FailureKind::Unhealthy { .. }));
    assert_eq!(
        failing[0].deployment_id,
        DEPLOYMENT.parse::<Uuid>().unwrap()
    );
}
