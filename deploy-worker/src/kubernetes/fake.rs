//! The scenario tests' script: a fake API server (`kube_fake`) that asserts
//! each request the driver makes, and builders for what it answers.

use berth_common::kube_fake::{ApiServer, Call};
use berth_proto::Release;
use http::Method;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use uuid::Uuid;

use super::{env_secret_name, plan, KubeRuntime, KubernetesSettings, RolloutSettings};
use crate::fixture::ReleaseFixture;
use crate::runtime::DeploySpec;

pub const DEPLOYMENTS: &str = "/apis/apps/v1/namespaces/berth-acme/deployments";
pub const DEPLOYMENT: &str = "/apis/apps/v1/namespaces/berth-acme/deployments/web";
pub const PODS: &str = "/api/v1/namespaces/berth-acme/pods";
pub const SECRETS: &str = "/api/v1/namespaces/berth-acme/secrets";
pub const REPLICA_SETS: &str = "/apis/apps/v1/namespaces/berth-acme/replicasets";
pub const ENDPOINT: &str = "https://web.acme.apps.example";

pub fn settings() -> KubernetesSettings {
    KubernetesSettings {
        base_domain: "apps.example".into(),
        ..Default::default()
    }
}

/// Polls every millisecond: the scripted answers, not the clock, decide
/// how many polls a rollout takes.
pub fn rollout() -> RolloutSettings {
    RolloutSettings {
        rollout_poll_millis: 1,
        ..Default::default()
    }
}

pub fn runtime(client: kube::Client) -> KubeRuntime {
    KubeRuntime::new(client, settings(), rollout())
}

/// Starts `deploy` on a runtime over a fake API server the test scripts.
pub fn start_deploy(
    deploy: &Deploy,
) -> (
    tokio::task::JoinHandle<Result<String, crate::error::DeployError>>,
    ApiServer,
) {
    let (client, server) = berth_common::kube_fake::pair();
    let runtime = runtime(client);
    let spec = deploy.spec.clone();
    (
        tokio::spawn(async move { crate::runtime::Runtime::deploy(&runtime, &spec).await }),
        server,
    )
}

/// One deploy of a release of `acme/web`.
#[derive(Clone)]
pub struct Deploy {
    pub spec: DeploySpec,
}

impl Deploy {
    pub fn new(release: Release) -> Self {
        Self {
            spec: DeploySpec {
                deployment_id: Uuid::now_v7(),
                release,
                env: BTreeMap::from([("GREETING".to_owned(), "hi".to_owned())]),
                cancelled: Default::default(),
            },
        }
    }

    pub fn first() -> Self {
        Self::new(ReleaseFixture::new().build())
    }

    /// The next deploy of the same app: a new release and deployment id.
    pub fn next(&self, image: &str) -> Self {
        let mut release = self.spec.release.clone();
        release.id = Uuid::now_v7();
        release.image = image.to_owned();
        Self::new(release)
    }

    /// The same release deployed again as a new deployment (a rollback).
    pub fn again(&self) -> Self {
        Self::new(self.spec.release.clone())
    }

    pub fn id(&self) -> Uuid {
        self.spec.deployment_id
    }

    pub fn plan(&self) -> Vec<Value> {
        plan(
            &self.spec.release,
            self.id(),
            &self.spec.env,
            &settings(),
            None,
        )
    }

    /// This deploy's Deployment as the API server answers a GET.
    pub fn deployment(&self) -> DeploymentAnswer {
        let document = self
            .plan()
            .into_iter()
            .find(|d| d["kind"] == "Deployment")
            .expect("the plan has a Deployment");
        DeploymentAnswer(document).generation(1)
    }

    /// The ReplicaSet the controller makes of this deploy's Deployment: its
    /// pod template, labelled like it plus the template's hash.
    pub fn replica_set(&self) -> Value {
        let deployment = self.deployment().0;
        let template = deployment["spec"]["template"].clone();
        let hash = &self.id().simple().to_string()[22..];
        let mut labels = template["metadata"]["labels"].clone();
        labels["pod-template-hash"] = json!(hash);
        let mut selector = deployment["spec"]["selector"].clone();
        selector["matchLabels"]["pod-template-hash"] = json!(hash);
        let mut template = template;
        template["metadata"]["labels"]["pod-template-hash"] = json!(hash);
        json!({
            "apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": format!("web-{hash}"), "namespace": "berth-acme", "labels": labels},
            "spec": {"replicas": 0, "selector": selector, "template": template},
        })
    }

    pub fn pod(&self, name: &str) -> PodAnswer {
        PodAnswer(json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "berth-acme", "labels": {
                "berth.dev/app": self.spec.release.app.id.to_string(),
                "berth.dev/deployment": self.id().to_string(),
            }},
            "spec": {"containers": [{"name": "app", "image": self.spec.release.image}]},
            "status": {"phase": "Pending"},
        }))
    }

    pub fn env_secret(&self) -> String {
        env_secret_name(&self.spec.release)
    }
}

