//! The one envelope every queue message travels in, and its decoding.
//!
//! Decoding is two-step on purpose: first the envelope, then the payload for
//! its `type` and `version`. Each step fails with its own [`DecodeError`], and
//! that text is the reason a consumer writes on the dead-lettered message.

use crate::messages::{
    AppRemovalRequested, AppScaleRequested, BuildRequested, Cancellation, DeployRequested,
    DeploymentProgress, DeploymentWaiting, DesiredState, ReleaseFailing, RuntimeStatus,
};
use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use uuid::Uuid;

/// A message payload type, with its wire name, version and queue.
pub trait Payload: Serialize + DeserializeOwned {
    const TYPE: &'static str;
    const VERSION: u32;
    const QUEUE: &'static str;
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    #[serde(rename = "type")]
    pub kind: String,
    pub version: u32,
    /// Unique per message; stays the same when the message is redelivered.
    pub id: Uuid,
    /// The deployment it is about; `null` for app-wide commands.
    pub deployment_id: Option<Uuid>,
    /// How many times the sender has tried this step of this deployment.
    pub attempt: u32,
    pub sent_at: DateTime<Utc>,
    /// Propagated tracing context (W3C `traceparent` and friends).
    #[serde(default)]
    pub trace: BTreeMap<String, String>,
    /// After this instant the work is no longer wanted: the backend has
    /// ended (or is about to end) the deployment `timed_out`, so a worker
    /// that receives the message later refuses it instead of doing it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline: Option<DateTime<Utc>>,
    pub payload: serde_json::Value,
}

#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("the message is not a berth envelope: {0}")]
    Malformed(String),
    #[error("unknown message type `{0}`")]
    UnknownType(String),
    #[error("message type `{kind}` version {version} is not supported (this consumer speaks version {supported})")]
    UnsupportedVersion {
        kind: String,
        version: u32,
        supported: u32,
    },
    #[error("the payload of `{kind}` is invalid: {error}")]
    InvalidPayload { kind: String, error: String },
    #[error("`{kind}` does not belong on this queue")]
    WrongQueue { kind: String },
}

impl Envelope {
    pub fn new<P: Payload>(deployment_id: Option<Uuid>, attempt: u32, payload: &P) -> Self {
        Self {
            kind: P::TYPE.to_owned(),
            version: P::VERSION,
            id: Uuid::now_v7(),
            deployment_id,
            attempt,
            sent_at: Utc::now(),
            trace: BTreeMap::new(),
            deadline: None,
            payload: serde_json::to_value(payload).expect("payloads serialize"),
        }
    }

    /// The message's deadline passed at `now`.
    pub fn is_expired(&self, now: DateTime<Utc>) -> bool {
        self.deadline.is_some_and(|deadline| deadline <= now)
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("envelopes serialize")
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        serde_json::from_slice(bytes).map_err(|e| DecodeError::Malformed(e.to_string()))
    }

    /// The payload as `P`, after checking type and version.
    pub fn payload<P: Payload>(&self) -> Result<P, DecodeError> {
        if self.kind != P::TYPE {
            return Err(DecodeError::UnknownType(self.kind.clone()));
        }
        if self.version != P::VERSION {
            return Err(DecodeError::UnsupportedVersion {
                kind: self.kind.clone(),
                version: self.version,
                supported: P::VERSION,
            });
        }
        serde_json::from_value(self.payload.clone()).map_err(|e| DecodeError::InvalidPayload {
            kind: self.kind.clone(),
            error: e.to_string(),
        })
    }

    pub fn decode(&self) -> Result<Message, DecodeError> {
        Ok(match self.kind.as_str() {
            BuildRequested::TYPE => Message::BuildRequested(self.payload()?),
            DeployRequested::TYPE => Message::DeployRequested(self.payload()?),
            AppRemovalRequested::TYPE => Message::AppRemovalRequested(self.payload()?),
            AppScaleRequested::TYPE => Message::AppScaleRequested(self.payload()?),
            DeploymentProgress::TYPE => Message::DeploymentProgress(self.payload()?),
            Cancellation::TYPE => Message::Cancellation(self.payload()?),
            DesiredState::TYPE => Message::DesiredState(self.payload()?),
            RuntimeStatus::TYPE => Message::RuntimeStatus(self.payload()?),
            DeploymentWaiting::TYPE => Message::DeploymentWaiting(self.payload()?),
            ReleaseFailing::TYPE => Message::ReleaseFailing(self.payload()?),
            other => return Err(DecodeError::UnknownType(other.to_owned())),
        })
    }
}

