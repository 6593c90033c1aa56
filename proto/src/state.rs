//! The deployment state machine.
//!
//! `queued → cloning → building → pushing → deploying → live`; any in-progress
//! state may end `failed`, `cancelled` or `timed_out`; a `live` deployment
//! becomes `superseded` or `rolled_back`, and so does a `queued` one that a
//! newer deployment of its app replaced before it started (`superseded`). Steps may be skipped forward (a
//! cached image goes from `cloning` straight to `deploying`, a rollback from
//! `queued`), never taken backward: inform messages are delivered at least
//! once and out of order, so the consumer must refuse stale ones.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeploymentState {
    Queued,
    Cloning,
    Building,
    Pushing,
    Deploying,
    Live,
    Failed,
    Cancelled,
    TimedOut,
    Superseded,
    RolledBack,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a deployment cannot go from `{from}` to `{to}`")]
pub struct TransitionError {
    pub from: DeploymentState,
    pub to: DeploymentState,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a deployment state")]
pub struct UnknownState(pub String);

impl DeploymentState {
    pub const ALL: [DeploymentState; 11] = [
        Self::Queued,
        Self::Cloning,
        Self::Building,
        Self::Pushing,
        Self::Deploying,
        Self::Live,
        Self::Failed,
        Self::Cancelled,
        Self::TimedOut,
        Self::Superseded,
        Self::RolledBack,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Cloning => "cloning",
            Self::Building => "building",
            Self::Pushing => "pushing",
            Self::Deploying => "deploying",
            Self::Live => "live",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
            Self::TimedOut => "timed_out",
            Self::Superseded => "superseded",
            Self::RolledBack => "rolled_back",
        }
    }

    /// The pipeline is still working on it.
    pub fn is_in_progress(self) -> bool {
        matches!(
            self,
            Self::Queued | Self::Cloning | Self::Building | Self::Pushing | Self::Deploying
        )
    }

    /// Nothing can happen to it any more.
    pub fn is_final(self) -> bool {
        !self.is_in_progress() && self != Self::Live
    }

    /// Position in the pipeline; used as the sequence number of inform
    /// messages, so a later report always carries a larger number.
    pub fn rank(self) -> u32 {
        match self {
            Self::Queued => 0,
            Self::Cloning => 1,
            Self::Building => 2,
            Self::Pushing => 3,
            Self::Deploying => 4,
            Self::Live | Self::Failed | Self::Cancelled | Self::TimedOut => 5,
            Self::Superseded | Self::RolledBack => 6,
        }
    }

    pub fn can_transition_to(self, next: Self) -> bool {
        use DeploymentState::*;
        match (self, next) {
            (from, Failed | Cancelled | TimedOut) => from.is_in_progress(),
            (Live, Superseded | RolledBack) => true,
            (Queued, Superseded) => true,
            (from, to) if from.is_in_progress() && to.is_in_progress() || to == Live => {
                from.is_in_progress() && to.rank() > from.rank()
            }
            _ => false,
        }
    }

    pub fn transition(self, next: Self) -> Result<Self, TransitionError> {
        if self.can_transition_to(next) {
            Ok(next)
        } else {
            Err(TransitionError {
                from: self,
                to: next,
            })
        }
    }

    /// How long a deployment may stay in this state before the reaper ends
    /// it `timed_out`; `None` for states that are not in progress.
    pub fn deadline(self) -> Option<std::time::Duration> {
        use std::time::Duration;
        match self {
            Self::Queued => Some(Duration::from_secs(30 * 60)),
            Self::Cloning => Some(Duration::from_secs(10 * 60)),
            Self::Building => Some(Duration::from_secs(60 * 60)),
            Self::Pushing => Some(Duration::from_secs(20 * 60)),
            Self::Deploying => Some(Duration::from_secs(15 * 60)),
            _ => None,
        }
    }
}

impl fmt::Display for DeploymentState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DeploymentState {
    type Err = UnknownState;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|state| state.as_str() == s)
            .ok_or_else(|| UnknownState(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::DeploymentState::*;
    use super::*;

    #[test]
    fn the_happy_path_is_allowed_step_by_step() {
        let path = [
            Queued, Cloning, Building, Pushing, Deploying, Live, Superseded,
        ];
        for pair in path.windows(2) {
            assert_eq!(pair[0].transition(pair[1]), Ok(pair[1]), "{pair:?}");
        }
    }

    #[test]
    fn steps_may_be_skipped_forward() {
        assert!(Cloning.can_transition_to(Deploying), "cached image");
        assert!(Queued.can_transition_to(Deploying), "rollback");
        assert!(Deploying.can_transition_to(Live));
    }

    #[test]
    fn backward_and_repeated_transitions_are_refused() {
        for (from, to) in [
            (Building, Cloning),
            (Live, Deploying),
            (Deploying, Queued),
            (Building, Building),
            (Live, Live),
        ] {
            assert_eq!(from.transition(to), Err(TransitionError { from, to }));
        }
    }

    #[test]
    fn a_stale_report_after_the_end_is_refused() {
        for end in [Failed, Cancelled, TimedOut, Superseded, RolledBack] {
            for next in DeploymentState::ALL {
                assert!(!end.can_transition_to(next), "{end} -> {next}");
            }
        }
        assert!(
            !Live.can_transition_to(Failed),
            "a live deployment cannot fail afterwards"
        );
    }

    #[test]
    fn every_in_progress_state_can_fail_time_out_or_be_cancelled() {
        for from in DeploymentState::ALL
            .into_iter()
            .filter(|s| s.is_in_progress())
        {
            for to in [Failed, Cancelled, TimedOut] {
                assert!(from.can_transition_to(to), "{from} -> {to}");
            }
            assert!(from.deadline().is_some(), "{from} has a deadline");
            assert_eq!(from.can_transition_to(Superseded), from == Queued);
        }
    }

    #[test]
    fn rank_grows_along_every_allowed_transition() {
        for from in DeploymentState::ALL {
            for to in DeploymentState::ALL {
                if from.can_transition_to(to) {
                    assert!(to.rank() > from.rank(), "{from} -> {to}");
                }
            }
        }
    }

    #[test]
    fn names_round_trip() {
        for state in DeploymentState::ALL {
            assert_eq!(state.as_str().parse(), Ok(state));
            let json = serde_json::to_string(&state).unwrap();
            assert_eq!(json, format!("\"{}\"", state.as_str()));
        }
        assert!("bogus".parse::<DeploymentState>().is_err());
    }
}
