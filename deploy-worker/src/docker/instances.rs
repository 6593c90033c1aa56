//! What each instance of an app's live deployment is doing, for its users
//! (the reconciler reports it with the app's runtime status): running or
//! not, and whether it passes its health check now (its health check path,
//! else accepting connections), checked side by side.

use berth_proto::{AppRef, InstanceHealth};
use bollard::models::ContainerSummaryStateEnum;
use futures::future::join_all;
use uuid::Uuid;

use super::{health, spec, DockerRuntime};
use crate::error::DeployError;
use crate::router::HEALTH_CHECK_TIMEOUT;

impl DockerRuntime {
    pub(super) async fn live_instance_health(
        &self,
        app: &AppRef,
        live: Uuid,
    ) -> Result<Vec<InstanceHealth>, DeployError> {
        let mut containers = self.app_containers(app.id).await?;
        containers.retain(|c| spec::deployment_of(c) == Some(live));
        containers.sort_by_key(spec::replica_of);
        let host = self.connect_host().to_owned();
        let checks = containers.iter().map(|container| {
            let host = host.clone();
            async move {
                let running = container.state == Some(ContainerSummaryStateEnum::RUNNING);
                let name = container
                    .names
                    .iter()
                    .flatten()
                    .next()
                    .map(|n| n.trim_start_matches('/').to_owned())
                    .unwrap_or_default();
                let port = container.ports.iter().flatten().find_map(|p| p.public_port);
                let checked = match (running, port) {
                    (true, Some(port)) => Some(
                        match spec::health_check_path_of(container.labels.as_ref()) {
                            Some(path) => health::check(&host, port, &path).await,
                            None => accepts(&host, port).await,
                        },
                    ),
                    _ => None,
                };
                InstanceHealth {
                    name,
                    running,
                    healthy: checked.as_ref().map(Result::is_ok),
                    said: checked.and_then(Result::err),
                }
            }
        });
        Ok(join_all(checks).await)
    }
}

async fn accepts(host: &str, port: u16) -> Result<(), String> {
    match tokio::time::timeout(
        HEALTH_CHECK_TIMEOUT,
        tokio::net::TcpStream::connect((host, port)),
    )
    .await
    {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(_)) => Err("refused connections".into()),
        Err(_) => Err(format!(
            "did not accept a connection within {}s",
            HEALTH_CHECK_TIMEOUT.as_secs()
        )),
    }
}