/// A Deployment answer: the rendered document plus what the server adds.
pub struct DeploymentAnswer(pub Value);

impl DeploymentAnswer {
    pub fn generation(mut self, generation: i64) -> Self {
        let metadata = &mut self.0["metadata"];
        metadata["generation"] = json!(generation);
        metadata["resourceVersion"] = json!("4711");
        metadata["uid"] = json!("0b7c3f5e-0000-4000-8000-000000000001");
        metadata["creationTimestamp"] = json!("2026-11-20T10:00:00Z");
        metadata["annotations"] = json!({"deployment.kubernetes.io/revision": "3"});
        metadata["managedFields"] = json!([{"manager": "berth", "operation": "Apply"}]);
        self
    }

    fn wanted(&self) -> i64 {
        self.0["spec"]["replicas"].as_i64().unwrap_or(1)
    }

    fn generation_now(&self) -> i64 {
        self.0["metadata"]["generation"].as_i64().unwrap_or(1)
    }

    /// Every replica runs this spec and is available; no old pod is left.
    pub fn rolled_out(self) -> Self {
        let (n, generation) = (self.wanted(), self.generation_now());
        self.status(generation, n, n, n)
    }

    /// Seen by the controller: `updated` new pods, `available` available,
    /// `total` in all (old ones included).
    pub fn rolling(self, updated: i64, available: i64, total: i64) -> Self {
        let generation = self.generation_now();
        self.status(generation, updated, available, total)
    }

    /// The controller has not seen this generation yet.
    pub fn unobserved(self) -> Self {
        let generation = self.generation_now();
        self.status(generation - 1, 0, 1, 1)
    }

    pub fn replica_failure(mut self, message: &str) -> Self {
        self = self.rolling(0, 1, 1);
        self.0["status"]["conditions"] = json!([{
            "type": "ReplicaFailure", "status": "True", "reason": "FailedCreate", "message": message,
        }]);
        self
    }

    fn status(mut self, observed: i64, updated: i64, available: i64, total: i64) -> Self {
        self.0["status"] = json!({
            "observedGeneration": observed, "replicas": total, "updatedReplicas": updated,
            "availableReplicas": available, "readyReplicas": available,
        });
        self
    }
}

/// A pod answer; starts `Pending` with no container status.
pub struct PodAnswer(pub Value);

impl PodAnswer {
    fn container(mut self, status: Value) -> Self {
        let mut full = json!({
            "name": "app", "image": self.0["spec"]["containers"][0]["image"],
            "imageID": "", "ready": false, "restartCount": 0,
        });
        full.as_object_mut()
            .unwrap()
            .extend(status.as_object().unwrap().clone());
        self.0["status"]["containerStatuses"] = json!([full]);
        self
    }

    pub fn waiting(self, reason: &str, message: &str) -> Self {
        self.container(json!({"state": {"waiting": {"reason": reason, "message": message}}}))
    }

    pub fn crash_looping(self, exit_code: i32, reason: &str) -> Self {
        self.container(json!({
            "restartCount": 3,
            "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 40s restarting failed container"}},
            "lastState": {"terminated": {"exitCode": exit_code, "reason": reason}},
        }))
    }

    pub fn running(mut self, ready: bool) -> Self {
        self.0["status"]["phase"] = json!("Running");
        self.container(
            json!({"ready": ready, "state": {"running": {"startedAt": "2026-11-20T10:00:01Z"}}}),
        )
    }

    pub fn unschedulable(mut self, message: &str) -> Self {
        self.0["status"]["conditions"] = json!([{
            "type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": message,
        }]);
        self
    }
}

