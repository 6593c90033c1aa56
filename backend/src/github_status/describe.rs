//! What GitHub is told about a deployment that ended. Statuses are public
//! on public repositories, and a failure's reason may quote build or app
//! output, so the description says only where it ended (and a build step's
//! number); the reason stays in berth, behind the status's link.

use berth_proto::DeploymentState;

/// How far a deployment got before it ended: the furthest in-progress
/// state it reached (`deployment_states`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Queued,
    Build,
    Deploy,
}

impl Phase {
    /// From the furthest in-progress state reached, as stored.
    pub fn from_state(state: Option<&str>) -> Self {
        match state {
            Some("cloning" | "building" | "pushing") => Self::Build,
            Some("deploying") => Self::Deploy,
            _ => Self::Queued,
        }
    }
}

/// The build step a failure reason names ("... at step 3 (RUN ...)"): its
/// number only, never its text.
fn failed_step(reason: Option<&str>) -> Option<u32> {
    let rest = reason?.split_once("at step ")?.1;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok().filter(|step| *step > 0)
}

/// What GitHub is told about a deployment that ended: no reason text, which
/// may quote build output.
pub(super) fn ended(state: DeploymentState, phase: Phase, reason: Option<&str>) -> String {
    use DeploymentState::*;
    match (state, phase) {
        (Failed, Phase::Deploy) => "Deployment failed".into(),
        (Failed, _) => match failed_step(reason) {
            Some(step) => format!("Build failed at step {step}"),
            None => "Build failed".into(),
        },
        (TimedOut, Phase::Queued) => "Timed out while queued".into(),
        (TimedOut, Phase::Build) => "Timed out while building".into(),
        (TimedOut, Phase::Deploy) => "Timed out while deploying".into(),
        _ => "Cancelled".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use DeploymentState::*;

    #[test]
    fn ended_deployments_are_described_without_their_reason() {
        let output = "the build failed at step 3 (RUN ./configure --token=s3cr3t): \
                      s3cr3t leaked | make: *** [all] Error 1";
        let described = |state, phase, reason| {
            super::super::reports_for(state, phase, reason, true)
                .into_iter()
                .map(|r| r.description)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            described(Failed, Phase::Build, Some(output)),
            ["Build failed at step 3", "Build failed at step 3"]
        );
        assert_eq!(
            described(Failed, Phase::Deploy, Some("the app exited: s3cr3t"))[0],
            "Deployment failed"
        );
        assert_eq!(
            described(Failed, Phase::Queued, Some("at step 0x1"))[0],
            "Build failed"
        );
        assert_eq!(
            described(TimedOut, Phase::Build, Some("s3cr3t"))[0],
            "Timed out while building"
        );
        assert_eq!(
            described(Cancelled, Phase::Deploy, Some("s3cr3t"))[0],
            "Cancelled"
        );
        for state in [Failed, TimedOut, Cancelled] {
            for phase in [Phase::Queued, Phase::Build, Phase::Deploy] {
                for description in described(state, phase, Some(output)) {
                    assert!(!description.contains("s3cr3t"), "{description}");
                }
            }
        }
        assert_eq!(Phase::from_state(Some("pushing")), Phase::Build);
        assert_eq!(Phase::from_state(None), Phase::Queued);
    }
}
