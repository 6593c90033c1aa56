//! The single-host builder for code berth does not trust: each build runs
//! rootless podman as an unprivileged user of its own, in a network
//! namespace and a control group of its own.
//!
//! * **Who**: `BERTH_BUILD_USER` (user namespaces through Debian's
//!   `uidmap`): a builder escape gets that user's rights, which reach none
//!   of berth's files. Never the root engine that runs the platform.
//! * **Network** ([`net`]): its own namespace; the host, private ranges and
//!   cloud metadata are refused, DNS and the internet are not.
//! * **Limits** ([`cgroup`]): memory, CPU and processes per build, set by
//!   the worker because rootless podman cannot on a cgroup v1 host.
//! * **Images in**: base images come from a read-only store the build user
//!   owns ([`SandboxConfig::base_store`]); public images are pulled by the
//!   build itself inside its namespace; images of berth's own registry
//!   (which a build cannot reach) are pulled first by the worker with the
//!   tenant's credentials.
//! * **Images out**: the built image stays in the tenant's store; the
//!   worker pushes it from outside the namespace.
//! * **Stores**: one image store per tenant, so two tenants' builds never
//!   read each other's layers.

pub mod cgroup;
pub mod config;
pub mod net;
pub mod podman;
mod run;
pub mod slot;
mod stores;

pub use config::SandboxConfig;

use crate::buildlog::BuildLog;
use crate::docker::{last_line, BuildJob, Built, ImageBuilder, RegistryAuth};
use crate::error::BuildError;
use async_trait::async_trait;
use berth_common::fence::{self, Fence, Passed};
use berth_common::registry_auth::Access;
use cgroup::{BuildCgroup, Limits};
use ipnet::Ipv4Net;
use net::SandboxNet;
use podman::{BuildUser, Enter, Podman, Store};
use std::path::{Path, PathBuf};

/// The control-group folder all sandboxes live under.
const CGROUP_PARENT: &str = "berth-builds";

pub struct SandboxBuilder {
    podman: Podman,
    pool: Ipv4Net,
    limits: Limits,
    auth: RegistryAuth,
    insecure: bool,
    cgroup_root: PathBuf,
}

impl SandboxBuilder {
    /// Checks the build user and the build root, writes podman's config
    /// files and installs the network fence. Needs root.
    pub async fn start(
        config: &SandboxConfig,
        auth: RegistryAuth,
        insecure: bool,
    ) -> Result<Self, BuildError> {
        let setup =
            |what: &str, e: &dyn std::fmt::Display| BuildError::Sandbox(format!("{what}: {e}"));
        let passwd =
            std::fs::read_to_string("/etc/passwd").map_err(|e| setup("/etc/passwd", &e))?;
        let user = BuildUser::find(&passwd, &config.build_user).ok_or_else(|| {
            BuildError::Sandbox(format!(
                "the build user `{}` does not exist (or is root): create it with `useradd \
                 --create-home --home-dir {} --shell /usr/sbin/nologin {}` (which also gives it \
                 /etc/subuid and /etc/subgid ranges)",
                config.build_user,
                config.build_root.display(),
                config.build_user
            ))
        })?;
        for file in ["/etc/subuid", "/etc/subgid"] {
            let text = std::fs::read_to_string(file).unwrap_or_default();
            if !text
                .lines()
                .any(|line| line.starts_with(&format!("{}:", user.name)))
            {
                return Err(BuildError::Sandbox(format!(
                    "the build user `{}` has no range in {file}: `usermod --add-subuids \
                     100000-165535 --add-subgids 100000-165535 {}`",
                    user.name, user.name
                )));
            }
        }
        let root = config.build_root.clone();
        for dir in ["", "stores", "runroot", "builds", "slots"] {
            let dir = root.join(dir);
            std::fs::create_dir_all(&dir).map_err(|e| setup(&dir.display().to_string(), &e))?;
            private_to(&user, &dir).map_err(|e| setup(&dir.display().to_string(), &e))?;
        }
        let podman = Podman {
            program: config.podman.clone(),
            user,
            base_store: Some(
                config
                    .base_store
                    .clone()
                    .unwrap_or_else(|| root.join("base")),
            )
            .filter(|store| store.exists()),
            root,
            driver: config.storage_driver.clone(),
        };
        let (containers, registries) = Podman::config_files();
        for (path, text) in [
            (podman.containers_conf(), containers),
            (podman.registries_conf(), registries),
        ] {
            // Other workers' podman may be reading it: replace, never rewrite.
            let temp = path.with_extension(format!("{}.tmp", std::process::id()));
            std::fs::write(&temp, text)
                .and_then(|()| std::fs::rename(&temp, &path))
                .map_err(|e| setup(&path.display().to_string(), &e))?;
        }
        let (root, idle) = (
            podman.root.clone(),
            std::time::Duration::from_secs(config.build_store_idle_days.saturating_mul(86_400)),
        );
        tokio::task::spawn_blocking(move || {
            let forgotten = stores::forget_idle(&root, idle);
            if !forgotten.is_empty() {
                tracing::info!(tenants = forgotten.len(), "removed idle build stores");
            }
        });
        if podman.base_store.is_none() {
            tracing::warn!(
                root = %podman.root.display(),
                "no base image store for sandboxed builds: generated Dockerfiles' base images \
                 must then be pulled (infra/local/base-images.sh fills the store)"
            );
        }
        fence(config)
            .await
            .install(&podman.root.join("fence.lock"))
            .await
            .map_err(|e| BuildError::Sandbox(e.to_string()))?;
        Ok(Self {
            podman,
            pool: config.build_network,
            limits: Limits {
                memory_bytes: config.build_memory_mb * 1024 * 1024,
                cpus: config.build_cpus,
                pids: config.build_pids,
            },
            auth,
            insecure,
            cgroup_root: PathBuf::from("/sys/fs/cgroup"),
        })
    }

