//! The service's decisions against a scripted runtime and a recording
//! publisher (the real engine and broker are in `tests/`).

use super::*;
use berth_common::BrokerError;
use std::sync::Mutex as StdMutex;

use crate::fixture::ReleaseFixture;
use crate::runtime::{Endpoint, Instance};

#[derive(Default)]
struct FakeRuntime {
    instances: StdMutex<Vec<Instance>>,
    result: StdMutex<Option<Result<Endpoint, DeployError>>>,
    deploys: StdMutex<Vec<DeploySpec>>,
    scales: StdMutex<Vec<(Uuid, u32)>>,
    /// Apps the runtime says it runs (for the reconciler's orphans).
    apps: StdMutex<Vec<AppRef>>,
    retired: StdMutex<Vec<Option<Uuid>>>,
    removed: StdMutex<Vec<Uuid>>,
    /// A rollout that never becomes ready: `deploy` waits for its cancel.
    rolls_out_forever: std::sync::atomic::AtomicBool,
    /// Lists a workload per replica, as the docker driver does.
    per_replica: std::sync::atomic::AtomicBool,
    /// What the reconciler asked of the routes, and which of the ids
    /// (`probe`) it would keep; `rerouted` is what the router changed.
    route_wants: StdMutex<Vec<(Vec<crate::runtime::RouteWant>, Vec<bool>)>>,
    probe: StdMutex<Vec<Uuid>>,
    rerouted: StdMutex<Vec<Uuid>>,
}

#[async_trait]
impl Runtime for FakeRuntime {
    async fn instances(&self, _app: &AppRef) -> Result<Vec<Instance>, DeployError> {
        Ok(self.instances.lock().unwrap().clone())
    }
    async fn deploy(&self, spec: &DeploySpec) -> Result<Endpoint, DeployError> {
        self.deploys.lock().unwrap().push(spec.clone());
        if self
            .rolls_out_forever
            .load(std::sync::atomic::Ordering::SeqCst)
        {
            spec.cancelled.cancelled().await;
            return Err(DeployError::Cancelled);
        }
        self.result
            .lock()
            .unwrap()
            .take()
            .unwrap_or_else(|| Ok("http://127.0.0.1:1234".into()))
    }
    async fn scale(
        &self,
        app: &AppRef,
        replicas: u32,
        _live: Option<Uuid>,
    ) -> Result<usize, DeployError> {
        self.scales.lock().unwrap().push((app.id, replicas));
        Ok(1)
    }
    async fn remove_app(&self, app: &AppRef) -> Result<usize, DeployError> {
        self.removed.lock().unwrap().push(app.id);
        Ok(std::mem::take(&mut *self.instances.lock().unwrap()).len())
    }
    async fn apps(&self) -> Result<Option<Vec<AppRef>>, DeployError> {
        Ok(Some(self.apps.lock().unwrap().clone()))
    }
    fn runs_an_instance_per_replica(&self) -> bool {
        self.per_replica.load(std::sync::atomic::Ordering::SeqCst)
    }
    async fn converge_routes(
        &self,
        wants: &[crate::runtime::RouteWant],
        keep: &(dyn Fn(Uuid) -> bool + Send + Sync),
    ) -> Result<std::collections::BTreeSet<Uuid>, DeployError> {
        let kept = self
            .probe
            .lock()
            .unwrap()
            .iter()
            .map(|id| keep(*id))
            .collect();
        self.route_wants
            .lock()
            .unwrap()
            .push((wants.to_vec(), kept));
        Ok(self.rerouted.lock().unwrap().iter().copied().collect())
    }
    async fn retire_deployment(
        &self,
        _app: &AppRef,
        deployment_id: Option<Uuid>,
    ) -> Result<usize, DeployError> {
        self.retired.lock().unwrap().push(deployment_id);
        let mut instances = self.instances.lock().unwrap();
        let before = instances.len();
        instances.retain(|instance| instance.deployment_id != deployment_id);
        Ok(before - instances.len())
    }
}

/// What the service published: progress reports, and every other message
/// (runtime status, waiting) apart.
#[derive(Default)]
struct Recorder(
    StdMutex<Vec<(Uuid, DeploymentProgress)>>,
    StdMutex<Vec<Envelope>>,
);

