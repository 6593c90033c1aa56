//! One control group per build, made by the (root) worker. Rootless podman
//! cannot set limits on a cgroup v1 host (these machines run v1 in hybrid
//! mode), so the limits are set here and the build's whole process tree
//! (podman, its pause process, every `RUN` step) starts inside the group
//! and inherits it. The group also tells afterwards why a build died (the
//! kernel's OOM kills, refused forks) and is how a cancelled or overdue
//! build is stopped: every process in it is killed.

use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// What a build may use.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    pub memory_bytes: u64,
    pub cpus: f64,
    pub pids: u64,
}

const PERIOD_US: u64 = 100_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    /// One hierarchy per controller (`/sys/fs/cgroup/memory/...`).
    V1,
    /// The unified hierarchy.
    V2,
}

/// A build's control group (one directory per hierarchy on v1).
#[derive(Debug)]
pub struct BuildCgroup {
    layout: Layout,
    dirs: Vec<PathBuf>,
}

impl BuildCgroup {
    /// Makes `<parent>/<name>` afresh under `root` (normally
    /// `/sys/fs/cgroup`): a leftover of a crashed worker is emptied and
    /// removed first, so the counters start at zero.
    pub fn create(root: &Path, parent: &str, name: &str, limits: Limits) -> io::Result<Self> {
        let layout = if root.join("cgroup.controllers").exists() {
            Layout::V2
        } else {
            Layout::V1
        };
        let dirs: Vec<PathBuf> = match layout {
            Layout::V1 => ["memory", "pids", "cpu"]
                .iter()
                .map(|controller| root.join(controller).join(parent).join(name))
                .collect(),
            Layout::V2 => vec![root.join(parent).join(name)],
        };
        let group = Self { layout, dirs };
        group.remove()?;
        if layout == Layout::V2 {
            let parent_dir = root.join(parent);
            std::fs::create_dir_all(&parent_dir)?;
            for dir in [root, parent_dir.as_path()] {
                write(&dir.join("cgroup.subtree_control"), "+memory +pids +cpu")?;
            }
        }
        for dir in &group.dirs {
            std::fs::create_dir_all(dir)?;
        }
        group.apply(limits)?;
        Ok(group)
    }

    fn apply(&self, limits: Limits) -> io::Result<()> {
        let quota = ((limits.cpus * PERIOD_US as f64).round() as u64).max(1000);
        match self.layout {
            Layout::V1 => {
                let memory = self.dir("memory");
                write(
                    &memory.join("memory.limit_in_bytes"),
                    &limits.memory_bytes.to_string(),
                )?;
                // With swap accounting, no swap either.
                let memsw = memory.join("memory.memsw.limit_in_bytes");
                if memsw.exists() {
                    write(&memsw, &limits.memory_bytes.to_string())?;
                }
                write(&self.dir("pids").join("pids.max"), &limits.pids.to_string())?;
                let cpu = self.dir("cpu");
                write(&cpu.join("cpu.cfs_period_us"), &PERIOD_US.to_string())?;
                write(&cpu.join("cpu.cfs_quota_us"), &quota.to_string())
            }
            Layout::V2 => {
                let dir = &self.dirs[0];
                write(&dir.join("memory.max"), &limits.memory_bytes.to_string())?;
                let swap = dir.join("memory.swap.max");
                if swap.exists() {
                    write(&swap, "0")?;
                }
                write(&dir.join("pids.max"), &limits.pids.to_string())?;
                write(&dir.join("cpu.max"), &format!("{quota} {PERIOD_US}"))
            }
        }
    }

    /// The `cgroup.procs` files a process writes `0` to, to join.
    pub fn procs_files(&self) -> Vec<PathBuf> {
        self.dirs
            .iter()
            .map(|dir| dir.join("cgroup.procs"))
            .collect()
    }

    /// How many times the kernel killed a process for memory.
    pub fn oom_kills(&self) -> u64 {
        let (file, key) = match self.layout {
            Layout::V1 => (self.dir("memory").join("memory.oom_control"), "oom_kill"),
            Layout::V2 => (self.dirs[0].join("memory.events"), "oom_kill"),
        };
        counter(&file, key)
    }