/// Every message berth knows, decoded.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    BuildRequested(BuildRequested),
    DeployRequested(DeployRequested),
    AppRemovalRequested(AppRemovalRequested),
    AppScaleRequested(AppScaleRequested),
    DeploymentProgress(DeploymentProgress),
    Cancellation(Cancellation),
    DesiredState(DesiredState),
    RuntimeStatus(RuntimeStatus),
    DeploymentWaiting(DeploymentWaiting),
    ReleaseFailing(ReleaseFailing),
}

impl Message {
    /// The queue this message is consumed from.
    pub fn queue(&self) -> &'static str {
        match self {
            Self::BuildRequested(_) => BuildRequested::QUEUE,
            Self::DeployRequested(_) => DeployRequested::QUEUE,
            Self::AppRemovalRequested(_) => AppRemovalRequested::QUEUE,
            Self::AppScaleRequested(_) => AppScaleRequested::QUEUE,
            Self::DeploymentProgress(_) => DeploymentProgress::QUEUE,
            Self::Cancellation(_) => Cancellation::QUEUE,
            Self::DesiredState(_) => DesiredState::QUEUE,
            Self::RuntimeStatus(_) => RuntimeStatus::QUEUE,
            Self::DeploymentWaiting(_) => DeploymentWaiting::QUEUE,
            Self::ReleaseFailing(_) => ReleaseFailing::QUEUE,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::names::DEPLOYS_QUEUE;
    use crate::DeploymentState;

    #[test]
    fn a_progress_message_round_trips_with_the_documented_fields() {
        let deployment = Uuid::now_v7();
        let env = Envelope::new(
            Some(deployment),
            1,
            &DeploymentProgress::new(DeploymentState::Cloning),
        );
        let wire: serde_json::Value = serde_json::from_slice(&env.to_bytes()).unwrap();
        for field in [
            "type",
            "version",
            "id",
            "deployment_id",
            "attempt",
            "sent_at",
            "trace",
            "payload",
        ] {
            assert!(wire.get(field).is_some(), "missing {field}");
        }
        assert_eq!(wire["type"], "deployment.progress");
        let back = Envelope::from_bytes(&env.to_bytes()).unwrap();
        match back.decode().unwrap() {
            Message::DeploymentProgress(p) => assert_eq!(p.state, DeploymentState::Cloning),
            other => panic!("decoded as {other:?}"),
        }
    }

    #[test]
    fn malformed_unknown_and_unsupported_messages_say_why() {
        assert!(matches!(
            Envelope::from_bytes(b"{nope"),
            Err(DecodeError::Malformed(_))
        ));
        let mut env = Envelope::new(None, 1, &DeploymentProgress::new(DeploymentState::Live));
        env.kind = "build.exploded".into();
        let err = env.decode().unwrap_err();
        assert_eq!(err.to_string(), "unknown message type `build.exploded`");

        let mut env = Envelope::new(None, 1, &DeploymentProgress::new(DeploymentState::Live));
        env.version = 9;
        assert!(matches!(
            env.decode(),
            Err(DecodeError::UnsupportedVersion { version: 9, .. })
        ));

        let mut env = Envelope::new(None, 1, &DeploymentProgress::new(DeploymentState::Live));
        env.payload = serde_json::json!({"state": "sideways"});
        assert!(matches!(
            env.decode(),
            Err(DecodeError::InvalidPayload { .. })
        ));
        assert_eq!(
            Message::DeploymentProgress(DeploymentProgress::new(DeploymentState::Live)).queue(),
            crate::names::INFORM_QUEUE
        );
        assert_ne!(DEPLOYS_QUEUE, crate::names::INFORM_QUEUE);
    }
}
