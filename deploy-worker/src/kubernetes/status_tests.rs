//! The pure diagnosis of a rollout, the restore document and pruning.

use super::fake::{Deploy, PodAnswer};
use super::restore_document;
use super::status::*;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::json;

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
fn pruning_keeps_the_current_release_and_the_newest_others() {
    let meta = |name: &str, day: u32| -> ObjectMeta {
        serde_json::from_value(
            json!({"name": name, "creationTimestamp": format!("2026-11-{day:02}T00:00:00Z")}),
        )
        .unwrap()
    };
    let secrets = vec![
        meta("old", 1),
        meta("current", 2),
        meta("newer", 9),
        meta("mid", 5),
        meta("older", 3),
    ];
    assert_eq!(
        secrets_to_prune(&secrets, "current", 2),
        vec!["older", "old"]
    );
    assert!(secrets_to_prune(&secrets, "current", 10).is_empty());
    assert_eq!(secrets_to_prune(&secrets, "current", 0).len(), 4);
}
