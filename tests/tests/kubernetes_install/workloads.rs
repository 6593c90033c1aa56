//! The four workloads: images, resources, probes, Pod Security `restricted`,
//! volumes for what they write, the backend's replicas and migration, and
//! labels apart from those of the apps berth runs.

use crate::render::{overlays, rendered};
use crate::{
    array, container_port, labels, port_of, replicas, str_of, strings, BACKEND, BUILD_WORKER,
    LOG_STREAMER, PROCESSES,
};
use serde_json::Value;
use std::collections::BTreeSet;

/// The volume a container mounts at `path`, if any.
fn mount_at<'a>(container: &'a Value, path: &str) -> Option<&'a Value> {
    array(container.get("volumeMounts"))
        .iter()
        .find(|m| m["mountPath"] == path)
}

#[test]
fn there_are_four_workloads_one_image_each_with_a_tag_from_the_overlay() {
    for rendered in overlays() {
        let workloads: BTreeSet<(&str, &str)> = rendered
            .objects
            .iter()
            .filter(|o| ["Deployment", "StatefulSet", "DaemonSet"].contains(&str_of(o, "/kind")))
            .map(|o| (str_of(o, "/kind"), str_of(o, "/metadata/name")))
            .collect();
        let expected: BTreeSet<(&str, &str)> = PROCESSES
            .iter()
            .map(|(name, kind)| (*kind, *name))
            .collect();
        assert_eq!(
            workloads, expected,
            "{}: the workloads must be exactly berth's four processes",
            rendered.name
        );
        for (process, _) in PROCESSES {
            for (label, container) in rendered.all_containers(process) {
                let image = str_of(container, "/image");
                let (repository, tag) = image
                    .rsplit_once(':')
                    .unwrap_or_else(|| panic!("{label}: image {image} has no tag"));
                assert_eq!(
                    repository,
                    format!("ghcr.io/berth-dev/{process}"),
                    "{label}: one image per process"
                );
                assert!(
                    !tag.is_empty() && tag != "latest",
                    "{label}: the overlay pins the image's tag (is `{tag}`)"
                );
            }
        }
    }
}

