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
/// Which instance of its deployment a container is, from 0 (docker driver;
/// absent on containers made before apps had several).
pub const REPLICA: &str = "berth.dev/replica";
/// The release's HTTP health check path (docker driver; absent when the
/// release has none): how a container is checked after the deploy made it,
/// by a scale that starts it again and by the router.
pub const HEALTH_CHECK_PATH: &str = "berth.dev/health-check-path";
/// On the Kubernetes Ingress of an app's custom domains.
pub const DOMAINS: &str = "berth.dev/domains";

/// The name of the container one deployment of an app runs in on the
/// docker driver: `berth-<tenant>-<app>-<time>-<random>`, from the labels
/// the deploy-worker sets. A v7 deployment id's first 12 hex digits are the
/// millisecond it was made (names sort by age); its last 8 are random, so
/// two deployments of an app made in one millisecond get two containers.
///
/// Labels alone do not prove berth made a container: Docker's classic
/// builder gives a build step's container the labels of the image so far, so
/// a Dockerfile with berth's labels (another app's id among them) makes
/// containers that look like that app's. Their names are the engine's own,
/// though, so the log-streamer follows only containers whose name is the
/// one their labels imply.
pub fn container_name(tenant: &str, app_name: &str, deployment_id: uuid::Uuid) -> String {
    let id = deployment_id.simple().to_string();
    format!("berth-{tenant}-{app_name}-{}-{}", &id[..12], &id[24..])
}

/// The name of instance `replica` of a deployment: [`container_name`] for
/// the first, with `-<n>` after it for the others.
pub fn replica_name(
    tenant: &str,
    app_name: &str,
    deployment_id: uuid::Uuid,
    replica: u32,
) -> String {
    let name = container_name(tenant, app_name, deployment_id);
    match replica {
        0 => name,
        n => format!("{name}-{n}"),
    }
}

/// The name containers got before [`container_name`] had the random part;
/// containers made then still carry it.
fn earlier_container_name(tenant: &str, app_name: &str, deployment_id: uuid::Uuid) -> String {
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
    let replica = labels
        .get(REPLICA)
        .and_then(|r| r.parse::<u32>().ok())
        .unwrap_or(0);
    let name = name.trim_start_matches('/');
    name == replica_name(tenant, app_name, deployment, replica)
        || name == earlier_container_name(tenant, app_name, deployment)
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
        let hex = deployment.simple().to_string();
        assert_eq!(
            name,
            format!("berth-acme-web-{}-{}", &hex[..12], &hex[24..])
        );
        assert!(named_by_berth(&name, &labels));
        let earlier = format!("berth-acme-web-{}", &hex[..12]);
        assert!(
            named_by_berth(&earlier, &labels),
            "made by an earlier berth"
        );
        assert!(named_by_berth(&format!("/{name}"), &labels));
        // A build step's container: the engine named it.
        assert!(!named_by_berth("/pensive_hopper", &labels));
        assert!(!named_by_berth(
            &container_name("acme", "api", deployment),
            &labels
        ));
        assert!(!named_by_berth(&name, &HashMap::new()));
        assert!(
            !named_by_berth(&format!("{name}-2"), &labels),
            "an instance the labels do not name"
        );
        let mut second = labels.clone();
        second.insert(REPLICA.to_owned(), "2".to_owned());
        assert!(named_by_berth(&format!("{name}-2"), &second));
        assert_eq!(
            replica_name("acme", "web", deployment, 2),
            format!("{name}-2")
        );
        assert!(
            !named_by_berth(&name, &second),
            "instance 2 is not named as 0"
        );
    }

    #[test]
    fn deployments_made_in_one_millisecond_get_two_names() {
        let at = uuid::Timestamp::from_unix(uuid::NoContext, 1_795_000_000, 0);
        let (first, second) = (uuid::Uuid::new_v7(at), uuid::Uuid::new_v7(at));
        assert_ne!(
            container_name("acme", "web", first),
            container_name("acme", "web", second)
        );
    }
}
