//! Getting a release's image onto the engine.
//!
//! The engine pulls the image by digest with a pull grant of the release's
//! tenant
//! (`POST /images/create?fromImage=<registry>/<tenant>/<app>@sha256:...`,
//! checked against Podman 4.3's Docker-compatible API). An image the engine
//! already holds under that digest is not pulled again.

use bollard::auth::DockerCredentials;
use bollard::query_parameters::{CreateImageOptionsBuilder, RemoveImageOptionsBuilder};
use bollard::Docker;
use futures::StreamExt;

use crate::error::DeployError;

/// Pulls `image` unless the engine already has it.
pub async fn ensure_image(
    docker: &Docker,
    image: &str,
    credentials: Option<DockerCredentials>,
) -> Result<(), DeployError> {
    if docker.inspect_image(image).await.is_ok() {
        tracing::debug!(image, "image already present");
        return Ok(());
    }
    let started = std::time::Instant::now();
    let options = CreateImageOptionsBuilder::default()
        .from_image(image)
        .build();
    let mut progress = docker.create_image(Some(options), None, credentials);
    while let Some(item) = progress.next().await {
        item.map_err(|error| classify_pull_error(image, error))?;
    }
    // Some engines end a failed pull without an error frame: make sure.
    docker
        .inspect_image(image)
        .await
        .map_err(|error| classify_pull_error(image, error))?;
    tracing::info!(
        image,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "image pulled"
    );
    Ok(())
}

/// Removes the release images (references by digest) of retired
/// containers from the engine; one a container still uses, stopped or
/// not, is kept (the engine refuses), as are images not pulled by digest.
/// Returns how many went. Rollback pulls a pruned image again.
pub async fn remove_unused(docker: &Docker, images: impl IntoIterator<Item = String>) -> usize {
    let options = RemoveImageOptionsBuilder::default().force(false).build();
    let mut removed = 0;
    for image in images
        .into_iter()
        .filter(|image| image.contains("@sha256:"))
    {
        match docker
            .remove_image(&image, Some(options.clone()), None)
            .await
        {
            Ok(_) => {
                removed += 1;
                metrics::counter!("berth_engine_images_removed_total").increment(1);
                tracing::info!(image, "removed an image no container uses");
            }
            Err(error) => tracing::debug!(image, %error, "image kept"),
        }
    }
    removed
}

/// A pull fails for good when the registry says the image or the access to
/// it does not exist; anything else (registry or engine unreachable) may pass.
fn classify_pull_error(image: &str, error: bollard::errors::Error) -> DeployError {
    use bollard::errors::Error;
    let message = match &error {
        Error::DockerStreamError { error } => error.clone(),
        Error::DockerResponseServerError { message, .. } => message.clone(),
        other => return DeployError::Engine(other.to_string()),
    };
    if is_permanent_pull_failure(&message) {
        DeployError::ImageUnavailable {
            image: image.to_owned(),
            reason: message,
        }
    } else {
        DeployError::Engine(format!("pulling {image}: {message}"))
    }
}

fn is_permanent_pull_failure(message: &str) -> bool {
    let message = message.to_ascii_lowercase();
    [
        "manifest unknown",
        "not found",
        "no such image",
        "unauthorized",
        "authentication required",
        "denied",
        "invalid reference",
        "repository name must",
    ]
    .iter()
    .any(|needle| message.contains(needle))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_images_and_bad_credentials_are_permanent() {
        let missing = bollard::errors::Error::DockerResponseServerError {
            status_code: 500,
            message: "reading manifest sha256:00 in 127.0.0.1:5000/t/a: manifest unknown".into(),
        };
        assert!(matches!(
            classify_pull_error("x", missing),
            DeployError::ImageUnavailable { .. }
        ));
        let refused = bollard::errors::Error::DockerStreamError {
            error: "pinging container registry 127.0.0.1:5000: connection refused".into(),
        };
        assert!(classify_pull_error("x", refused).is_transient());
    }
}
