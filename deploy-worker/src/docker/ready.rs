//! Waiting until a new container serves: it accepts TCP connections on its
//! published port (and passes its HTTP health check, when its release has
//! one) while the engine still reports it running and never restarted. A container that exits (even one its restart policy brings
//! back) fails at once, with its exit code and last log lines.

use bollard::container::LogOutput;
use bollard::models::{ContainerInspectResponse, ContainerStateStatusEnum};
use bollard::query_parameters::{EventsOptionsBuilder, KillContainerOptions, LogsOptionsBuilder};
use bollard::Docker;
use futures::stream::{self, BoxStream};
use futures::StreamExt;
use std::collections::HashMap;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;

use super::health;
use crate::error::DeployError;

const POLL: Duration = Duration::from_millis(200);
const LAST_LINES: usize = 10;
const EXIT_CODE_GRACE: Duration = Duration::from_secs(3);

/// Where the app answers on the host once it is ready.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ready {
    pub host_port: u16,
}

/// How the container ended, from the engine's `die`/`oom` events.
#[derive(Debug, Default)]
pub struct Exit {
    pub code: Option<i64>,
    pub oom: bool,
}

/// Subscribes to the container's `die` and `oom` events from one second
/// before now, so an exit right after start is not missed.
pub fn exit_events(docker: &Docker, container_id: &str) -> BoxStream<'static, Exit> {
    let since = (chrono::Utc::now().timestamp() - 1).to_string();
    // Podman 4.3 returns nothing when an `event` or `type` filter is given
    // along with `container`: filter the actions here instead.
    let filters = HashMap::from([("container", vec![container_id])]);
    let options = EventsOptionsBuilder::default()
        .since(&since)
        .filters(&filters)
        .build();
    docker
        .events(Some(options))
        .filter_map(|event| async move {
            let event = event.ok()?;
            let action = event.action.clone()?;
            if action != "die" && action != "oom" {
                return None;
            }
            let code = event
                .actor
                .and_then(|actor| actor.attributes)
                .and_then(|attributes| attributes.get("exitCode").cloned())
                .and_then(|code| code.parse().ok());
            Some(Exit {
                code,
                oom: action == "oom",
            })
        })
        .boxed()
}

/// Waits until the container accepts connections on `app_port`'s published
/// host port, and answers 2xx on `health_path` when there is one, or fails
/// with why it never will.
pub async fn wait_until_ready(
    docker: &Docker,
    container_id: &str,
    app_port: u16,
    health_path: Option<&str>,
    connect_host: &str,
    timeout: Duration,
    mut events: BoxStream<'static, Exit>,
) -> Result<Ready, DeployError> {
    let started = Instant::now();
    let mut exit: Option<Exit> = None;
    // What the health check last said, once the app listens.
    let mut unhealthy: Option<String> = None;
    let mut tick = tokio::time::interval(POLL);
    let port_key = format!("{app_port}/tcp");
    loop {
        tokio::select! {
            next = events.next() => match next {
                Some(event) => {
                    let seen = exit.get_or_insert_with(Exit::default);
                    seen.oom |= event.oom;
                    seen.code = event.code.or(seen.code);
                    continue;
                }
                // The event stream is a hint only; inspect still decides.
                None => events = stream::pending().boxed(),
            },
            _ = tick.tick() => {}
        }
        let Some(inspect) = inspect(docker, container_id).await? else {
            // Podman's transient `stopped` state: exited, about to restart.
            exit.get_or_insert_with(Exit::default);
            continue;
        };
        if let Some(mut exit) = exited(&inspect, exit.take()) {
            if exit.code.is_none() {
                // The code comes with the `die` event, which may lag behind.
                let _ = tokio::time::timeout(EXIT_CODE_GRACE, async {
                    while let Some(event) = events.next().await {
                        exit.oom |= event.oom;
                        exit.code = event.code.or(exit.code);
                        if exit.code.is_some() {
                            break;
                        }
                    }
                })
                .await;
            }
            // Stop a restart loop before reading what it printed.
            let _ = docker
                .kill_container(container_id, None::<KillContainerOptions>)
                .await;
            let logs = last_lines(docker, container_id).await;
            return Err(if exit.oom {
                DeployError::OutOfMemory {
                    port: app_port,
                    logs,
                }
            } else {
                DeployError::Exited {
                    code: exit.code.unwrap_or(-1),
                    port: app_port,
                    logs,
                }
            });
        }
        if let Some(host_port) = published_port(&inspect, &port_key) {
            let healthy = serves_healthy(&inspect, connect_host, host_port, app_port, health_path)
                .await
                .unwrap_or_else(|said| {
                    unhealthy = Some(said);
                    false
                });
            if healthy {
                tracing::info!(
                    container_id,
                    host_port,
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "the app serves"
                );
                return Ok(Ready { host_port });
            }
        }
        if started.elapsed() >= timeout {
            if let (Some(path), Some(reason)) = (health_path, unhealthy) {
                return Err(DeployError::Unhealthy {
                    path: path.to_owned(),
                    reason,
                    waited: timeout,
                    logs: last_lines(docker, container_id).await,
                });
            }
            return Err(DeployError::NeverListened {
                port: app_port,
                waited: timeout,
                logs: last_lines(docker, container_id).await,
            });
        }
    }
}

