//! The build worker end to end on the local stack (`infra/local/stack.sh up`):
//! real git repositories (file:// URLs), real builds on Podman through its
//! Docker-compatible socket, pushes to a real registry (the test's own, with
//! token authentication and per-tenant grants), build lines read back from
//! tansu, messages over a real RabbitMQ vhost.

mod support;

use berth_build_worker::Registry;
use berth_common::registry_auth::Access;
use berth_proto::{DeploymentState, KnownImage, LogSource, LogStream};
use std::time::{Duration, Instant};
use support::*;

const BUILD_TIMEOUT: Duration = Duration::from_secs(600);

const PYTHON_APP: &str = r#"import os
from http.server import BaseHTTPRequestHandler, HTTPServer

class Hello(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"hello from berth\n")

HTTPServer(("0.0.0.0", int(os.environ["PORT"])), Hello).serve_forever()
"#;

fn digest_of(image: &str) -> &str {
    image.split_once('@').expect("an image by digest").1
}

#[tokio::test]
async fn a_python_app_is_built_and_pushed_and_the_same_commit_is_not_built_again() {
    let harness = Harness::start(settings(true)).await;
    let repo = TestRepo::new();
    let sha = repo.commit(
        "python app",
        &[
            ("requirements.txt", "# standard library only\n"),
            ("app.py", PYTHON_APP),
            (".dockerignore", "*.log\n"),
            ("debug.log", "not in the image\n"),
        ],
    );
    let app = new_app("py");
    let request = harness.request(&app, source(&repo.url(), "main"));

    let started = Instant::now();
    let first = harness.submit(&request).await;
    let seen = harness.outcome(first, BUILD_TIMEOUT).await;
    let built_in = started.elapsed();
    assert_eq!(
        seen.states(),
        [
            DeploymentState::Cloning,
            DeploymentState::Building,
            DeploymentState::Pushing
        ],
        "{seen:?}"
    );
    assert_eq!(seen.progress[1].commit.as_deref(), Some(sha.as_str()));
    let release = seen.deploy.expect("a deploy was requested").release;
    assert_eq!(release.id, request.release_id);
    assert_eq!(release.app, app);
    assert_eq!(release.commit, sha);
    assert_eq!(release.config, request.config);
    let image_repo = harness.image_repo(&app);
    assert!(
        release
            .image
            .starts_with(&format!("{}@sha256:", image_repo.name())),
        "{}",
        release.image
    );
    // The digest is the one the registry serves for the commit's tag.
    let served = harness
        .registry_client()
        .digest(&image_repo, &sha)
        .await
        .unwrap()
        .expect("the tag is in the registry");
    assert_eq!(digest_of(&release.image), served);

    // The generated image runs the app on PORT.
    let answer = serve_and_fetch(&harness, &image_repo.tagged(&sha), request.config.port).await;
    assert_eq!(answer, "hello from berth\n");

    let lines = log_lines(app.id, first, "Pushed ").await;
    let text: Vec<&str> = lines.iter().map(|r| r.line.as_str()).collect();
    for expected in [
        format!("Cloning {} at main", repo.url()),
        format!("Resolved main to {sha}"),
        "Detected Python app (requirements.txt)".to_owned(),
        format!("Pushed {}", release.image),
    ] {
        assert!(
            text.contains(&expected.as_str()),
            "{expected:?} not in {text:#?}"
        );
    }
    assert!(
        text.iter()
            .any(|line| line.starts_with("STEP ") || line.starts_with("Step ")),
        "the engine's build output is in the log: {text:#?}"
    );
    for record in &lines {
        assert_eq!(record.source, LogSource::Build);
        assert_eq!(record.stream, LogStream::Stdout);
        assert_eq!(
            record.instance,
            format!("build-{}", &first.simple().to_string()[..8])
        );
    }

    // The same commit again (a redeploy, or a redelivery), with the digest
    // berth recorded for it: no build.
    let started = Instant::now();
    let mut again = harness.request(&app, source(&repo.url(), "main"));
    again.known_images = vec![KnownImage {
        commit: sha.clone(),
        digest: digest_of(&release.image).to_owned(),
    }];
    let second = harness.submit(&again).await;
    let seen = harness.outcome(second, BUILD_TIMEOUT).await;
    let skipped_in = started.elapsed();
    assert_eq!(seen.states(), [DeploymentState::Cloning], "{seen:?}");
    let second_release = seen.deploy.expect("a deploy was requested").release;
    assert_eq!(second_release.image, release.image);
    assert_eq!(second_release.id, again.release_id);
    let lines = log_lines(app.id, second, "Using ").await;
    assert!(
        lines
            .iter()
            .any(|r| r.line == format!("Image already built for {sha}; skipping the build")),
        "{lines:#?}"
    );
    eprintln!(
        "python app: built and pushed in {built_in:?}; the same commit again took {skipped_in:?}"
    );
}

