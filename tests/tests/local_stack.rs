//! What the single-host stack trusts, checked on the running stack: no
//! default broker administrator, a broker user per process that reads only
//! its own queue, services on loopback only, berth's state root's alone.

use berth_common::testing::{rabbitmqctl, stack_env, TestVhost};
use berth_common::Broker;
use berth_proto::names::{BUILDS_QUEUE, DEPLOYS_QUEUE, INFORM_QUEUE, RECONCILE_QUEUE};
use lapin::options::BasicConsumeOptions;
use lapin::types::FieldTable;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

#[test]
fn the_broker_has_no_guest_and_no_administrator() {
    let users = rabbitmqctl(&["-q", "list_users"]);
    let names: Vec<&str> = users
        .lines()
        .skip(1)
        .filter_map(|line| line.split_whitespace().next())
        .collect();
    assert!(!names.contains(&"guest"), "{users}");
    for process in ["berth-backend", "berth-build-worker", "berth-deploy-worker"] {
        assert!(names.contains(&process), "{process} has a user: {users}");
    }
    assert!(!users.contains("administrator"), "{users}");
}

/// Whether `process`'s user may consume `queue` (on a test vhost that has
/// the platform's permissions).
async fn may_consume(vhost: &TestVhost, process: &str, queue: &str) -> bool {
    let url = vhost.url_for(process);
    // Every process declares the topology before it works.
    Broker::new(url.clone(), "local-stack-test")
        .ensure_topology()
        .await
        .unwrap_or_else(|e| panic!("{process} declares the topology: {e}"));
    let connection = lapin::Connection::connect(&url, Default::default())
        .await
        .unwrap();
    let channel = connection.create_channel().await.unwrap();
    let consumed = channel
        .basic_consume(
            queue.into(),
            "probe".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .is_ok();
    let _ = connection.close(0, "done".into()).await;
    consumed
}

#[tokio::test]
async fn each_process_reads_only_the_queue_it_consumes() {
    let vhost = TestVhost::new();
    let expected = [
        ("berth-backend", INFORM_QUEUE, true),
        ("berth-build-worker", BUILDS_QUEUE, true),
        ("berth-build-worker", INFORM_QUEUE, false),
        ("berth-build-worker", DEPLOYS_QUEUE, false),
        ("berth-build-worker", RECONCILE_QUEUE, false),
        ("berth-deploy-worker", DEPLOYS_QUEUE, true),
        ("berth-deploy-worker", RECONCILE_QUEUE, true),
        ("berth-deploy-worker", BUILDS_QUEUE, false),
        ("berth-deploy-worker", INFORM_QUEUE, false),
    ];
    for (process, queue, allowed) in expected {
        assert_eq!(
            may_consume(&vhost, process, queue).await,
            allowed,
            "{process} consuming {queue}"
        );
    }
}

#[test]
fn services_listen_on_loopback_only() {
    let env = stack_env();
    let port = |url: &str| -> u16 {
        let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
        let host_port = rest.rsplit('@').next().unwrap().split('/').next().unwrap();
        host_port.rsplit(':').next().unwrap().parse().unwrap()
    };
    let ports = [
        port(&env["BERTH_DATABASE_URL"]),
        port(&env["BERTH_AMQP_URL"]),
        port(&env["BERTH_KAFKA_BROKERS"]),
        port(&env["BERTH_REGISTRY"]),
        port(&env["BERTH_SMTP_URL"]),
    ];
    let output = std::process::Command::new("ss")
        .args(["-ltnH"])
        .output()
        .unwrap();
    let listening = String::from_utf8_lossy(&output.stdout);
    for port in ports {
        let addresses: Vec<&str> = listening
            .lines()
            .filter_map(|line| line.split_whitespace().nth(3))
            .filter(|local| local.ends_with(&format!(":{port}")))
            .collect();
        assert!(!addresses.is_empty(), "something listens on {port}");
        for address in addresses {
            assert!(
                address.starts_with("127.0.0.1:") || address.starts_with("[::1]:"),
                "port {port} listens on {address}"
            );
        }
    }
}

#[test]
fn the_stacks_state_is_roots_alone() {
    let env = stack_env();
    // The stack's state folder (another checkout's when the stack is shared).
    let state = PathBuf::from(&env["BERTH_MAIL_DIR"])
        .parent()
        .unwrap()
        .to_path_buf();
    let mode = |path: &PathBuf| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(
        mode(&state) & 0o044,
        0,
        "{} is listable by others",
        state.display()
    );
    for folder in [
        "tansu", "mail", "registry", "logs", "secrets", "podman", "run", "postgres", "rabbitmq",
    ] {
        let path = state.join(folder);
        assert_eq!(
            mode(&path) & 0o077,
            0,
            "{} is open to others",
            path.display()
        );
    }
    let env_file = state.join("berth.env");
    assert_eq!(mode(&env_file) & 0o077, 0);
}
