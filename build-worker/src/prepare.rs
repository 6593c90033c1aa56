//! From a checked-out app folder to what the builder gets: the plan (the
//! repository's Dockerfile or a generated one), the Dockerfile checked
//! against berth's policy, and the files berth adds to the context. All
//! reads of the tenant's files go through [`repofile`], so nothing here
//! follows a link out of the repository.

use crate::context::ExtraFile;
use crate::detect::{self, AppFiles, Plan, ReadError, Recipe, APP_IN_CONTEXT, CA_IN_CONTEXT};
use crate::dockerfile;
use crate::error::BuildError;
use crate::repofile::{self, Links};
use std::path::Path;

/// The largest Dockerfile berth reads.
pub const MAX_DOCKERFILE: u64 = 1024 * 1024;

/// What the build needs besides the app's files.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub plan: Plan,
    /// The Dockerfile's path in the context.
    pub dockerfile: String,
    /// Where the app's files go in the context (`""`: at its root).
    pub prefix: &'static str,
    /// berth's own files in the context.
    pub extra: Vec<ExtraFile>,
    /// Images the Dockerfile builds on (not its own stages).
    pub base_images: Vec<String>,
}

/// Plans the build of `app_dir` (inside the checkout `repo_root`). Blocking.
pub fn prepare(
    repo_root: &Path,
    app_dir: &Path,
    recipe: &Recipe<'_>,
    extra_ca: Option<&[u8]>,
) -> Result<Prepared, BuildError> {
    let files = AppFiles::read_dir(repo_root, app_dir).map_err(|error| match error {
        ReadError::Unsafe(unsafe_file) => BuildError::UnsafeRepository(unsafe_file.to_string()),
        ReadError::Io(error) => BuildError::Context(format!("cannot read the app folder: {error}")),
    })?;
    let plan = detect::plan(&files, recipe)?;
    let mut extra = Vec::new();
    if let Some(ca) = extra_ca {
        extra.push(ExtraFile {
            name: CA_IN_CONTEXT.to_owned(),
            contents: ca.to_vec(),
        });
    }
    let (dockerfile, prefix, text) = match &plan {
        Plan::RepoDockerfile { path } => {
            let bytes = repofile::read(repo_root, app_dir, path, Links::Refuse, MAX_DOCKERFILE)
                .map_err(|unsafe_file| BuildError::UnsafeRepository(unsafe_file.to_string()))?
                .ok_or_else(|| BuildError::Context(format!("{path} disappeared")))?;
            let text = String::from_utf8(bytes)
                .map_err(|_| BuildError::Context(format!("{path} is not UTF-8 text")))?;
            (path.clone(), "", text)
        }
        Plan::Generated { dockerfile, .. } => {
            extra.push(ExtraFile {
                name: "Dockerfile".to_owned(),
                contents: dockerfile.clone().into_bytes(),
            });
            ("Dockerfile".to_owned(), APP_IN_CONTEXT, dockerfile.clone())
        }
    };
    let checked = dockerfile::check(&text)?;
    Ok(Prepared {
        plan,
        dockerfile,
        prefix,
        extra,
        base_images: checked.base_images,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::StackImages;

    fn images() -> StackImages {
        StackImages {
            python: "localhost/berth/python:bookworm".into(),
            node: "n".into(),
            go: "g".into(),
            rust: "r".into(),
            static_site: "localhost/berth/static:latest".into(),
        }
    }

    fn prepare_dir(dir: &Path) -> Result<Prepared, BuildError> {
        let images = images();
        let recipe = Recipe {
            images: &images,
            port: 8000,
            extra_ca: false,
        };
        prepare(dir, dir, &recipe, None)
    }

    #[test]
    fn a_generated_dockerfile_passes_the_policy_and_names_its_base() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("index.html"), "<p>hi").unwrap();
        let prepared = prepare_dir(dir.path()).unwrap();
        assert_eq!(prepared.base_images, ["localhost/berth/static:latest"]);
        assert_eq!(prepared.prefix, APP_IN_CONTEXT);
    }

    #[test]
    fn a_refused_or_linked_dockerfile_stops_the_build_with_its_reason() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("Dockerfile"),
            "FROM x\nRUN --network=host curl http://127.0.0.1:5672\n",
        )
        .unwrap();
        let error = prepare_dir(dir.path()).unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("the Dockerfile is refused at line 2: `RUN --network=host`"),
            "{error}"
        );
        std::fs::remove_file(dir.path().join("Dockerfile")).unwrap();
        std::os::unix::fs::symlink("/etc/hostname", dir.path().join("Dockerfile")).unwrap();
        let error = prepare_dir(dir.path()).unwrap_err();
        assert_eq!(
            error.to_string(),
            "the repository's Dockerfile is a link; berth reads it only as a regular file"
        );
    }
}