#[tokio::test]
async fn an_exact_commit_is_built_even_when_the_branch_moved_on() {
    let harness = Harness::start(settings(true)).await;
    let repo = TestRepo::new();
    let good = repo.commit(
        "a static site",
        &[("site/index.html", "<!doctype html><p>hello</p>\n")],
    );
    // The branch tip would not build, and has no site folder.
    repo.commit("broken", &[("Dockerfile", "FROM scratch\nRUN false\n")]);
    std::fs::remove_dir_all(repo.path().join("site")).unwrap();
    repo.commit("remove the site", &[]);
    let app = new_app("static");
    let mut src = source(&repo.url(), "main");
    src.commit = Some(good.clone());
    src.subdirectory = Some("site".into());
    let started = Instant::now();
    let deployment = harness.submit(&harness.request(&app, src.clone())).await;
    let seen = harness.outcome(deployment, BUILD_TIMEOUT).await;
    let built_in = started.elapsed();
    let release = seen
        .deploy
        .clone()
        .unwrap_or_else(|| panic!("{seen:?}"))
        .release;
    assert_eq!(release.commit, good);
    let lines = log_lines(app.id, deployment, "Pushed ").await;
    assert!(
        lines
            .iter()
            .any(|r| r.line == "Detected static site (index.html)"),
        "{lines:#?}"
    );
    let tagged = harness.image_repo(&app).tagged(&good);
    let answers = serve_and_get(
        &harness,
        &tagged,
        8080,
        &["/", "/Dockerfile", "/.berth-ca.crt"],
    )
    .await;
    assert_eq!(
        answers[0],
        (200, "<!doctype html><p>hello</p>\n".to_owned())
    );
    assert_eq!(answers[1].0, 404, "berth's files are not part of the site");
    assert_eq!(answers[2].0, 404, "berth's files are not part of the site");

    // An abbreviated SHA resolves (after a fetch) to the same, built commit.
    src.commit = Some(good[..10].to_owned());
    let mut request = harness.request(&app, src);
    request.known_images = vec![KnownImage {
        commit: good.clone(),
        digest: digest_of(&release.image).to_owned(),
    }];
    let deployment = harness.submit(&request).await;
    let seen = harness.outcome(deployment, BUILD_TIMEOUT).await;
    assert_eq!(seen.states(), [DeploymentState::Cloning], "{seen:?}");
    assert_eq!(seen.deploy.unwrap().release.image, release.image);
    eprintln!("static site: built and pushed in {built_in:?}");
}

/// C1: whoever else pushes to an app's commit tag (a leaked grant, a
/// registry operator) never makes that image a release: without the digest
/// berth recorded the commit is built again, and with it that digest is
/// used whatever the tag names now.
#[tokio::test]
async fn an_image_pushed_over_the_commits_tag_is_never_deployed() {
    let harness = Harness::start(settings(true)).await;
    let repo = TestRepo::new();
    let static_image = settings(true).images.static_site;
    let sha = repo.commit(
        "a site",
        &[(
            "Dockerfile",
            &format!("FROM {static_image}\nRUN echo ours > /site/index.html\n"),
        )],
    );
    let app = new_app("poisoned");
    let first = harness
        .submit(&harness.request(&app, source(&repo.url(), "main")))
        .await;
    let built = harness
        .outcome(first, BUILD_TIMEOUT)
        .await
        .deploy
        .expect("the first build is deployed")
        .release;
    let ours = digest_of(&built.image).to_owned();

    // Someone else's image under the commit's tag.
    let image_repo = harness.image_repo(&app);
    let foreign = harness
        .push_as(&static_image, &image_repo, &sha, Access::Push)
        .await;
    assert_ne!(foreign, ours);
    assert_eq!(
        harness
            .registry_client()
            .digest(&image_repo, &sha)
            .await
            .unwrap(),
        Some(foreign.clone())
    );

    // No digest recorded (the request of an old backend, or a commit berth
    // never released): built again, not skipped to the tag.
    let rebuilt = harness
        .submit(&harness.request(&app, source(&repo.url(), "main")))
        .await;
    let seen = harness.outcome(rebuilt, BUILD_TIMEOUT).await;
    assert!(
        seen.states().contains(&DeploymentState::Building),
        "{seen:?}"
    );
    let image = seen.deploy.expect("deployed").release.image;
    assert!(!image.contains(&foreign), "{image}");

    // With the recorded digest: skipped, and that digest is the release.
    harness
        .push_as(&static_image, &image_repo, &sha, Access::Push)
        .await;
    let mut request = harness.request(&app, source(&repo.url(), "main"));
    request.known_images = vec![KnownImage {
        commit: sha.clone(),
        digest: ours.clone(),
    }];
    let skipped = harness.submit(&request).await;
    let seen = harness.outcome(skipped, BUILD_TIMEOUT).await;
    assert_eq!(seen.states(), [DeploymentState::Cloning], "{seen:?}");
    assert_eq!(
        seen.deploy.unwrap().release.image,
        image_repo.by_digest(&ours)
    );
}

