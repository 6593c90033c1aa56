//! Runtime plumbing every berth process shares: configuration pieces, the
//! supervised RabbitMQ broker (publisher with confirms, consumer loop with
//! delayed retries and dead-lettering, dead-letter consumer), the Kafka log
//! producer, and the ops endpoints.

pub mod broker;
pub mod config;
pub mod control;
#[cfg(feature = "engine")]
pub mod engine;
#[cfg(feature = "fence")]
pub mod fence;
#[cfg(feature = "kube-fake")]
pub mod kube_fake;
#[cfg(feature = "kubernetes")]
pub mod kubernetes;
pub mod log_topics;
pub mod logs;
pub mod names;
pub mod ops;
#[cfg(feature = "registry_auth")]
pub mod registry_auth;
pub mod repo_policy;
pub mod shutdown;

pub use broker::{
    Broker, BrokerError, DeadLetter, DeadLetterHandler, DeliveryInfo, Handler, MessagePublisher,
    Outcome, RetryPolicy,
};
pub use logs::{LogProducer, LogSink};
#[cfg(feature = "testing")]
pub mod testing;
