//! The build context: the app folder as a tar file, minus `.git` and what
//! `.dockerignore` excludes, plus berth's own files (a generated Dockerfile,
//! the extra CA bundle). The app's files are at the root of the context, or
//! under a prefix folder (for generated Dockerfiles, which copy that folder).
//! Symlinks are stored as links, never followed, and a link whose target
//! leads out of the repository refuses the whole context: neither berth nor
//! the builder that unpacks the context may be led to the build host's
//! files. Headers
//! are deterministic (fixed owner and mtime), which keeps the engine's layer
//! cache valid across clones of the same content.

use crate::dockerignore::DockerIgnore;
use crate::repofile::{self, Links};
use std::fs::File;
use std::io::{self, BufWriter};
use std::path::{Path, PathBuf};
use tar::{Builder, EntryType, Header, HeaderMode};

/// A file berth adds to the context (it wins over a file of the same name).
#[derive(Debug, Clone)]
pub struct ExtraFile {
    pub name: String,
    pub contents: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ContextStats {
    pub files: u64,
    pub bytes: u64,
}

/// The largest `.dockerignore` berth reads.
pub const MAX_DOCKERIGNORE: u64 = 1024 * 1024;

/// Why a context could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ContextError {
    /// The repository tried to lead berth out of it; the text completes
    /// "the repository's …".
    #[error("{0}")]
    Unsafe(String),
    #[error("{0}")]
    Io(#[from] io::Error),
}

/// Writes the context of `dir` (inside the checkout `repo_root`) to the tar
/// file `out`, the app's files under `prefix` (`""`: at the root). Blocking.
pub fn write_context(
    repo_root: &Path,
    dir: &Path,
    prefix: &str,
    extra: &[ExtraFile],
    out: &Path,
) -> Result<ContextStats, ContextError> {
    let (repo_root, dir) = (repo_root.canonicalize()?, dir.canonicalize()?);
    let (repo_root, dir) = (repo_root.as_path(), dir.as_path());
    let ignore = repofile::read(
        repo_root,
        dir,
        ".dockerignore",
        Links::Refuse,
        MAX_DOCKERIGNORE,
    )
    .map_err(|unsafe_file| ContextError::Unsafe(unsafe_file.to_string()))?
    .map(|bytes| DockerIgnore::parse(&String::from_utf8_lossy(&bytes)))
    .unwrap_or_default();
    let mut tar = Builder::new(BufWriter::new(File::create(out)?));
    tar.mode(HeaderMode::Deterministic);
    tar.follow_symlinks(false);
    let mut stats = ContextStats::default();
    let prefixed = !prefix.is_empty();
    // At the root, berth's files replace the app's files of the same name.
    let replaced: Vec<&str> = if prefixed {
        Vec::new()
    } else {
        extra.iter().map(|file| file.name.as_str()).collect()
    };
    if prefixed {
        tar.append_dir(prefix, dir)?;
    }
    let mut pending = vec![PathBuf::new()];
    while let Some(rel_dir) = pending.pop() {
        let mut entries: Vec<_> = std::fs::read_dir(dir.join(&rel_dir))?
            .collect::<Result<Vec<_>, _>>()?
            .into_iter()
            .map(|entry| entry.file_name())
            .collect();
        entries.sort();
        for name in entries {
            let rel = rel_dir.join(&name);
            let Some(rel_str) = rel.to_str().map(str::to_owned) else {
                continue;
            };
            if name == ".git"
                || replaced.contains(&rel_str.as_str())
                || (prefixed && rel_str == ".dockerignore")
            {
                continue;
            }
            // The Dockerfile and .dockerignore always go, as with `docker build`.
            let always = !prefixed
                && matches!(
                    rel_str.as_str(),
                    "Dockerfile" | "Containerfile" | ".dockerignore"
                );
            let path = dir.join(&rel);
            let name_in_tar = Path::new(prefix).join(&rel);
            let meta = std::fs::symlink_metadata(&path)?;
            if meta.is_dir() {
                if ignore.prunes(&rel_str) {
                    continue;
                }
                if !ignore.excludes(&rel_str) {
                    tar.append_path_with_name(&path, &name_in_tar)?;
                }
                pending.push(rel);
            } else if (always || !ignore.excludes(&rel_str))
                // Sockets, fifos and devices are not part of an app.
                && (meta.is_file() || meta.file_type().is_symlink())
            {
                if meta.file_type().is_symlink() {
                    let target = std::fs::read_link(&path)?;
                    if !repofile::link_stays_inside(repo_root, &path, &target) {
                        return Err(ContextError::Unsafe(format!(
                            "link {rel_str} leads outside the repository (to {}); berth does not \
                             build links to files outside the repository",
                            target.display()
                        )));
                    }
                }
                tar.append_path_with_name(&path, &name_in_tar)?;
                stats.files += 1;
                stats.bytes += meta.len();
            }
        }
    }
    for file in extra {
        let mut header = Header::new_gnu();
        header.set_entry_type(EntryType::Regular);
        header.set_size(file.contents.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(tar::DETERMINISTIC_TIMESTAMP);
        tar.append_data(&mut header, &file.name, file.contents.as_slice())?;
        stats.files += 1;
        stats.bytes += file.contents.len() as u64;
    }
    tar.into_inner()?
        .into_inner()
        .map_err(|e| e.into_error())?
        .sync_all()?;
    Ok(stats)
}

/// The app folder inside a checkout: `subdirectory` must be relative, stay
/// inside `root` (also through symlinks) and exist.
pub fn app_dir(root: &Path, subdirectory: Option<&str>) -> Result<PathBuf, &'static str> {
    let sub = subdirectory.map(str::trim).unwrap_or("");
    let sub = sub.trim_matches('/');
    if sub.is_empty() || sub == "." {
        return Ok(root.to_path_buf());
    }
    if sub
        .split('/')
        .any(|segment| segment == ".." || segment.contains('\\'))
    {
        return Err("must stay inside the repository (no `..`)");
    }
    let dir = root.join(sub);
    let real = dir.canonicalize().map_err(|_| "does not exist")?;
    let real_root = root.canonicalize().map_err(|_| "does not exist")?;
    if !real.starts_with(&real_root) {
        return Err("must stay inside the repository (it is a link that leads out)");
    }
    if !real.is_dir() {
        return Err("is not a folder");
    }
    Ok(real)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::io::Read;

    fn entries(tar_path: &Path) -> BTreeMap<String, (EntryType, String)> {
        let mut archive = tar::Archive::new(File::open(tar_path).unwrap());
        archive
            .entries()
            .unwrap()
            .map(|entry| {
                let mut entry = entry.unwrap();
                let path = entry.path().unwrap().to_string_lossy().into_owned();
                let kind = entry.header().entry_type();
                let mut text = String::new();
                if kind == EntryType::Symlink {
                    text = entry
                        .link_name()
                        .unwrap()
                        .unwrap()
                        .to_string_lossy()
                        .into_owned();
                } else if kind == EntryType::Regular {
                    entry.read_to_string(&mut text).unwrap();
                }
                (path.trim_end_matches('/').to_owned(), (kind, text))
            })
            .collect()
    }

    #[test]
    fn the_context_leaves_out_git_and_ignored_files_and_keeps_links_as_links() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("app");
        std::fs::create_dir_all(root.join(".git/objects")).unwrap();
        std::fs::write(root.join(".git/config"), "secret").unwrap();
        std::fs::create_dir_all(root.join("node_modules/x")).unwrap();
        std::fs::write(root.join("node_modules/x/index.js"), "x").unwrap();
        std::fs::create_dir_all(root.join("src")).unwrap();
        std::fs::write(root.join("src/app.py"), "print(1)").unwrap();
        std::fs::write(root.join("debug.log"), "noise").unwrap();
        std::fs::write(
            root.join(".dockerignore"),
            "node_modules\n*.log\nDockerfile\n",
        )
        .unwrap();
        std::fs::write(root.join("Dockerfile"), "FROM scratch").unwrap();
        std::os::unix::fs::symlink("src/app.py", root.join("passwd")).unwrap();
        let out = dir.path().join("context.tar");
        let extra = [ExtraFile {
            name: ".berth-ca.crt".into(),
            contents: b"CA".to_vec(),
        }];
        let stats = write_context(&root, &root, "", &extra, &out).unwrap();
        let found = entries(&out);
        let names: Vec<&str> = found.keys().map(String::as_str).collect();
        assert_eq!(
            names,
            [
                ".berth-ca.crt",
                ".dockerignore",
                "Dockerfile",
                "passwd",
                "src",
                "src/app.py"
            ]
        );
        assert_eq!(found["passwd"], (EntryType::Symlink, "src/app.py".into()));
        assert_eq!(found["src/app.py"].1, "print(1)");
        assert_eq!(found[".berth-ca.crt"].1, "CA");
        assert_eq!(stats.files, 5);
    }