#[tokio::test]
async fn a_missing_branch_fails_with_a_reason_and_builds_nothing() {
    let harness = Harness::start(settings(true)).await;
    let repo = TestRepo::new();
    repo.commit("site", &[("index.html", "<p>hi</p>\n")]);
    let app = new_app("nobranch");
    let deployment = harness
        .submit(&harness.request(&app, source(&repo.url(), "no-such-branch")))
        .await;
    let seen = harness.outcome(deployment, BUILD_TIMEOUT).await;
    assert_eq!(
        seen.states(),
        [DeploymentState::Cloning, DeploymentState::Failed],
        "{seen:?}"
    );
    assert_eq!(
        seen.reason(),
        format!(
            "branch or tag `no-such-branch` was not found in {}",
            repo.url()
        )
    );
    assert!(seen.deploy.is_none());
    let lines = log_lines(app.id, deployment, "Build failed: ").await;
    assert!(lines.last().unwrap().line.contains("no-such-branch"));

    // An unknown commit, likewise.
    let mut src = source(&repo.url(), "main");
    src.commit = Some("0123456789abcdef0123456789abcdef01234567".into());
    let deployment = harness.submit(&harness.request(&app, src)).await;
    let seen = harness.outcome(deployment, BUILD_TIMEOUT).await;
    assert_eq!(
        seen.reason(),
        format!(
            "commit `0123456789abcdef0123456789abcdef01234567` was not found in {}",
            repo.url()
        )
    );
}

#[tokio::test]
async fn a_failing_build_names_the_step_and_its_last_output() {
    let harness = Harness::start(settings(true)).await;
    let repo = TestRepo::new();
    let static_image = settings(true).images.static_site;
    repo.commit(
        "a Dockerfile that fails",
        &[(
            "Dockerfile",
            &format!(
                "FROM {static_image}\nCOPY . /site/\nRUN echo 'compiling the assets' && echo 'error: assets/app.css not found' && false\n"
            ),
        )],
    );
    let app = new_app("failing");
    let deployment = harness
        .submit(&harness.request(&app, source(&repo.url(), "main")))
        .await;
    let seen = harness.outcome(deployment, BUILD_TIMEOUT).await;
    assert_eq!(
        seen.states(),
        [
            DeploymentState::Cloning,
            DeploymentState::Building,
            DeploymentState::Failed
        ],
        "{seen:?}"
    );
    let reason = seen.reason();
    assert!(
        reason.starts_with("the build failed at step 3 (RUN echo 'compiling the assets'"),
        "{reason}"
    );
    assert!(
        reason.ends_with("compiling the assets | error: assets/app.css not found (exit status 1)"),
        "{reason}"
    );
    assert!(seen.deploy.is_none());
    let lines = log_lines(app.id, deployment, "Build failed: ").await;
    let text: Vec<&str> = lines.iter().map(|r| r.line.as_str()).collect();
    assert!(
        text.contains(&"Using the repository's Dockerfile"),
        "{text:#?}"
    );
    assert!(
        text.contains(&"error: assets/app.css not found"),
        "{text:#?}"
    );
    assert_eq!(*text.last().unwrap(), format!("Build failed: {reason}"));
}

#[tokio::test]
async fn local_repositories_are_refused_unless_allowed() {
    let harness = Harness::start(settings(false)).await;
    let repo = TestRepo::new();
    repo.commit("site", &[("index.html", "<p>hi</p>\n")]);
    let app = new_app("local");
    let deployment = harness
        .submit(&harness.request(&app, source(&repo.url(), "main")))
        .await;
    let seen = harness.outcome(deployment, Duration::from_secs(60)).await;
    assert_eq!(
        seen.states(),
        [DeploymentState::Cloning, DeploymentState::Failed]
    );
    assert!(
        seen.reason().contains(
            "local repositories are not allowed on this server (BERTH_ALLOW_LOCAL_REPOS)"
        ),
        "{}",
        seen.reason()
    );
}

