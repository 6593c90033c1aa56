//! The reconciler's decisions against the scripted runtime.

use super::*;
use berth_proto::{AppStatus, DesiredApp, DesiredState, LiveRelease};

/// A deployment id made `secs_ago` seconds ago (UUIDv7).
fn made_ago(secs_ago: i64) -> Uuid {
    let at = Utc::now().timestamp() - secs_ago;
    Uuid::new_v7(uuid::Timestamp::from_unix(uuid::NoContext, at as u64, 0))
}

fn desired(app: DesiredApp) -> DesiredState {
    DesiredState {
        at: Utc::now(),
        apps: vec![app],
    }
}

fn live_app(release: &Release, deployment_id: Uuid, replicas: u32) -> DesiredApp {
    DesiredApp {
        app: release.app.clone(),
        live: Some(LiveRelease {
            deployment_id,
            release: release.clone(),
        }),
        replicas,
        busy: false,
        domains: vec![],
    }
}

fn stopped(deployment_id: Uuid) -> Instance {
    Instance {
        running: false,
        ..running(deployment_id)
    }
}

#[tokio::test]
async fn a_live_app_whose_workload_is_gone_is_deployed_again_at_its_scale() {
    let service = service();
    let release = release(&BTreeMap::new());
    let live = made_ago(600);
    let outcome = service
        .reconcile(desired(live_app(&release, live, 1)))
        .await;
    assert_eq!(outcome, Outcome::Done);
    let deploys = service.runtime.deploys.lock().unwrap().clone();
    assert_eq!(deploys.len(), 1);
    assert_eq!(deploys[0].deployment_id, live);
    assert_eq!(deploys[0].release.id, release.id);
}

#[tokio::test]
async fn instances_are_counted_where_the_runtime_lists_one_per_replica() {
    let release = release(&BTreeMap::new());
    let live = made_ago(600);
    for (per_replica, scaled) in [(true, vec![(release.app.id, 3)]), (false, vec![])] {
        let service = service();
        service
            .runtime
            .per_replica
            .store(per_replica, std::sync::atomic::Ordering::SeqCst);
        service
            .runtime
            .instances
            .lock()
            .unwrap()
            .extend([running(live), running(live)]);
        service
            .reconcile(desired(live_app(&release, live, 3)))
            .await;
        assert_eq!(
            *service.runtime.scales.lock().unwrap(),
            scaled,
            "per replica: {per_replica}"
        );
        assert!(service.runtime.deploys.lock().unwrap().is_empty());
    }
}

#[tokio::test]
async fn routes_are_wanted_for_settled_apps_and_kept_for_busy_and_young_ones() {
    let events = Arc::new(berth_common::testing::memory_log::MemoryLog::default());
    let service = service().with_events(events.clone());
    let release = release(&BTreeMap::new());
    let live = made_ago(600);
    let serving = live_app(&release, live, 2);
    let mut busy = live_app(&release, live, 1);
    busy.app.id = made_ago(700);
    busy.busy = true;
    let mut stopped = live_app(&release, live, 0);
    stopped.app.id = made_ago(800);
    let mut undeployed = live_app(&release, live, 1);
    undeployed.app.id = made_ago(900);
    undeployed.live = None;
    let (deleted, young) = (made_ago(1000), Uuid::now_v7());
    *service.runtime.probe.lock().unwrap() = vec![busy.app.id, serving.app.id, deleted, young];
    *service.runtime.rerouted.lock().unwrap() = vec![serving.app.id, undeployed.app.id];
    let snapshot = DesiredState {
        at: Utc::now(),
        apps: vec![serving.clone(), busy, stopped.clone(), undeployed.clone()],
    };
    service.reconcile(snapshot).await;
    let asked = service.runtime.route_wants.lock().unwrap().clone();
    let [(wants, kept)] = asked.as_slice() else {
        panic!("one call: {asked:?}");
    };
    let summary: Vec<_> = wants
        .iter()
        .map(|want| (want.app.id, want.live, want.serving))
        .collect();
    assert_eq!(
        summary,
        [
            (serving.app.id, Some(live), true),
            (stopped.app.id, Some(live), false),
            (undeployed.app.id, None, false),
        ],
        "every app without a deploy on its way"
    );
    assert_eq!(
        kept,
        &[true, false, false, true],
        "busy and young apps keep their route"
    );
    // A rerouted app with a live release is told in its log; the one that
    // got its first 503 page is not.
    let rerouted: Vec<Uuid> = events
        .records()
        .into_iter()
        .filter(|(_, _, record)| record.line.contains("route on the edge router"))
        .map(|(app, _, _)| app)
        .collect();
    assert_eq!(rerouted, [serving.app.id]);
}

