//! One bridge network per tenant: a tenant's apps reach each other on it,
//! and nothing else does. The engine isolates the bridge from its other
//! networks (podman's `isolate`, Docker's default between networks), and the
//! host firewall ([`berth_common::fence`], on every bridge named `bt…`)
//! refuses what its apps send to the host, to cloud metadata and to private
//! ranges (other tenants' bridges among them).

use berth_proto::labels;
use bollard::models::NetworkCreateRequest;
use bollard::Docker;
use sha2::{Digest, Sha256};
use std::collections::HashMap;

use crate::config::AppLimits;
use crate::error::DeployError;
use berth_common::fence::{self, Fence, FenceError, Passed};

/// Tenant bridges are named `bt` + 12 hex digits, so one firewall rule
/// (`bt+`) fences them all and nothing else.
pub const BRIDGE_PREFIX: &str = "bt";

/// `berth-<installation>-<tenant>`: installations sharing an engine keep
/// apart.
pub fn network_name(installation: &str, tenant: &str) -> String {
    format!("berth-{installation}-{tenant}")
}

/// The bridge interface: Linux allows 15 characters.
pub fn bridge_name(installation: &str, tenant: &str) -> String {
    let digest = Sha256::digest(format!("{installation}/{tenant}").as_bytes());
    format!("{BRIDGE_PREFIX}{}", &hex::encode(digest)[..12])
}

/// What the engine is asked to create.
pub fn request(installation: &str, tenant: &str) -> NetworkCreateRequest {
    NetworkCreateRequest {
        name: network_name(installation, tenant),
        driver: Some("bridge".into()),
        options: Some(HashMap::from([
            (
                "com.docker.network.bridge.name".to_owned(),
                bridge_name(installation, tenant),
            ),
            // podman: no traffic from the engine's other bridges.
            ("isolate".to_owned(), "true".to_owned()),
        ])),
        labels: Some(HashMap::from([
            (labels::INSTALLATION.to_owned(), installation.to_owned()),
            (labels::TENANT.to_owned(), tenant.to_owned()),
            (
                labels::MANAGED_BY.to_owned(),
                labels::MANAGED_BY_VALUE.to_owned(),
            ),
        ])),
        ..Default::default()
    }
}

/// Makes sure the tenant's network exists; returns its name. Two deploys
/// of one tenant may race to create it: the loser finds it made.
pub async fn ensure(
    docker: &Docker,
    installation: &str,
    tenant: &str,
) -> Result<String, DeployError> {
    let name = network_name(installation, tenant);
    match docker.inspect_network(&name, None).await {
        Ok(_) => return Ok(name),
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404, ..
        }) => {}
        Err(error) => return Err(error.into()),
    }
    match docker.create_network(request(installation, tenant)).await {
        Ok(_) => {
            tracing::info!(network = name, tenant, "created the tenant's network");
            Ok(name)
        }
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 409, ..
        }) => Ok(name),
        Err(error) => Err(error.into()),
    }
}

/// Installs (or refreshes) the firewall rules of every tenant bridge.
pub async fn fence(limits: &AppLimits) -> Result<(), FenceError> {
    let dns = if limits.app_dns.is_empty() {
        fence::resolv_conf_nameservers(
            &std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default(),
        )
    } else {
        limits.app_dns.clone()
    };
    let fence = Fence {
        chain: "BERTH-APPS".into(),
        interfaces: format!("{BRIDGE_PREFIX}+"),
        dns,
        deny: fence::with_host_networks(limits.app_egress_deny.clone(), &[BRIDGE_PREFIX]).await,
        same_bridge: true,
        passed: Passed::Return,
        closed_inbound: false,
        masquerade: None,
    };
    let lock = std::path::Path::new("/run/lock");
    let lock = if lock.is_dir() {
        lock.to_path_buf()
    } else {
        std::env::temp_dir()
    };
    fence.install(&lock.join("berth-app-fence.lock")).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_tenant_of_each_installation_gets_its_own_isolated_bridge() {
        let request = request("berth", "acme");
        assert_eq!(request.name, "berth-berth-acme");
        let options = request.options.unwrap();
        let bridge = &options["com.docker.network.bridge.name"];
        assert!(
            bridge.starts_with(BRIDGE_PREFIX) && bridge.len() <= 15,
            "{bridge}"
        );
        assert_eq!(options["isolate"], "true");
        assert_eq!(request.labels.unwrap()[labels::INSTALLATION], "berth");
        assert_ne!(bridge_name("berth", "acme"), bridge_name("berth", "other"));
        assert_ne!(bridge_name("berth", "acme"), bridge_name("ci", "acme"));
    }
}