    #[test]
    fn an_extra_file_replaces_the_repositorys_file_of_that_name() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("app");
        std::fs::create_dir(&root).unwrap();
        std::fs::write(root.join("Dockerfile"), "FROM theirs").unwrap();
        let out = dir.path().join("context.tar");
        let extra = [ExtraFile {
            name: "Dockerfile".into(),
            contents: b"FROM ours".to_vec(),
        }];
        write_context(&root, &root, "", &extra, &out).unwrap();
        let found = entries(&out);
        assert_eq!(found["Dockerfile"].1, "FROM ours");
        assert_eq!(found.len(), 1);

        // Under a prefix, the app's files and berth's stay apart.
        std::fs::write(root.join(".dockerignore"), "*.log\n").unwrap();
        std::fs::write(root.join("x.log"), "").unwrap();
        std::fs::create_dir(root.join("css")).unwrap();
        std::fs::write(root.join("css/site.css"), "p{}").unwrap();
        write_context(&root, &root, "app", &extra, &out).unwrap();
        let names: Vec<String> = entries(&out).into_keys().collect();
        assert_eq!(
            names,
            [
                "Dockerfile",
                "app",
                "app/Dockerfile",
                "app/css",
                "app/css/site.css"
            ]
        );
    }

    #[test]
    fn links_out_of_the_repository_and_a_linked_dockerignore_refuse_the_context() {
        let dir = tempfile::tempdir().unwrap();
        let repo = dir.path().join("repo");
        let app = repo.join("services/web");
        std::fs::create_dir_all(&app).unwrap();
        std::fs::write(repo.join("shared.txt"), "shared").unwrap();
        std::fs::write(app.join("Dockerfile"), "FROM scratch").unwrap();
        // Out of the app folder but inside the repository: kept as a link.
        std::os::unix::fs::symlink("../../shared.txt", app.join("shared")).unwrap();
        let out = dir.path().join("context.tar");
        write_context(&repo, &app, "", &[], &out).unwrap();
        assert_eq!(
            entries(&out)["shared"],
            (EntryType::Symlink, "../../shared.txt".into())
        );

        for (name, target) in [("passwd", "/etc/passwd"), ("up", "../../../outside")] {
            std::os::unix::fs::symlink(target, app.join(name)).unwrap();
            let error = write_context(&repo, &app, "", &[], &out).unwrap_err();
            assert!(
                matches!(&error, ContextError::Unsafe(text) if text.contains(name) && text.contains(target)),
                "{error}"
            );
            std::fs::remove_file(app.join(name)).unwrap();
        }

        // Before: `.dockerignore -> /dev/zero` was read until memory ran out.
        std::os::unix::fs::symlink("/dev/zero", app.join(".dockerignore")).unwrap();
        let started = std::time::Instant::now();
        let error = write_context(&repo, &app, "", &[], &out).unwrap_err();
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
        assert_eq!(
            error.to_string(),
            ".dockerignore is a link; berth reads it only as a regular file"
        );
    }

    #[test]
    fn subdirectories_must_exist_and_stay_inside() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("services/web")).unwrap();
        std::fs::write(root.join("file"), "").unwrap();
        std::os::unix::fs::symlink("/etc", root.join("escape")).unwrap();
        let real_root = root.canonicalize().unwrap();
        assert_eq!(app_dir(root, None).unwrap(), root);
        assert_eq!(app_dir(root, Some("/")).unwrap(), root);
        assert_eq!(
            app_dir(root, Some("services/web/")).unwrap(),
            real_root.join("services/web")
        );
        assert_eq!(app_dir(root, Some("missing")), Err("does not exist"));
        assert_eq!(app_dir(root, Some("file")), Err("is not a folder"));
        assert!(app_dir(root, Some("../..")).unwrap_err().contains("inside"));
        assert!(app_dir(root, Some("escape"))
            .unwrap_err()
            .contains("leads out"));
    }
}