#[tokio::test]
async fn workloads_of_other_deployments_are_retired_and_the_live_one_kept() {
    let service = service();
    let release = release(&BTreeMap::new());
    let (stray, live) = (made_ago(900), made_ago(600));
    service
        .runtime
        .instances
        .lock()
        .unwrap()
        .extend([running(stray), running(live)]);
    service
        .reconcile(desired(live_app(&release, live, 1)))
        .await;
    assert_eq!(*service.runtime.retired.lock().unwrap(), [Some(stray)]);
    assert!(service.runtime.deploys.lock().unwrap().is_empty());
    assert!(service.runtime.scales.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_deployment_newer_than_the_snapshot_is_not_a_stray() {
    let service = service();
    let release = release(&BTreeMap::new());
    let live = made_ago(600);
    let newer = Uuid::now_v7();
    service
        .runtime
        .instances
        .lock()
        .unwrap()
        .extend([running(live), running(newer)]);
    service
        .reconcile(desired(live_app(&release, live, 1)))
        .await;
    assert!(service.runtime.retired.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_stopped_live_app_is_started_and_one_scaled_to_zero_is_stopped() {
    let service = service();
    let release = release(&BTreeMap::new());
    let live = made_ago(600);
    service
        .runtime
        .instances
        .lock()
        .unwrap()
        .push(stopped(live));
    service
        .reconcile(desired(live_app(&release, live, 1)))
        .await;
    assert_eq!(
        *service.runtime.scales.lock().unwrap(),
        [(release.app.id, 1)]
    );

    let service = service_with(running(live));
    service
        .reconcile(desired(live_app(&release, live, 0)))
        .await;
    assert_eq!(
        *service.runtime.scales.lock().unwrap(),
        [(release.app.id, 0)]
    );
}

fn service_with(instance: Instance) -> DeployService<FakeRuntime, Recorder> {
    let service = service();
    service.runtime.instances.lock().unwrap().push(instance);
    service
}

#[tokio::test]
async fn an_app_with_a_deployment_on_its_way_is_left_alone() {
    let service = service_with(running(made_ago(900)));
    let release = release(&BTreeMap::new());
    let mut app = live_app(&release, made_ago(600), 1);
    app.busy = true;
    service.reconcile(desired(app)).await;
    assert!(service.runtime.retired.lock().unwrap().is_empty());
    assert!(service.runtime.deploys.lock().unwrap().is_empty());
}

#[tokio::test]
async fn workloads_of_an_app_the_database_no_longer_has_are_removed() {
    let service = service_with(running(made_ago(900)));
    let release = release(&BTreeMap::new());
    let gone = AppRef {
        id: made_ago(3600),
        name: "old".into(),
        tenant: "acme".into(),
    };
    let young = AppRef {
        id: Uuid::now_v7(),
        name: "new".into(),
        tenant: "acme".into(),
    };
    service
        .runtime
        .apps
        .lock()
        .unwrap()
        .extend([gone.clone(), young, release.app.clone()]);
    let live = made_ago(600);
    service
        .runtime
        .instances
        .lock()
        .unwrap()
        .push(running(live));
    service
        .reconcile(desired(live_app(&release, live, 1)))
        .await;
    assert_eq!(
        *service.runtime.removed.lock().unwrap(),
        [gone.id],
        "only the app made long before the snapshot and not in it"
    );
}

#[tokio::test]
async fn a_stale_snapshot_changes_nothing() {
    let service = service();
    let release = release(&BTreeMap::new());
    let mut snapshot = desired(live_app(&release, made_ago(600), 1));
    snapshot.at -= chrono::Duration::minutes(5);
    assert_eq!(service.reconcile(snapshot).await, Outcome::Done);
    assert!(service.runtime.deploys.lock().unwrap().is_empty());
}

#[tokio::test]
async fn each_repair_is_an_event_in_the_app_log_but_a_deleted_app_gets_none() {
    let events = Arc::new(berth_common::testing::memory_log::MemoryLog::default());
    let service = service().with_events(events.clone());
    let release = release(&BTreeMap::new());
    let gone = AppRef {
        id: made_ago(3600),
        name: "old".into(),
        tenant: "acme".into(),
    };
    // The scripted runtime keeps one list of workloads: first the deleted
    // app's, removed as an orphan.
    service.runtime.apps.lock().unwrap().push(gone.clone());
    service
        .runtime
        .instances
        .lock()
        .unwrap()
        .push(running(made_ago(3000)));
    let (stray, live) = (made_ago(900), made_ago(600));
    let mut nothing_live = live_app(&release, live, 1);
    nothing_live.live = None;
    service.reconcile(desired(nothing_live)).await;
    assert_eq!(*service.runtime.removed.lock().unwrap(), [gone.id]);
    assert!(events.records().is_empty(), "{:?}", events.records());

    service.runtime.apps.lock().unwrap().clear();
    service
        .runtime
        .instances
        .lock()
        .unwrap()
        .push(running(stray));
    service
        .reconcile(desired(live_app(&release, live, 1)))
        .await;
    assert_eq!(
        events.lines_of(release.app.id),
        [
            "berth repaired the app: removed 1 workload of a deployment that is no longer live",
            "berth repaired the app: deployed the live release again; its workloads were gone \
             (a reboot, or removed by hand)",
        ]
    );
    for (_, key, record) in events.records() {
        assert_eq!(key, live.to_string(), "keyed by the live deployment");
        assert_eq!(record.source, berth_proto::LogSource::Event);
        assert_eq!(record.instance, "berth");
    }
}

/// The statuses the pass reported, by app.
fn reported(service: &DeployService<FakeRuntime, Recorder>) -> Vec<(AppStatus, Option<String>)> {
    let statuses: Vec<berth_proto::RuntimeStatus> = service
        .publisher
        .1
        .lock()
        .unwrap()
        .iter()
        .map(|envelope| envelope.payload().unwrap())
        .collect();
    assert_eq!(statuses.len(), 1, "one report per pass");
    statuses[0]
        .apps
        .iter()
        .map(|app| (app.status, app.reason.clone()))
        .collect()
}

#[tokio::test]
async fn each_pass_reports_what_runs_and_why_an_app_is_degraded() {
    let release = release(&BTreeMap::new());
    let live = made_ago(600);

    let runs = service_with(running(live));
    runs.reconcile(desired(live_app(&release, live, 1))).await;
    assert_eq!(reported(&runs), [(AppStatus::Running, None)]);

    let stops = service_with(running(live));
    stops.reconcile(desired(live_app(&release, live, 0))).await;
    assert_eq!(reported(&stops), [(AppStatus::Stopped, None)]);

    // Its workload is gone and deploying it again fails for good.
    let service = service();
    *service.runtime.result.lock().unwrap() = Some(Err(DeployError::ImageUnavailable {
        image: release.image.clone(),
        reason: "manifest unknown".into(),
    }));
    service
        .reconcile(desired(live_app(&release, live, 1)))
        .await;
    let degraded = reported(&service);
    assert_eq!(degraded.len(), 1);
    assert_eq!(degraded[0].0, AppStatus::Degraded);
    let reason = degraded[0].1.as_deref().unwrap();
    assert!(
        reason.starts_with("berth could not start the live release again: the image")
            && reason.ends_with("cannot be pulled: manifest unknown"),
        "{reason}"
    );
}

#[tokio::test]
async fn apps_with_nothing_live_or_a_deployment_on_its_way_are_not_reported() {
    let service = service();
    let release = release(&BTreeMap::new());
    let mut busy = live_app(&release, made_ago(600), 1);
    busy.busy = true;
    let never_deployed = DesiredApp {
        live: None,
        ..live_app(&release, made_ago(600), 1)
    };
    service
        .reconcile(DesiredState {
            at: Utc::now(),
            apps: vec![busy, never_deployed],
        })
        .await;
    assert!(service.publisher.1.lock().unwrap().is_empty());
}
