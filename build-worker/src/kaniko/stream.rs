//! The build's I/O with its Pod: the context to stdin, the log back.

use super::{api_error, KanikoOutput, CONTAINER};
use crate::buildlog::BuildLog;
use crate::error::BuildError;
use futures::AsyncBufReadExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, AttachParams, LogParams};
use std::path::{Path, PathBuf};
use tokio::io::AsyncWriteExt;

/// Kaniko reads a `tar://stdin` context only gzip-compressed: writes
/// `<context>.gz` beside the tar.
pub(super) async fn gzip(context: &Path) -> Result<PathBuf, BuildError> {
    let (from, to) = (context.to_path_buf(), context.with_extension("tar.gz"));
    let out = to.clone();
    tokio::task::spawn_blocking(move || -> std::io::Result<()> {
        let mut input = std::io::BufReader::new(std::fs::File::open(&from)?);
        let file = std::io::BufWriter::new(std::fs::File::create(&out)?);
        let mut encoder = flate2::write::GzEncoder::new(file, flate2::Compression::fast());
        std::io::copy(&mut input, &mut encoder)?;
        encoder.finish()?.into_inner().map_err(|e| e.into_error())?;
        Ok(())
    })
    .await
    .map_err(|e| BuildError::Internal(e.to_string()))?
    .map_err(|e| BuildError::Context(e.to_string()))?;
    Ok(to)
}

/// Attaches to the build container and writes the context to its stdin,
/// then closes it (`stdinOnce`: Kaniko sees the end of its input).
pub(super) async fn send_context(
    pods: &Api<Pod>,
    name: &str,
    context: &Path,
) -> Result<(), BuildError> {
    let failed = |detail: String| BuildError::Kubernetes {
        detail: format!("sending the build context to the build pod: {detail}"),
    };
    let mut file = tokio::fs::File::open(context)
        .await
        .map_err(|e| BuildError::Context(e.to_string()))?;
    let params = AttachParams::default()
        .container(CONTAINER)
        .stdin(true)
        .stdout(false)
        .stderr(false);
    let mut process = pods
        .attach(name, &params)
        .await
        .map_err(|e| api_error("attaching to the build pod", e))?;
    // Taken before join(), which would otherwise fail to hand the status over.
    let status = process.take_status();
    let mut stdin = process.stdin().ok_or_else(|| failed("no stdin".into()))?;
    let written = async {
        tokio::io::copy(&mut file, &mut stdin).await?;
        stdin.shutdown().await
    }
    .await;
    drop(stdin);
    let joined = process.join().await;
    match (written, joined) {
        (_, Err(error)) => return Err(failed(error.to_string())),
        (Err(error), Ok(())) => return Err(failed(error.to_string())),
        (Ok(()), Ok(())) => {}
    }
    match status {
        Some(status) => match status.await {
            Some(status) if status.status.as_deref() == Some("Failure") => {
                Err(failed(status.message.unwrap_or_default()))
            }
            _ => Ok(()),
        },
        None => Ok(()),
    }
}

/// Follows the build container's log into the build log until it ends.
pub(super) async fn follow_log(
    pods: &Api<Pod>,
    name: &str,
    log: &BuildLog,
    output: &mut KanikoOutput,
) {
    let params = LogParams {
        container: Some(CONTAINER.to_owned()),
        follow: true,
        ..Default::default()
    };
    let stream = match pods.log_stream(name, &params).await {
        Ok(stream) => stream,
        Err(error) => {
            tracing::warn!(%error, "the build pod's log cannot be followed");
            log.line(format!("(the build's output cannot be shown: {error})"))
                .await;
            return;
        }
    };
    futures::pin_mut!(stream);
    let mut line = Vec::new();
    loop {
        line.clear();
        match stream.read_until(b'\n', &mut line).await {
            Ok(0) => return,
            Ok(_) => log.line(output.line(&String::from_utf8_lossy(&line))).await,
            Err(error) => {
                tracing::warn!(%error, "following the build pod's log failed");
                log.line(format!("(the build's output was cut off: {error})"))
                    .await;
                return;
            }
        }
    }
}