/// The requests a deploy's apply makes, in order: the tenant's apps
/// namespace and its fences, then the release's objects; each a
/// server-side apply by `berth` whose body is exactly the plan's document.
pub async fn expect_apply(server: &mut ApiServer, deploy: &Deploy) -> Vec<Value> {
    let paths = [
        "/api/v1/namespaces/berth-acme".to_owned(),
        "/api/v1/namespaces/berth-acme/resourcequotas/berth-quota".to_owned(),
        "/api/v1/namespaces/berth-acme/limitranges/berth-limits".to_owned(),
        "/apis/networking.k8s.io/v1/namespaces/berth-acme/networkpolicies/berth-default-deny"
            .to_owned(),
        "/api/v1/namespaces/berth-acme/serviceaccounts/berth-workload".to_owned(),
        "/apis/rbac.authorization.k8s.io/v1/namespaces/berth-acme/rolebindings/berth-readers"
            .to_owned(),
        format!("{SECRETS}/{}", deploy.env_secret()),
        DEPLOYMENT.to_owned(),
        "/api/v1/namespaces/berth-acme/services/web".to_owned(),
        "/apis/networking.k8s.io/v1/namespaces/berth-acme/ingresses/web".to_owned(),
    ];
    let documents = deploy.plan();
    assert_eq!(documents.len(), paths.len());
    let mut bodies = Vec::new();
    for (path, document) in paths.iter().zip(&documents) {
        let call = server
            .expect(Method::PATCH, path)
            .await
            .assert_server_side_apply();
        assert_eq!(
            &call.json(),
            document,
            "the body of PATCH {path} is the plan's"
        );
        bodies.push(call.json());
        call.respond_applied();
    }
    bodies
}

pub async fn expect_get_deployment(server: &mut ApiServer, answer: Option<DeploymentAnswer>) {
    let call = server.expect(Method::GET, DEPLOYMENT).await;
    match answer {
        Some(answer) => call.respond_json(answer.0),
        None => call.respond_not_found(),
    }
}

/// One look at the new pods: listed by the app and deployment labels.
pub async fn expect_pods(server: &mut ApiServer, deploy: &Deploy, pods: Vec<PodAnswer>) {
    let selector = format!(
        "berth.dev/app={},berth.dev/deployment={}",
        deploy.spec.release.app.id,
        deploy.id()
    );
    let items: Vec<Value> = pods.into_iter().map(|pod| pod.0).collect();
    server
        .expect(Method::GET, PODS)
        .await
        .assert_query("labelSelector", &selector)
        .respond_json(
            json!({"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": items}),
        );
}

/// The app container's last lines, `previous` when it was restarted.
pub async fn expect_log(server: &mut ApiServer, pod: &str, previous: bool, lines: &[&str]) {
    let call = server
        .expect(Method::GET, &format!("{PODS}/{pod}/log"))
        .await
        .assert_query("container", "app")
        .assert_query("tailLines", "20");
    assert_eq!(
        call.query("previous").as_deref(),
        previous.then_some("true"),
        "previous"
    );
    let body = call.respond_stream();
    for line in lines {
        body.line(line);
    }
}

/// After a deploy went live: the app's ReplicaSets are listed, answered
/// with those of `history` (one each, as the controller made them from
/// their Deployment), then the env Secrets of every release but `keep`'s
/// are deleted by label in one `deletecollection`, answered with `pruned`.
/// Secrets are never read.
pub async fn expect_prune(
    server: &mut ApiServer,
    deploy: &Deploy,
    history: &[&Deploy],
    keep: &[&Deploy],
    pruned: &[&str],
) {
    let app = deploy.spec.release.app.id;
    let items: Vec<Value> = history.iter().map(|d| d.replica_set()).collect();
    server
        .expect(Method::GET, REPLICA_SETS)
        .await
        .assert_query("labelSelector", &format!("berth.dev/app={app}"))
        .respond_json(json!({
            "apiVersion": "apps/v1", "kind": "ReplicaSetList", "metadata": {}, "items": items,
        }));
    // A set: sorted, each once.
    let keep: BTreeSet<String> = keep.iter().map(|d| d.spec.release.id.to_string()).collect();
    let keep: Vec<String> = keep.into_iter().collect();
    let selector = format!(
        "berth.dev/app={app},berth.dev/release,berth.dev/release notin ({})",
        keep.join(",")
    );
    let items: Vec<Value> = pruned
        .iter()
        .map(|name| json!({"metadata": {"name": name, "namespace": "berth-acme"}}))
        .collect();
    server
        .expect(Method::DELETE, SECRETS)
        .await
        .assert_query("labelSelector", &selector)
        .respond_json(json!({
            "apiVersion": "v1", "kind": "SecretList", "metadata": {}, "items": items,
        }));
}

pub fn success_status() -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"})
}

/// A `DELETE` of one object, answered.
pub async fn expect_delete(server: &mut ApiServer, path: &str) -> Call {
    server.expect(Method::DELETE, path).await
}