    /// Whether `image` is in `tenant`'s image store (or the base store its
    /// builds read).
    pub async fn has_image(&self, tenant: &str, image: &str) -> bool {
        let runtime = self
            .podman
            .root
            .join("builds")
            .join(format!("query-{}", uuid::Uuid::new_v4().simple()));
        let Ok(store) = self.store(tenant, runtime.clone()) else {
            return false;
        };
        let args = ["image".to_owned(), "exists".to_owned(), image.to_owned()];
        let exists = match self.podman.command(&store, &args, None) {
            Ok(mut command) => command.status().await.is_ok_and(|status| status.success()),
            Err(_) => false,
        };
        reap_pause(&store.runtime);
        let _ = std::fs::remove_dir_all(runtime);
        exists
    }

    /// The tenant's store; refuses names that are not DNS labels.
    fn store(&self, tenant: &str, runtime: PathBuf) -> Result<Store, BuildError> {
        let label = !tenant.is_empty()
            && tenant.len() <= 63
            && tenant
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if !label {
            return Err(BuildError::Internal(format!(
                "tenant name `{tenant}` is not a DNS label"
            )));
        }
        let store = Store {
            graph: self.podman.root.join("stores").join(tenant),
            run: self.podman.root.join("runroot").join(tenant),
            runtime,
        };
        for dir in [
            &store.graph,
            &store.run,
            &store.runtime,
            &store.runtime.join("tmp"),
        ] {
            std::fs::create_dir_all(dir).map_err(|e| BuildError::Sandbox(e.to_string()))?;
            private_to(&self.podman.user, dir).map_err(|e| BuildError::Sandbox(e.to_string()))?;
        }
        Ok(store)
    }

    fn registry_host(&self) -> &str {
        self.auth.registry.split('/').next().unwrap_or("")
    }

    /// Writes a grant of `access` to `tenant`'s images where only podman
    /// (as the build user) reads it.
    fn auth_file(&self, dir: &Path, tenant: &str, access: Access) -> Result<PathBuf, BuildError> {
        let grant = self.auth.credentials.for_tenant(tenant, access);
        let path = dir.join("auth.json");
        std::fs::write(
            &path,
            podman::auth_file(self.registry_host(), &grant.username, &grant.password),
        )
        .and_then(|()| private_to(&self.podman.user, &path))
        .map_err(|e| BuildError::Sandbox(e.to_string()))?;
        Ok(path)
    }

    fn registry_args(&self, auth_file: &Path) -> Vec<String> {
        vec![
            format!("--tls-verify={}", !self.insecure),
            format!("--authfile={}", auth_file.display()),
        ]
    }

    /// Pulls the base images that live in berth's own registry, which the
    /// sandbox cannot reach; everything else the build pulls itself.
    async fn pull_own_images(
        &self,
        job: &BuildJob,
        store: &Store,
        auth_file: &Path,
        log: &BuildLog,
    ) -> Result<(), BuildError> {
        let own = format!("{}/", self.registry_host());
        for image in job
            .base_images
            .iter()
            .filter(|image| image.starts_with(&own))
        {
            log.line(format!("Pulling {image}")).await;
            let mut args = vec!["pull".to_owned(), "--quiet".to_owned()];
            args.extend(self.registry_args(auth_file));
            args.push(image.clone());
            let command = self
                .podman
                .command(store, &args, None)
                .map_err(setup_failed)?;
            let finished = run::run_logged(command, log).await.map_err(setup_failed)?;
            reap_pause(&store.runtime);
            if !finished.status.success() {
                return Err(BuildError::BuildFailed {
                    step: "the start, pulling its base images".to_owned(),
                    detail: format!(
                        "{image} could not be pulled: {}",
                        finished
                            .last_error
                            .as_deref()
                            .map(last_line)
                            .unwrap_or_default()
                    ),
                });
            }
        }
        Ok(())
    }
}

