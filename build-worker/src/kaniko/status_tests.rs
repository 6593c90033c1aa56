use super::*;
use serde_json::{json, Value};

const IMAGE: &str = "gcr.io/kaniko-project/executor:v1.23.2";
const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

fn pod(status: Value) -> Pod {
    serde_json::from_value(json!({"metadata": {"name": "build-x"}, "status": status})).unwrap()
}

fn container(state: Value) -> Value {
    json!([{"name": "kaniko", "image": IMAGE, "imageID": "", "ready": false,
            "restartCount": 0, "state": state}])
}

#[test]
fn a_pod_starts_runs_and_finishes() {
    assert_eq!(pod_state(&pod(json!({})), IMAGE), PodState::Starting);
    let creating = pod(json!({"phase": "Pending", "containerStatuses":
        container(json!({"waiting": {"reason": "ContainerCreating"}}))}));
    assert_eq!(pod_state(&creating, IMAGE), PodState::Starting);
    let running = pod(json!({"phase": "Running", "containerStatuses":
        container(json!({"running": {"startedAt": "2026-01-01T00:00:00Z"}}))}));
    assert_eq!(pod_state(&running, IMAGE), PodState::Running);
    let done = pod(json!({"phase": "Succeeded", "containerStatuses":
        container(json!({"terminated": {"exitCode": 0, "reason": "Completed", "message": DIGEST}}))}));
    assert_eq!(
        pod_state(&done, IMAGE),
        PodState::Finished(Finish::Exited {
            code: 0,
            reason: Some("Completed".into()),
            message: Some(DIGEST.into())
        })
    );
}

#[test]
fn an_image_that_cannot_be_pulled_is_named() {
    let pulling = pod(
        json!({"phase": "Pending", "containerStatuses": container(json!({"waiting": {
        "reason": "ErrImagePull", "message": "rpc error: code = NotFound desc = not found"}}))}),
    );
    assert_eq!(
        pod_state(&pulling, IMAGE),
        PodState::CannotStart(format!(
            "the Kaniko image `{IMAGE}` could not be pulled: ErrImagePull (rpc error: code = NotFound desc = not found)"
        ))
    );
    let secret = pod(
        json!({"phase": "Pending", "containerStatuses": container(json!({"waiting": {
        "reason": "CreateContainerConfigError"}}))}),
    );
    assert_eq!(
        pod_state(&secret, IMAGE),
        PodState::CannotStart(
            "the build container could not be created: CreateContainerConfigError".into()
        )
    );
}

#[test]
fn the_deadline_wins_over_a_stale_container_state() {
    let killed = pod(json!({"phase": "Failed", "reason": "DeadlineExceeded",
        "message": "Pod was active on the node longer than the specified deadline",
        "containerStatuses": container(json!({"running": {}}))}));
    assert_eq!(
        pod_state(&killed, IMAGE),
        PodState::Finished(Finish::DeadlineExceeded)
    );
    let evicted = pod(json!({"phase": "Failed", "reason": "Evicted",
        "message": "The node was low on resource: ephemeral-storage."}));
    assert_eq!(
        pod_state(&evicted, IMAGE),
        PodState::Finished(Finish::Lost(
            "Evicted: The node was low on resource: ephemeral-storage.".into()
        ))
    );
}

#[test]
fn outcomes_become_a_digest_or_a_reason() {
    let output = KanikoOutput::default();
    let limit = Duration::from_secs(900);
    let exited = |code, reason: Option<&str>, message: Option<&str>| Finish::Exited {
        code,
        reason: reason.map(str::to_owned),
        message: message.map(str::to_owned),
    };
    assert_eq!(
        outcome(
            exited(0, None, Some(&format!("{DIGEST}\n"))),
            &output,
            limit,
            "4Gi"
        )
        .unwrap(),
        DIGEST
    );
    let error = outcome(exited(0, None, None), &output, limit, "4Gi").unwrap_err();
    assert!(
        error
            .to_string()
            .contains("without writing the image digest"),
        "{error}"
    );
    let error = outcome(exited(0, None, Some("sha256:abc")), &output, limit, "4Gi").unwrap_err();
    assert!(
        error
            .to_string()
            .contains("without writing the image digest"),
        "{error}"
    );
    let error = outcome(exited(137, Some("OOMKilled"), None), &output, limit, "4Gi").unwrap_err();
    assert_eq!(
        error.to_string(),
        "the build failed at the start, before any step ran: the build ran out of memory (the limit is 4Gi)"
    );
    let error = outcome(Finish::DeadlineExceeded, &output, limit, "4Gi").unwrap_err();
    assert_eq!(
        error.to_string(),
        "the deadline of 15m was exceeded while building"
    );
    let error = outcome(Finish::Lost("Evicted".into()), &output, limit, "4Gi").unwrap_err();
    assert!(
        error
            .to_string()
            .ends_with("the build pod stopped: Evicted"),
        "{error}"
    );
}
