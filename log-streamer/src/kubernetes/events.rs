//! Kubernetes Events about an app's pods (`involvedObject.kind=Pod`:
//! `Pulled`, `BackOff`, `Unhealthy`, `FailedScheduling`, `Killing`…) as
//! items of the app, shipped as `source: event` records with the Event's
//! reason and message.
//!
//! core/v1 Events rather than `events.k8s.io/v1`: they are what the kubelet
//! writes and what berth's RBAC grants (`""` group, `events`); the API
//! server serves Events written through either API in both.

use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;

use super::pods::{followed_namespace, to_utc, Item, Registry};
use crate::source::{Lifecycle, Workload};

/// Only Events about Pods.
pub const EVENTS_FIELD_SELECTOR: &str = "involvedObject.kind=Pod";

/// What a Kubernetes Event about a pod is to berth.
#[derive(Debug, PartialEq, Eq)]
pub enum Reported {
    /// Not about an app's pod in a followed namespace.
    Ignored,
    /// About a pod the pod watcher has not shown yet.
    UnknownPod,
    Item(Item),
}

/// The Event as an item of its pod's app; see [`Reported`].
pub fn reported(event: &Event, registry: &Registry) -> Reported {
    let object = &event.involved_object;
    let namespace = object
        .namespace
        .as_deref()
        .or(event.metadata.namespace.as_deref());
    let (Some(namespace), Some(name), Some(at)) = (namespace, object.name.as_deref(), time(event))
    else {
        return Reported::Ignored;
    };
    if object.kind.as_deref() != Some("Pod") || !followed_namespace(namespace) {
        return Reported::Ignored;
    }
    let Some(view) = registry.pod(object.uid.as_deref(), namespace, name) else {
        return Reported::UnknownPod;
    };
    let container = object.field_path.as_deref().and_then(container_of);
    let id = event
        .metadata
        .uid
        .clone()
        .or(event.metadata.name.clone())
        .unwrap_or_default();
    let count = event
        .series
        .as_ref()
        .and_then(|series| series.count)
        .or(event.count)
        .unwrap_or(1);
    Reported::Item(Item {
        identity: format!("event/{id}/{count}"),
        at,
        kind: Lifecycle::Reported {
            reason: event.reason.clone().unwrap_or_default(),
            message: event.message.clone().unwrap_or_default(),
        },
        workload: Workload {
            id: view.uid.clone(),
            name: match container {
                Some(container) => view.instance_name(container),
                None => view.name.clone(),
            },
            app_id: view.app_id,
            key: view.key.clone(),
            running: false,
        },
    })
}

/// When it (last) happened: a repeated Event keeps its object and moves
/// its last time (`series.lastObservedTime` or `lastTimestamp`).
fn time(event: &Event) -> Option<DateTime<Utc>> {
    let micro = |time: &MicroTime| to_utc(&time.0);
    let series = event.series.as_ref();
    series
        .and_then(|series| series.last_observed_time.as_ref().map(micro))
        .or(event.last_timestamp.as_ref().map(|time| to_utc(&time.0)))
        .or(event.event_time.as_ref().map(micro))
        .or(event.first_timestamp.as_ref().map(|time| to_utc(&time.0)))
        .or(event
            .metadata
            .creation_timestamp
            .as_ref()
            .map(|time| to_utc(&time.0)))
}

/// `web` from `spec.containers{web}`.
fn container_of(field_path: &str) -> Option<&str> {
    field_path
        .strip_prefix("spec.containers{")?
        .strip_suffix('}')
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Pod;
    use serde_json::json;

    fn event(namespace: &str, pod: &str, uid: &str) -> Event {
        serde_json::from_value(json!({
            "metadata": {"name": format!("{pod}.17a"), "namespace": namespace, "uid": "e-1"},
            "involvedObject": {"kind": "Pod", "name": pod, "namespace": namespace, "uid": uid,
                "fieldPath": "spec.containers{web}"},
            "reason": "BackOff", "message": "Back-off restarting failed container web",
            "type": "Warning", "count": 3,
            "firstTimestamp": "2026-11-22T02:10:00Z", "lastTimestamp": "2026-11-22T02:13:18Z",
        }))
        .unwrap()
    }

    fn registry() -> Registry {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "web-1", "namespace": "berth-acme", "uid": "p-1",
                "labels": {"berth.dev/app": "0190f1c4-0000-7000-8000-000000000001",
                    "berth.dev/deployment": "d-1"}},
            "spec": {"containers": [{"name": "web"}]},
        }))
        .unwrap();
        let mut registry = Registry::default();
        registry.upsert(super::super::pods::pod_view(&pod).unwrap());
        registry
    }

    #[test]
    fn an_event_about_an_app_pod_is_an_item_of_its_app() {
        let Reported::Item(item) = reported(&event("berth-acme", "web-1", "p-1"), &registry())
        else {
            panic!("not an item");
        };
        assert_eq!(item.identity, "event/e-1/3", "a repeat is a new item");
        assert_eq!(item.at.timestamp(), 1_795_313_598, "the last time");
        assert_eq!(item.workload.name, "web-1");
        assert_eq!(item.workload.key, "d-1");
        assert_eq!(
            item.kind,
            Lifecycle::Reported {
                reason: "BackOff".into(),
                message: "Back-off restarting failed container web".into()
            }
        );
    }

    #[test]
    fn events_elsewhere_are_ignored_and_unknown_pods_wait() {
        let registry = registry();
        assert_eq!(
            reported(&event("berth-acme-build", "kaniko", "b-1"), &registry),
            Reported::Ignored
        );
        assert_eq!(
            reported(&event("kube-system", "coredns", "k-1"), &registry),
            Reported::Ignored
        );
        assert_eq!(
            reported(&event("berth-acme", "web-2", "p-2"), &registry),
            Reported::UnknownPod
        );
        let mut node = event("berth-acme", "web-1", "p-1");
        node.involved_object.kind = Some("Node".into());
        assert_eq!(reported(&node, &registry), Reported::Ignored);
        assert_eq!(container_of("spec.containers{web}"), Some("web"));
        assert_eq!(container_of("spec.initContainers{x}"), None);
    }
}
