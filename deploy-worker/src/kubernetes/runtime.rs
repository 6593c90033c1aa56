//! The `kubernetes` driver's [`Runtime`]: one Deployment per app in the
//! tenant's namespace `berth-<tenant>`, found by name and by the label
//! `berth.dev/app`, so the worker keeps no state of its own.

use async_trait::async_trait;
use berth_common::kubernetes::{app_namespace, apply, apply_all, FIELD_MANAGER};
use berth_proto::{labels, AppRef, Release};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{Pod, Secret, Service};
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::Client;
use serde::de::DeserializeOwned;
use std::fmt::Debug;

use super::rollout::Rollout;
use super::{
    deployment_name, endpoint, plan, restore_document, status, tls_secret_name, KubernetesSettings,
    PullSecret, RolloutSettings,
};
use crate::error::DeployError;
use crate::registry::RegistryPull;
use crate::runtime::{DeploySpec, Endpoint, Instance, RouteWant, Runtime};
use std::collections::BTreeSet;
use uuid::Uuid;

pub struct KubeRuntime {
    pub(super) client: Client,
    pub(super) settings: KubernetesSettings,
    rollout: RolloutSettings,
    /// berth's registry and its pull grants: each tenant's pull Secret.
    pull: Option<RegistryPull>,
    /// How often pods are looked at for crashes.
    failure_poll: std::time::Duration,
}

/// What the app's Deployment was before a deploy: what a failed rollout
/// goes back to.
enum Before {
    /// The tenant's first deploy of the app: a failed one is deleted.
    Nothing,
    /// Another deployment's: applied again.
    Other(Box<Deployment>),
    /// Already this deployment's, from an attempt that did not finish (the
    /// worker stopped during the rollout): what came before is not known, so
    /// a failure leaves the Deployment as it is. Its rolling update never
    /// took an old pod down before a new one was ready, so the previous
    /// release keeps serving.
    ThisDeployment,
}

impl KubeRuntime {
    pub fn new(client: Client, settings: KubernetesSettings, rollout: RolloutSettings) -> Self {
        Self {
            client,
            settings,
            rollout,
            pull: None,
            failure_poll: std::time::Duration::from_secs(5),
        }
    }

