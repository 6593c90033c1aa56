use super::*;
use crate::kaniko::fixtures::{grant_key, job, job_of, settings, IMAGE, REGISTRY};
use base64::Engine;
use berth_common::registry_auth::{unix_now, Access, Credentials, RegistryCredentials};
use serde_json::Value;
use std::path::PathBuf;

fn rendered() -> Value {
    serde_json::to_value(build_pod(
        &job(PathBuf::from("/x/context.tar")),
        &settings(),
    ))
    .unwrap()
}

fn at<'a>(pod: &'a Value, pointer: &str) -> &'a Value {
    pod.pointer(pointer)
        .unwrap_or_else(|| panic!("`{pointer}` is missing from {pod:#}"))
}

#[test]
fn the_pod_is_named_after_the_deployment_and_labelled() {
    let pod = rendered();
    assert_eq!(at(&pod, "/apiVersion"), "v1");
    assert_eq!(at(&pod, "/kind"), "Pod");
    assert_eq!(
        at(&pod, "/metadata/name"),
        "build-0190a0b1111172228333444455556666"
    );
    assert_eq!(at(&pod, "/metadata/namespace"), "berth-acme-build");
    let labels = at(&pod, "/metadata/labels");
    assert_eq!(
        labels["berth.dev/app"],
        "0190a0b0-0000-7000-8000-00000000a99a"
    );
    assert_eq!(labels["berth.dev/app-name"], "web");
    assert_eq!(labels["berth.dev/tenant"], "acme");
    assert_eq!(
        labels["berth.dev/deployment"],
        "0190a0b1-1111-7222-8333-444455556666"
    );
    assert_eq!(labels["berth.dev/role"], "build");
    assert_eq!(labels["app.kubernetes.io/managed-by"], "berth");
}

#[test]
fn the_pod_runs_once_within_its_deadline_without_a_token() {
    let pod = rendered();
    assert_eq!(at(&pod, "/spec/restartPolicy"), "Never");
    assert_eq!(at(&pod, "/spec/activeDeadlineSeconds"), 900);
    assert_eq!(at(&pod, "/spec/automountServiceAccountToken"), false);
    assert_eq!(at(&pod, "/spec/serviceAccountName"), "berth-workload");
    assert_eq!(at(&pod, "/spec/enableServiceLinks"), false);
    assert_eq!(
        at(&pod, "/spec/securityContext/seccompProfile/type"),
        "RuntimeDefault"
    );
    assert_eq!(at(&pod, "/spec/containers").as_array().unwrap().len(), 1);
}

#[test]
fn the_container_reads_its_context_from_stdin_and_reports_the_digest() {
    let pod = rendered();
    let container = at(&pod, "/spec/containers/0");
    assert_eq!(container["name"], "kaniko");
    assert_eq!(container["image"], IMAGE);
    assert_eq!(container["stdin"], true);
    assert_eq!(container["stdinOnce"], true);
    assert_eq!(container["tty"], false);
    assert_eq!(container["terminationMessagePath"], "/dev/termination-log");
    assert_eq!(container["terminationMessagePolicy"], "File");
    let args: Vec<&str> = container["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(
        args,
        [
            "--context=tar://stdin",
            "--dockerfile=Dockerfile",
            &format!("--destination={REGISTRY}/acme/web:0123456789abcdef0123456789abcdef01234567"),
            "--digest-file=/dev/termination-log",
            "--cache=true",
            &format!("--cache-repo={REGISTRY}/cache/acme"),
            "--label=berth.dev/app=0190a0b0-0000-7000-8000-00000000a99a",
            "--label=org.opencontainers.image.source=https://git.example.com/acme/web",
            // The operator's extra flags come last, so they win.
            "--snapshot-mode=redo",
        ]
    );
}

#[test]
fn requests_equal_limits() {
    let pod = rendered();
    let resources = at(&pod, "/spec/containers/0/resources");
    for kind in ["requests", "limits"] {
        assert_eq!(resources[kind]["cpu"], "2", "{kind}");
        assert_eq!(resources[kind]["memory"], "4Gi", "{kind}");
        assert_eq!(resources[kind]["ephemeral-storage"], "10Gi", "{kind}");
    }
}

#[test]
fn the_registry_secret_is_mounted_as_kanikos_docker_config() {
    let pod = rendered();
    let mount = at(&pod, "/spec/containers/0/volumeMounts/0");
    assert_eq!(mount["mountPath"], "/kaniko/.docker");
    assert_eq!(mount["readOnly"], true);
    let volume = at(&pod, "/spec/volumes/0");
    assert_eq!(volume["name"], mount["name"]);
    // The build's own Secret, not one the tenant's builds share.
    assert_eq!(
        volume["secret"]["secretName"],
        "build-0190a0b1111172228333444455556666-registry"
    );
    assert_eq!(volume["secret"]["items"][0]["key"], ".dockerconfigjson");
    assert_eq!(volume["secret"]["items"][0]["path"], "config.json");
    assert_eq!(volume["secret"]["defaultMode"], 0o400);
}

