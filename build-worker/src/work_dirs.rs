//! Build work folders, and the ones a killed worker left behind. Each build
//! clones into `<BERTH_WORK_DIR>/<deployment id>-<random>` and removes it
//! when it ends, but a SIGKILL or an OOM kill leaves the clone and its
//! context tar: a worker that keeps crashing would fill its disk.
//!
//! A build holds a lock on `<folder>/.in-use` while it runs, and the kernel
//! drops it when the process dies. The worker sweeps at start and then
//! periodically: a folder whose lock it can take is removed at once; one
//! without a lock file (an older berth, or made this instant) only once it
//! is older than the build deadline. Another worker's running build on the
//! same folder holds its lock and is left alone. Nothing else is touched.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Whether `name` is a build's work folder: `<uuid>-<anything>`.
fn is_build_folder(name: &str) -> bool {
    name.len() > 37 && name.as_bytes()[36] == b'-' && Uuid::parse_str(&name[..36]).is_ok()
}

const IN_USE: &str = ".in-use";

/// A build's folder, locked while it lives, removed on a blocking thread
/// when dropped.
pub struct WorkDir {
    dir: Option<tempfile::TempDir>,
    _in_use: File,
}

impl WorkDir {
    pub fn create(work_dir: &Path, deployment_id: Uuid) -> std::io::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix(&format!("{deployment_id}-"))
            .tempdir_in(work_dir)?;
        let in_use = File::create(dir.path().join(IN_USE))?;
        in_use.lock()?;
        Ok(Self {
            dir: Some(dir),
            _in_use: in_use,
        })
    }

    pub fn path(&self) -> &Path {
        self.dir
            .as_ref()
            .expect("the folder lives until drop")
            .path()
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        if let Some(dir) = self.dir.take() {
            match tokio::runtime::Handle::try_current() {
                Ok(handle) => drop(handle.spawn_blocking(move || drop(dir))),
                Err(_) => drop(dir),
            }
        }
    }
}

/// Whether no running build holds the folder: its lock is free, or, with
/// no lock file, it was last changed more than `older_than` ago.
fn abandoned(dir: &Path, older_than: Duration, now: SystemTime) -> std::io::Result<bool> {
    match File::open(dir.join(IN_USE)) {
        Ok(in_use) => Ok(in_use.try_lock().is_ok()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            let changed = std::fs::metadata(dir)?.modified()?;
            Ok(now.duration_since(changed).unwrap_or_default() >= older_than)
        }
        Err(error) => Err(error),
    }
}

/// Removes the build folders in `work_dir` no running build holds (see the
/// module docs); returns how many.
pub fn sweep(work_dir: &Path, older_than: Duration) -> std::io::Result<usize> {
    let now = SystemTime::now();
    let mut removed = 0;
    for entry in std::fs::read_dir(work_dir)? {
        let entry = entry?;
        let name = entry.file_name();
        if !name.to_str().is_some_and(is_build_folder) || !entry.file_type()?.is_dir() {
            continue;
        }
        if !abandoned(&entry.path(), older_than, now)? {
            continue;
        }
        std::fs::remove_dir_all(entry.path())?;
        tracing::warn!(folder = %entry.path().display(), "removed a build folder a killed worker left");
        removed += 1;
    }
    Ok(removed)
}

/// Sweeps at start and then every `older_than`, until `shutdown`.
pub async fn run(work_dir: PathBuf, older_than: Duration, shutdown: CancellationToken) {
    loop {
        let dir = work_dir.clone();
        match tokio::task::spawn_blocking(move || sweep(&dir, older_than)).await {
            Ok(Ok(_)) => {}
            Ok(Err(error)) => tracing::warn!(%error, "could not sweep the build work folder"),
            Err(error) => tracing::warn!(%error, "the work folder sweep panicked"),
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(older_than) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn aged(path: &Path, ago: Duration) {
        std::fs::File::open(path)
            .unwrap()
            .set_modified(SystemTime::now() - ago)
            .unwrap();
    }

    #[test]
    fn a_folder_whose_build_died_goes_at_once_and_a_running_ones_stays() {
        let work = tempfile::tempdir().unwrap();
        let running = WorkDir::create(work.path(), Uuid::now_v7()).unwrap();
        // What a killed process leaves: the folder and its lock file, but
        // no lock (the kernel dropped it with the process).
        let died_path = work.path().join(format!("{}-k1ll3d", Uuid::now_v7()));
        std::fs::create_dir(&died_path).unwrap();
        File::create(died_path.join(IN_USE)).unwrap();

        assert_eq!(sweep(work.path(), Duration::from_secs(3600)).unwrap(), 1);
        assert!(!died_path.exists());
        assert!(running.path().exists(), "its build holds the lock");
        let path = running.path().to_path_buf();
        drop(running);
        // Removed on a blocking thread when there is a runtime; here at once.
        assert!(!path.exists());
    }

    #[test]
    fn only_build_folders_older_than_the_deadline_go() {
        let work = tempfile::tempdir().unwrap();
        let old = work.path().join(format!("{}-a1b2c3", Uuid::now_v7()));
        let young = work.path().join(format!("{}-d4e5f6", Uuid::now_v7()));
        let other = work.path().join("cache");
        for dir in [&old, &young, &other] {
            std::fs::create_dir(dir).unwrap();
            std::fs::write(dir.join("context.tar"), "x").unwrap();
        }
        let stray_file = work.path().join(format!("{}-file", Uuid::now_v7()));
        std::fs::write(&stray_file, "x").unwrap();
        let hour = Duration::from_secs(3600);
        for path in [&old, &other, &stray_file] {
            aged(path, 2 * hour);
        }
        aged(&young, Duration::from_secs(60));

        assert_eq!(sweep(work.path(), hour).unwrap(), 1);
        assert!(!old.exists());
        assert!(young.exists(), "a build may still use it");
        assert!(other.exists(), "not a build folder");
        assert!(stray_file.exists(), "not a folder");
    }
}
