//! A build's memory, processes and life are bounded, and going over a
//! bound fails that build with the reason, harming no other.

use super::*;

#[tokio::test]
async fn a_build_over_its_memory_limit_fails_with_that_reason_and_harms_no_other() {
    let builder = builder(&["--build-memory-mb=256"]).await;
    let hungry = App::new(
        &tenant("sbxm"),
        &[(
            "Dockerfile",
            &format!(
                "FROM {PYTHON}\nRUN python3 -c \"x = bytearray(512 * 1024 * 1024); print('allocated', len(x))\"\n"
            ),
        )],
    );
    let calm = App::new(
        &tenant("sbxk"),
        &[(
            "Dockerfile",
            &format!("FROM {PYTHON}\nRUN python3 -c \"x = bytearray(64 * 1024 * 1024); print('calm', len(x))\" && sleep 3\n"),
        )],
    );
    let (hungry_result, calm_result) = tokio::join!(hungry.build(&builder), calm.build(&builder));
    let error = hungry_result.expect_err("twice its memory limit");
    assert!(
        matches!(&error, BuildError::OutOfMemory { limit_mb: 256, step } if step.contains("step 2")),
        "{error}\n{}",
        hungry.lines.text()
    );
    assert!(error.to_string().contains("ran out of memory"), "{error}");
    assert!(!hungry
        .lines
        .all()
        .iter()
        .any(|line| line.starts_with("allocated")));
    assert!(
        calm_result.is_ok(),
        "{calm_result:?}\n{}",
        calm.lines.text()
    );
}

#[tokio::test]
async fn a_build_over_its_process_limit_fails_with_that_reason() {
    let builder = builder(&["--build-pids=256"]).await;
    let app = App::new(
        &tenant("sbxf"),
        &[(
            "Dockerfile",
            &format!("FROM {PYTHON}\nRUN for i in $(seq 512); do sleep 30 & done; wait\n"),
        )],
    );
    let started = Instant::now();
    let error = app
        .build(&builder)
        .await
        .expect_err("twice its process limit");
    assert!(
        matches!(&error, BuildError::TooManyProcesses { limit: 256, .. }),
        "{error}\n{}",
        app.lines.text()
    );
    // The sleeping processes were killed with the build, not waited for.
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_build_stopped_midway_leaves_nothing_running() {
    let builder = builder(&[]).await;
    let marker = Uuid::new_v4().simple().to_string();
    let app = App::new(
        &tenant("sbxs"),
        &[(
            "Dockerfile",
            &format!("FROM {STATIC}\nRUN echo started-{marker} && sleep 600 && echo {marker}\n"),
        )],
    );
    let running = |marker: &str| {
        let output = std::process::Command::new("pgrep")
            .args(["-f", marker])
            .output()
            .unwrap();
        !String::from_utf8_lossy(&output.stdout).trim().is_empty()
    };
    // A deadline, a cancel or the worker's shutdown drops the build future.
    let build = app.build(&builder);
    let stop = async {
        app.lines
            .wait_for_line(&format!("started-{marker}"), Duration::from_secs(60))
            .await;
        assert!(running(&marker), "the step runs");
    };
    tokio::select! {
        result = build => panic!("the build ended by itself: {result:?}"),
        () = stop => {}
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while running(&marker) {
        assert!(
            Instant::now() < deadline,
            "the step still runs 5 s after the build was stopped"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
