//! Flags several binaries share, flattened into each binary's clap `Config`.

use berth_proto::SecretKey;
use clap::Args;
use std::net::SocketAddr;

#[derive(Debug, Clone, Args)]
pub struct BrokerConfig {
    /// RabbitMQ URL, e.g. amqp://user:pass@127.0.0.1:5672/%2f
    #[arg(long, env = "BERTH_AMQP_URL")]
    pub amqp_url: String,
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