/// How a TCP connection attempt went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Probe {
    Accepted,
    Refused,
    /// Timed out or no route: says nothing about the app.
    Unreachable,
}

async fn probe(host: &str, port: u16) -> Probe {
    let connect = TcpStream::connect((host, port));
    match tokio::time::timeout(Duration::from_secs(1), connect).await {
        Ok(Ok(_)) => Probe::Accepted,
        Ok(Err(error)) if error.kind() == std::io::ErrorKind::ConnectionRefused => Probe::Refused,
        _ => Probe::Unreachable,
    }
}

/// The app accepts connections on its published port. Engines reserve
/// published ports with a listening socket of their own (Podman's conmon,
/// Docker's proxy), which accepts a connection where the port forwarding
/// does not apply; so when the container's own address is reachable from
/// here, the app port there must not refuse either.
pub async fn serves(
    inspect: &ContainerInspectResponse,
    connect_host: &str,
    host_port: u16,
    app_port: u16,
) -> bool {
    if probe(connect_host, host_port).await != Probe::Accepted {
        return false;
    }
    match container_ip(inspect) {
        Some(ip) => probe(&ip, app_port).await != Probe::Refused,
        None => true,
    }
}

/// Whether the instance [`serves`] and, with a health check path, passes
/// its health check there: `Err` with what the check got when it serves
/// but is not healthy.
pub async fn serves_healthy(
    inspect: &ContainerInspectResponse,
    connect_host: &str,
    host_port: u16,
    app_port: u16,
    health_path: Option<&str>,
) -> Result<bool, String> {
    if !serves(inspect, connect_host, host_port, app_port).await {
        return Ok(false);
    }
    match health_path {
        None => Ok(true),
        Some(path) => health::check(connect_host, host_port, path)
            .await
            .map(|()| true),
    }
}

fn container_ip(inspect: &ContainerInspectResponse) -> Option<String> {
    inspect
        .network_settings
        .as_ref()?
        .networks
        .as_ref()?
        .values()
        .filter_map(|network| network.ip_address.clone())
        .find(|ip| !ip.is_empty())
}

/// Inspects a container; `None` while Podman reports a state the Docker
/// API does not know (`stopped`, between an exit and the restart or the
/// cleanup), which bollard cannot decode.
pub async fn inspect(
    docker: &Docker,
    container_id: &str,
) -> Result<Option<ContainerInspectResponse>, DeployError> {
    match docker.inspect_container(container_id, None).await {
        Ok(inspect) => Ok(Some(inspect)),
        Err(bollard::errors::Error::JsonDataError { message, .. })
            if message.contains("unknown variant") =>
        {
            Ok(None)
        }
        Err(error) => Err(error.into()),
    }
}