/// L4: with local repositories on, a repository outside the root (here a
/// folder of the system's temporary directory) is refused, as is a symlink
/// in the root that leads out of it.
#[tokio::test]
async fn local_repositories_outside_the_root_are_refused() {
    let harness = Harness::start(settings(true)).await;
    let outside = tempfile::tempdir().unwrap();
    git2::Repository::init(outside.path()).unwrap();
    let link = tempfile::tempdir_in(berth_common::testing::local_repo_root()).unwrap();
    std::os::unix::fs::symlink(outside.path(), link.path().join("repo")).unwrap();
    for url in [
        format!("file://{}", outside.path().display()),
        link.path().join("repo").display().to_string(),
    ] {
        let app = new_app("outside");
        let deployment = harness
            .submit(&harness.request(&app, source(&url, "main")))
            .await;
        let seen = harness.outcome(deployment, Duration::from_secs(60)).await;
        assert_eq!(
            seen.states(),
            [DeploymentState::Cloning, DeploymentState::Failed]
        );
        assert!(
            seen.reason().contains("local repositories must be inside"),
            "{url}: {}",
            seen.reason()
        );
    }
}

#[tokio::test]
async fn a_build_past_its_deadline_fails_and_says_so() {
    let mut settings = settings(true);
    settings.deadline = Duration::from_secs(3);
    let static_image = settings.images.static_site.clone();
    let harness = Harness::start(settings).await;
    let repo = TestRepo::new();
    repo.commit(
        "slow",
        &[(
            "Dockerfile",
            &format!("FROM {static_image}\nRUN echo 'working hard' && sleep 20\n"),
        )],
    );
    let app = new_app("slow");
    let started = Instant::now();
    let deployment = harness
        .submit(&harness.request(&app, source(&repo.url(), "main")))
        .await;
    let seen = harness.outcome(deployment, Duration::from_secs(60)).await;
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        seen.states(),
        [
            DeploymentState::Cloning,
            DeploymentState::Building,
            DeploymentState::Failed
        ]
    );
    assert_eq!(
        seen.reason(),
        "the deadline of 3s was exceeded while building"
    );
}

/// Needs PyPI, reached through the machine's TLS proxy with the extra CA
/// bundle: not run by default (`cargo test -- --ignored` runs it).
#[tokio::test]
#[ignore = "downloads from PyPI"]
async fn python_dependencies_install_from_pypi_with_the_extra_ca() {
    let settings = settings(true);
    assert!(
        settings.extra_ca.is_some(),
        "the stack sets BERTH_BUILD_CA_BUNDLE"
    );
    let harness = Harness::start(settings).await;
    let repo = TestRepo::new();
    let sha = repo.commit(
        "python app with a dependency",
        &[
            ("requirements.txt", "six==1.16.0\n"),
            ("main.py", "import six\nprint(six.__version__)\n"),
            (
                "Procfile",
                "web: python -c 'import six, os; print(os.environ[\"SSL_CERT_FILE\"])'\n",
            ),
        ],
    );
    let app = new_app("pypi");
    let started = Instant::now();
    let deployment = harness
        .submit(&harness.request(&app, source(&repo.url(), "main")))
        .await;
    let seen = harness.outcome(deployment, BUILD_TIMEOUT).await;
    assert!(seen.deploy.is_some(), "{seen:?}");
    let lines = log_lines(app.id, deployment, "Pushed ").await;
    assert!(
        lines
            .iter()
            .any(|r| r.line.contains("Successfully installed six-1.16.0")),
        "{lines:#?}"
    );
    eprintln!(
        "python app with a PyPI dependency ({sha}): built in {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_worker_that_stops_mid_build_puts_the_build_back_on_the_queue() {
    let settings = settings(true);
    let static_image = settings.images.static_site.clone();
    let harness = Harness::start(settings).await;
    let repo = TestRepo::new();
    repo.commit(
        "slow",
        &[(
            "Dockerfile",
            &format!("FROM {static_image}\nRUN echo 'a long build' && sleep 15\n"),
        )],
    );
    let app = new_app("stopped");
    let deployment = harness
        .submit(&harness.request(&app, source(&repo.url(), "main")))
        .await;
    harness
        .wait_for(
            deployment,
            DeploymentState::Building,
            Duration::from_secs(60),
        )
        .await;
    harness.stop();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let queues = berth_common::testing::rabbitmqctl(&[
            "list_queues",
            "-q",
            "-p",
            harness.vhost(),
            "name",
            "messages_ready",
        ]);
        let ready = queues
            .lines()
            .find_map(|line| line.strip_prefix("berth.builds\t"))
            .map(str::trim);
        if ready == Some("1") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the build was not requeued: {queues}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let lines = log_lines(app.id, deployment, "shutting down").await;
    assert_eq!(
        lines.last().unwrap().line,
        "The build worker is shutting down; this build will start again"
    );
}
