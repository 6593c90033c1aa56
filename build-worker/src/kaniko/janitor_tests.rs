//! F18: the janitor against the fake API server: only the Pods of attempts
//! that died go, each with its registry Secret.

use super::fixtures::settings;
use super::janitor::{abandoned, sweep};
use berth_common::kube_fake;
use chrono::{Duration as Age, Utc};
use http::Method;
use k8s_openapi::api::core::v1::Pod;
use serde_json::{json, Value};
use std::time::Duration;

const RENEW: Duration = Duration::from_secs(10);

/// A build Pod in `berth-acme-build`, stamped `stamped_ago` (none: no
/// stamp) and made `made_ago`.
fn build_pod(name: &str, stamped_ago: Option<i64>, made_ago: i64, phase: &str) -> Value {
    let mut annotations = json!({});
    if let Some(ago) = stamped_ago {
        annotations["berth.dev/attempt-alive-at"] =
            json!((Utc::now() - Age::seconds(ago)).to_rfc3339());
    }
    json!({"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": name, "namespace": "berth-acme-build",
                        "annotations": annotations,
                        "creationTimestamp": (Utc::now() - Age::seconds(made_ago))
                            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)},
           "status": {"phase": phase}})
}

fn pod(value: Value) -> Pod {
    serde_json::from_value(value).unwrap()
}

#[test]
fn a_pod_is_abandoned_when_its_stamp_is_three_renewals_old() {
    let max_age = Duration::from_secs(960);
    let now = Utc::now();
    let alive = pod(build_pod("a", Some(5), 600, "Running"));
    assert!(!abandoned(&alive, RENEW, max_age, now));
    let finished_but_read = pod(build_pod("b", Some(5), 600, "Succeeded"));
    assert!(
        !abandoned(&finished_but_read, RENEW, max_age, now),
        "its attempt may be reading the digest"
    );
    let dead = pod(build_pod("c", Some(31), 60, "Running"));
    assert!(abandoned(&dead, RENEW, max_age, now));
    let old_unstamped = pod(build_pod("d", None, 1000, "Failed"));
    assert!(abandoned(&old_unstamped, RENEW, max_age, now));
    let young_unstamped = pod(build_pod("e", None, 100, "Running"));
    assert!(!abandoned(&young_unstamped, RENEW, max_age, now));
}

#[tokio::test]
async fn a_sweep_deletes_the_pods_and_secrets_of_dead_attempts_only() {
    let (client, mut server) = kube_fake::pair();
    let settings = settings();
    let sweep = tokio::spawn(async move { sweep(&client, &settings).await });
    server
        .expect(Method::GET, "/api/v1/pods")
        .await
        .assert_query(
            "labelSelector",
            "berth.dev/role=build,app.kubernetes.io/managed-by=berth",
        )
        .respond_json(
            json!({"apiVersion": "v1", "kind": "PodList", "metadata": {},
            "items": [
                build_pod("build-alive", Some(3), 300, "Running"),
                build_pod("build-dead", Some(120), 300, "Running"),
                build_pod("build-left", None, 3600, "Succeeded"),
            ]}),
        );
    for name in ["build-dead", "build-left"] {
        server
            .expect(
                Method::DELETE,
                &format!("/api/v1/namespaces/berth-acme-build/pods/{name}"),
            )
            .await
            .assert_body("/gracePeriodSeconds", 0)
            .respond_json(build_pod(name, None, 0, "Running"));
        server
            .expect(
                Method::DELETE,
                &format!("/api/v1/namespaces/berth-acme-build/secrets/{name}-registry"),
            )
            .await
            .respond_not_found();
    }
    assert_eq!(sweep.await.unwrap().unwrap(), 2);
    server.done().await;
}
