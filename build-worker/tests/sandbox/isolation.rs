//! What a build can reach: the internet's package registries, and nothing
//! of the host, the platform or other tenants.

use super::*;
use bollard::models::ContainerCreateBody;
use bollard::query_parameters::{CreateContainerOptionsBuilder, RemoveContainerOptionsBuilder};
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::net::{TcpListener, TcpStream};

/// Connects to each target from inside the build; fetches from PyPI.
const PROBE: &str = r#"
import json, socket, ssl, sys, urllib.request
from concurrent.futures import ThreadPoolExecutor

def attempt(target):
    host, port = target
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        s = socket.socket(family, socket.SOCK_STREAM)
    except OSError as e:
        return target, False, str(e)
    s.settimeout(3)
    try:
        s.connect((host, port))
        return target, True, "connected"
    except OSError as e:
        return target, False, str(e)
    finally:
        s.close()

own = socket.socket()
own.bind(("127.0.0.1", 9999))
own.listen()
print("SELF", "REACHED" if attempt(("127.0.0.1", 9999))[1] else "FAILED", flush=True)
reached = []
with ThreadPoolExecutor(32) as pool:
    for (host, port), ok, why in pool.map(attempt, json.load(open("/probe/targets.json"))):
        print("REACHED" if ok else "blocked", f"{host}:{port}", why, flush=True)
        if ok:
            reached.append(f"{host}:{port}")
context = ssl.create_default_context(cafile="/probe/ca.crt")
with urllib.request.urlopen("https://pypi.org/simple/pip/", timeout=30, context=context) as r:
    print("FETCHED", r.status, flush=True)
sys.exit(1 if reached else 0)
"#;

/// Every address of this host, IPv4 and IPv6, bridges included.
fn host_addresses() -> Vec<IpAddr> {
    let output = std::process::Command::new("ip")
        .args(["-o", "addr", "show"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| {
            let mut words = line
                .split_whitespace()
                .skip_while(|w| !w.starts_with("inet"));
            words.nth(1)?.split('/').next()?.parse::<IpAddr>().ok()
        })
        // fe80:: needs a zone, which a socket in another namespace cannot name.
        .filter(|ip| !matches!(ip, IpAddr::V6(v6) if v6.segments()[0] == 0xfe80))
        .collect()
}

fn port_of(url: &str) -> u16 {
    let after = url.split_once("://").map_or(url, |(_, rest)| rest);
    let after = after.rsplit('@').next().unwrap();
    let host_port = after.split('/').next().unwrap();
    host_port.rsplit(':').next().unwrap().parse().unwrap()
}

/// A container of another tenant on the engine that runs the apps.
struct OtherTenantsApp {
    docker: bollard::Docker,
    name: String,
    ip: String,
}

impl OtherTenantsApp {
    async fn start() -> Self {
        let env = stack_env();
        let docker = berth_common::engine::connect(&env["BERTH_DOCKER_HOST"])
            .await
            .unwrap();
        let name = format!(
            "berth-probe-target-{}",
            &Uuid::new_v4().simple().to_string()[..8]
        );
        let body = ContainerCreateBody {
            image: Some(STATIC.into()),
            env: Some(vec!["PORT=8000".into()]),
            ..Default::default()
        };
        let options = CreateContainerOptionsBuilder::default().name(&name).build();
        docker.create_container(Some(options), body).await.unwrap();
        docker.start_container(&name, None).await.unwrap();
        let inspect = docker.inspect_container(&name, None).await.unwrap();
        let ip = inspect
            .network_settings
            .and_then(|settings| settings.networks)
            .and_then(|networks| networks.into_values().find_map(|n| n.ip_address))
            .filter(|ip| !ip.is_empty())
            .expect("the container has an address");
        Self { docker, name, ip }
    }

    async fn remove(self) {
        let options = RemoveContainerOptionsBuilder::default().force(true).build();
        let _ = self
            .docker
            .remove_container(&self.name, Some(options))
            .await;
    }
}

async fn reachable_from_host(host: &str, port: u16) -> bool {
    let address = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(2), TcpStream::connect(address)).await,
        Ok(Ok(_))
    )
}