    /// Pods pull with a pull grant of their tenant for `pull`'s registry.
    pub fn with_image_pull(mut self, pull: Option<RegistryPull>) -> Self {
        self.pull = pull;
        self
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The tenant's pull Secret with a freshly minted grant.
    fn pull_secret(&self, tenant: &str) -> Option<PullSecret> {
        self.pull.as_ref().map(|pull| PullSecret {
            registry: pull.host().to_owned(),
            credentials: pull.for_tenant(tenant),
        })
    }

    pub(super) fn api<K>(&self, app: &AppRef) -> Api<K>
    where
        K: kube::Resource<Scope = kube::core::NamespaceResourceScope>,
        K::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), &app_namespace(&app.tenant))
    }

    fn app_selector(app: &AppRef) -> ListParams {
        ListParams::default().labels(&format!("{}={}", labels::APP, app.id))
    }

    /// Puts the app back where it was before a failed rollout; a failure to
    /// do so is logged, the rollout's failure is what the user reads.
    async fn restore(&self, app: &AppRef, before: Before) {
        let name = deployment_name(app);
        let restored = match before {
            Before::Other(previous) => {
                let release = status::release_id_of(&previous);
                apply(&self.client, &restore_document(&previous))
                    .await
                    .map(|_| tracing::info!(app_id = %app.id, ?release, "restored the previous release"))
                    .map_err(DeployError::from)
            }
            Before::Nothing => self
                .api::<Deployment>(app)
                .delete(name, &DeleteParams::background())
                .await
                .map(|_| tracing::info!(app_id = %app.id, "deleted the failed first Deployment"))
                .map_err(DeployError::from),
            Before::ThisDeployment => {
                tracing::warn!(app_id = %app.id, "no earlier Deployment to restore; its old pods keep serving");
                Ok(())
            }
        };
        if let Err(error) = restored {
            tracing::error!(app_id = %app.id, %error, "could not restore the app after a failed rollout");
        }
    }

    /// Deletes, in one `deletecollection` by label, the env Secrets of the
    /// app's releases that neither `release` nor a ReplicaSet runs: a
    /// Secret lives as long as the Deployment can roll back to its release
    /// (`release_history`). Secrets are never read, only ReplicaSets. The
    /// controller may drop an old ReplicaSet only after this look: its
    /// Secret goes at the next deploy. Failures are logged; the deploy is
    /// live anyway. Known gap: a deploy of the same app on another worker
    /// whose Secret is applied but whose ReplicaSet the controller has not
    /// made yet loses its Secret (its pods then never start and it fails).
    async fn prune_env_secrets(&self, release: &Release) {
        let app = &release.app;
        let replica_sets = match self
            .api::<ReplicaSet>(app)
            .list(&Self::app_selector(app))
            .await
        {
            Ok(list) => list.items,
            Err(error) => {
                tracing::warn!(app_id = %app.id, %error, "could not list the app's ReplicaSets; no env Secret pruned");
                return;
            }
        };
        let mut keep = status::releases_in_history(&replica_sets);
        keep.insert(release.id.to_string());
        let Some(selector) = status::prune_selector(app.id, &keep) else {
            return;
        };
        let pruned = self
            .api::<Secret>(app)
            .delete_collection(
                &DeleteParams::default(),
                &ListParams::default().labels(&selector),
            )
            .await;
        match pruned {
            Ok(deleted) => {
                let names: Vec<String> = deleted
                    .left()
                    .map(|list| {
                        list.items
                            .into_iter()
                            .filter_map(|s| s.metadata.name)
                            .collect()
                    })
                    .unwrap_or_default();
                if !names.is_empty() {
                    tracing::info!(app_id = %app.id, secrets = ?names, "pruned the env Secrets of releases out of the rollout history");
                }
            }
            Err(error) => {
                tracing::warn!(app_id = %app.id, %error, "could not prune old env Secrets")
            }
        }
    }

    /// Deletes every object of kind `K` labelled with the app; returns how many.
    async fn delete_labelled<K>(&self, app: &AppRef) -> Result<usize, DeployError>
    where
        K: kube::Resource<Scope = kube::core::NamespaceResourceScope>
            + Clone
            + DeserializeOwned
            + Debug,
        K::DynamicType: Default,
    {
        let deleted = self
            .api::<K>(app)
            .delete_collection(&DeleteParams::background(), &Self::app_selector(app))
            .await?;
        Ok(deleted.left().map_or(0, |list| list.items.len()))
    }

    /// The app's Ingresses, deleted by label; returns how many, and the
    /// certificate Secrets of its custom domains (cert-manager writes them
    /// and does not delete them).
    async fn delete_ingresses(&self, app: &AppRef) -> Result<(usize, Vec<String>), DeployError> {
        let deleted = self
            .api::<Ingress>(app)
            .delete_collection(&DeleteParams::background(), &Self::app_selector(app))
            .await?;
        let items = deleted.left().map(|list| list.items).unwrap_or_default();
        let certificates = items
            .iter()
            .filter(|ingress| super::domains::is_domains_ingress(ingress))
            .flat_map(super::domains::certificate_secrets)
            .collect();
        Ok((items.len(), certificates))
    }

    /// Services: listed then deleted one by one, since API servers before
    /// 1.29 have no `deletecollection` for them.
    async fn delete_services(&self, app: &AppRef) -> Result<usize, DeployError> {
        let api = self.api::<Service>(app);
        let mut deleted = 0;
        for service in api.list_metadata(&Self::app_selector(app)).await?.items {
            let Some(name) = service.metadata.name else {
                continue;
            };
            deleted += usize::from(gone_or(api.delete(&name, &DeleteParams::default()).await)?);
        }
        Ok(deleted)
    }
}

/// True when the delete happened, false when the object was already gone.
pub(super) fn gone_or<T>(result: Result<T, kube::Error>) -> Result<bool, DeployError> {
    match result {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(status)) if status.is_not_found() => Ok(false),
        Err(error) => Err(error.into()),
    }
}

