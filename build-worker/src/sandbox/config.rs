//! The sandbox's flags. The defaults are sized for a small single host:
//! a build gets one CPU, 2 GiB and 1,024 processes (podman's own threads
//! count too), which fits `pip install`, `npm ci` and `cargo build` of an
//! ordinary app, while two concurrent builds still leave the platform's
//! services their share of a 4 GiB machine.

use berth_common::fence::DEFAULT_EGRESS_DENY;
use clap::Args;
use ipnet::Ipv4Net;
use std::net::Ipv4Addr;
use std::path::PathBuf;

#[derive(Debug, Clone, Args)]
pub struct SandboxConfig {
    /// The unprivileged user sandboxed builds run as (rootless podman): it
    /// needs ranges in /etc/subuid and /etc/subgid and no rights on
    /// berth's files.
    #[arg(long, env = "BERTH_BUILD_USER", default_value = "berth-build")]
    pub build_user: String,

    /// Folder of the sandboxes (each tenant's image store, each build's
    /// context and runtime files); owned by the build user, mode 0700.
    #[arg(long, env = "BERTH_BUILD_ROOT", default_value = "/var/lib/berth-build")]
    pub build_root: PathBuf,

    /// The build user's store of base images, read-only to every build
    /// (default: BERTH_BUILD_ROOT/base). infra/local/base-images.sh fills it.
    #[arg(long, env = "BERTH_BUILD_BASE_STORE")]
    pub base_store: Option<PathBuf>,

    /// The podman program sandboxed builds run.
    #[arg(long, env = "BERTH_PODMAN", default_value = "podman")]
    pub podman: PathBuf,

    /// podman's storage driver for build stores (overlay, or vfs where
    /// overlay cannot be mounted).
    #[arg(long, env = "BERTH_BUILD_STORAGE_DRIVER", default_value = "overlay")]
    pub storage_driver: String,

    /// Memory limit of one build, in MiB (no swap).
    #[arg(long, env = "BERTH_BUILD_MEMORY_MB", default_value_t = 2048)]
    pub build_memory_mb: u64,

    /// CPU limit of one build, in CPUs (fractions allowed).
    #[arg(long, env = "BERTH_BUILD_CPUS", default_value_t = 1.0)]
    pub build_cpus: f64,

    /// Process (and thread) limit of one build.
    #[arg(long, env = "BERTH_BUILD_PIDS", default_value_t = 1024)]
    pub build_pids: u64,

    /// Addresses of the sandboxes' networks; each build takes a /30.
    #[arg(long, env = "BERTH_BUILD_NETWORK", default_value = "10.250.0.0/16")]
    pub build_network: Ipv4Net,

    /// DNS servers builds may query, comma-separated (default: the host's
    /// nameservers from /etc/resolv.conf; a loopback resolver cannot serve
    /// a sandbox, so give a reachable one).
    #[arg(long, env = "BERTH_BUILD_DNS", value_delimiter = ',')]
    pub build_dns: Vec<Ipv4Addr>,

    /// Days after its tenant's last build that an image store (the
    /// tenant's layer cache) is removed, at the worker's start.
    #[arg(long, env = "BERTH_BUILD_STORE_IDLE_DAYS", default_value_t = 14)]
    pub build_store_idle_days: u64,

    /// Destinations builds may never reach, comma-separated CIDRs; the
    /// host's own addresses and networks are always refused too.
    #[arg(long, env = "BERTH_BUILD_EGRESS_DENY", value_delimiter = ',',
          default_value = DEFAULT_EGRESS_DENY)]
    pub sandbox_egress_deny: Vec<Ipv4Net>,
}
