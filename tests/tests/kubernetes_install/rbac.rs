//! RBAC: no wildcards, nothing that escalates, each worker bound to its own
//! role, each role exactly what its worker does; the backend has no API
//! access at all.

use crate::render::{overlays, Rendered};
use crate::{
    array, str_of, strings, BACKEND, BUILD_WORKER, DEPLOY_WORKER, LOG_STREAMER, NAMESPACE, WORKERS,
};
use berth_common::kubernetes::TENANT_READER_ROLE;
use serde_json::Value;
use std::collections::BTreeSet;

/// (apiGroup, resource, verb)
type Grants = BTreeSet<(String, String, String)>;

/// Adds every combination of the groups, resources and verbs.
fn grant_all(grants: &mut Grants, groups: &[&str], resources: &[&str], verbs: &[&str]) {
    for group in groups {
        for resource in resources {
            for verb in verbs {
                grants.insert((group.to_string(), resource.to_string(), verb.to_string()));
            }
        }
    }
}

/// The grants of rules written as (apiGroup, resources, verbs).
fn grant_set(items: &[(&str, &[&str], &[&str])]) -> Grants {
    let mut set = Grants::new();
    for (group, resources, verbs) in items {
        grant_all(&mut set, &[group], resources, verbs);
    }
    set
}

impl Rendered {
    /// Every (apiGroup, resource, verb) a ClusterRole grants.
    pub(crate) fn grants(&self, role: &str) -> Grants {
        let role = self.find("ClusterRole", role);
        let mut grants = Grants::new();
        for rule in array(role.get("rules")) {
            grant_all(
                &mut grants,
                &strings(rule.get("apiGroups")),
                &strings(rule.get("resources")),
                &strings(rule.get("verbs")),
            );
        }
        grants
    }
}

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

/// The deploy-worker's RBAC rules for the per-tenant RoleBinding: write
/// RoleBindings, and `bind` the tenant reader ClusterRole and nothing else.
fn tenant_reader_binding(rule: &Value) -> bool {
    let groups = strings(rule.get("apiGroups"));
    let resources = strings(rule.get("resources"));
    let verbs = strings(rule.get("verbs"));
    groups == ["rbac.authorization.k8s.io"]
        && ((resources == ["rolebindings"]
            && verbs
                .iter()
                .all(|v| ["get", "create", "patch", "delete"].contains(v)))
            || (resources == ["clusterroles"]
                && verbs == ["bind"]
                && strings(rule.get("resourceNames")) == [TENANT_READER_ROLE]))
}

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
                // The one exception: the deploy-worker binds the tenant
                // reader role, by name, in tenants' namespaces.
                if name == DEPLOY_WORKER && tenant_reader_binding(rule) {
                    continue;
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
        for worker in WORKERS {
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

/// L7: the log-streamer's own role reads no pod logs anywhere (they come
/// from the per-tenant RoleBinding); it still watches pods and events
/// cluster-wide to find tenants' pods as they come.
#[test]
fn the_log_streamer_only_watches_pods_and_events() {
    let expected = grant_set(&[("", &["pods", "events"], &["get", "list", "watch"])]);
    for rendered in overlays() {
        assert_eq!(
            rendered.grants(LOG_STREAMER),
            expected,
            "{}: the log-streamer's role must be exactly read on pods and events",
            rendered.name
        );
    }
}

/// L7: pods, their logs and events are read in tenants' app namespaces
/// only: the role that grants them has no ClusterRoleBinding, and the
/// RoleBinding each tenant namespace carries names it and berth's two
/// readers in berth-system.
#[test]
fn pod_logs_are_read_through_per_tenant_role_bindings_only() {
    use berth_common::kubernetes::{tenant_namespace, TenantNamespaceKind, TenantSettings};
    let expected = grant_set(&[
        ("", &["pods", "events"], &["get", "list", "watch"]),
        ("", &["pods/log"], &["get"]),
    ]);
    for rendered in overlays() {
        assert_eq!(
            rendered.grants(TENANT_READER_ROLE),
            expected,
            "{}: {TENANT_READER_ROLE} must be exactly read on pods, pods/log and events",
            rendered.name
        );
        assert!(
            !rendered
                .all("ClusterRoleBinding")
                .iter()
                .any(|b| str_of(b, "/roleRef/name") == TENANT_READER_ROLE),
            "{}: {TENANT_READER_ROLE} is bound cluster-wide",
            rendered.name
        );
        for worker in [DEPLOY_WORKER, LOG_STREAMER] {
            let grants = rendered.grants(worker);
            for resource in ["pods/log", "secrets"] {
                assert!(
                    !grants.iter().any(|(g, r, v)| g.is_empty()
                        && r == resource
                        && ["get", "list", "watch"].contains(&v.as_str())),
                    "{}: {worker} reads {resource} cluster-wide",
                    rendered.name
                );
            }
        }
        assert!(
            !rendered
                .grants(DEPLOY_WORKER)
                .iter()
                .any(|(g, r, _)| g.is_empty() && (r == "pods" || r == "events")),
            "{}: the deploy-worker reads pods or events cluster-wide",
            rendered.name
        );
    }
    let binding = tenant_namespace(
        "acme",
        TenantNamespaceKind::Apps,
        &TenantSettings::default(),
    )
    .readers
    .expect("an app namespace lets berth's readers in");
    assert_eq!(binding.role_ref.name, TENANT_READER_ROLE);
    let subjects: Vec<(String, Option<String>)> = binding
        .subjects
        .unwrap()
        .into_iter()
        .map(|s| (s.name, s.namespace))
        .collect();
    assert_eq!(
        subjects,
        [
            (DEPLOY_WORKER.to_owned(), Some(NAMESPACE.to_owned())),
            (LOG_STREAMER.to_owned(), Some(NAMESPACE.to_owned()))
        ]
    );
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
    // ...and what it only reads to explain a failed rollout (pods, their
    // logs and events through the per-tenant RoleBinding instead).
    let read_only: BTreeSet<(&str, &str)> = [("apps", "replicasets")].into();
    // The per-tenant RoleBinding it applies, and binding its one role.
    let rbac: BTreeSet<(&str, &str)> = [
        ("rbac.authorization.k8s.io", "rolebindings"),
        ("rbac.authorization.k8s.io", "clusterroles"),
    ]
    .into();
    for rendered in overlays() {
        let grants = rendered.grants(DEPLOY_WORKER);
        for (group, resource, verb) in &grants {
            let key = (group.as_str(), resource.as_str());
            assert!(
                managed.contains(&key) || read_only.contains(&key) || rbac.contains(&key),
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
            granted("apps", "deployments", "watch")
                && granted("rbac.authorization.k8s.io", "rolebindings", "patch")
                && granted("rbac.authorization.k8s.io", "clusterroles", "bind"),
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
        // Each build's own registry Secret, deleted with its Pod.
        ("", &["secrets"], &["create", "patch", "delete"]),
        (
            "",
            &["pods"],
            &["get", "list", "watch", "create", "patch", "delete"],
        ),
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