#[test]
fn the_container_keeps_only_the_capabilities_kaniko_needs() {
    let pod = rendered();
    let context = at(&pod, "/spec/containers/0/securityContext");
    assert_eq!(context["allowPrivilegeEscalation"], false);
    assert_eq!(context["privileged"], false);
    assert_eq!(context["runAsUser"], 0);
    assert_eq!(context["capabilities"]["drop"], serde_json::json!(["ALL"]));
    assert_eq!(
        context["capabilities"]["add"],
        serde_json::json!([
            "CHOWN",
            "DAC_OVERRIDE",
            "FOWNER",
            "FSETID",
            "SETFCAP",
            "SETGID",
            "SETUID"
        ])
    );
    assert_eq!(context["seccompProfile"]["type"], "RuntimeDefault");
    // Pod Security `baseline` allows exactly these additions, and no host access.
    const BASELINE: [&str; 13] = [
        "AUDIT_WRITE",
        "CHOWN",
        "DAC_OVERRIDE",
        "FOWNER",
        "FSETID",
        "KILL",
        "MKNOD",
        "NET_BIND_SERVICE",
        "SETFCAP",
        "SETGID",
        "SETPCAP",
        "SETUID",
        "SYS_CHROOT",
    ];
    assert!(CAPABILITIES.iter().all(|c| BASELINE.contains(c)));
    let spec = at(&pod, "/spec");
    for field in ["hostNetwork", "hostPID", "hostIPC"] {
        assert!(spec.get(field).is_none(), "{field}");
    }
}

#[test]
fn an_insecure_registry_is_spoken_to_over_http() {
    let mut settings = settings();
    settings.insecure_registry = true;
    settings.extra_flags.clear();
    let args = kaniko_args(&job(PathBuf::from("/x")), &settings);
    assert!(args.contains(&"--insecure".to_owned()), "{args:?}");
    assert!(
        args.contains(&format!("--insecure-registry={REGISTRY}")),
        "{args:?}"
    );
}

/// The one registry a build Secret names, and its credentials there.
fn auths_of(secret: &Value) -> Vec<(String, Credentials)> {
    let data = secret["data"][".dockerconfigjson"].as_str().unwrap();
    let config: Value = serde_json::from_slice(
        &base64::engine::general_purpose::STANDARD
            .decode(data)
            .unwrap(),
    )
    .unwrap();
    config["auths"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(host, auth)| {
            (
                host.clone(),
                Credentials {
                    username: auth["username"].as_str().unwrap().to_owned(),
                    password: auth["password"].as_str().unwrap().to_owned(),
                },
            )
        })
        .collect()
}

#[test]
fn a_builds_secret_holds_a_push_grant_of_its_tenant_only() {
    let settings = settings();
    let job = job(PathBuf::from("/x"));
    let grant = settings
        .registry
        .credentials
        .for_tenant("acme", Access::Push);
    let secret = serde_json::to_value(build_secret(&job, &settings, &grant)).unwrap();
    assert_eq!(secret["kind"], "Secret");
    assert_eq!(
        secret["metadata"]["name"],
        "build-0190a0b1111172228333444455556666-registry"
    );
    assert_eq!(secret["metadata"]["namespace"], "berth-acme-build");
    assert_eq!(secret["metadata"]["labels"]["berth.dev/role"], "build");
    assert_eq!(
        secret["metadata"]["labels"]["berth.dev/deployment"],
        "0190a0b1-1111-7222-8333-444455556666"
    );
    assert_eq!(secret["type"], "kubernetes.io/dockerconfigjson");
    let auths = auths_of(&secret);
    assert_eq!(auths.len(), 1);
    assert_eq!(auths[0].0, REGISTRY);
    let verified = grant_key()
        .verify(&auths[0].1.username, &auths[0].1.password, unix_now())
        .unwrap();
    assert_eq!(verified.tenant, "acme");
    assert_eq!(verified.access, Access::Push);
}

#[test]
fn two_tenants_builds_hold_different_grants() {
    let settings = settings();
    let secret_of = |tenant: &str| {
        let grant = settings
            .registry
            .credentials
            .for_tenant(tenant, Access::Push);
        let job = job_of(tenant, PathBuf::from("/x"));
        serde_json::to_value(build_secret(&job, &settings, &grant)).unwrap()
    };
    let (a, b) = (secret_of("acme"), secret_of("other"));
    assert_eq!(a["metadata"]["namespace"], "berth-acme-build");
    assert_eq!(b["metadata"]["namespace"], "berth-other-build");
    let (a, b) = (auths_of(&a).remove(0).1, auths_of(&b).remove(0).1);
    assert_ne!(a, b);
    assert_eq!(
        grant_key()
            .verify(&a.username, &a.password, unix_now())
            .unwrap()
            .tenant,
        "acme"
    );
    assert_eq!(
        grant_key()
            .verify(&b.username, &b.password, unix_now())
            .unwrap()
            .tenant,
        "other"
    );
}