#[tokio::test]
async fn a_build_reaches_package_registries_but_nothing_of_the_host_or_other_tenants() {
    let builder = builder(&[]).await;
    let env = stack_env();

    // A listener on every address of the host, counting who connects.
    let listener = TcpListener::bind("[::]:0").await.unwrap();
    let listen_port = listener.local_addr().unwrap().port();
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = accepted.clone();
    tokio::spawn(async move {
        while listener.accept().await.is_ok() {
            counter.fetch_add(1, Ordering::SeqCst);
        }
    });

    // Another tenant's running app, and another tenant's build that listens.
    let other_app = OtherTenantsApp::start().await;
    let neighbour = App::new(
        &tenant("sbxn"),
        &[(
            "Dockerfile",
            &format!("FROM {STATIC}\nRUN (busybox httpd -f -p 8000 -h /site &) && echo NEIGHBOUR-LISTENING && sleep 45\n"),
        )],
    );
    let neighbours_builder = super::builder(&[]).await;
    let neighbour_build = {
        let builder = neighbours_builder;
        let app_lines = neighbour.lines.clone();
        let job = neighbour.job.clone();
        tokio::spawn(async move {
            let log = BuildLog::start(
                Arc::new(app_lines),
                job.app.id,
                job.deployment_id,
                &LogSettings::default(),
            );
            let result = builder.build(&job, &log).await;
            log.finish().await;
            result
        })
    };
    neighbour
        .lines
        .wait_for_line("NEIGHBOUR-LISTENING", Duration::from_secs(60))
        .await;
    let mut neighbour_addr = None;
    for slot in 0..32u32 {
        let host = format!("10.250.{}.{}", slot * 4 / 256, slot * 4 % 256 + 2);
        if reachable_from_host(&host, 8000).await {
            neighbour_addr = Some(host);
            break;
        }
    }
    let neighbour_addr = neighbour_addr.expect("the neighbour's build listens in its sandbox");

    let mut targets: Vec<(String, u16)> = Vec::new();
    let service_ports = [
        port_of(&env["BERTH_DATABASE_URL"]),
        port_of(&env["BERTH_AMQP_URL"]),
        port_of(&env["BERTH_KAFKA_BROKERS"]),
        port_of(&env["BERTH_REGISTRY"]),
        port_of(&env["BERTH_SMTP_URL"]),
    ];
    for ip in host_addresses() {
        for port in service_ports.iter().copied().chain([listen_port]) {
            targets.push((ip.to_string(), port));
        }
    }
    targets.push((other_app.ip.clone(), 8000));
    targets.push((neighbour_addr.clone(), 8000));
    targets.push(("169.254.169.254".into(), 80));
    targets.push(("fd00:ec2::254".into(), 80));
    // The targets are live: from the host (where an unsandboxed build runs)
    // each of these answers.
    for (host, port) in [
        ("127.0.0.1".to_owned(), service_ports[2]),
        ("127.0.0.1".to_owned(), listen_port),
        (other_app.ip.clone(), 8000),
        (neighbour_addr.clone(), 8000),
    ] {
        assert!(
            reachable_from_host(&host, port).await,
            "{host}:{port} answers the host"
        );
    }
    let before = accepted.load(Ordering::SeqCst);

    let probe = App::new(
        &tenant("sbxp"),
        &[
            (
                "Dockerfile",
                &format!("FROM {PYTHON}\nCOPY . /probe\nRUN python3 /probe/probe.py\n"),
            ),
            ("probe.py", PROBE),
            ("targets.json", &serde_json::to_string(&targets).unwrap()),
            (
                "ca.crt",
                &std::fs::read_to_string("/etc/ssl/certs/ca-certificates.crt").unwrap(),
            ),
        ],
    );
    let result = probe.build(&builder).await;
    let log = probe.lines.text();
    other_app.remove().await;
    neighbour_build.abort();
    assert!(
        log.contains("SELF REACHED"),
        "the probe can connect at all:\n{log}"
    );
    let reached: Vec<&str> = log.lines().filter(|l| l.starts_with("REACHED")).collect();
    assert!(reached.is_empty(), "the build reached {reached:?}:\n{log}");
    assert_eq!(
        log.lines().filter(|l| l.starts_with("blocked")).count(),
        targets.len(),
        "{log}"
    );
    assert!(log.contains("FETCHED 200"), "PyPI is reachable:\n{log}");
    assert!(result.is_ok(), "{result:?}\n{log}");
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        before,
        "nothing connected to the host's listener"
    );
}

#[tokio::test]
async fn the_host_root_mount_finds_nothing_of_berths_even_past_the_dockerfile_check() {
    let builder = builder(&[]).await;
    // A secret only root can read, like berth's own in .berth/secrets.
    let dir = std::path::PathBuf::from(format!(
        "/var/lib/berth-test-secret-{}",
        Uuid::new_v4().simple()
    ));
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    let marker = format!("secret-{}", Uuid::new_v4().simple());
    std::fs::write(dir.join("key"), &marker).unwrap();
    // CVE-2024-1753's shape, handed to the builder directly: the Dockerfile
    // check in front of it would refuse it.
    let dockerfile = format!(
        "FROM {PYTHON} AS base\nRUN ln -s / /rootlink\nFROM base\n\
         RUN --mount=type=bind,from=base,source=/rootlink,target=/mnt \
         sh -c 'ls /mnt{dir}; cat /mnt{dir}/key; cat /mnt{secrets}/jwt-secret; echo PROBED'\n",
        dir = dir.display(),
        secrets = berth_common::testing::repo_root()
            .join(".berth/secrets")
            .display(),
    );
    assert!(berth_build_worker::dockerfile::check(&dockerfile).is_err());
    let app = App::new(&tenant("sbxc"), &[("Dockerfile", &dockerfile)]);
    let _ = app.build(&builder).await;
    let log = app.lines.text();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        !log.contains(&marker),
        "the build read a root-only file:\n{log}"
    );
    let jwt = std::fs::read_to_string(
        berth_common::testing::repo_root().join(".berth/secrets/jwt-secret"),
    )
    .unwrap_or_default();
    assert!(
        jwt.trim().is_empty() || !log.contains(jwt.trim()),
        "the build read berth's JWT secret"
    );
}
