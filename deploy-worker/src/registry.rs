//! Where release images come from, and the per-tenant pull grants the
//! runtime presents there: the engine's pulls (docker driver) and each
//! tenant's image pull Secret (kubernetes driver). Grants go to berth's
//! registry only, never to a host a message names.

use berth_common::registry_auth::{Access, Credentials, RegistryCredentials};
use std::sync::Arc;
use std::time::Duration;

/// How long the docker driver's pull grants live: the engine pulls at once.
pub const ENGINE_PULL_GRANT: Duration = Duration::from_secs(10 * 60);

/// berth's registry and its pull grants.
#[derive(Clone)]
pub struct RegistryPull {
    host: String,
    grants: Arc<dyn RegistryCredentials>,
}

impl std::fmt::Debug for RegistryPull {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryPull")
            .field("host", &self.host)
            .finish_non_exhaustive()
    }
}

/// `host[:port]` of a fully qualified image reference, or of
/// `host[:port][/prefix]`.
fn host_of(reference: &str) -> &str {
    reference.split('/').next().unwrap_or(reference)
}

impl RegistryPull {
    /// `registry` is `BERTH_REGISTRY` (`host[:port][/prefix]`).
    pub fn new(registry: &str, grants: Arc<dyn RegistryCredentials>) -> Self {
        Self {
            host: host_of(registry.trim()).to_owned(),
            grants,
        }
    }

    /// `host[:port]` of berth's registry.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// A pull grant of `tenant`.
    pub fn for_tenant(&self, tenant: &str) -> Credentials {
        self.grants.for_tenant(tenant, Access::Pull)
    }

    /// A pull grant of `tenant` for `image`, when it is in berth's registry;
    /// `None` for an image anywhere else (pulled anonymously).
    pub fn for_image(&self, image: &str, tenant: &str) -> Option<Credentials> {
        (image.contains('/') && host_of(image) == self.host).then(|| self.for_tenant(tenant))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_common::registry_auth::{unix_now, GrantKey, Grants};

    const KEY: &str = "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=";

    #[test]
    fn pull_grants_of_the_releases_tenant_go_to_berths_registry_only() {
        let pull = RegistryPull::new(
            "registry.example.com:5000/berth",
            Arc::new(
                Grants::from_secret_key(KEY)
                    .unwrap()
                    .pull_for(ENGINE_PULL_GRANT),
            ),
        );
        assert_eq!(pull.host(), "registry.example.com:5000");
        let grant = pull
            .for_image("registry.example.com:5000/berth/acme/web@sha256:00", "acme")
            .unwrap();
        let verified = GrantKey::from_secret_key(KEY)
            .unwrap()
            .verify(&grant.username, &grant.password, unix_now())
            .unwrap();
        assert_eq!(
            (verified.tenant.as_str(), verified.access),
            ("acme", Access::Pull)
        );
        assert!(verified.expires_at <= unix_now() + 600);
        for elsewhere in [
            "attacker.example/acme/web@sha256:00",
            "registry.example.com/acme/web@sha256:00",
            "registry.example.com:5000",
        ] {
            assert!(pull.for_image(elsewhere, "acme").is_none(), "{elsewhere}");
        }
    }
}
