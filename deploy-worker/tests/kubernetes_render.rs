//! `berth-deploy-worker render` prints exactly `plan(...)`: the built binary
//! is run with a release given as flags or as a file, and its YAML is
//! compared, object by object, with what the driver would apply.

use berth_common::registry_auth::Credentials;
use berth_deploy_worker::kubernetes::render::PLACEHOLDER_GRANT;
use berth_deploy_worker::kubernetes::{plan, KubernetesSettings, PullSecret};
use berth_proto::{AppRef, Binding, Release, ReleaseConfig, Resources, SecretKey};
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Output};
use uuid::Uuid;

fn render(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_berth-deploy-worker"))
        .arg("render")
        .args(args)
        // The BERTH_K8S_* settings of the developer's shell must not count.
        .env_clear()
        .output()
        .expect("the binary runs")
}

fn documents(output: &Output) -> Vec<Value> {
    assert!(
        output.status.success(),
        "render failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let yaml = String::from_utf8(output.stdout.clone()).unwrap();
    assert!(yaml.starts_with("---\n"), "{yaml}");
    serde_yaml_ng::Deserializer::from_str(&yaml)
        .map(|document| Value::deserialize(document).expect("each document is YAML"))
        .collect()
}

fn scratch(name: &str, contents: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("berth-render-{}", Uuid::now_v7()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, contents).unwrap();
    path
}

fn release(key: &SecretKey) -> Release {
    let app_id = Uuid::now_v7();
    Release {
        id: Uuid::now_v7(),
        app: AppRef {
            id: app_id,
            name: "shop".into(),
            tenant: "acme".into(),
        },
        commit: "abc123".into(),
        image: format!("registry.example:5000/acme/shop@sha256:{}", "b".repeat(64)),
        config: ReleaseConfig {
            port: 3000,
            env: key.seal_json(
                &Binding::app_env("acme", app_id),
                &BTreeMap::from([("IGNORED", "sealed")]),
            ),
            env_version: 2,
            replicas: 2,
            resources: Resources {
                cpu_millis: Some(500),
                memory_mb: Some(384),
            },
            health_check_path: None,
        },
    }
}

#[test]
fn render_from_flags_prints_the_plan() {
    let key = SecretKey::from_base64(&SecretKey::generate_base64()).unwrap();
    let release = release(&key);
    let deployment = Uuid::now_v7();
    let env_file = scratch(
        "app.env",
        "# the shop's env\nDATABASE_URL=\"postgres://db/shop\"\nGREETING=hello\n",
    );
    let (app_id, release_id, deployment_id) = (
        release.app.id.to_string(),
        release.id.to_string(),
        deployment.to_string(),
    );
    let output = render(&[
        "--tenant",
        "acme",
        "--app",
        "shop",
        "--app-id",
        &app_id,
        "--release-id",
        &release_id,
        "--image",
        &release.image,
        "--port",
        "3000",
        "--replicas",
        "2",
        "--cpu-millis",
        "500",
        "--memory-mb",
        "384",
        "--deployment-id",
        &deployment_id,
        "--env-file",
        env_file.to_str().unwrap(),
        "--env",
        "GREETING=hi there",
        "--base-domain",
        "apps.example",
        "--cluster-issuer",
        "internal-ca",
        "--ingress-class",
        "traefik",
        "--quota-pods",
        "7",
        "--release-history",
        "5",
    ]);
    let env = BTreeMap::from([
        ("DATABASE_URL".to_owned(), "postgres://db/shop".to_owned()),
        ("GREETING".to_owned(), "hi there".to_owned()),
    ]);
    let settings = KubernetesSettings {
        base_domain: "apps.example".into(),
        cluster_issuer: "internal-ca".into(),
        ingress_class: "traefik".into(),
        release_history: 5,
        tenant: berth_common::kubernetes::TenantSettings {
            quota_pods: 7,
            ..Default::default()
        },
    };
    let printed = documents(&output);
    assert_eq!(printed, plan(&release, deployment, &env, &settings, None));
    assert_eq!(printed.len(), 10);
    assert_eq!(
        printed[9]["spec"]["rules"][0]["host"],
        "shop.acme.apps.example"
    );
    assert_eq!(printed[1]["spec"]["hard"]["pods"], "7");
    assert_eq!(printed[7]["spec"]["revisionHistoryLimit"], 5);
}

#[test]
fn with_the_registry_the_tenants_pull_secret_is_rendered_and_named_by_its_pods() {
    let key = SecretKey::from_base64(&SecretKey::generate_base64()).unwrap();
    let release = release(&key);
    let file = scratch("release.json", &json!({ "release": release }).to_string());
    let printed = documents(&render(&[
        "--release",
        file.to_str().unwrap(),
        "--registry",
        "registry.example:5000/berth",
    ]));
    let pull = PullSecret {
        registry: "registry.example:5000".into(),
        credentials: Credentials {
            username: "pull.acme".into(),
            password: PLACEHOLDER_GRANT.into(),
        },
    };
    let expected = plan(
        &release,
        Uuid::nil(),
        &BTreeMap::new(),
        &KubernetesSettings::default(),
        Some(&pull),
    );
    assert_eq!(printed, expected);
    assert_eq!(printed.len(), 11);
    let secret = printed
        .iter()
        .find(|d| d["metadata"]["name"] == "berth-registry-pull")
        .expect("the tenant's pull secret is rendered");
    assert_eq!(secret["kind"], "Secret");
    assert_eq!(secret["metadata"]["namespace"], "berth-acme");
    assert_eq!(secret["type"], "kubernetes.io/dockerconfigjson");
    let deployment = printed.iter().find(|d| d["kind"] == "Deployment").unwrap();
    assert_eq!(
        deployment["spec"]["template"]["spec"]["imagePullSecrets"],
        json!([{"name": "berth-registry-pull"}])
    );
}

#[test]
fn render_of_a_deploy_requested_payload_prints_the_plan_with_the_env_given_in_clear() {
    let key = SecretKey::from_base64(&SecretKey::generate_base64()).unwrap();
    let release = release(&key);
    let payload = scratch("release.json", &json!({ "release": release }).to_string());
    let env_file = scratch("app.env", "SECRET=s3cret\n");
    let deployment = Uuid::now_v7();
    let output = render(&[
        "--release",
        payload.to_str().unwrap(),
        "--env-file",
        env_file.to_str().unwrap(),
        "--deployment-id",
        &deployment.to_string(),
    ]);
    let env = BTreeMap::from([("SECRET".to_owned(), "s3cret".to_owned())]);
    let printed = documents(&output);
    assert_eq!(
        printed,
        plan(
            &release,
            deployment,
            &env,
            &KubernetesSettings::default(),
            None
        )
    );
    assert_eq!(
        printed[6]["data"]["SECRET"], "czNjcmV0",
        "the Secret as it is applied"
    );
}

#[test]
fn a_bare_release_without_its_sealed_env_renders_too() {
    let key = SecretKey::from_base64(&SecretKey::generate_base64()).unwrap();
    let release = release(&key);
    let mut bare = serde_json::to_value(&release).unwrap();
    bare["config"].as_object_mut().unwrap().remove("env");
    let file = scratch("release.json", &bare.to_string());
    let printed = documents(&render(&["--release", file.to_str().unwrap()]));
    let expected = plan(
        &release,
        Uuid::nil(),
        &BTreeMap::new(),
        &KubernetesSettings::default(),
        None,
    );
    assert_eq!(
        printed, expected,
        "ids default to nil, so renders compare equal"
    );
}

#[test]
fn render_refuses_incomplete_or_contradictory_input() {
    let missing = render(&["--tenant", "acme", "--app", "shop"]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("--image"));
    let both = render(&["--release", "r.json", "--tenant", "acme"]);
    assert!(!both.status.success());
    assert!(String::from_utf8_lossy(&both.stderr).contains("cannot be used with"));
    let bad_env = render(&[
        "--tenant", "a", "--app", "b", "--image", "c", "--env", "NOVALUE",
    ]);
    assert!(!bad_env.status.success());
    assert!(String::from_utf8_lossy(&bad_env.stderr).contains("KEY=VALUE"));
}