    /// How many forks the process limit refused.
    pub fn refused_forks(&self) -> u64 {
        let dir = match self.layout {
            Layout::V1 => self.dir("pids"),
            Layout::V2 => self.dirs[0].clone(),
        };
        counter(&dir.join("pids.events"), "max")
    }

    /// Kills every process in the group, until none is left (a dying
    /// process can still fork once), for at most a few seconds.
    pub fn kill_all(&self) {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let pids = self.pids();
            if pids.is_empty() || Instant::now() > deadline {
                return;
            }
            for pid in pids {
                // SAFETY: kill(2) with a pid read from the group; a pid
                // that has exited meanwhile fails with ESRCH, ignored.
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills what is left and removes the group.
    pub fn remove(&self) -> io::Result<()> {
        self.kill_all();
        for dir in &self.dirs {
            match std::fs::remove_dir(dir) {
                Ok(()) => {}
                Err(error) if error.kind() == io::ErrorKind::NotFound => {}
                Err(error) => return Err(error),
            }
        }
        Ok(())
    }

    fn pids(&self) -> Vec<i32> {
        let mut pids: Vec<i32> = self
            .procs_files()
            .iter()
            .filter_map(|file| std::fs::read_to_string(file).ok())
            .flat_map(|text| {
                text.lines()
                    .filter_map(|line| line.trim().parse().ok())
                    .collect::<Vec<i32>>()
            })
            .collect();
        pids.sort_unstable();
        pids.dedup();
        pids
    }

    fn dir(&self, controller: &str) -> PathBuf {
        self.dirs
            .iter()
            .find(|dir| {
                dir.components()
                    .any(|c| c.as_os_str() == std::ffi::OsStr::new(controller))
            })
            .cloned()
            .unwrap_or_else(|| self.dirs[0].clone())
    }
}

fn write(path: &Path, value: &str) -> io::Result<()> {
    std::fs::write(path, value)
        .map_err(|error| io::Error::new(error.kind(), format!("{}: {error}", path.display())))
}

/// `key N` in a cgroup events file; 0 when absent.
fn counter(file: &Path, key: &str) -> u64 {
    std::fs::read_to_string(file)
        .ok()
        .and_then(|text| {
            text.lines().find_map(|line| {
                let (name, value) = line.split_once(' ')?;
                (name == key).then(|| value.trim().parse().ok()).flatten()
            })
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        memory_bytes: 512 * 1024 * 1024,
        cpus: 1.5,
        pids: 256,
    };

    #[test]
    fn v1_limits_go_to_each_controller() {
        let root = tempfile::tempdir().unwrap();
        for controller in ["memory", "pids", "cpu"] {
            std::fs::create_dir(root.path().join(controller)).unwrap();
        }
        let group = BuildCgroup::create(root.path(), "berth-builds", "s0", LIMITS).unwrap();
        let read = |path: &str| std::fs::read_to_string(root.path().join(path)).unwrap();
        assert_eq!(
            read("memory/berth-builds/s0/memory.limit_in_bytes"),
            "536870912"
        );
        assert_eq!(read("pids/berth-builds/s0/pids.max"), "256");
        assert_eq!(read("cpu/berth-builds/s0/cpu.cfs_quota_us"), "150000");
        assert_eq!(group.procs_files().len(), 3);
        std::fs::write(
            root.path()
                .join("memory/berth-builds/s0/memory.oom_control"),
            "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n",
        )
        .unwrap();
        std::fs::write(
            root.path().join("pids/berth-builds/s0/pids.events"),
            "max 7\n",
        )
        .unwrap();
        assert_eq!(group.oom_kills(), 2);
        assert_eq!(group.refused_forks(), 7);
    }

    #[test]
    fn v2_limits_go_to_one_group() {
        let root = tempfile::tempdir().unwrap();
        std::fs::write(root.path().join("cgroup.controllers"), "cpu memory pids").unwrap();
        let group = BuildCgroup::create(root.path(), "berth-builds", "s1", LIMITS).unwrap();
        let read = |path: &str| std::fs::read_to_string(root.path().join(path)).unwrap();
        assert_eq!(read("berth-builds/s1/memory.max"), "536870912");
        assert_eq!(read("berth-builds/s1/cpu.max"), "150000 100000");
        assert_eq!(
            read("berth-builds/cgroup.subtree_control"),
            "+memory +pids +cpu"
        );
        assert_eq!(group.oom_kills(), 0);
    }
}