#[async_trait]
impl Runtime for KubeRuntime {
    /// The app's Deployment (at most one).
    async fn instances(&self, app: &AppRef) -> Result<Vec<Instance>, DeployError> {
        let list = self
            .api::<Deployment>(app)
            .list(&Self::app_selector(app))
            .await?;
        Ok(list
            .items
            .iter()
            .map(|deployment| Instance {
                name: deployment.metadata.name.clone().unwrap_or_default(),
                deployment_id: status::deployment_id_of(deployment),
                release_id: status::release_id_of(deployment),
                running: status::is_running(deployment),
                endpoint: Some(endpoint(app, &self.settings)),
            })
            .collect())
    }

    /// Applies [`plan`] and waits for the rollout; on failure applies the
    /// previous Deployment again (a first deploy's is deleted).
    async fn deploy(&self, spec: &DeploySpec) -> Result<Endpoint, DeployError> {
        let release = &spec.release;
        let app = &release.app;
        let deployment_id = spec.deployment_id;
        let name = deployment_name(app);
        let endpoint = endpoint(app, &self.settings);
        let deployments = self.api::<Deployment>(app);
        let mut current = deployments.get_opt(name).await?;
        // F2: a deleted app's Deployment under the name this app took over
        // (deletion frees the name) whose removal was missed. Its selector
        // names the other app and cannot change, so applying over it is
        // refused: what is left of that app goes first.
        let owner = current.as_ref().and_then(status::app_id_of);
        if let Some(deleted) = owner.filter(|owner| *owner != app.id) {
            tracing::warn!(app_id = %app.id, %deleted, name,
                "removing a deleted app's objects that hold this app's name");
            let leftover = AppRef {
                id: deleted,
                ..app.clone()
            };
            self.remove_app(&leftover).await?;
            current = None;
        }
        let before = match current {
            None => Before::Nothing,
            Some(current) => match status::deployment_id_of(&current) {
                Some(newer) if newer > deployment_id => {
                    return Err(DeployError::Superseded { newer })
                }
                Some(id) if id == deployment_id => {
                    if status::rollout_complete(&current) {
                        tracing::info!(%deployment_id, app_id = %app.id, "the deployment has already rolled out");
                        return Ok(endpoint);
                    }
                    Before::ThisDeployment
                }
                _ => Before::Other(Box::new(current)),
            },
        };
        let pull = self.pull_secret(&app.tenant);
        let documents = plan(
            release,
            deployment_id,
            &spec.env,
            &self.settings,
            pull.as_ref(),
        );
        if spec.cancelled.is_cancelled() {
            return Err(DeployError::Cancelled);
        }
        apply_all(&self.client, &documents).await?;
        tracing::info!(%deployment_id, app_id = %app.id, objects = documents.len(), "applied; waiting for the rollout");
        let rollout = Rollout {
            deployments,
            pods: self.api::<Pod>(app),
            name,
            app_id: app.id,
            deployment_id,
            port: release.config.port,
            settings: &self.rollout,
        };
        let waited = tokio::select! {
            biased;
            _ = spec.cancelled.cancelled() => Err(DeployError::Cancelled),
            waited = rollout.wait() => waited,
        };
        match waited {
            Ok(()) => {
                self.prune_env_secrets(release).await;
                Ok(endpoint)
            }
            Err(error @ DeployError::Superseded { .. }) => Err(error),
            Err(error) if error.is_transient() => Err(error),
            // A cancelled rollout is undone like a failed one.
            Err(error) => {
                tracing::warn!(%deployment_id, app_id = %app.id, %error, "the rollout failed; restoring");
                self.restore(app, before).await;
                Err(error)
            }
        }
    }