#[async_trait]
impl ImageBuilder for SandboxBuilder {
    async fn build(&self, job: &BuildJob, log: &BuildLog) -> Result<Built, BuildError> {
        let slot = slot::acquire(&self.podman.root.join("slots")).map_err(setup_failed)?;
        let net = SandboxNet::for_slot(&self.pool, slot.index).ok_or_else(|| {
            BuildError::Sandbox(format!(
                "BERTH_BUILD_NETWORK {} has no room for slot {}",
                self.pool, slot.index
            ))
        })?;
        let dir = self.podman.root.join("builds").join(slot.index.to_string());
        let mut sandbox = Sandbox {
            net,
            cgroup: None,
            dir,
            slot,
        };
        let result = self.build_in(&mut sandbox, job, log).await;
        sandbox.close().await;
        result
    }

    async fn push(&self, job: &BuildJob, log: &BuildLog) -> Result<(), BuildError> {
        let dir = self
            .podman
            .root
            .join("builds")
            .join(format!("push-{}", job.deployment_id));
        let _ = std::fs::remove_dir_all(&dir);
        let store = self.store(&job.app.tenant, dir.join("run"))?;
        let auth_file = self.auth_file(&dir, &job.app.tenant, Access::Push)?;
        let mut args = vec!["push".to_owned(), "--quiet".to_owned()];
        args.extend(self.registry_args(&auth_file));
        args.push(job.image());
        let command = self
            .podman
            .command(&store, &args, None)
            .map_err(setup_failed)?;
        let finished = run::run_logged(command, log).await.map_err(setup_failed);
        reap_pause(&store.runtime);
        let _ = std::fs::remove_dir_all(&dir);
        let finished = finished?;
        if finished.status.success() {
            return Ok(());
        }
        Err(BuildError::PushFailed {
            registry: self.auth.registry.clone(),
            detail: finished
                .last_error
                .as_deref()
                .map(last_line)
                .unwrap_or_default(),
        })
    }
}

impl SandboxBuilder {
    async fn build_in(
        &self,
        sandbox: &mut Sandbox,
        job: &BuildJob,
        log: &BuildLog,
    ) -> Result<Built, BuildError> {
        let _ = std::fs::remove_dir_all(&sandbox.dir);
        let store = self.store(&job.app.tenant, sandbox.dir.join("run"))?;
        stores::mark_used(&store.graph).map_err(setup_failed)?;
        let context = sandbox.dir.join("context");
        let (tar, into, user) = (
            job.context.clone(),
            context.clone(),
            self.podman.user.clone(),
        );
        tokio::task::spawn_blocking(move || {
            tar::Archive::new(std::fs::File::open(tar)?).unpack(&into)?;
            podman::give_to(&user, &into)
        })
        .await
        .map_err(|e| BuildError::Internal(e.to_string()))?
        .map_err(|e| BuildError::Context(format!("cannot unpack the build context: {e}")))?;
        let auth_file = self.auth_file(&sandbox.dir, &job.app.tenant, Access::Pull)?;
        self.pull_own_images(job, &store, &auth_file, log).await?;

        sandbox
            .net
            .create()
            .await
            .map_err(|e| BuildError::Sandbox(e.to_string()))?;
        let group = BuildCgroup::create(
            &self.cgroup_root,
            CGROUP_PARENT,
            &format!("slot-{}", sandbox.slot.index),
            self.limits,
        )
        .map_err(sandbox_io)?;
        let enter = Enter {
            netns: Some(sandbox.net.path()),
            cgroup_procs: group.procs_files(),
        };
        sandbox.cgroup = Some(group);
        let mut args = vec![
            "build".to_owned(),
            "--network=host".to_owned(),
            "--pull=missing".to_owned(),
            "--layers=true".to_owned(),
            "--format=docker".to_owned(),
            format!("--file={}", context.join(&job.dockerfile).display()),
            format!("--tag={}", job.image()),
        ];
        let mut labels: Vec<_> = job.labels.iter().collect();
        labels.sort();
        args.extend(labels.into_iter().map(|(k, v)| format!("--label={k}={v}")));
        args.push(context.display().to_string());
        let command = self
            .podman
            .command(&store, &args, Some(enter))
            .map_err(setup_failed)?;
        let finished = run::run_logged(command, log).await.map_err(setup_failed)?;
        if finished.status.success() {
            return Ok(Built::Local);
        }
        let group = sandbox.cgroup.as_ref().expect("set above");
        let step = finished
            .output
            .step()
            .unwrap_or("the start, before any step ran")
            .to_owned();
        if group.oom_kills() > 0 {
            return Err(BuildError::OutOfMemory {
                step,
                limit_mb: self.limits.memory_bytes / (1024 * 1024),
            });
        }
        if group.refused_forks() > 0 {
            return Err(BuildError::TooManyProcesses {
                step,
                limit: self.limits.pids,
            });
        }
        let error = finished
            .last_error
            .unwrap_or_else(|| format!("podman exited with {}", finished.status));
        if finished.output.step().is_none() && is_podman_setup_error(&error) {
            return Err(BuildError::Sandbox(format!(
                "podman could not start in the build sandbox: {}",
                last_line(&error)
            )));
        }
        Err(finished.output.failure(&error))
    }
}

