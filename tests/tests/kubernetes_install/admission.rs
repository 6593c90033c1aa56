//! The ValidatingAdmissionPolicy that fences the writing workers into
//! berth's namespaces: its shape and binding, that it sees every write RBAC
//! allows them, and what it admits and denies when evaluated.

use crate::cel_eval::{decide, namespace, Request, Verdict};
use crate::render::{overlays, rendered};
use crate::{
    array, str_of, strings, BUILD_WORKER_USER, DEPLOY_WORKER_USER, NAMESPACE, WRITING_WORKERS,
};
use serde_json::Value;

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
        for worker in WRITING_WORKERS {
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
        for worker in WRITING_WORKERS {
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

#[test]
fn the_admission_policy_admits_what_the_workers_do_and_denies_the_rest() {
    let policy = rendered("production").find(
        "ValidatingAdmissionPolicy",
        "berth-workers-stay-in-berth-namespaces",
    );
    let deploy = DEPLOY_WORKER_USER;
    let build = BUILD_WORKER_USER;
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
        ("the build-worker writes a build's registry Secret (a push grant)",
         request(build, "CREATE - secrets berth-acme-build build-1-registry", secret("kubernetes.io/dockerconfigjson"), null.clone())),
        ("the build-worker deletes it with the build's pod",
         request(build, "DELETE - secrets berth-acme-build build-1-registry", null.clone(), secret("kubernetes.io/dockerconfigjson"))),
        ("the deploy-worker writes a tenant's image pull Secret (a pull grant)",
         request(deploy, "CREATE - secrets berth-acme berth-registry-pull", secret("kubernetes.io/dockerconfigjson"), null.clone())),
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
        ("the build-worker deletes a Secret of an app namespace",
         request(build, "DELETE - secrets berth-acme berth-registry-pull", null.clone(), secret("kubernetes.io/dockerconfigjson"))),
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
