//! A tenant's image pull Secret: a dockerconfigjson in `berth-<tenant>`
//! holding a pull grant of that tenant for berth's registry, named by every
//! pod of the tenant's apps (`imagePullSecrets`). The grant pulls the
//! tenant's own images and nothing else; no workload can read the Secret
//! (pods hold no API token). It lives for weeks (BERTH_K8S_PULL_GRANT_DAYS),
//! because kubelet pulls whenever a pod starts on a node without the image,
//! and every deploy and scale-up of the tenant's apps renews it.

use berth_common::kubernetes::{app_namespace, base_labels, meta};
use berth_common::registry_auth::Credentials;
use k8s_openapi::api::core::v1::{LocalObjectReference, Secret};
use k8s_openapi::ByteString;
use serde_json::json;
use std::collections::BTreeMap;

/// The pull Secret's name in every tenant's apps namespace.
pub const PULL_SECRET: &str = "berth-registry-pull";

/// What a plan applies for pulls: berth's registry and a grant for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullSecret {
    /// `host[:port]` of berth's registry.
    pub registry: String,
    pub credentials: Credentials,
}

impl PullSecret {
    /// The tenant's Secret.
    pub fn secret(&self, tenant: &str) -> Secret {
        let config = json!({ "auths": { &self.registry: {
            "username": self.credentials.username,
            "password": self.credentials.password,
            "auth": self.credentials.basic_auth(),
        }}})
        .to_string();
        Secret {
            metadata: meta(
                PULL_SECRET,
                Some(&app_namespace(tenant)),
                base_labels(tenant),
            ),
            type_: Some("kubernetes.io/dockerconfigjson".to_owned()),
            data: Some(BTreeMap::from([(
                ".dockerconfigjson".to_owned(),
                ByteString(config.into_bytes()),
            )])),
            ..Default::default()
        }
    }
}

/// What a pod names to pull with.
pub fn pull_secret_reference() -> LocalObjectReference {
    LocalObjectReference {
        name: PULL_SECRET.to_owned(),
    }
}
