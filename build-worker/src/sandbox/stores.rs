//! Tenants' image stores: each build marks its tenant's store as used, and
//! a store nobody built in for a while is removed at the worker's start, so
//! the build root does not grow with every tenant that ever built once.
//! The next build of such a tenant starts from the base images again.

use std::path::Path;
use std::time::{Duration, SystemTime};

const MARK: &str = "last-build";

/// Notes that `tenant`'s store is in use now.
pub fn mark_used(graph: &Path) -> std::io::Result<()> {
    std::fs::write(graph.join(MARK), b"")
}

/// Removes the stores (and their run roots) under `root` whose last build
/// is older than `idle`; returns the tenants forgotten. Blocking.
pub fn forget_idle(root: &Path, idle: Duration) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(root.join("stores")) else {
        return Vec::new();
    };
    let now = SystemTime::now();
    let mut forgotten = Vec::new();
    for entry in entries.flatten() {
        let graph = entry.path();
        let used = std::fs::metadata(graph.join(MARK))
            .or_else(|_| std::fs::metadata(&graph))
            .and_then(|meta| meta.modified());
        let idle_for = used
            .ok()
            .and_then(|used| now.duration_since(used).ok())
            .unwrap_or_default();
        if idle_for < idle {
            continue;
        }
        let tenant = entry.file_name().to_string_lossy().into_owned();
        if std::fs::remove_dir_all(&graph).is_ok() {
            let _ = std::fs::remove_dir_all(root.join("runroot").join(&tenant));
            forgotten.push(tenant);
        }
    }
    forgotten
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stores_nobody_built_in_lately_are_forgotten() {
        let root = tempfile::tempdir().unwrap();
        for tenant in ["busy", "gone"] {
            std::fs::create_dir_all(root.path().join("stores").join(tenant)).unwrap();
            std::fs::create_dir_all(root.path().join("runroot").join(tenant)).unwrap();
        }
        let gone = root.path().join("stores/gone");
        mark_used(&gone).unwrap();
        let long_ago = SystemTime::now() - Duration::from_secs(30 * 86_400);
        std::fs::File::options()
            .write(true)
            .open(gone.join(MARK))
            .unwrap()
            .set_modified(long_ago)
            .unwrap();
        mark_used(&root.path().join("stores/busy")).unwrap();
        let forgotten = forget_idle(root.path(), Duration::from_secs(14 * 86_400));
        assert_eq!(forgotten, ["gone"]);
        assert!(!gone.exists() && !root.path().join("runroot/gone").exists());
        assert!(root.path().join("stores/busy").exists());
    }
}
