//! Work the backend no longer wants: refused when it arrives past its
//! deadline, stopped where it is when a cancellation is heard.

use super::*;
use berth_common::control::Cancellations;
use berth_common::Handler;
use berth_proto::{Cancellation, DeploymentState};
use std::sync::atomic::Ordering;
use tokio::sync::Notify;

/// A build that runs until it is dropped, and says when it started and
/// whether it was dropped.
#[derive(Default)]
struct Endless {
    started: Notify,
    dropped: AtomicBool,
}

struct SetOnDrop<'a>(&'a AtomicBool);

impl Drop for SetOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

#[async_trait]
impl ImageBuilder for Arc<Endless> {
    async fn build(&self, _job: &BuildJob, _log: &BuildLog) -> Result<Built, BuildError> {
        let _guard = SetOnDrop(&self.dropped);
        self.started.notify_one();
        std::future::pending::<()>().await;
        unreachable!()
    }

    async fn push(&self, _job: &BuildJob, _log: &BuildLog) -> Result<(), BuildError> {
        Ok(())
    }
}

fn first_delivery() -> berth_common::DeliveryInfo {
    berth_common::DeliveryInfo::default()
}

struct Fixture {
    service: Arc<BuildService<Arc<Endless>, Fetcher, FakeRegistry, Logs, Published>>,
    builder: Arc<Endless>,
    logs: Arc<Logs>,
    published: Published,
    cancellations: Cancellations,
    request: BuildRequested,
    _work: tempfile::TempDir,
}

fn fixture() -> Fixture {
    let work = tempfile::tempdir().unwrap();
    let key = SecretKey::from_base64(&SecretKey::generate_base64()).unwrap();
    let builder = Arc::new(Endless::default());
    let logs = Arc::new(Logs::default());
    let published = Published::default();
    let cancellations = Cancellations::new();
    let service = BuildService::new(
        settings(work.path()),
        key.clone(),
        builder.clone(),
        Fetcher,
        FakeRegistry::default(),
        logs.clone(),
        published.clone(),
    )
    .with_cancellations(cancellations.clone());
    Fixture {
        service: Arc::new(service),
        builder,
        logs,
        published,
        cancellations,
        request: build_request(&key, Vec::new()),
        _work: work,
    }
}

impl Fixture {
    fn kinds(&self) -> Vec<String> {
        let published = self.published.0.lock().unwrap();
        published.iter().map(|e| e.kind.clone()).collect()
    }
}

#[tokio::test]
async fn a_build_cancelled_while_it_runs_stops_and_hands_nothing_on() {
    let f = fixture();
    let deployment = Uuid::now_v7();
    let envelope = Envelope::new(Some(deployment), 1, &f.request);
    let message = Message::BuildRequested(f.request.clone());
    let service = f.service.clone();
    let running =
        tokio::spawn(async move { service.handle(envelope, message, first_delivery()).await });
    tokio::time::timeout(Duration::from_secs(5), f.builder.started.notified())
        .await
        .expect("the build starts");

    f.cancellations.hear(Cancellation {
        app: f.request.app.clone(),
        deployment_id: Some(deployment),
        reason: "cancelled by alice".into(),
        state: DeploymentState::Cancelled,
    });
    let outcome = tokio::time::timeout(Duration::from_secs(2), running)
        .await
        .expect("the build stops at once")
        .unwrap();
    assert!(matches!(outcome, Outcome::Done), "{outcome:?}");
    assert!(
        f.builder.dropped.load(Ordering::SeqCst),
        "the builder was stopped"
    );
    assert!(
        !f.kinds().iter().any(|kind| kind == "deploy.requested"),
        "{:?}",
        f.kinds()
    );
    let lines = f.logs.0.lock().unwrap().clone();
    assert!(
        lines
            .iter()
            .any(|l| l == "Build stopped: cancelled by alice"),
        "{lines:?}"
    );
}

#[tokio::test]
async fn a_cancellation_heard_before_the_build_starts_refuses_it() {
    let f = fixture();
    let deployment = Uuid::now_v7();
    f.cancellations.hear(Cancellation {
        app: f.request.app.clone(),
        deployment_id: None,
        reason: "the app was deleted".into(),
        state: DeploymentState::Cancelled,
    });
    let envelope = Envelope::new(Some(deployment), 1, &f.request);
    let outcome = f
        .service
        .handle(
            envelope,
            Message::BuildRequested(f.request.clone()),
            first_delivery(),
        )
        .await;
    assert!(matches!(outcome, Outcome::Done), "{outcome:?}");
    assert!(
        f.kinds().is_empty(),
        "nothing reported or handed on: {:?}",
        f.kinds()
    );
    assert!(f.logs.0.lock().unwrap().is_empty(), "not even cloned");
}

#[tokio::test]
async fn a_request_past_its_deadline_is_refused_and_reported_timed_out() {
    let f = fixture();
    let deployment = Uuid::now_v7();
    let mut envelope = Envelope::new(Some(deployment), 1, &f.request);
    envelope.deadline = Some(chrono::Utc::now() - chrono::Duration::seconds(1));
    let outcome = f
        .service
        .handle(
            envelope,
            Message::BuildRequested(f.request.clone()),
            first_delivery(),
        )
        .await;
    assert!(matches!(outcome, Outcome::Done), "{outcome:?}");
    let published = f.published.0.lock().unwrap().clone();
    assert_eq!(published.len(), 1, "{published:?}");
    let report: DeploymentProgress = published[0].payload().unwrap();
    assert_eq!(report.state, DeploymentState::TimedOut);
    assert_eq!(
        report.reason.as_deref(),
        Some("waited for a build worker past its deadline")
    );
    assert!(f.logs.0.lock().unwrap().is_empty(), "nothing was cloned");
}
