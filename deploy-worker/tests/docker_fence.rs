//! Tenants' apps on the docker driver: a tenant's apps reach each other,
//! not another tenant's, not the host, not cloud metadata; and each runs
//! with limits, no new privileges and few capabilities. Checked from inside
//! the containers, as an app would try it.

mod support;

use berth_proto::{AppRef, DeploymentState};
use bollard::exec::{CreateExecOptions, StartExecResults};
use futures::StreamExt;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use support::*;
use tokio::net::TcpListener;
use uuid::Uuid;

fn app_of(tenant: &str) -> AppRef {
    let mut app = new_app();
    app.tenant = tenant.to_owned();
    app
}

/// Runs `command` in the container; returns its output.
async fn exec(container: &str, command: &str) -> String {
    let docker = docker().await;
    let exec = docker
        .create_exec(
            container,
            CreateExecOptions {
                cmd: Some(vec!["sh", "-c", command]),
                attach_stdout: Some(true),
                attach_stderr: Some(true),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let mut text = String::new();
    if let StartExecResults::Attached { mut output, .. } =
        docker.start_exec(&exec.id, None).await.unwrap()
    {
        while let Some(Ok(chunk)) = output.next().await {
            text.push_str(&chunk.to_string());
        }
    }
    text
}

/// Whether the container can open a TCP connection to `host:port`.
async fn connects(container: &str, host: &str, port: u16) -> bool {
    !reachable(container, &[(host.to_owned(), port)])
        .await
        .is_empty()
}

/// The targets the container can open a TCP connection to, tried at once.
async fn reachable(container: &str, targets: &[(String, u16)]) -> Vec<String> {
    let script: String = targets
        .iter()
        .map(|(host, port)| {
            format!(
                "(nc -w 3 {host} {port} </dev/null >/dev/null 2>&1 && echo OPEN {host}:{port}) & "
            )
        })
        .collect();
    let output = exec(container, &format!("{script} wait")).await;
    output
        .lines()
        .filter_map(|line| line.strip_prefix("OPEN "))
        .map(str::to_owned)
        .collect()
}

struct Running {
    id: String,
    ip: String,
    gateway: String,
}

async fn running(app: &AppRef) -> Running {
    let docker = docker().await;
    let name = containers_of(app).await[0]
        .0
        .trim_start_matches('/')
        .to_owned();
    let inspect = docker.inspect_container(&name, None).await.unwrap();
    let networks = inspect.network_settings.unwrap().networks.unwrap();
    let (network, endpoint) = networks.into_iter().next().unwrap();
    assert!(
        network.starts_with("berth-"),
        "on a tenant network: {network}"
    );
    Running {
        id: inspect.id.unwrap(),
        ip: endpoint.ip_address.unwrap(),
        gateway: endpoint.gateway.unwrap(),
    }
}

fn host_ipv4_addresses() -> Vec<IpAddr> {
    let output = std::process::Command::new("ip")
        .args(["-4", "-o", "addr", "show"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace().skip_while(|w| *w != "inet");
            words.nth(1)?.split('/').next()?.parse().ok()
        })
        .collect()
}

#[tokio::test]
async fn a_tenants_apps_reach_each_other_and_nothing_else() {
    let images = images().await;
    let worker = Worker::start(60).await;
    let tenant = |prefix: &str| format!("{prefix}{}", &Uuid::new_v4().simple().to_string()[..6]);
    let (a, b) = (tenant("fa"), tenant("fb"));
    let (a1, a2, b1) = (app_of(&a), app_of(&a), app_of(&b));
    for app in [&a1, &a2, &b1] {
        let deployment = Uuid::now_v7();
        worker
            .deploy(deployment, &release(app, &images.v1, &[]))
            .await;
        let live = worker.outcome(deployment, 1).await;
        assert_eq!(live.state, DeploymentState::Live, "{live:?}");
    }
    let (a1, a2, b1) = (running(&a1).await, running(&a2).await, running(&b1).await);

    // A listener on every address of the host.
    let listener = TcpListener::bind("0.0.0.0:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = accepted.clone();
    tokio::spawn(async move {
        while listener.accept().await.is_ok() {
            counter.fetch_add(1, Ordering::SeqCst);
        }
    });

    // The targets answer the host, so a refusal below is the fence's doing.
    assert!(http_get(&format!("http://{}:8000", b1.ip), "/")
        .await
        .is_ok());

    assert!(
        connects(&a1.id, &a2.ip, 8000).await,
        "same tenant: reachable"
    );
    assert!(
        !connects(&a1.id, &b1.ip, 8000).await,
        "another tenant's app"
    );
    assert!(
        !connects(&b1.id, &a1.ip, 8000).await,
        "another tenant's app"
    );
    let targets: Vec<(String, u16)> = host_ipv4_addresses()
        .into_iter()
        .map(|ip| ip.to_string())
        .chain([a1.gateway.clone()])
        .flat_map(|ip| [port, 5672, 9092, 54329, 5000, 2525].map(|p| (ip.clone(), p)))
        .collect();
    let reached = reachable(&a1.id, &targets).await;
    assert!(
        reached.is_empty(),
        "the app reached the host at {reached:?}"
    );
    assert!(
        !connects(&a1.id, "169.254.169.254", 80).await,
        "cloud metadata"
    );
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        0,
        "nothing reached the host's listener"
    );

    worker.stop().await;
}

#[tokio::test]
async fn an_app_runs_with_limits_no_new_privileges_and_few_capabilities() {
    let images = images().await;
    let worker = Worker::start(60).await;
    let app = app_of("limits");
    let mut release = release(&app, &images.v1, &[]);
    release.config.resources = Default::default();
    let deployment = Uuid::now_v7();
    worker.deploy(deployment, &release).await;
    assert_eq!(
        worker.outcome(deployment, 1).await.state,
        DeploymentState::Live
    );
    let container = running(&app).await.id;
    let status = exec(&container, "cat /proc/1/status /proc/self/status").await;
    let no_new_privs = status
        .lines()
        .filter(|line| line.starts_with("NoNewPrivs:"))
        .all(|line| line.ends_with('1'));
    assert!(no_new_privs, "{status}");
    // CapEff of the app's shell: no NET_RAW (bit 13), no SYS_ADMIN (bit 21).
    let cap_eff = status
        .lines()
        .rfind(|line| line.starts_with("CapEff:"))
        .and_then(|line| u64::from_str_radix(line.split_whitespace().nth(1)?, 16).ok())
        .expect("CapEff");
    assert_eq!(cap_eff & (1 << 13), 0, "NET_RAW is dropped: {cap_eff:x}");
    assert_eq!(cap_eff & (1 << 21), 0, "SYS_ADMIN is dropped: {cap_eff:x}");
    let docker = docker().await;
    let host = docker
        .inspect_container(&container, None)
        .await
        .unwrap()
        .host_config
        .unwrap();
    assert_eq!(
        host.memory,
        Some(512 * 1024 * 1024),
        "the default memory limit"
    );
    assert_eq!(host.pids_limit, Some(512));
    // A fork bomb stops at the process limit instead of taking the host.
    let forks = exec(
        &container,
        "for i in $(seq 600); do sleep 5 & done 2>&1 | tail -1; echo done",
    )
    .await;
    assert!(
        forks.contains("can't fork") || forks.contains("Resource temporarily unavailable"),
        "{forks}"
    );
    worker.stop().await;
}