#[test]
fn every_container_requests_and_limits_cpu_and_memory() {
    for rendered in overlays() {
        for (process, _) in PROCESSES {
            for (label, container) in rendered.all_containers(process) {
                for side in ["requests", "limits"] {
                    for resource in ["cpu", "memory"] {
                        assert!(
                            container["resources"][side][resource].is_string()
                                || container["resources"][side][resource].is_number(),
                            "{label}: no resources.{side}.{resource}"
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn every_process_has_liveness_on_healthz_and_readiness_on_readyz_at_its_ops_port() {
    for rendered in overlays() {
        for (process, _) in PROCESSES {
            let container = rendered.container(process);
            // Every process serves /healthz and /readyz on BERTH_OPS_ADDR
            // (OpsConfig, default 127.0.0.1:0, which a probe could not
            // reach); the backend also on BERTH_LISTEN, its public port.
            let addr = rendered.config_value("BERTH_OPS_ADDR");
            assert!(
                addr.starts_with("0.0.0.0:"),
                "{}: {process} must listen on all interfaces for the probes, not {addr}",
                rendered.name
            );
            for (probe, path) in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")] {
                let get = &container[probe]["httpGet"];
                assert_eq!(
                    get["path"], path,
                    "{}: {process} has no {probe} on {path}",
                    rendered.name
                );
                assert_eq!(
                    container_port(container, &get["port"]),
                    port_of(addr),
                    "{}: {process}'s {probe} is not on the port it serves {path} on ({addr})",
                    rendered.name
                );
            }
        }
    }
}

#[test]
fn every_pod_meets_pod_security_restricted() {
    for rendered in overlays() {
        for (process, _) in PROCESSES {
            let pod = rendered.pod_spec(process);
            let pod_context = &pod["securityContext"];
            for field in ["hostNetwork", "hostPID", "hostIPC"] {
                assert_ne!(
                    pod[field], true,
                    "{}: {process} sets {field}",
                    rendered.name
                );
            }
            for volume in array(pod.get("volumes")) {
                assert!(
                    volume.get("hostPath").is_none(),
                    "{}: {process} mounts a hostPath",
                    rendered.name
                );
            }
            assert_ne!(
                pod_context["runAsUser"], 0,
                "{}: {process} runs as root",
                rendered.name
            );
            for (label, container) in rendered.all_containers(process) {
                let context = &container["securityContext"];
                assert!(
                    context["runAsNonRoot"] == true
                        || (context["runAsNonRoot"].is_null()
                            && pod_context["runAsNonRoot"] == true),
                    "{label}: runAsNonRoot is not true"
                );
                assert_ne!(context["runAsUser"], 0, "{label}: runs as root");
                assert_eq!(
                    context["allowPrivilegeEscalation"], false,
                    "{label}: allowPrivilegeEscalation must be false"
                );
                assert_ne!(context["privileged"], true, "{label}: privileged");
                assert!(
                    strings(context["capabilities"].get("drop")).contains(&"ALL"),
                    "{label}: capabilities must drop ALL"
                );
                assert!(
                    strings(context["capabilities"].get("add")).is_empty(),
                    "{label}: adds capabilities"
                );
                let seccomp = if context["seccompProfile"].is_null() {
                    &pod_context["seccompProfile"]
                } else {
                    &context["seccompProfile"]
                };
                assert_eq!(
                    seccomp["type"], "RuntimeDefault",
                    "{label}: seccompProfile must be RuntimeDefault"
                );
                assert_eq!(
                    context["readOnlyRootFilesystem"], true,
                    "{label}: the root filesystem should be read-only"
                );
                // With a read-only root, temporary files need a volume.
                assert!(
                    mount_at(container, "/tmp").is_some(),
                    "{label}: no writable /tmp"
                );
            }
        }
    }
}

#[test]
fn folders_the_processes_write_are_volumes() {
    for rendered in overlays() {
        for (process, key) in [
            (BUILD_WORKER, "BERTH_WORK_DIR"),
            (LOG_STREAMER, "BERTH_LOG_STREAMER_STATE_DIR"),
        ] {
            let dir = rendered.config_value(key);
            assert!(
                mount_at(rendered.container(process), dir).is_some(),
                "{}: {process} writes {key}={dir}, which is not a mounted volume",
                rendered.name
            );
        }
    }
}

#[test]
fn the_log_streamer_keeps_its_checkpoints_on_a_persistent_volume() {
    for rendered in overlays() {
        let set = rendered.workload(LOG_STREAMER);
        assert_eq!(
            set["spec"]["replicas"], 1,
            "{}: one log-streamer (two would ship every line twice)",
            rendered.name
        );
        let dir = rendered.config_value("BERTH_LOG_STREAMER_STATE_DIR");
        let mount = mount_at(rendered.container(LOG_STREAMER), dir)
            .unwrap_or_else(|| panic!("{}: nothing mounted at {dir}", rendered.name));
        let claims: Vec<&str> = array(set["spec"].get("volumeClaimTemplates"))
            .iter()
            .map(|claim| str_of(claim, "/metadata/name"))
            .collect();
        assert!(
            claims.contains(&str_of(mount, "/name")),
            "{}: {dir} is not on a volumeClaimTemplate (claims: {claims:?})",
            rendered.name
        );
    }
}

#[test]
fn the_backend_runs_two_replicas_in_production_and_is_migrated_before_it_serves() {
    let production = rendered("production");
    let backends = replicas(&production.workload(BACKEND)["spec"]["replicas"]);
    assert!(
        backends >= 2,
        "production: {backends} backend replicas, want 2 or more"
    );
    let hpa = production.find("HorizontalPodAutoscaler", BACKEND);
    assert!(
        replicas(&hpa["spec"]["minReplicas"]) >= 2,
        "production: the autoscaler may go below 2 backends"
    );
    for rendered in overlays() {
        let pod = rendered.pod_spec(BACKEND);
        let migrate = array(pod.get("initContainers"))
            .iter()
            .find(|c| strings(c.get("args")).contains(&"migrate"));
        assert!(
            migrate.is_some(),
            "{}: no init container runs `berth-backend migrate`",
            rendered.name
        );
        assert_eq!(
            strings(rendered.container(BACKEND).get("args")),
            ["serve"],
            "{}: the backend container serves",
            rendered.name
        );
    }
}

#[test]
fn berth_itself_never_carries_the_labels_of_the_apps_it_runs() {
    // The log-streamer follows, and the deploy-worker prunes, what carries
    // these labels: berth's own pods must not.
    for rendered in overlays() {
        for object in &rendered.objects {
            let mut all = labels(object["metadata"].get("labels"));
            all.extend(labels(object.pointer("/spec/template/metadata/labels")));
            assert_ne!(
                all.get("app.kubernetes.io/managed-by").map(String::as_str),
                Some("berth"),
                "{}: {} {} is labelled as an app berth manages",
                rendered.name,
                object["kind"],
                object["metadata"]["name"]
            );
            assert!(
                all.keys().all(|k| !k.starts_with("berth.dev/")),
                "{}: {} {} carries a berth.dev/ label",
                rendered.name,
                object["kind"],
                object["metadata"]["name"]
            );
        }
    }
}
