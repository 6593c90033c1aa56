//! The flags of the Kaniko builder and what they resolve to.

use crate::docker::RegistryAuth;
use berth_common::kubernetes::TenantSettings;
use berth_common::registry_auth::Grants;
use clap::Args;
use std::sync::Arc;
use std::time::Duration;

/// Flags of `--builder kaniko`; the Kubernetes client itself comes from
/// `KUBECONFIG`, `~/.kube/config` or the in-cluster service account.
#[derive(Debug, Clone, Args)]
pub struct KanikoConfig {
    /// Kaniko executor image the build Pods run.
    #[arg(
        long = "kaniko-image",
        env = "BERTH_KANIKO_IMAGE",
        default_value = "gcr.io/kaniko-project/executor:v1.23.2"
    )]
    pub image: String,

    /// More Kaniko flags, space-separated or repeated. They come after
    /// berth's, so they win: e.g. `--cache=false --snapshot-mode=redo`.
    #[arg(
        long = "kaniko-extra-flags",
        env = "BERTH_KANIKO_EXTRA_FLAGS",
        value_delimiter = ' ',
        allow_hyphen_values = true
    )]
    pub extra_flags: Vec<String>,

    /// Repository prefix of Kaniko's layer cache; a tenant's cache is
    /// `<prefix>/<tenant>`, so tenants never share cached layers.
    /// Default: `<registry>/cache`, which a build's push grant covers; a
    /// cache elsewhere gets no credentials from berth.
    #[arg(long = "kaniko-cache-repo", env = "BERTH_KANIKO_CACHE_REPO")]
    pub cache_repo: Option<String>,

    /// CPU limit (and request) of a build Pod, as a Kubernetes quantity.
    #[arg(long = "kaniko-cpu", env = "BERTH_KANIKO_CPU", default_value = "2")]
    pub cpu: String,

    /// Memory limit (and request) of a build Pod, as a Kubernetes quantity.
    #[arg(
        long = "kaniko-memory",
        env = "BERTH_KANIKO_MEMORY",
        default_value = "4Gi"
    )]
    pub memory: String,

    /// Local disk limit (and request) of a build Pod: Kaniko unpacks the
    /// base image and every layer on the node's disk.
    #[arg(
        long = "kaniko-ephemeral-storage",
        env = "BERTH_KANIKO_EPHEMERAL_STORAGE",
        default_value = "10Gi"
    )]
    pub ephemeral_storage: String,

    /// How long a build Pod may run, in seconds (its activeDeadlineSeconds);
    /// keep it under BERTH_BUILD_TIMEOUT_SECS.
    #[arg(
        long = "kaniko-deadline-secs",
        env = "BERTH_KANIKO_DEADLINE_SECS",
        default_value_t = 900
    )]
    pub deadline_secs: u64,

    #[command(flatten)]
    pub tenant: TenantSettings,
}

/// What the Kaniko builder needs, resolved from flags (tests build it
/// directly).
#[derive(Debug, Clone)]
pub struct KanikoSettings {
    pub image: String,
    pub extra_flags: Vec<String>,
    /// `<cache_repo>/<tenant>` is a tenant's layer cache.
    pub cache_repo: String,
    pub cpu: String,
    pub memory: String,
    pub ephemeral_storage: String,
    /// The Pod's activeDeadlineSeconds.
    pub deadline: Duration,
    /// How much longer than `deadline` the worker waits for a Pod that
    /// Kubernetes did not stop (never scheduled, a lost node).
    pub grace: Duration,
    /// How often the Pod's status is read while waiting for it.
    pub poll_interval: Duration,
    /// How often the attempt that owns the Pod stamps it as alive
    /// ([`super::pod::ATTEMPT_ALIVE_AT`]); three missed stamps mean the
    /// attempt is gone and the Pod may be replaced.
    pub lease_renew: Duration,
    /// Where images go, and the grants each build's registry Secret holds:
    /// a push grant of the build's tenant that lives as long as its Pod may.
    pub registry: RegistryAuth,
    /// Push and pull over plain http.
    pub insecure_registry: bool,
    pub tenant: TenantSettings,
}

