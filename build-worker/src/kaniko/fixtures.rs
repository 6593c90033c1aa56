//! What the Kaniko tests build: one job and the settings it runs with.

use super::KanikoSettings;
use crate::docker::{BuildJob, RegistryAuth};
use berth_common::kubernetes::TenantSettings;
use berth_common::registry_auth::{GrantKey, Grants};
use berth_proto::AppRef;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

pub const IMAGE: &str = "gcr.io/kaniko-project/executor:v1.23.2";
pub const REGISTRY: &str = "registry.example.com:5000";
/// The `BERTH_SECRET_KEY` the tests' grants are minted with.
pub const SECRET_KEY: &str = "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=";

/// What checks the grants the tests' builds get.
pub fn grant_key() -> GrantKey {
    GrantKey::from_secret_key(SECRET_KEY).unwrap()
}

pub fn settings() -> KanikoSettings {
    KanikoSettings {
        image: IMAGE.to_owned(),
        extra_flags: vec!["--snapshot-mode=redo".to_owned()],
        cache_repo: format!("{REGISTRY}/cache"),
        cpu: "2".to_owned(),
        memory: "4Gi".to_owned(),
        ephemeral_storage: "10Gi".to_owned(),
        deadline: Duration::from_secs(900),
        grace: Duration::from_secs(60),
        poll_interval: Duration::from_millis(5),
        lease_renew: Duration::from_secs(10),
        registry: RegistryAuth {
            registry: REGISTRY.to_owned(),
            credentials: Arc::new(
                Grants::from_secret_key(SECRET_KEY)
                    .unwrap()
                    .push_for(Duration::from_secs(960)),
            ),
        },
        insecure_registry: false,
        tenant: TenantSettings::default(),
    }
}

pub fn job(context: PathBuf) -> BuildJob {
    job_of("acme", context)
}

/// The job of tenant `tenant`'s app `web`.
pub fn job_of(tenant: &str, context: PathBuf) -> BuildJob {
    let app = AppRef {
        id: Uuid::parse_str("0190a0b0-0000-7000-8000-00000000a99a").unwrap(),
        name: "web".to_owned(),
        tenant: tenant.to_owned(),
    };
    BuildJob {
        context,
        dockerfile: "Dockerfile".to_owned(),
        base_images: vec!["localhost/berth/static:latest".to_owned()],
        repository: format!("{REGISTRY}/{tenant}/web"),
        tag: "0123456789abcdef0123456789abcdef01234567".to_owned(),
        labels: HashMap::from([
            (berth_proto::labels::APP.to_owned(), app.id.to_string()),
            (
                "org.opencontainers.image.source".to_owned(),
                "https://git.example.com/acme/web".to_owned(),
            ),
        ]),
        app,
        deployment_id: Uuid::parse_str("0190a0b1-1111-7222-8333-444455556666").unwrap(),
    }
}
