//! The web UI end to end: the Playwright journeys in `frontend/e2e/`, in
//! headless Chromium, against the real backend serving the built UI and the
//! real pipeline. The only fake is GitHub (`berth_tests::fake_github`).
//! Needs the stack, the binaries (`cargo build --bins`) and the built UI
//! with its npm packages (`make frontend`); `make test` does all three.

use anyhow::{bail, ensure, Context, Result};
use berth_common::testing::repo_root;
use berth_tests::fake_github;
use berth_tests::{playwright, AppRepo, Platform};
use std::path::Path;
use std::time::Duration;

/// The built UI the backend serves.
fn built_ui() -> Result<String> {
    let dist = repo_root().join("frontend/dist");
    ensure!(
        dist.join("index.html").exists(),
        "{} has no built UI: run `make frontend` (npm ci + npm run build)",
        dist.display()
    );
    Ok(dist.display().to_string())
}

/// The page the backend answers at `path` is the UI's index.html.
async fn serves_the_ui(base_url: &str, path: &str) -> Result<()> {
    let response = reqwest::get(format!("{base_url}{path}")).await?;
    let status = response.status();
    let body = response.text().await?;
    ensure!(
        status.is_success() && body.contains(r#"<div id="root">"#),
        "GET {path} did not answer the web UI ({status}): {body:.300}"
    );
    Ok(())
}

/// Does what the journeys asked for (`frontend/e2e/harness.ts`): each
/// `<what>.request` in `dir` is carried out and renamed to `<what>.done`.
async fn serve_requests(platform: &mut Platform, dir: &Path) -> Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let Some(what) = path
            .file_name()
            .and_then(|name| name.to_str())
            .and_then(|name| name.strip_suffix(".request"))
        else {
            continue;
        };
        match what {
            // As a crash would: the browser's connections drop at once.
            "stop-backend" => platform.kill("berth-backend").await?,
            "start-backend" => {
                platform.spawn("berth-backend")?;
                platform.wait_ready(Duration::from_secs(60)).await?;
            }
            other => bail!("a journey asked the harness for {other:?}, which it does not do"),
        }
        std::fs::rename(&path, dir.join(format!("{what}.done")))?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn journeys_through_the_web_ui() -> Result<()> {
    let github = fake_github::start().await?;
    let mut settings = github.settings();
    settings.push(("BERTH_FRONTEND_DIR", built_ui()?));
    let mut platform = Platform::start_with(&settings).await?;
    let base = platform.base_url.clone();
    github.expect_redirect_uri(&format!("{base}/api/v1/auth/github/callback"));
    // A deep link reaches the UI too: the browser asks for it on a reload.
    serves_the_ui(&base, "/").await?;
    serves_the_ui(&base, "/apps/new").await?;

    let repo = AppRepo::python("v1")?;
    let mail_dir = platform
        .env
        .get("BERTH_MAIL_DIR")
        .context("the stack's env file has BERTH_MAIL_DIR (the SMTP sink's Maildir)")?
        .clone();
    let repos: Vec<String> = fake_github::REPOS
        .iter()
        .map(|(name, _)| format!("{}/{name}", fake_github::LOGIN))
        .collect();
    let artifacts = repo_root().join("tests/artifacts/web-ui");
    let control = platform.dir.path().join("control");
    std::fs::create_dir(&control)?;
    let settings = [
        ("BERTH_E2E_BASE_URL", base.clone()),
        ("BERTH_E2E_REPO_URL", repo.url()),
        ("BERTH_E2E_MAIL_DIR", mail_dir),
        ("BERTH_E2E_OUTPUT_DIR", artifacts.display().to_string()),
        ("BERTH_E2E_GITHUB_LOGIN", fake_github::LOGIN.into()),
        ("BERTH_E2E_GITHUB_REPOS", repos.join(",")),
        ("BERTH_E2E_GITHUB_BRANCHES", fake_github::BRANCHES.join(",")),
        ("BERTH_E2E_CONTROL_DIR", control.display().to_string()),
    ];
    let journeys = playwright::run(&settings);
    tokio::pin!(journeys);
    let run = loop {
        tokio::select! {
            run = &mut journeys => break run?,
            _ = tokio::time::sleep(Duration::from_millis(100)) => {
                serve_requests(&mut platform, &control).await?;
            }
        }
    };
    ensure!(
        run.success,
        "the Playwright journeys failed (traces in {}):\n{}\n{}",
        artifacts.display(),
        run.output,
        platform.all_output()
    );

    // The GitHub sign-in went through the whole flow, in order, and Create
    // app read the repositories and the chosen one's branches.
    let calls = github.calls();
    let first = fake_github::REPOS[0].0;
    let expected = [
        "GET /login/oauth/authorize".to_owned(),
        "POST /login/oauth/access_token".to_owned(),
        "GET /user".to_owned(),
        "GET /user/emails".to_owned(),
        "GET /user/repos".to_owned(),
        format!("GET /repos/{}/{first}/branches", fake_github::LOGIN),
    ];
    let positions: Vec<Option<usize>> = expected
        .iter()
        .map(|call| calls.iter().position(|c| c == call))
        .collect();
    ensure!(
        positions.iter().all(Option::is_some) && positions.windows(2).all(|w| w[0] < w[1]),
        "the fake GitHub did not get {expected:?} in that order; it got {calls:?}"
    );
    Ok(())
}