/// The container stopped, died, or was restarted by its policy: it exited.
fn exited(inspect: &ContainerInspectResponse, seen: Option<Exit>) -> Option<Exit> {
    let state = inspect.state.clone().unwrap_or_default();
    let stopped = matches!(
        state.status,
        Some(ContainerStateStatusEnum::EXITED | ContainerStateStatusEnum::DEAD)
    ) || state.restarting == Some(true);
    let restarted = inspect.restart_count.unwrap_or(0) > 0;
    let oom = state.oom_killed == Some(true);
    if seen.is_none() && !stopped && !restarted && !oom {
        return None;
    }
    let mut exit = seen.unwrap_or_default();
    exit.oom |= oom;
    if exit.code.is_none() && stopped {
        exit.code = state.exit_code;
    }
    Some(exit)
}

pub fn published_port(inspect: &ContainerInspectResponse, port_key: &str) -> Option<u16> {
    inspect
        .network_settings
        .as_ref()?
        .ports
        .as_ref()?
        .get(port_key)?
        .as_ref()?
        .iter()
        .find_map(|binding| binding.host_port.as_deref()?.parse().ok())
}

/// The container's last lines of output, for the failure reason.
pub async fn last_lines(docker: &Docker, container_id: &str) -> Vec<String> {
    let options = LogsOptionsBuilder::default()
        .stdout(true)
        .stderr(true)
        .tail(&(LAST_LINES * 2).to_string())
        .build();
    let chunks: Vec<_> = docker.logs(container_id, Some(options)).collect().await;
    let mut lines = join_frames(chunks.into_iter().filter_map(Result::ok));
    lines.retain(|line| !line.trim().is_empty());
    let skip = lines.len().saturating_sub(LAST_LINES);
    lines.drain(..skip);
    lines
}

/// Frames to lines: the engine cuts long or bursty output into frames
/// without a newline, which belong to the next frame of the same stream.
fn join_frames(frames: impl IntoIterator<Item = LogOutput>) -> Vec<String> {
    let (mut stdout, mut stderr) = (String::new(), String::new());
    let mut lines = Vec::new();
    for frame in frames {
        let (pending, message) = match frame {
            LogOutput::StdErr { message } => (&mut stderr, message),
            LogOutput::StdOut { message } | LogOutput::Console { message } => {
                (&mut stdout, message)
            }
            LogOutput::StdIn { .. } => continue,
        };
        pending.push_str(&String::from_utf8_lossy(&message));
        if let Some(end) = pending.rfind('\n') {
            let rest = pending.split_off(end + 1);
            lines.extend(pending.lines().map(|line| line.trim_end().to_owned()));
            *pending = rest;
        }
    }
    lines.extend(
        [stdout, stderr]
            .into_iter()
            .filter(|rest| !rest.is_empty())
            .map(|rest| rest.trim_end().to_owned()),
    );
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard::models::ContainerState;

    #[test]
    fn partial_frames_join_into_lines() {
        let out = |text: &str| LogOutput::StdOut {
            message: text.to_owned().into(),
        };
        let err = |text: &str| LogOutput::StdErr {
            message: text.to_owned().into(),
        };
        let lines = join_frames([
            out("starting\nlisten"),
            err("fatal: no DATABASE_URL\n"),
            out("ing on 8000\n"),
            out("bye"),
        ]);
        assert_eq!(
            lines,
            [
                "starting",
                "fatal: no DATABASE_URL",
                "listening on 8000",
                "bye"
            ]
        );
    }

    fn inspect(
        status: ContainerStateStatusEnum,
        code: i64,
        restarts: i64,
    ) -> ContainerInspectResponse {
        ContainerInspectResponse {
            state: Some(ContainerState {
                status: Some(status),
                exit_code: Some(code),
                ..Default::default()
            }),
            restart_count: Some(restarts),
            ..Default::default()
        }
    }

    #[test]
    fn a_running_container_has_not_exited() {
        assert!(exited(&inspect(ContainerStateStatusEnum::RUNNING, 0, 0), None).is_none());
    }

    #[test]
    fn a_stopped_or_restarted_container_has_exited_with_its_code() {
        let exit = exited(&inspect(ContainerStateStatusEnum::EXITED, 3, 0), None).unwrap();
        assert_eq!(exit.code, Some(3));
        let seen = Exit {
            code: Some(1),
            oom: false,
        };
        let exit = exited(
            &inspect(ContainerStateStatusEnum::RUNNING, 0, 1),
            Some(seen),
        )
        .unwrap();
        assert_eq!(exit.code, Some(1), "the die event's code wins");
    }
}
