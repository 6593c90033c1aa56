//! podman run as the build user: rootless, with a clean environment (none
//! of the worker's secrets), berth's own containers.conf and
//! registries.conf, an image store per tenant plus the read-only store of
//! base images, and, for the build itself, inside the sandbox's network
//! namespace and control group.

use std::fs::File;
use std::os::fd::{AsRawFd, RawFd};
use std::path::{Path, PathBuf};
use tokio::process::Command;

/// The unprivileged account builds run as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildUser {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
}

impl BuildUser {
    /// Looks `name` up in `passwd` (the text of /etc/passwd). Root is never
    /// a build user.
    pub fn find(passwd: &str, name: &str) -> Option<Self> {
        passwd.lines().find_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            if fields.len() < 4 || fields[0] != name {
                return None;
            }
            let (uid, gid) = (fields[2].parse().ok()?, fields[3].parse().ok()?);
            (uid != 0).then(|| Self {
                name: name.to_owned(),
                uid,
                gid,
            })
        })
    }
}

/// Where one podman invocation keeps its state.
#[derive(Debug, Clone)]
pub struct Store {
    /// The tenant's image store (graph root).
    pub graph: PathBuf,
    /// Its run root, shared by that tenant's concurrent builds.
    pub run: PathBuf,
    /// This invocation's runtime folder (its own pause process) and temp.
    pub runtime: PathBuf,
}

/// How podman is invoked for builds.
#[derive(Debug, Clone)]
pub struct Podman {
    pub program: PathBuf,
    pub user: BuildUser,
    /// The build root: HOME of podman, where its config files live.
    pub root: PathBuf,
    pub base_store: Option<PathBuf>,
    pub driver: String,
}

impl Podman {
    pub fn containers_conf(&self) -> PathBuf {
        self.root.join("containers.conf")
    }

    pub fn registries_conf(&self) -> PathBuf {
        self.root.join("registries.conf")
    }

    /// The arguments that come before podman's subcommand.
    pub fn global_args(&self, store: &Store) -> Vec<String> {
        let mut args = vec![
            "--log-level=error".to_owned(),
            format!("--root={}", store.graph.display()),
            format!("--runroot={}", store.run.display()),
            format!("--storage-driver={}", self.driver),
        ];
        if let Some(base) = &self.base_store {
            args.push(format!(
                "--storage-opt={}.imagestore={}",
                self.driver,
                base.display()
            ));
        }
        args
    }

    /// `podman <global args> <args>` as the build user, with nothing of the
    /// worker's environment. Inside `sandbox` when given.
    pub fn command(
        &self,
        store: &Store,
        args: &[String],
        sandbox: Option<Enter>,
    ) -> std::io::Result<Command> {
        let mut command = Command::new(&self.program);
        command
            .args(self.global_args(store))
            .args(args)
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin")
            .env("HOME", &self.root)
            .env("USER", &self.user.name)
            .env("XDG_RUNTIME_DIR", &store.runtime)
            .env("TMPDIR", store.runtime.join("tmp"))
            .env("CONTAINERS_CONF", self.containers_conf())
            .env("CONTAINERS_REGISTRIES_CONF", self.registries_conf())
            .current_dir(&store.runtime)
            .kill_on_drop(true);
        let enter = sandbox.unwrap_or_default();
        let switch = Switch::new(&self.user, enter)?;
        // SAFETY: the closure only makes async-signal-safe system calls
        // (setns, write, setgroups, setgid, setuid) on values prepared
        // before the fork.
        unsafe {
            command.pre_exec(move || switch.apply());
        }
        Ok(command)
    }

    /// The config files podman reads, written by the worker at start:
    /// runc (crun cannot run on cgroup v1 hybrid hosts), no ulimits it may
    /// not raise, short names from Docker Hub. berth's own registry is not
    /// named: the worker's pulls and pushes say `--tls-verify` themselves.
    pub fn config_files() -> (String, String) {
        let containers = "# Written by berth's build worker.\n\
             [containers]\ndefault_ulimits = []\nnetns = \"host\"\n\n\
             [engine]\ncgroup_manager = \"cgroupfs\"\nruntime = \"runc\"\nevents_logger = \"none\"\n"
            .to_owned();
        let registries = "# Written by berth's build worker.\n\
             unqualified-search-registries = [\"docker.io\"]\n"
            .to_owned();
        (containers, registries)
    }
}

