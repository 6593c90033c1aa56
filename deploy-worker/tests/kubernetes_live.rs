//! The kubernetes driver against a live cluster (kind, k3d, any): deploy,
//! a second release, a rollback to the first, a release whose image cannot
//! be pulled (the rollback's Deployment is restored), then delete — each
//! checked through the API. Runs only when `KUBECONFIG` is set; see the
//! README for a kind cluster to run it on.
//!
//! `BERTH_LIVE_IMAGE` (default `nginxinc/nginx-unprivileged:stable-alpine`)
//! must run as a non-root user (Pod Security `restricted`) and listen on
//! `BERTH_LIVE_PORT` (default 8080).

use berth_common::kubernetes::app_namespace;
use berth_deploy_worker::kubernetes::{KubeRuntime, KubernetesSettings, RolloutSettings};
use berth_deploy_worker::{DeployError, DeploySpec, Runtime};
use berth_proto::{labels, AppRef, Binding, Release, ReleaseConfig, Resources, SecretKey};
use futures::FutureExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Secret, Service};
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::{Api, DeleteParams, ListParams};
use std::collections::BTreeMap;
use std::panic::AssertUnwindSafe;
use uuid::Uuid;

fn setting(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

struct Live {
    client: kube::Client,
    runtime: KubeRuntime,
    app: AppRef,
}

impl Live {
    fn release(&self, image: &str, greeting: &str) -> (Release, BTreeMap<String, String>) {
        let key = SecretKey::from_base64(&SecretKey::generate_base64()).unwrap();
        let env = BTreeMap::from([("GREETING".to_owned(), greeting.to_owned())]);
        let release = Release {
            id: Uuid::now_v7(),
            app: self.app.clone(),
            commit: "live".into(),
            image: image.to_owned(),
            config: ReleaseConfig {
                port: setting("BERTH_LIVE_PORT", "8080").parse().unwrap(),
                env: key.seal_json(&Binding::app_env(&self.app.tenant, self.app.id), &env),
                env_version: 1,
                replicas: 1,
                resources: Resources::default(),
                health_check_path: None,
            },
        };
        (release, env)
    }

    async fn deploy(
        &self,
        (release, env): &(Release, BTreeMap<String, String>),
    ) -> (Uuid, Result<String, DeployError>) {
        let spec = DeploySpec {
            deployment_id: Uuid::now_v7(),
            release: release.clone(),
            env: env.clone(),
            cancelled: Default::default(),
        };
        (spec.deployment_id, self.runtime.deploy(&spec).await)
    }

    fn namespaced<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = kube::core::NamespaceResourceScope>,
        K::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), &app_namespace(&self.app.tenant))
    }

    /// The app's Deployment: its image and `berth.dev/release`, `berth.dev/deployment` labels.
    async fn running(&self) -> (String, String, String) {
        let deployment = self
            .namespaced::<Deployment>()
            .get(&self.app.name)
            .await
            .unwrap();
        let labels = deployment.metadata.labels.unwrap();
        let pod = deployment.spec.template.spec.unwrap();
        (
            pod.containers[0].image.clone().unwrap(),
            labels[labels::RELEASE].clone(),
            labels[labels::DEPLOYMENT].clone(),
        )
    }

    async fn labelled<K>(&self) -> usize
    where
        K: kube::Resource<Scope = kube::core::NamespaceResourceScope>
            + Clone
            + serde::de::DeserializeOwned
            + std::fmt::Debug,
        K::DynamicType: Default,
    {
        let selector = format!("{}={}", labels::APP, self.app.id);
        let params = ListParams::default().labels(&selector);
        let list = self.namespaced::<K>().list(&params).await.unwrap();
        list.items.len()
    }

    async fn scenario(&self) {
        let image = setting(
            "BERTH_LIVE_IMAGE",
            "nginxinc/nginx-unprivileged:stable-alpine",
        );
        let first = self.release(&image, "one");
        let (_, endpoint) = self.deploy(&first).await;
        let endpoint = endpoint.expect("the first release goes live");
        assert!(
            endpoint.starts_with(&format!("https://{}.{}.", self.app.name, self.app.tenant)),
            "{endpoint}"
        );
        assert_eq!(self.running().await.0, image);

        let second = self.release(&image, "two");
        let (_, live) = self.deploy(&second).await;
        live.expect("the second release goes live");
        assert_eq!(self.running().await.1, second.0.id.to_string());

        let (rollback, live) = self.deploy(&first).await;
        live.expect("the rollback to the first release goes live");
        let (running_image, release, deployment) = self.running().await;
        assert_eq!(
            (running_image, release),
            (image.clone(), first.0.id.to_string())
        );
        assert_eq!(deployment, rollback.to_string());

        let missing = self.release("registry.invalid/berth/missing:live", "three");
        let (_, failed) = self.deploy(&missing).await;
        let error = failed.expect_err("an image that cannot be pulled fails");
        assert!(!error.is_transient(), "{error}");
        assert!(
            error
                .to_string()
                .contains("registry.invalid/berth/missing:live"),
            "{error}"
        );
        let (_, release, deployment) = self.running().await;
        assert_eq!(
            (release, deployment),
            (first.0.id.to_string(), rollback.to_string()),
            "restored"
        );

        let removed = self.runtime.remove_app(&self.app).await.unwrap();
        assert!(removed >= 4, "removed {removed}");
        assert_eq!(self.labelled::<Deployment>().await, 0);
        assert_eq!(self.labelled::<Service>().await, 0);
        assert_eq!(self.labelled::<Ingress>().await, 0);
        assert_eq!(self.labelled::<Secret>().await, 0);
        assert!(self.runtime.instances(&self.app).await.unwrap().is_empty());
    }
}

/// Ignored, so the run's summary counts it as skipped, unless asked for:
/// `make test` runs it when `KUBECONFIG` is set (`make test-live`).
#[tokio::test]
#[ignore = "needs a live cluster: set KUBECONFIG (make test-live)"]
async fn deploy_redeploy_rollback_restore_and_delete_on_a_live_cluster() {
    assert!(
        std::env::var_os("KUBECONFIG").is_some(),
        "set KUBECONFIG to the cluster to run against"
    );
    let client = berth_common::kubernetes::connect()
        .await
        .expect("KUBECONFIG names a reachable cluster");
    let settings = KubernetesSettings {
        base_domain: setting("BERTH_LIVE_BASE_DOMAIN", "127.0.0.1.nip.io"),
        cluster_issuer: setting("BERTH_LIVE_CLUSTER_ISSUER", "selfsigned"),
        ..Default::default()
    };
    let rollout = RolloutSettings {
        rollout_timeout_secs: 180,
        ..Default::default()
    };
    let suffix = Uuid::now_v7().simple().to_string();
    let live = Live {
        runtime: KubeRuntime::new(client.clone(), settings, rollout),
        client,
        app: AppRef {
            id: Uuid::now_v7(),
            name: "hello".into(),
            tenant: format!("live-{}", &suffix[20..]),
        },
    };
    let outcome = AssertUnwindSafe(live.scenario()).catch_unwind().await;
    let namespaces: Api<Namespace> = Api::all(live.client.clone());
    let namespace = app_namespace(&live.app.tenant);
    if let Err(error) = namespaces
        .delete(&namespace, &DeleteParams::background())
        .await
    {
        eprintln!("could not delete the test namespace {namespace}: {error}");
    }
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}
