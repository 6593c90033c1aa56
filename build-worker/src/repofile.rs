//! Reading files of a tenant's checkout without leaving it. A repository
//! can hold links to anywhere (`Procfile -> /etc/shadow`, `.dockerignore ->
//! /dev/zero`) and git creates them on checkout; the worker runs with more
//! rights than the tenant, so every file berth itself reads goes through
//! here: links are followed only when they stay inside the repository, only
//! regular files are read, and never more than a bound.

use std::io::Read;
use std::path::{Component, Path};

/// What is wrong with a file berth wanted to read; the text completes
/// "the repository's …".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnsafeFile {
    #[error("{name} is a link; berth reads it only as a regular file")]
    Link { name: String },
    #[error("{name} leads outside the repository (to {target})")]
    LeadsOut { name: String, target: String },
    #[error("{name} is not a regular file")]
    NotAFile { name: String },
    #[error("{name} is larger than {max} bytes")]
    TooLarge { name: String, max: u64 },
    #[error("{name} cannot be read: {problem}")]
    Unreadable { name: String, problem: String },
}

/// How a link is treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Links {
    /// A link is refused outright (the Dockerfile, `.dockerignore`).
    Refuse,
    /// A link is followed when its target stays inside the repository.
    Inside,
}

/// Reads `dir/name` (at most `max` bytes); `Ok(None)` when it does not exist.
pub fn read(
    root: &Path,
    dir: &Path,
    name: &str,
    links: Links,
    max: u64,
) -> Result<Option<Vec<u8>>, UnsafeFile> {
    let path = dir.join(name);
    let unreadable = |error: std::io::Error| UnsafeFile::Unreadable {
        name: name.to_owned(),
        problem: error.kind().to_string(),
    };
    let meta = match std::fs::symlink_metadata(&path) {
        Ok(meta) => meta,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(unreadable(error)),
    };
    let real = if meta.file_type().is_symlink() {
        if links == Links::Refuse {
            return Err(UnsafeFile::Link {
                name: name.to_owned(),
            });
        }
        let target = std::fs::read_link(&path).map_err(unreadable)?;
        let leads_out = || UnsafeFile::LeadsOut {
            name: name.to_owned(),
            target: target.display().to_string(),
        };
        let real = path.canonicalize().map_err(|_| leads_out())?;
        let real_root = root.canonicalize().map_err(unreadable)?;
        if !real.starts_with(&real_root) {
            return Err(leads_out());
        }
        real
    } else {
        path
    };
    let meta = std::fs::metadata(&real).map_err(unreadable)?;
    if !meta.is_file() {
        return Err(UnsafeFile::NotAFile {
            name: name.to_owned(),
        });
    }
    if meta.len() > max {
        return Err(UnsafeFile::TooLarge {
            name: name.to_owned(),
            max,
        });
    }
    let mut bytes = Vec::new();
    std::fs::File::open(&real)
        .map_err(unreadable)?
        .take(max)
        .read_to_end(&mut bytes)
        .map_err(unreadable)?;
    Ok(Some(bytes))
}

/// Where a link at `link` (a path inside `root`) points, resolved by its
/// text alone (the target need not exist), when that stays inside `root`.
/// An absolute target is a path on the build host, so it always leads out.
pub fn link_stays_inside(root: &Path, link: &Path, target: &Path) -> bool {
    if target.is_absolute() {
        return false;
    }
    let Ok(relative) = link.strip_prefix(root) else {
        return false;
    };
    let mut depth: Vec<Component> = relative
        .parent()
        .map_or(Vec::new(), |parent| parent.components().collect());
    for component in target.components() {
        match component {
            Component::ParentDir => {
                if depth.pop().is_none() {
                    return false;
                }
            }
            Component::Normal(_) => depth.push(component),
            Component::CurDir => {}
            Component::RootDir | Component::Prefix(_) => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn links_are_followed_only_inside_the_repository() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("repo");
        std::fs::create_dir_all(root.join("deploy")).unwrap();
        std::fs::write(root.join("deploy/Procfile"), "web: ok").unwrap();
        let outside = dir.path().join("secret");
        std::fs::write(&outside, "web: leak").unwrap();
        symlink("deploy/Procfile", root.join("Procfile")).unwrap();
        symlink(&outside, root.join("Cargo.toml")).unwrap();
        symlink("/dev/zero", root.join(".dockerignore")).unwrap();
        std::fs::create_dir(root.join("sub")).unwrap();
        symlink("../../secret", root.join("sub/Procfile")).unwrap();

        let read = |dir: &Path, name, links| read(&root, dir, name, links, 1024);
        assert_eq!(
            read(&root, "Procfile", Links::Inside).unwrap(),
            Some(b"web: ok".to_vec())
        );
        assert!(matches!(
            read(&root, "Cargo.toml", Links::Inside),
            Err(UnsafeFile::LeadsOut { .. })
        ));
        assert!(matches!(
            read(&root.join("sub"), "Procfile", Links::Inside),
            Err(UnsafeFile::LeadsOut { .. })
        ));
        assert!(matches!(
            read(&root, ".dockerignore", Links::Refuse),
            Err(UnsafeFile::Link { .. })
        ));
        assert!(matches!(
            read(&root, ".dockerignore", Links::Inside),
            Err(UnsafeFile::LeadsOut { .. })
        ));
        assert!(matches!(
            read(&root, "Procfile", Links::Refuse),
            Err(UnsafeFile::Link { .. })
        ));
        assert_eq!(read(&root, "missing", Links::Inside).unwrap(), None);
        assert!(matches!(
            read(&root, "deploy", Links::Inside),
            Err(UnsafeFile::NotAFile { .. })
        ));
        std::fs::write(root.join("big"), vec![b'x'; 2000]).unwrap();
        assert!(matches!(
            read(&root, "big", Links::Inside),
            Err(UnsafeFile::TooLarge { max: 1024, .. })
        ));
    }

    #[test]
    fn link_targets_are_judged_by_their_text() {
        let root = Path::new("/r");
        let inside =
            |link: &str, target: &str| link_stays_inside(root, &root.join(link), Path::new(target));
        assert!(inside("a/link", "../b"));
        assert!(inside("a/b/link", "../../c/./d"));
        assert!(!inside("link", "../etc/passwd"));
        assert!(!inside("a/link", "../../x"));
        assert!(!inside("a/link", "/etc/passwd"));
        assert!(inside("link", "missing/but/inside"));
    }
}
