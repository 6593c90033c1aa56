//! Flags several binaries share, flattened into each binary's clap `Config`.

use crate::broker::{Broker, RetryPolicy};
use berth_proto::SecretKey;
use clap::Args;
use std::net::SocketAddr;
use std::time::Duration;

#[derive(Debug, Clone, Args)]
pub struct BrokerConfig {
    /// RabbitMQ URL, e.g. amqp://user:pass@127.0.0.1:5672/%2f
    #[arg(long, env = "BERTH_AMQP_URL")]
    pub amqp_url: String,
    /// How long, in seconds, a message that keeps failing for a passing
    /// reason is retried (waits between attempts added up) before it is
    /// dead-lettered.
    #[arg(long, env = "BERTH_RETRY_BUDGET_SECS", default_value_t = 900)]
    pub retry_budget_secs: u64,
}

impl BrokerConfig {
    /// The broker these flags describe, named `name` in RabbitMQ's
    /// connection list.
    pub fn broker(&self, name: &str) -> Broker {
        let budget = Duration::from_secs(self.retry_budget_secs);
        Broker::new(self.amqp_url.clone(), name).with_retry(RetryPolicy::with_budget(budget))
    }
}

#[derive(Debug, Clone, Args)]
pub struct KafkaConfig {
    /// Kafka bootstrap servers, comma separated.
    #[arg(long, env = "BERTH_KAFKA_BROKERS", default_value = "127.0.0.1:9092")]
    pub kafka_brokers: String,
    /// How long app log topics keep records, in hours.
    #[arg(long, env = "BERTH_LOG_RETENTION_HOURS", default_value_t = 168)]
    pub log_retention_hours: u64,
}

#[derive(Debug, Clone, Args)]
pub struct SecretKeyConfig {
    /// 32-byte key, base64, that seals env vars and tokens in messages and at rest.
    #[arg(long, env = "BERTH_SECRET_KEY", hide_env_values = true)]
    pub secret_key: String,
}

impl SecretKeyConfig {
    pub fn key(&self) -> anyhow::Result<SecretKey> {
        SecretKey::from_base64(&self.secret_key)
            .map_err(|e| anyhow::anyhow!("BERTH_SECRET_KEY: {e}"))
    }
}

#[derive(Debug, Clone, Args)]
pub struct OpsConfig {
    /// Where /healthz, /readyz and /metrics are served.
    #[arg(long, env = "BERTH_OPS_ADDR", default_value = "127.0.0.1:0")]
    pub ops_addr: SocketAddr,
}
