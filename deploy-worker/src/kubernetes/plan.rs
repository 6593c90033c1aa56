//! The one function `render` prints and the driver applies.

use berth_common::kubernetes::{tenant_namespace, TenantNamespaceKind};
use berth_proto::{AppRef, Release};
use k8s_openapi::api::apps::v1::Deployment;
use serde_json::Value;
use std::collections::BTreeMap;
use uuid::Uuid;

use super::pull::{pull_secret_reference, PullSecret};
use super::{app_host, app_objects, KubernetesSettings};

/// Every object a deploy of `release` as `deployment_id` applies, in apply
/// order: the tenant's apps namespace and its fences (Namespace,
/// ResourceQuota, LimitRange, NetworkPolicy, ServiceAccount; applying them
/// again changes nothing), the tenant's image pull Secret when `pull` is
/// given (its grant renewed), then the release's Secret, Deployment (whose
/// pods pull with that Secret), Service and Ingress. `env` is the release's
/// env in clear.
pub fn plan(
    release: &Release,
    deployment_id: Uuid,
    env: &BTreeMap<String, String>,
    settings: &KubernetesSettings,
    pull: Option<&PullSecret>,
) -> Vec<Value> {
    let tenant = &release.app.tenant;
    let namespace = tenant_namespace(tenant, TenantNamespaceKind::Apps, &settings.tenant);
    let mut documents = namespace.to_documents();
    let mut objects = app_objects(release, deployment_id, env, settings);
    if let Some(pull) = pull {
        documents.push(berth_common::kubernetes::document(&pull.secret(tenant)));
        if let Some(pod) = objects.deployment.spec.template.spec.as_mut() {
            pod.image_pull_secrets = Some(vec![pull_secret_reference()]);
        }
    }
    documents.extend(objects.to_documents());
    documents
}

/// The app's one Deployment (and Service, and Ingress) is named after it.
pub fn deployment_name(app: &AppRef) -> &str {
    &app.name
}

/// `https://<app>.<tenant>.<base domain>`: where a deployed release answers.
pub fn endpoint(app: &AppRef, settings: &KubernetesSettings) -> String {
    format!("https://{}", app_host(app, settings))
}

/// The previous Deployment as a document to apply again when a rollout
/// fails: as the API server had it before the deploy, less what the server
/// owns (status, identity, bookkeeping, the controller's revision). Its env
/// Secret is still there: each release has its own, and a deploy prunes
/// only after it went live.
pub fn restore_document(previous: &Deployment) -> Value {
    let mut document = berth_common::kubernetes::document(previous);
    if let Some(object) = document.as_object_mut() {
        object.remove("status");
    }
    if let Some(metadata) = document["metadata"].as_object_mut() {
        for field in [
            "managedFields",
            "resourceVersion",
            "uid",
            "creationTimestamp",
            "generation",
            "selfLink",
        ] {
            metadata.remove(field);
        }
        if let Some(annotations) = metadata
            .get_mut("annotations")
            .and_then(Value::as_object_mut)
        {
            annotations.retain(|key, _| {
                !key.starts_with("deployment.kubernetes.io/")
                    && key != "kubectl.kubernetes.io/last-applied-configuration"
            });
            if annotations.is_empty() {
                metadata.remove("annotations");
            }
        }
    }
    document
}