    /// Sets the Deployment's `/scale` (a merge patch: a partial apply would
    /// drop the fields berth applied with the release). The app's next
    /// deploy carries the scale in its release config.
    /// One Deployment per app: `live` changes nothing, a rollout in progress
    /// simply continues at the new scale.
    async fn scale(
        &self,
        app: &AppRef,
        replicas: u32,
        _live: Option<uuid::Uuid>,
    ) -> Result<usize, DeployError> {
        // New pods may pull: their grant is renewed first (a tenant with
        // no namespace yet has nothing to scale).
        if let Some(pull) = self.pull_secret(&app.tenant).filter(|_| replicas > 0) {
            let document = berth_common::kubernetes::document(&pull.secret(&app.tenant));
            match apply(&self.client, &document).await {
                Ok(_) => {}
                Err(error) if matches!(error.api_error(), Some(kube::Error::Api(status)) if status.is_not_found()) =>
                    {}
                Err(error) => return Err(error.into()),
            }
        }
        let params = PatchParams {
            field_manager: Some(FIELD_MANAGER.to_owned()),
            ..Default::default()
        };
        let patch = serde_json::json!({ "spec": { "replicas": replicas } });
        let result = self
            .api::<Deployment>(app)
            .patch_scale(deployment_name(app), &params, &Patch::Merge(&patch))
            .await;
        Ok(usize::from(gone_or(result)?))
    }

    /// Every app with a berth Deployment in the cluster: one installation
    /// per cluster (its namespaces are named after tenants only), so these
    /// are all this installation's.
    async fn apps(&self) -> Result<Option<Vec<AppRef>>, DeployError> {
        let selector = format!(
            "{}={},{}",
            labels::MANAGED_BY,
            labels::MANAGED_BY_VALUE,
            labels::APP
        );
        let all: Api<Deployment> = Api::all(self.client.clone());
        let list = all.list(&ListParams::default().labels(&selector)).await?;
        Ok(Some(crate::runtime::apps_of(
            list.items,
            |deployment, key| deployment.metadata.labels.as_ref()?.get(key).cloned(),
        )))
    }

    /// Deletes what carries the app's label (Ingress, Service, Deployment
    /// with its pods, env Secrets) and the certificate Secret cert-manager
    /// wrote for its Ingress; the tenant's namespace and fences stay.
    async fn remove_app(&self, app: &AppRef) -> Result<usize, DeployError> {
        let (mut removed, certificates) = self.delete_ingresses(app).await?;
        for secret in certificates {
            removed += usize::from(gone_or(
                self.api::<Secret>(app)
                    .delete(&secret, &DeleteParams::default())
                    .await,
            )?);
        }
        removed += self.delete_services(app).await?;
        removed += self.delete_labelled::<Deployment>(app).await?;
        removed += self.delete_labelled::<Secret>(app).await?;
        let tls = self
            .api::<Secret>(app)
            .delete(&tls_secret_name(&app.name), &DeleteParams::default())
            .await;
        removed += usize::from(gone_or(tls)?);
        tracing::info!(app_id = %app.id, removed, "removed the app's objects");
        Ok(removed)
    }

    /// Crashes and failing readiness of the apps' pods, looked at every
    /// few seconds ([`super::failures`]); the kubelet restarts crashed
    /// containers itself.
    async fn failures(
        &self,
    ) -> Result<Option<futures::stream::BoxStream<'static, crate::crash_loop::Failure>>, DeployError>
    {
        Ok(Some(self.pod_failures(self.failure_poll)))
    }

    /// The live deployment's pods: running when every container runs,
    /// healthy while Kubernetes counts the pod ready (its readiness probe).
    async fn instance_health(
        &self,
        app: &AppRef,
        live: Uuid,
    ) -> Result<Vec<berth_proto::InstanceHealth>, DeployError> {
        let selector = format!("{}={},{}={live}", labels::APP, app.id, labels::DEPLOYMENT);
        let pods = self
            .api::<Pod>(app)
            .list(&ListParams::default().labels(&selector))
            .await?;
        Ok(pods
            .items
            .iter()
            .map(super::failures::instance_health)
            .collect())
    }

    /// Custom domains: see [`super::domains`]. Domain changes move no
    /// traffic, so nothing is returned as rerouted.
    async fn converge_routes(
        &self,
        wants: &[RouteWant],
        keep: &(dyn Fn(Uuid) -> bool + Send + Sync),
    ) -> Result<BTreeSet<Uuid>, DeployError> {
        self.converge_domains(wants, keep).await?;
        Ok(BTreeSet::new())
    }
}