#[async_trait]
impl MessagePublisher for Recorder {
    async fn publish(&self, _routing_key: &str, envelope: &Envelope) -> Result<(), BrokerError> {
        if envelope.kind != <DeploymentProgress as berth_proto::Payload>::TYPE {
            self.1.lock().unwrap().push(envelope.clone());
            return Ok(());
        }
        let progress: DeploymentProgress = envelope.payload().expect("a progress report");
        self.0
            .lock()
            .unwrap()
            .push((envelope.deployment_id.unwrap(), progress));
        Ok(())
    }
}

impl Recorder {
    fn states(&self) -> Vec<DeploymentState> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .map(|(_, p)| p.state)
            .collect()
    }
    fn last(&self) -> DeploymentProgress {
        self.0.lock().unwrap().last().unwrap().1.clone()
    }
}

fn key() -> SecretKey {
    SecretKey::from_base64("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=").unwrap()
}

fn release(env: &BTreeMap<String, String>) -> Release {
    ReleaseFixture::new()
        .commit("c0ffee")
        .env(&key(), env)
        .build()
}

fn service() -> DeployService<FakeRuntime, Recorder> {
    DeployService::new(FakeRuntime::default(), Recorder::default(), key())
}

fn running(deployment_id: Uuid) -> Instance {
    Instance {
        name: "c".into(),
        deployment_id: Some(deployment_id),
        release_id: None,
        running: true,
        endpoint: Some("http://127.0.0.1:1111".into()),
    }
}

#[tokio::test]
async fn a_deploy_reports_deploying_with_the_release_then_live() {
    let service = service();
    let env = BTreeMap::from([("GREETING".to_owned(), "hi".to_owned())]);
    let release = release(&env);
    let deployment = Uuid::now_v7();
    assert_eq!(
        service.deploy(deployment, 1, release.clone()).await,
        Outcome::Done
    );
    assert_eq!(
        service.publisher.states(),
        [DeploymentState::Deploying, DeploymentState::Live]
    );
    let first = service.publisher.0.lock().unwrap()[0].1.clone();
    assert_eq!(first.release.as_ref(), Some(&release));
    assert_eq!(first.seq, 4);
    let live = service.publisher.last();
    assert_eq!(live.endpoint.as_deref(), Some("http://127.0.0.1:1234"));
    assert_eq!(
        live.release.as_ref(),
        Some(&release),
        "`live` carries the release too, in case it is applied first"
    );
    assert_eq!(live.commit.as_deref(), Some("c0ffee"));
    let spec = service.runtime.deploys.lock().unwrap()[0].clone();
    assert_eq!(spec.env, env, "the env reaches the runtime opened");
}

#[tokio::test]
async fn a_redelivered_deploy_that_already_runs_skips_the_deploying_report() {
    let service = service();
    let deployment = Uuid::now_v7();
    service
        .runtime
        .instances
        .lock()
        .unwrap()
        .push(running(deployment));
    service
        .deploy(deployment, 1, release(&BTreeMap::new()))
        .await;
    assert_eq!(service.publisher.states(), [DeploymentState::Live]);
}

