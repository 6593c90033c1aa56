//! Repositories that try to leave the build sandbox, pushed through the
//! whole worker: each build fails before it starts, with a reason the
//! app's owner can read, and nothing is built.

mod support;

use berth_proto::DeploymentState;
use std::time::Duration;
use support::*;

/// Commits `files` plus the links `links` (path, target) and builds it;
/// returns the failure reason.
async fn refused(harness: &Harness, files: &[(&str, &str)], links: &[(&str, &str)]) -> String {
    let repo = TestRepo::new();
    for (path, target) in links {
        std::os::unix::fs::symlink(target, repo.dir.path().join(path)).unwrap();
    }
    repo.commit("escape", files);
    let app = new_app("escape");
    let deployment = harness
        .submit(&harness.request(&app, source(&repo.url(), "main")))
        .await;
    let seen = harness.outcome(deployment, Duration::from_secs(120)).await;
    assert_eq!(
        seen.states(),
        [DeploymentState::Cloning, DeploymentState::Failed],
        "refused before building: {seen:?}"
    );
    seen.reason()
}

/// Files (path, contents), links (path, target), and the reason expected.
type Attempt<'a> = (&'a [(&'a str, &'a str)], &'a [(&'a str, &'a str)], &'a str);

#[tokio::test]
async fn escape_attempts_fail_with_a_clear_reason_before_the_build() {
    let harness = Harness::start(settings(true)).await;
    let cases: [Attempt; 6] = [
        (
            &[(
                "Dockerfile",
                "FROM localhost/berth/python:bookworm AS base\nRUN ln -s / /rootlink\nFROM base\n\
                 RUN --mount=type=bind,from=base,source=/rootlink,target=/mnt cat /mnt/etc/shadow\n",
            )],
            &[],
            "the Dockerfile is refused at line 4: `RUN --mount=type=bind`",
        ),
        (
            &[(
                "Dockerfile",
                "FROM localhost/berth/python:bookworm\nRUN --network=host python3 -c 'print(1)'\n",
            )],
            &[],
            "`RUN --network=host` would leave the build's own network",
        ),
        (
            &[(
                "Dockerfile",
                "FROM localhost/berth/static:latest\nADD http://127.0.0.1:8080/healthz /x\n",
            )],
            &[],
            "names an address or an internal host",
        ),
        (&[], &[("Dockerfile", "/etc/hostname")], "Dockerfile is a link"),
        (
            &[("Dockerfile", "FROM localhost/berth/static:latest\n")],
            &[(".dockerignore", "/dev/zero")],
            ".dockerignore is a link",
        ),
        (
            &[("Dockerfile", "FROM localhost/berth/static:latest\nCOPY . /site\n")],
            &[("hosts", "/etc/hosts")],
            "link hosts leads outside the repository (to /etc/hosts)",
        ),
    ];
    for (files, links, expected) in cases {
        let reason = refused(&harness, files, links).await;
        assert!(reason.contains(expected), "{expected:?} not in {reason:?}");
    }
}
