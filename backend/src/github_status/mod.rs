//! Reporting deployments back to GitHub: a GitHub Deployment per berth
//! deployment, its statuses as it moves (queued, in_progress, then success
//! with the app's URL, failure or error with the log link, inactive once
//! replaced) and the matching commit status (`berth/<app>`).
//!
//! Only for an app whose repository is on the configured GitHub host and
//! whose owner linked a GitHub account: the calls use the owner's token.
//!
//! Statuses are public on public repositories, so an ended deployment is
//! described generically ("Build failed at step 3", "Deployment failed",
//! "Timed out while building"): its reason may quote build or app output,
//! and stays in berth, behind the status's link.
//! The reports are rows written in the same transaction as the deployment
//! or the state they report (`track`, `on_state`), so none is lost and the
//! pipeline never waits on GitHub; `background::github_status::StatusReporter` sends them
//! through `github_api::statuses`.

mod describe;

use describe::ended;
pub use describe::Phase;

use crate::apps_store::AppRow;
use crate::error::Result;
use berth_proto::DeploymentState;
use sqlx::PgConnection;
use uuid::Uuid;

/// GitHub's limit on a status description.
pub const MAX_DESCRIPTION: usize = 140;

/// What one report row asks GitHub to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Deployment,
    DeploymentStatus,
    CommitStatus,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Deployment => "deployment",
            Self::DeploymentStatus => "deployment_status",
            Self::CommitStatus => "commit_status",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Deployment, Self::DeploymentStatus, Self::CommitStatus]
            .into_iter()
            .find(|kind| kind.as_str() == s)
    }
}

/// One report: the kind, GitHub's state (empty for creating the
/// Deployment) and the description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub kind: Kind,
    pub state: &'static str,
    pub description: String,
}

/// `s` cut to GitHub's 140 characters.
pub fn short(s: &str) -> String {
    if s.chars().count() <= MAX_DESCRIPTION {
        return s.to_owned();
    }
    let mut cut: String = s.chars().take(MAX_DESCRIPTION - 1).collect();
    cut.push('…');
    cut
}

/// The reports a deployment reaching `state` makes: a deployment status,
/// then the commit status that says the same (none for `inactive`: the
/// commit did deploy). `phase` and `reason` say where an ended one ended
/// (only a step number is taken from the reason). `in_progress_sent`: the
/// deployment already reported `in_progress`, which is said once for all
/// the building steps.
pub fn reports_for(
    state: DeploymentState,
    phase: Phase,
    reason: Option<&str>,
    in_progress_sent: bool,
) -> Vec<Report> {
    use DeploymentState::*;
    let (deployment, commit, description) = match state {
        Queued => ("queued", Some("pending"), "Queued".to_owned()),
        Cloning | Building | Pushing | Deploying if in_progress_sent => return Vec::new(),
        Cloning => ("in_progress", Some("pending"), "Cloning".to_owned()),
        Building => ("in_progress", Some("pending"), "Building".to_owned()),
        Pushing => (
            "in_progress",
            Some("pending"),
            "Pushing the image".to_owned(),
        ),
        Deploying => ("in_progress", Some("pending"), "Deploying".to_owned()),
        Live => ("success", Some("success"), "Live".to_owned()),
        Failed => ("failure", Some("failure"), ended(state, phase, reason)),
        TimedOut | Cancelled => ("error", Some("error"), ended(state, phase, reason)),
        Superseded => ("inactive", None, "Replaced by a newer deployment".into()),
        RolledBack => ("inactive", None, "Rolled back".into()),
    };
    let mut reports = vec![Report {
        kind: Kind::DeploymentStatus,
        state: deployment,
        description: description.clone(),
    }];
    if let Some(commit) = commit {
        reports.push(Report {
            kind: Kind::CommitStatus,
            state: commit,
            description,
        });
    }
    reports
}