/// A build's slot and what was made for it; [`Sandbox::close`] (or, if a
/// cancelled build never gets there, the drop) removes it all.
struct Sandbox {
    net: SandboxNet,
    cgroup: Option<BuildCgroup>,
    dir: PathBuf,
    slot: slot::Slot,
}

impl Sandbox {
    async fn close(&mut self) {
        if let Some(group) = self.cgroup.take() {
            let _ = tokio::task::spawn_blocking(move || group.remove()).await;
        }
        self.net.remove().await;
        let dir = std::mem::take(&mut self.dir);
        let _ = tokio::task::spawn_blocking(move || std::fs::remove_dir_all(dir)).await;
    }
}

impl Drop for Sandbox {
    /// A build stopped by its deadline, a cancel or the worker's shutdown
    /// is dropped mid-way: every process it started dies here.
    fn drop(&mut self) {
        if let Some(group) = self.cgroup.take() {
            let _ = group.remove();
        }
        if !self.dir.as_os_str().is_empty() {
            let _ = std::process::Command::new("ip")
                .args(["netns", "delete", &self.net.name])
                .output();
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Kills the pause process a rootless podman run outside a sandbox left to
/// hold its user namespace.
fn reap_pause(runtime: &Path) {
    let pid = std::fs::read_to_string(runtime.join("libpod/tmp/pause.pid"))
        .ok()
        .and_then(|text| text.trim().parse::<i32>().ok());
    if let Some(pid) = pid.filter(|pid| *pid > 1) {
        // SAFETY: kill(2) of the pid podman recorded for its pause process.
        unsafe {
            libc::kill(pid, libc::SIGKILL);
        }
    }
}

/// The fence from the flags, with the host's own networks refused too.
async fn fence(config: &SandboxConfig) -> Fence {
    let dns = if config.build_dns.is_empty() {
        fence::resolv_conf_nameservers(
            &std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default(),
        )
    } else {
        config.build_dns.clone()
    };
    if dns.is_empty() {
        tracing::warn!("no DNS server a sandbox can reach: set BERTH_BUILD_DNS");
    }
    Fence {
        chain: "BERTH-BUILD".into(),
        interfaces: format!("{}+", net::HOST_IF_PREFIX),
        dns,
        deny: fence::with_host_networks(config.sandbox_egress_deny.clone(), &[net::HOST_IF_PREFIX])
            .await,
        same_bridge: false,
        passed: Passed::Accept,
        closed_inbound: true,
        masquerade: Some(config.build_network),
    }
}

/// Owned by the build user, readable by no one else.
fn private_to(user: &BuildUser, path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::os::unix::fs::chown(path, Some(user.uid), Some(user.gid))?;
    let mode = if path.is_dir() { 0o700 } else { 0o600 };
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

/// Whether podman failed setting itself up rather than building: rootless
/// podman's own start, which fails now and then when builds of one tenant
/// start and end at once (seen under `make chaos`). Nothing in the
/// repository causes these, so they are retried, not the user's failure.
fn is_podman_setup_error(error: &str) -> bool {
    const SIGNS: [&str; 2] = [
        "cannot re-exec process to join the existing user namespace",
        "default OCI runtime",
    ];
    SIGNS.iter().any(|sign| error.contains(sign))
}

fn setup_failed(error: impl std::fmt::Display) -> BuildError {
    BuildError::Sandbox(error.to_string())
}

fn sandbox_io(error: std::io::Error) -> BuildError {
    BuildError::Sandbox(format!("cannot make the build's control group: {error}"))
}

#[cfg(test)]
mod tests {
    use super::is_podman_setup_error;

    #[test]
    fn podmans_own_start_failures_are_told_from_build_failures() {
        assert!(is_podman_setup_error(
            "Error: cannot re-exec process to join the existing user namespace"
        ));
        assert!(is_podman_setup_error(
            "Error: default OCI runtime \"runc\" not found: invalid argument"
        ));
        assert!(!is_podman_setup_error(
            "Error: building at STEP \"RUN make\": exit status 2"
        ));
        assert!(!is_podman_setup_error(
            "dockerfile parse error line 3: unknown instruction: RUNN"
        ));
    }
}
