//! Direct use of the container engine: the benchmark's baseline, and
//! cleaning up what a test platform left running.

use anyhow::{bail, Context, Result};
use bollard::models::{ContainerCreateBody, HostConfig, PortBinding};
use bollard::query_parameters::{
    BuildImageOptionsBuilder, CreateContainerOptionsBuilder, ListContainersOptionsBuilder,
    RemoveContainerOptionsBuilder,
};
use bollard::Docker;
use futures::StreamExt;
use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

pub async fn connect(host: &str) -> Result<Docker> {
    Ok(berth_common::engine::connect(host).await?)
}

/// The work tree of `dir` (without `.git`) as a tar build context.
pub fn context_tar(dir: &Path) -> Result<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::new());
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_name() == ".git" {
            continue;
        }
        let path = entry.path();
        if path.is_dir() {
            builder.append_dir_all(entry.file_name(), &path)?;
        } else {
            builder.append_path_with_name(&path, entry.file_name())?;
        }
    }
    Ok(builder.into_inner()?)
}

/// Builds `dir` as `tag`, failing on a build error.
pub async fn build(docker: &Docker, dir: &Path, tag: &str) -> Result<()> {
    let options = BuildImageOptionsBuilder::default()
        .t(tag)
        .rm(true)
        .forcerm(true)
        .build();
    let body = bollard::body_full(context_tar(dir)?.into());
    let mut output = docker.build_image(options, None, Some(body));
    while let Some(item) = output.next().await {
        item.context("building directly on the engine")?;
    }
    Ok(())
}

/// Starts `image` with `port` published on 127.0.0.1 and waits until it
/// accepts connections; returns the container id and the host port.
pub async fn run_until_listening(
    docker: &Docker,
    image: &str,
    port: u16,
    labels: HashMap<String, String>,
    within: Duration,
) -> Result<(String, u16)> {
    let container_port = format!("{port}/tcp");
    let body = ContainerCreateBody {
        image: Some(image.to_owned()),
        env: Some(vec![format!("PORT={port}")]),
        labels: Some(labels),
        exposed_ports: Some(vec![container_port.clone()]),
        host_config: Some(HostConfig {
            port_bindings: Some(HashMap::from([(
                container_port.clone(),
                Some(vec![PortBinding {
                    host_ip: Some("127.0.0.1".into()),
                    host_port: Some(String::new()),
                }]),
            )])),
            ..Default::default()
        }),
        ..Default::default()
    };
    let created = docker
        .create_container(Some(CreateContainerOptionsBuilder::default().build()), body)
        .await?;
    docker
        .start_container(
            &created.id,
            None::<bollard::query_parameters::StartContainerOptions>,
        )
        .await?;
    let inspect = docker
        .inspect_container(
            &created.id,
            None::<bollard::query_parameters::InspectContainerOptions>,
        )
        .await?;
    let host_port: u16 = inspect
        .network_settings
        .and_then(|n| n.ports)
        .and_then(|ports| ports.get(&container_port).cloned().flatten())
        .and_then(|bindings| bindings.first().and_then(|b| b.host_port.clone()))
        .context("the engine published the port")?
        .parse()?;
    let deadline = Instant::now() + within;
    while tokio::net::TcpStream::connect(("127.0.0.1", host_port))
        .await
        .is_err()
    {
        if Instant::now() > deadline {
            bail!("the container did not listen within {within:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok((created.id, host_port))
}

pub async fn remove(docker: &Docker, id: &str) -> Result<()> {
    let options = RemoveContainerOptionsBuilder::default().force(true).build();
    docker.remove_container(id, Some(options)).await?;
    Ok(())
}

pub async fn labelled(
    docker: &Docker,
    label: &str,
    value: &str,
    all: bool,
) -> Result<Vec<bollard::models::ContainerSummary>> {
    let filters = HashMap::from([("label".to_owned(), vec![format!("{label}={value}")])]);
    let options = ListContainersOptionsBuilder::default()
        .all(all)
        .filters(&filters)
        .build();
    Ok(docker.list_containers(Some(options)).await?)
}

/// How many running containers carry `label=value`.
pub async fn count_labelled(docker: &Docker, label: &str, value: &str) -> Result<usize> {
    Ok(labelled(docker, label, value, false).await?.len())
}

/// The `berth.dev/deployment` label of each running container carrying
/// `label=value`: what the engine says runs, whatever berth's records say.
pub async fn running_deployments(docker: &Docker, label: &str, value: &str) -> Result<Vec<String>> {
    Ok(labelled(docker, label, value, false)
        .await?
        .into_iter()
        .filter_map(|container| {
            container
                .labels
                .and_then(|labels| labels.get(berth_proto::labels::DEPLOYMENT).cloned())
        })
        .collect())
}

/// Removes every container carrying `label=value`.
pub async fn remove_labelled(docker: &Docker, label: &str, value: &str) -> Result<usize> {
    let containers = labelled(docker, label, value, true).await?;
    for container in &containers {
        if let Some(id) = &container.id {
            remove(docker, id).await?;
        }
    }
    Ok(containers.len())
}