/// A full commit SHA (SHA-1 or SHA-256 hex): what GitHub's status API takes.
pub fn is_full_sha(sha: &str) -> bool {
    matches!(sha.len(), 40 | 64) && sha.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Reports the new deployment `deployment_id` of `app` to GitHub if the
/// app's repository is on `github_host` and its owner linked GitHub. In the
/// transaction that creates the deployment.
pub async fn track(
    conn: &mut PgConnection,
    deployment_id: Uuid,
    app: &AppRow,
    github_host: &str,
) -> Result<()> {
    let Some((owner, repo)) = crate::github_api::repo_url::repository(&app.repo_url, github_host)
    else {
        return Ok(());
    };
    let tracked = sqlx::query(
        "INSERT INTO github_deployments (deployment_id, owner, repo, environment)
         SELECT $1, $2, $3, $4 FROM github_accounts WHERE user_id = $5",
    )
    .bind(deployment_id)
    .bind(owner)
    .bind(repo)
    .bind(&app.name)
    .bind(app.owner_id)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if tracked > 0 {
        on_state(conn, deployment_id, DeploymentState::Queued).await?;
    }
    Ok(())
}

#[derive(sqlx::FromRow)]
struct Tracked {
    started_sha: Option<String>,
    commit_sha: Option<String>,
    endpoint: Option<String>,
    reason: Option<String>,
    /// The furthest in-progress state reached.
    furthest: Option<String>,
    in_progress_sent: bool,
}

/// Queues the reports of deployment `deployment_id` reaching `state`, in
/// the transaction that moved it (which holds its row). Reporting starts
/// once the full commit SHA is known: the GitHub Deployment is created
/// first, then the state is reported.
pub async fn on_state(
    conn: &mut PgConnection,
    deployment_id: Uuid,
    state: DeploymentState,
) -> Result<()> {
    let tracked = sqlx::query_as::<_, Tracked>(
        "SELECT g.commit_sha AS started_sha, d.commit_sha, d.endpoint, d.reason,
                (SELECT s.state FROM deployment_states s WHERE s.deployment_id = d.id
                 ORDER BY array_position(ARRAY['queued', 'cloning', 'building', 'pushing',
                                               'deploying'], s.state) DESC NULLS LAST
                 LIMIT 1) AS furthest,
                EXISTS (SELECT 1 FROM github_status_reports r WHERE r.deployment_id = g.deployment_id
                        AND r.kind = 'deployment_status' AND r.state = 'in_progress') AS in_progress_sent
         FROM github_deployments g JOIN deployments d ON d.id = g.deployment_id
         WHERE g.deployment_id = $1",
    )
    .bind(deployment_id)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(tracked) = tracked else {
        return Ok(());
    };
    let mut reports = Vec::new();
    if tracked.started_sha.is_none() {
        let Some(sha) = tracked.commit_sha.filter(|sha| is_full_sha(sha)) else {
            return Ok(());
        };
        // A deployment first seen once replaced is not worth a GitHub Deployment.
        if matches!(
            state,
            DeploymentState::Superseded | DeploymentState::RolledBack
        ) {
            return Ok(());
        }
        sqlx::query("UPDATE github_deployments SET commit_sha = $2 WHERE deployment_id = $1")
            .bind(deployment_id)
            .bind(&sha)
            .execute(&mut *conn)
            .await?;
        reports.push(Report {
            kind: Kind::Deployment,
            state: "",
            description: short(&format!("Deploy {} with berth", &sha[..7])),
        });
    }
    reports.extend(reports_for(
        state,
        Phase::from_state(tracked.furthest.as_deref()),
        tracked.reason.as_deref(),
        tracked.in_progress_sent,
    ));
    let environment_url = tracked
        .endpoint
        .filter(|url| url.starts_with("https://") || url.starts_with("http://"));
    for report in reports {
        let url = (report.kind == Kind::DeploymentStatus && report.state == "success")
            .then_some(environment_url.as_deref())
            .flatten();
        sqlx::query(
            "INSERT INTO github_status_reports (deployment_id, kind, state, description, environment_url)
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(deployment_id)
        .bind(report.kind.as_str())
        .bind((report.kind != Kind::Deployment).then_some(report.state))
        .bind(&report.description)
        .bind(url)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use DeploymentState::*;

    fn states(reports: &[Report]) -> Vec<(&'static str, &'static str)> {
        reports.iter().map(|r| (r.kind.as_str(), r.state)).collect()
    }

    fn reports_for(state: DeploymentState, reason: Option<&str>, sent: bool) -> Vec<Report> {
        super::reports_for(state, Phase::Build, reason, sent)
    }

    #[test]
    fn each_state_maps_to_githubs() {
        assert_eq!(
            states(&reports_for(Queued, None, false)),
            [
                ("deployment_status", "queued"),
                ("commit_status", "pending")
            ]
        );
        assert_eq!(
            states(&reports_for(Building, None, false)),
            [
                ("deployment_status", "in_progress"),
                ("commit_status", "pending")
            ]
        );
        assert!(reports_for(Deploying, None, true).is_empty());
        assert_eq!(
            states(&reports_for(Live, None, true)),
            [
                ("deployment_status", "success"),
                ("commit_status", "success")
            ]
        );
        assert_eq!(
            states(&reports_for(Failed, Some("no Dockerfile"), true)),
            [
                ("deployment_status", "failure"),
                ("commit_status", "failure")
            ]
        );
        assert_eq!(
            reports_for(Failed, Some("no Dockerfile"), true)[0].description,
            "Build failed"
        );
        for state in [TimedOut, Cancelled] {
            assert_eq!(
                states(&reports_for(state, None, true)),
                [("deployment_status", "error"), ("commit_status", "error")]
            );
        }
        for state in [Superseded, RolledBack] {
            assert_eq!(
                states(&reports_for(state, None, true)),
                [("deployment_status", "inactive")]
            );
        }
    }

    #[test]
    fn descriptions_fit_githubs_limit() {
        let long = "é".repeat(500);
        assert_eq!(short(&long).chars().count(), MAX_DESCRIPTION);
        assert!(short(&long).ends_with('…'));
        assert_eq!(short("fine"), "fine");
    }

    #[test]
    fn only_full_shas_are_reported() {
        assert!(is_full_sha(&"a".repeat(40)));
        assert!(is_full_sha(&"0".repeat(64)));
        assert!(!is_full_sha("abc1234"));
        assert!(!is_full_sha(&"g".repeat(40)));
    }
}