/// What a sandboxed process joins before it drops to the build user.
#[derive(Debug, Default)]
pub struct Enter {
    /// The network namespace (`/run/netns/<name>`).
    pub netns: Option<PathBuf>,
    /// The control group's `cgroup.procs` files.
    pub cgroup_procs: Vec<PathBuf>,
}

/// Everything the child needs after the fork, opened before it.
struct Switch {
    netns: Option<File>,
    cgroups: Vec<File>,
    uid: libc::uid_t,
    gid: libc::gid_t,
}

impl Switch {
    fn new(user: &BuildUser, enter: Enter) -> std::io::Result<Self> {
        let netns = enter.netns.as_deref().map(File::open).transpose()?;
        let cgroups = enter
            .cgroup_procs
            .iter()
            .map(|path| std::fs::OpenOptions::new().write(true).open(path))
            .collect::<std::io::Result<Vec<_>>>()?;
        Ok(Self {
            netns,
            cgroups,
            uid: user.uid,
            gid: user.gid,
        })
    }

    fn apply(&self) -> std::io::Result<()> {
        let check = |result: libc::c_int| {
            if result == -1 {
                Err(std::io::Error::last_os_error())
            } else {
                Ok(())
            }
        };
        // SAFETY: plain system calls on descriptors this struct owns.
        unsafe {
            for cgroup in &self.cgroups {
                // Writing 0 moves the writing process into the group.
                if libc::write(cgroup.as_raw_fd(), b"0".as_ptr().cast(), 1) != 1 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            if let Some(netns) = &self.netns {
                check(libc::setns(netns.as_raw_fd() as RawFd, libc::CLONE_NEWNET))?;
            }
            check(libc::setgroups(0, std::ptr::null()))?;
            check(libc::setgid(self.gid))?;
            check(libc::setuid(self.uid))?;
        }
        Ok(())
    }
}

/// An auth file for one registry, as podman reads it.
pub fn auth_file(registry_host: &str, username: &str, password: &str) -> String {
    use base64::Engine;
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"));
    serde_json::json!({ "auths": { registry_host: { "auth": auth } } }).to_string()
}

/// Makes `path` (and what is in it) the build user's.
pub fn give_to(user: &BuildUser, path: &Path) -> std::io::Result<()> {
    std::os::unix::fs::lchown(path, Some(user.uid), Some(user.gid))?;
    if std::fs::symlink_metadata(path)?.is_dir() {
        for entry in std::fs::read_dir(path)? {
            give_to(user, &entry?.path())?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_build_user_comes_from_passwd_and_is_never_root() {
        let passwd = "root:x:0:0:root:/root:/bin/bash\nberth-build:x:1001:1001:berth builds:/var/lib/berth-build:/usr/sbin/nologin\n";
        assert_eq!(
            BuildUser::find(passwd, "berth-build"),
            Some(BuildUser {
                name: "berth-build".into(),
                uid: 1001,
                gid: 1001
            })
        );
        assert_eq!(BuildUser::find(passwd, "root"), None);
        assert_eq!(BuildUser::find(passwd, "nobody"), None);
    }

    #[test]
    fn podman_gets_the_tenants_store_and_the_shared_base_images() {
        let podman = Podman {
            program: "podman".into(),
            user: BuildUser {
                name: "b".into(),
                uid: 1,
                gid: 1,
            },
            root: "/var/lib/berth-build".into(),
            base_store: Some("/var/lib/berth-build/base".into()),
            driver: "overlay".into(),
        };
        let store = Store {
            graph: "/var/lib/berth-build/stores/acme".into(),
            run: "/var/lib/berth-build/runroot/acme".into(),
            runtime: "/var/lib/berth-build/builds/3/run".into(),
        };
        assert_eq!(
            podman.global_args(&store),
            [
                "--log-level=error",
                "--root=/var/lib/berth-build/stores/acme",
                "--runroot=/var/lib/berth-build/runroot/acme",
                "--storage-driver=overlay",
                "--storage-opt=overlay.imagestore=/var/lib/berth-build/base",
            ]
        );
        let (_, registries) = Podman::config_files();
        assert!(registries.contains("unqualified-search-registries = [\"docker.io\"]"));
        let json: serde_json::Value =
            serde_json::from_str(&auth_file("127.0.0.1:5000", "u", "p")).unwrap();
        assert_eq!(json["auths"]["127.0.0.1:5000"]["auth"], "dTpw");
    }
}
