//! Labels berth puts on every workload it runs, on both drivers. The
//! log-streamer and the deploy-worker find berth's workloads by them.

pub const APP: &str = "berth.dev/app";
pub const APP_NAME: &str = "berth.dev/app-name";
pub const TENANT: &str = "berth.dev/tenant";
pub const RELEASE: &str = "berth.dev/release";
pub const DEPLOYMENT: &str = "berth.dev/deployment";
pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
pub const MANAGED_BY_VALUE: &str = "berth";
/// Which berth installation runs the workload. Several installations can
/// share one engine (a developer's `make up` beside test runs); each one's
/// workers touch only their own workloads.
pub const INSTALLATION: &str = "berth.dev/installation";

/// The name of the container one deployment of an app runs in on the
/// docker driver: `berth-<tenant>-<app>-<first 12 hex digits of the
/// deployment id>`, from the labels the deploy-worker sets.
///
/// Labels alone do not prove berth made a container: Docker's classic
/// builder gives a build step's container the labels of the image so far, so
/// a Dockerfile with berth's labels (another app's id among them) makes
/// containers that look like that app's. Their names are the engine's own,
/// though, so the log-streamer follows only containers whose name is the
/// one their labels imply.
pub fn container_name(tenant: &str, app_name: &str, deployment_id: uuid::Uuid) -> String {
    let id = deployment_id.simple().to_string();
    format!("berth-{tenant}-{app_name}-{}", &id[..12])
}

/// Whether a container's `name` (with or without Docker's leading `/`) is
/// the one its berth `labels` imply; see [`container_name`].
pub fn named_by_berth(name: &str, labels: &std::collections::HashMap<String, String>) -> bool {
    let (Some(tenant), Some(app_name), Some(deployment)) = (
        labels.get(TENANT),
        labels.get(APP_NAME),
        labels.get(DEPLOYMENT).and_then(|d| d.parse().ok()),
    ) else {
        return false;
    };
    name.trim_start_matches('/') == container_name(tenant, app_name, deployment)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn only_the_name_the_labels_imply_is_berths() {
        let deployment = uuid::Uuid::now_v7();
        let labels = HashMap::from([
            (TENANT.to_owned(), "acme".to_owned()),
            (APP_NAME.to_owned(), "web".to_owned()),
            (DEPLOYMENT.to_owned(), deployment.to_string()),
        ]);
        let name = container_name("acme", "web", deployment);
        assert_eq!(
            name,
            format!("berth-acme-web-{}", &deployment.simple().to_string()[..12])
        );
        assert!(named_by_berth(&name, &labels));
        assert!(named_by_berth(&format!("/{name}"), &labels));
        // A build step's container: the engine named it.
        assert!(!named_by_berth("/pensive_hopper", &labels));
        assert!(!named_by_berth(
            &container_name("acme", "api", deployment),
            &labels
        ));
        assert!(!named_by_berth(&name, &HashMap::new()));
    }
}