#[tokio::test]
async fn a_stale_deploy_is_cancelled_without_touching_the_runtime() {
    let service = service();
    let stale = Uuid::now_v7();
    let newer = Uuid::now_v7();
    service
        .runtime
        .instances
        .lock()
        .unwrap()
        .push(running(newer));
    assert_eq!(
        service.deploy(stale, 1, release(&BTreeMap::new())).await,
        Outcome::Done
    );
    assert_eq!(service.publisher.states(), [DeploymentState::Cancelled]);
    assert!(service
        .publisher
        .last()
        .reason
        .unwrap()
        .contains("a newer deployment"));
    assert!(service.runtime.deploys.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_failed_deploy_reports_the_reason_and_is_done() {
    let service = service();
    *service.runtime.result.lock().unwrap() = Some(Err(DeployError::Exited {
        code: 1,
        port: 8000,
        logs: vec!["boom".into()],
    }));
    let outcome = service
        .deploy(Uuid::now_v7(), 1, release(&BTreeMap::new()))
        .await;
    assert_eq!(outcome, Outcome::Done);
    let failed = service.publisher.last();
    assert_eq!(failed.state, DeploymentState::Failed);
    assert_eq!(
        failed.reason.as_deref(),
        Some("the app exited with code 1 before it listened on port 8000; last lines: boom")
    );
}

#[tokio::test]
async fn an_engine_outage_is_retried_without_a_final_report() {
    let service = service();
    *service.runtime.result.lock().unwrap() = Some(Err(DeployError::Engine("down".into())));
    let outcome = service
        .deploy(Uuid::now_v7(), 1, release(&BTreeMap::new()))
        .await;
    assert!(matches!(outcome, Outcome::Retry(_)));
    assert_eq!(service.publisher.states(), [DeploymentState::Deploying]);
}

#[tokio::test]
async fn env_sealed_with_another_key_fails_the_deploy() {
    let service = service();
    let mut release = release(&BTreeMap::new());
    let other = SecretKey::from_base64(&SecretKey::generate_base64()).unwrap();
    let binding = Binding::app_env(&release.app.tenant, release.app.id);
    release.config.env = other.seal_json(&binding, &BTreeMap::<String, String>::new());
    service.deploy(Uuid::now_v7(), 1, release).await;
    let failed = service.publisher.last();
    assert_eq!(failed.state, DeploymentState::Failed);
    assert!(failed.reason.unwrap().contains("BERTH_SECRET_KEY"));
    assert!(service.runtime.deploys.lock().unwrap().is_empty());
}

/// A forged or replayed `deploy.requested` for one app that carries the
/// env of another app (as sealed for that app) is refused: a failed
/// deployment with the reason, and nothing runs.
#[tokio::test]
async fn env_copied_from_another_app_fails_the_deploy_and_runs_nothing() {
    let service = service();
    let secret = BTreeMap::from([("SECRET".to_owned(), "victim's".to_owned())]);
    let victim = ReleaseFixture::new()
        .app("victim", "web")
        .env(&key(), &secret)
        .build();
    let mut forged = ReleaseFixture::new().app("mallory", "web").build();
    forged.config.env = victim.config.env.clone();
    let outcome = service.deploy(Uuid::now_v7(), 1, forged).await;
    assert_eq!(outcome, Outcome::Done, "settled, not retried or crashed");
    let failed = service.publisher.last();
    assert_eq!(failed.state, DeploymentState::Failed);
    let reason = failed.reason.unwrap();
    assert!(
        reason.starts_with("the release's env vars cannot be opened for this app")
            && reason.contains("sealed for another app"),
        "{reason}"
    );
    assert!(service.runtime.deploys.lock().unwrap().is_empty());

    // The same tenant's other app does not open it either.
    let mut sibling = ReleaseFixture::new().app("victim", "api").build();
    sibling.config.env = victim.config.env.clone();
    service.deploy(Uuid::now_v7(), 1, sibling).await;
    assert_eq!(service.publisher.last().state, DeploymentState::Failed);
    assert!(service.runtime.deploys.lock().unwrap().is_empty());
    // While the victim's own release deploys with it.
    service.deploy(Uuid::now_v7(), 1, victim).await;
    assert_eq!(service.publisher.last().state, DeploymentState::Live);
}

#[tokio::test]
async fn removal_removes_and_is_done() {
    let service = service();
    service
        .runtime
        .instances
        .lock()
        .unwrap()
        .push(running(Uuid::now_v7()));
    let app = release(&BTreeMap::new()).app;
    assert_eq!(service.remove_app(app).await, Outcome::Done);
    assert!(service.runtime.instances.lock().unwrap().is_empty());
    assert!(service.publisher.states().is_empty());
}

#[tokio::test]
async fn a_scale_request_reaches_the_runtime_and_reports_nothing() {
    let service = service();
    let app = release(&BTreeMap::new()).app;
    let envelope = Envelope::new(
        None,
        1,
        &berth_proto::AppScaleRequested {
            app: app.clone(),
            replicas: 0,
            live_deployment_id: None,
        },
    );
    let message = envelope.decode().unwrap();
    assert_eq!(
        service.handle(envelope, message, Default::default()).await,
        Outcome::Done
    );
    assert_eq!(*service.runtime().scales.lock().unwrap(), vec![(app.id, 0)]);
    assert!(
        service.publisher.0.lock().unwrap().is_empty(),
        "scale is not a deployment"
    );
}

#[path = "reconcile_tests.rs"]
mod reconcile;

#[tokio::test]
async fn a_cancelled_deployment_is_not_deployed() {
    let cancellations = berth_common::control::Cancellations::new();
    let service = service().with_cancellations(cancellations.clone());
    let release = release(&BTreeMap::new());
    let deployment = Uuid::now_v7();
    cancellations.hear(berth_proto::Cancellation {
        app: release.app.clone(),
        deployment_id: Some(deployment),
        reason: "cancelled by alice".into(),
        state: DeploymentState::Cancelled,
    });
    let envelope = Envelope::new(
        Some(deployment),
        1,
        &berth_proto::DeployRequested {
            release: release.clone(),
        },
    );
    let message = Message::DeployRequested(berth_proto::DeployRequested { release });
    assert_eq!(
        service.handle(envelope, message, Default::default()).await,
        Outcome::Done
    );
    assert!(service.runtime.deploys.lock().unwrap().is_empty());
    assert!(
        service.publisher.states().is_empty(),
        "the backend already ended it"
    );
}

#[tokio::test]
async fn a_deploy_past_its_deadline_is_refused_and_reported_timed_out() {
    let service = service();
    let release = release(&BTreeMap::new());
    let deployment = Uuid::now_v7();
    let request = berth_proto::DeployRequested { release };
    let mut envelope = Envelope::new(Some(deployment), 1, &request);
    envelope.deadline = Some(Utc::now() - chrono::Duration::seconds(1));
    assert_eq!(
        service
            .handle(
                envelope,
                Message::DeployRequested(request),
                Default::default()
            )
            .await,
        Outcome::Done
    );
    assert!(service.runtime.deploys.lock().unwrap().is_empty());
    assert_eq!(service.publisher.states(), [DeploymentState::TimedOut]);
}

#[tokio::test]
async fn a_cancel_heard_during_the_rollout_undoes_it_and_reports_who_cancelled() {
    let cancellations = berth_common::control::Cancellations::new();
    let service = Arc::new(service().with_cancellations(cancellations.clone()));
    service
        .runtime
        .rolls_out_forever
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let release = release(&BTreeMap::new());
    let deployment = Uuid::now_v7();
    let deploying = {
        let service = service.clone();
        let release = release.clone();
        tokio::spawn(async move { service.deploy(deployment, 1, release).await })
    };
    while service.runtime.deploys.lock().unwrap().is_empty() {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    cancellations.hear(berth_proto::Cancellation {
        app: release.app.clone(),
        deployment_id: Some(deployment),
        reason: "cancelled by alice".into(),
        state: DeploymentState::Cancelled,
    });
    let outcome = tokio::time::timeout(std::time::Duration::from_secs(5), deploying)
        .await
        .expect("the rollout stops when cancelled")
        .unwrap();
    assert_eq!(outcome, Outcome::Done);
    assert_eq!(
        service.publisher.states(),
        [DeploymentState::Deploying, DeploymentState::Cancelled]
    );
    assert_eq!(
        service.publisher.last().reason.as_deref(),
        Some("the deployment was cancelled during its rollout; the previous release keeps serving (cancelled by alice)")
    );
}

#[tokio::test]
async fn a_deploy_waiting_for_another_attempt_tells_the_backend_why_and_when() {
    let service = service();
    let deployment = Uuid::now_v7();
    let request = berth_proto::DeployRequested {
        release: release(&BTreeMap::new()),
    };
    let envelope = Envelope::new(Some(deployment), 1, &request);
    let before = Utc::now();
    service
        .retrying(
            &envelope,
            std::time::Duration::from_secs(40),
            "the container engine is unavailable: connection refused",
        )
        .await;
    let sent = service.publisher.1.lock().unwrap().clone();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].deployment_id, Some(deployment));
    let waiting: berth_proto::DeploymentWaiting = sent[0].payload().unwrap();
    assert_eq!(
        waiting.reason,
        "the container engine is unavailable: connection refused"
    );
    let wait = waiting.retry_at - before;
    assert!(wait >= chrono::Duration::seconds(40) && wait < chrono::Duration::seconds(41));
}
