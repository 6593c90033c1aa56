//! The pure diagnosis of a rollout, the restore document and what a prune
//! keeps.

use super::fake::{Deploy, PodAnswer};
use super::restore_document;
use super::status::*;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use serde_json::json;
use std::collections::BTreeSet;
use uuid::Uuid;

fn pods(answers: Vec<PodAnswer>) -> Vec<Pod> {
    answers
        .into_iter()
        .map(|pod| serde_json::from_value(pod.0).unwrap())
        .collect()
}

fn deployment(value: serde_json::Value) -> Deployment {
    serde_json::from_value(value).unwrap()
}

#[test]
fn a_rollout_is_complete_once_every_replica_is_new_and_available() {
    let deploy = Deploy::first();
    assert!(rollout_complete(&deployment(
        deploy.deployment().rolled_out().0
    )));
    assert!(!rollout_complete(&deployment(
        deploy.deployment().unobserved().0
    )));
    let old_pod_left = deploy.deployment().rolling(1, 1, 2);
    assert!(!rollout_complete(&deployment(old_pod_left.0)));
    let not_available = deploy.deployment().rolling(1, 0, 1);
    assert!(!rollout_complete(&deployment(not_available.0)));
    assert!(
        !rollout_complete(&deployment(deploy.deployment().0)),
        "no status yet"
    );
}

#[test]
fn a_deployment_scaled_to_zero_has_rolled_out_and_is_not_running() {
    let mut stopped = Deploy::first().deployment();
    stopped.0["spec"]["replicas"] = json!(0);
    stopped.0["status"] = json!({"observedGeneration": 1});
    let stopped = deployment(stopped.0);
    assert!(rollout_complete(&stopped));
    assert!(!is_running(&stopped));
    assert!(is_running(&deployment(Deploy::first().deployment().0)));
}

#[test]
fn pull_failures_and_crashes_are_definite_at_once() {
    let deploy = Deploy::first();
    let image = deploy.spec.release.image.clone();
    let backoff = pods(vec![deploy
        .pod("a")
        .waiting("ImagePullBackOff", "Back-off")]);
    assert_eq!(
        definite_failure(&backoff),
        Some(PodProblem::ImagePull {
            image: image.clone(),
            message: "Back-off".into()
        })
    );
    let invalid = pods(vec![deploy.pod("a").waiting("InvalidImageName", "bad")]);
    assert!(matches!(
        definite_failure(&invalid),
        Some(PodProblem::BadImage { .. })
    ));
    let crashing = pods(vec![deploy.pod("a").crash_looping(2, "Error")]);
    assert_eq!(
        definite_failure(&crashing),
        Some(PodProblem::Exited {
            pod: "a".into(),
            code: 2,
            out_of_memory: false,
            previous: true
        })
    );
    let mut exited = deploy.pod("b");
    exited.0["status"]["containerStatuses"] = json!([{"name": "app", "image": image, "imageID": "",
        "ready": false, "restartCount": 0, "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}]);
    assert_eq!(
        definite_failure(&pods(vec![exited])),
        Some(PodProblem::Exited {
            pod: "b".into(),
            code: 0,
            out_of_memory: false,
            previous: false
        })
    );
}

#[test]
fn what_may_still_pass_waits_for_the_deadline() {
    let deploy = Deploy::first();
    let waiting = pods(vec![
        deploy.pod("a").waiting("ErrImagePull", "i/o timeout"),
        deploy.pod("b").waiting("ContainerCreating", ""),
        deploy.pod("c").running(false),
        deploy
            .pod("d")
            .unschedulable("0/3 nodes are available: 3 Insufficient memory."),
    ]);
    assert_eq!(definite_failure(&waiting), None);
    assert!(matches!(
        failure_at_deadline(&waiting[..1]),
        Some(PodProblem::ImagePull { .. })
    ));
    assert_eq!(
        failure_at_deadline(&waiting[1..2]),
        Some(PodProblem::NotStarted("ContainerCreating".into()))
    );
    assert_eq!(
        failure_at_deadline(&waiting[2..3]),
        Some(PodProblem::NotReady { pod: "c".into() })
    );
    assert_eq!(
        failure_at_deadline(&waiting[3..]),
        Some(PodProblem::NotStarted(
            "not scheduled: 0/3 nodes are available: 3 Insufficient memory.".into()
        ))
    );
    assert_eq!(
        failure_at_deadline(&pods(vec![deploy.pod("e").running(true)])),
        None
    );
}

#[test]
fn the_restored_deployment_is_the_previous_one_less_the_servers_fields() {
    let previous = Deploy::first();
    let got = previous.deployment().rolled_out();
    let restored = restore_document(&deployment(got.0.clone()));
    let mut expected = previous
        .plan()
        .into_iter()
        .find(|d| d["kind"] == "Deployment")
        .unwrap();
    // What the API server defaults or the controller sets, berth keeps.
    assert_eq!(restored["spec"], got.0["spec"]);
    expected["spec"] = restored["spec"].clone();
    assert_eq!(restored, expected);
}

#[test]
fn the_history_is_the_releases_the_app_s_replica_sets_run() {
    let first = Deploy::first();
    let second = first.next("registry.example:5000/acme/web@sha256:bbbb");
    let again = first.again();
    let mut bare = second.replica_set();
    bare["spec"]["template"]["metadata"]["labels"]
        .as_object_mut()
        .unwrap()
        .remove("berth.dev/release");
    let replica_sets: Vec<ReplicaSet> = [first.replica_set(), again.replica_set(), bare]
        .into_iter()
        .map(|rs| serde_json::from_value(rs).unwrap())
        .collect();
    assert_eq!(
        releases_in_history(&replica_sets),
        BTreeSet::from([first.spec.release.id.to_string()]),
        "each release once; a template without the label runs none"
    );
    assert!(releases_in_history(&[]).is_empty());
}

#[test]
fn the_prune_selector_takes_the_app_s_env_secrets_of_every_other_release() {
    let app = Uuid::parse_str("01936d2a-7b3c-7def-8123-456789abcdef").unwrap();
    let keep = BTreeSet::from(["r2".to_owned(), "r1".to_owned()]);
    assert_eq!(
        prune_selector(app, &keep).as_deref(),
        Some("berth.dev/app=01936d2a-7b3c-7def-8123-456789abcdef,berth.dev/release,berth.dev/release notin (r1,r2)")
    );
    assert_eq!(
        prune_selector(app, &BTreeSet::new()),
        None,
        "never all of them"
    );
}