impl KanikoConfig {
    /// `registry` is `BERTH_REGISTRY`; `grants` mint from `BERTH_SECRET_KEY`.
    pub fn settings(
        &self,
        registry: &str,
        grants: Grants,
        insecure_registry: bool,
    ) -> anyhow::Result<KanikoSettings> {
        for (value, name) in [
            (&self.image, "BERTH_KANIKO_IMAGE"),
            (&self.cpu, "BERTH_KANIKO_CPU"),
            (&self.memory, "BERTH_KANIKO_MEMORY"),
            (&self.ephemeral_storage, "BERTH_KANIKO_EPHEMERAL_STORAGE"),
        ] {
            anyhow::ensure!(!value.trim().is_empty(), "{name} must not be empty");
        }
        anyhow::ensure!(
            self.deadline_secs > 0,
            "BERTH_KANIKO_DEADLINE_SECS must be at least 1"
        );
        let registry_name = registry.trim().trim_end_matches('/').to_owned();
        let deadline = Duration::from_secs(self.deadline_secs);
        let grace = Duration::from_secs(60);
        let cache_repo = self
            .cache_repo
            .as_deref()
            .map(|repo| repo.trim().trim_end_matches('/'))
            .filter(|repo| !repo.is_empty())
            .map(str::to_owned)
            .unwrap_or_else(|| format!("{registry_name}/cache"));
        Ok(KanikoSettings {
            image: self.image.trim().to_owned(),
            extra_flags: self
                .extra_flags
                .iter()
                .map(|flag| flag.trim())
                .filter(|flag| !flag.is_empty())
                .map(str::to_owned)
                .collect(),
            cache_repo,
            cpu: self.cpu.trim().to_owned(),
            memory: self.memory.trim().to_owned(),
            ephemeral_storage: self.ephemeral_storage.trim().to_owned(),
            deadline,
            grace,
            poll_interval: Duration::from_secs(1),
            lease_renew: Duration::from_secs(10),
            registry: RegistryAuth {
                registry: registry_name,
                credentials: Arc::new(grants.push_for(deadline + grace)),
            },
            insecure_registry,
            tenant: self.tenant.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::Config;
    use berth_common::registry_auth::{Access, GrantKey, Grants, RegistryCredentials};
    use clap::Parser;
    use std::time::Duration;

    const KEY: &str = "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=";

    fn parse(extra: &[&str]) -> super::KanikoSettings {
        let mut args = vec![
            "berth-build-worker",
            "--amqp-url=amqp://x",
            "--secret-key=k",
            "--registry=r",
            "--builder=kaniko",
        ];
        args.extend_from_slice(extra);
        let config = Config::try_parse_from(args).unwrap();
        assert_eq!(config.build.builder, crate::BuilderKind::Kaniko);
        let grants = Grants::from_secret_key(KEY).unwrap();
        config
            .kaniko
            .settings("registry.example.com/", grants, false)
            .unwrap()
    }

    #[test]
    fn kaniko_flags_resolve() {
        let unset = |name: &str| std::env::var_os(name).is_none();
        let settings = parse(&[]);
        if unset("BERTH_KANIKO_IMAGE") {
            assert_eq!(settings.image, "gcr.io/kaniko-project/executor:v1.23.2");
        }
        if unset("BERTH_KANIKO_CACHE_REPO") {
            assert_eq!(settings.cache_repo, "registry.example.com/cache");
        }
        if unset("BERTH_KANIKO_DEADLINE_SECS") {
            assert_eq!(settings.deadline, Duration::from_secs(900));
        }
        assert_eq!(settings.registry.registry, "registry.example.com");
        // A build's push grant lives as long as its Pod may run.
        let grant = settings
            .registry
            .credentials
            .for_tenant("acme", Access::Push);
        let now = berth_common::registry_auth::unix_now();
        let expires = GrantKey::from_secret_key(KEY)
            .unwrap()
            .verify(&grant.username, &grant.password, now)
            .unwrap()
            .expires_at;
        let lifetime = (settings.deadline + settings.grace).as_secs() as i64;
        assert!((now + lifetime - 1..=now + lifetime + 1).contains(&expires));

        let settings = parse(&[
            "--kaniko-extra-flags=--snapshot-mode=redo  --use-new-run",
            "--kaniko-extra-flags",
            "--cache=false",
            "--kaniko-cache-repo=cache.example.com/layers/",
            "--kaniko-deadline-secs=60",
        ]);
        assert_eq!(
            settings.extra_flags,
            ["--snapshot-mode=redo", "--use-new-run", "--cache=false"]
        );
        assert_eq!(settings.cache_repo, "cache.example.com/layers");
        assert_eq!(settings.deadline, Duration::from_secs(60));
    }
}
