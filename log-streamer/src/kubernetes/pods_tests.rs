//! Pods, as the API server serializes them, to workloads and lifecycle.

use super::*;
use serde_json::{json, Value};

const APP: &str = "0190f1c4-0000-7000-8000-000000000001";

fn pod(namespace: &str, containers: &[&str], statuses: Value) -> Pod {
    let containers: Vec<_> = containers
        .iter()
        .map(|name| json!({"name": name}))
        .collect();
    serde_json::from_value(json!({
        "metadata": {"name": "web-5d8f-x2k", "namespace": namespace, "uid": "p-1",
            "resourceVersion": "7",
            "labels": {"berth.dev/app": APP, "berth.dev/deployment": "d-1"}},
        "spec": {"containers": containers},
        "status": {"containerStatuses": statuses},
    }))
    .unwrap()
}

/// A container that crashed once (OOM) and runs again.
fn restarted() -> Value {
    json!([{
        "name": "web", "restartCount": 1, "ready": true, "image": "i", "imageID": "",
        "containerID": "containerd://b2",
        "state": {"running": {"startedAt": "2026-11-22T02:13:20Z"}},
        "lastState": {"terminated": {"containerID": "containerd://a1", "exitCode": 137,
            "reason": "OOMKilled", "startedAt": "2026-11-22T02:10:00Z",
            "finishedAt": "2026-11-22T02:13:18Z"}},
    }])
}

#[test]
fn each_instance_is_a_workload_and_the_previous_one_too() {
    let view = pod_view(&pod("berth-acme", &["web"], restarted())).unwrap();
    assert_eq!(view.app_id.to_string(), APP);
    let workloads = view.workloads();
    let ids: Vec<_> = workloads
        .iter()
        .map(|w| (w.id.as_str(), w.running))
        .collect();
    assert_eq!(ids, [("containerd://a1", false), ("containerd://b2", true)]);
    assert!(workloads
        .iter()
        .all(|w| w.name == "web-5d8f-x2k" && w.key == "d-1"));

    let mut registry = Registry::default();
    registry.upsert(view);
    let previous = registry.locate("containerd://a1").unwrap();
    assert!(previous.previous && !previous.running);
    assert_eq!(
        (
            previous.namespace.as_str(),
            previous.pod.as_str(),
            previous.container.as_str()
        ),
        ("berth-acme", "web-5d8f-x2k", "web")
    );
    assert!(!registry.locate("containerd://b2").unwrap().previous);
    assert_eq!(registry.locate("containerd://gone"), None);
}

#[test]
fn the_status_tells_starts_exits_and_oom_kills() {
    let view = pod_view(&pod("berth-acme", &["web"], restarted())).unwrap();
    let items: Vec<_> = lifecycle(&view)
        .into_iter()
        .map(|item| (item.identity, item.at.timestamp(), item.kind))
        .collect();
    assert_eq!(
        items,
        [
            (
                "started/containerd://a1".into(),
                1_795_313_400,
                Lifecycle::Started
            ),
            (
                "oom/containerd://a1".into(),
                1_795_313_598,
                Lifecycle::OutOfMemory
            ),
            (
                "died/containerd://a1".into(),
                1_795_313_598,
                Lifecycle::Died {
                    exit_code: Some(137)
                }
            ),
            (
                "started/containerd://b2".into(),
                1_795_313_600,
                Lifecycle::Started
            ),
        ]
    );
}

#[test]
fn a_crash_looping_container_has_no_new_instance_until_it_starts() {
    // The kubelet keeps the dead instance's id on the status while it waits.
    let statuses = json!([{
        "name": "web", "restartCount": 3, "ready": false, "image": "i", "imageID": "",
        "containerID": "containerd://a1",
        "state": {"waiting": {"reason": "CrashLoopBackOff"}},
        "lastState": {"terminated": {"containerID": "containerd://a1", "exitCode": 1,
            "startedAt": "2026-11-22T02:10:00Z", "finishedAt": "2026-11-22T02:10:01Z"}},
    }]);
    let view = pod_view(&pod("berth-acme", &["web"], statuses)).unwrap();
    let ids: Vec<_> = view.workloads().into_iter().map(|w| w.id).collect();
    assert_eq!(ids, ["containerd://a1"]);
    // Not scheduled yet: a pod without instances (its Events still count).
    let pending = pod_view(&pod("berth-acme", &["web"], json!([]))).unwrap();
    assert!(pending.workloads().is_empty());
}

#[test]
fn several_containers_are_named_pod_slash_container() {
    let statuses = json!([
        {"name": "web", "restartCount": 0, "ready": true, "image": "i", "imageID": "",
         "containerID": "containerd://w", "state": {"running": {"startedAt": "2026-11-22T02:10:00Z"}}},
        {"name": "proxy", "restartCount": 0, "ready": true, "image": "i", "imageID": "",
         "containerID": "containerd://p", "state": {"running": {}}},
    ]);
    let view = pod_view(&pod("berth-acme", &["web", "proxy"], statuses)).unwrap();
    let names: Vec<_> = view.workloads().into_iter().map(|w| w.name).collect();
    assert_eq!(names, ["web-5d8f-x2k/web", "web-5d8f-x2k/proxy"]);
}

#[test]
fn only_app_pods_in_app_namespaces_are_followed() {
    assert!(pod_view(&pod("berth-acme-build", &["web"], restarted())).is_none());
    assert!(pod_view(&pod("default", &["web"], restarted())).is_none());
    let mut unlabelled = pod("berth-acme", &["web"], restarted());
    unlabelled.metadata.labels = None;
    assert!(pod_view(&unlabelled).is_none());
    assert!(followed_namespace("berth-acme"));
    assert!(!followed_namespace("berth-acme-build"));
}

#[test]
fn an_older_view_does_not_replace_a_newer_one() {
    let mut registry = Registry::default();
    let mut view = pod_view(&pod("berth-acme", &["web"], restarted())).unwrap();
    registry.upsert(view.clone());
    view.resource_version = Some("6".into());
    view.containers.clear();
    registry.upsert(view.clone());
    assert!(
        registry.locate("containerd://b2").is_some(),
        "version 7 stays"
    );
    registry.replace(vec![]);
    assert!(
        registry.locate("containerd://b2").is_none(),
        "not listed: gone"
    );
}
