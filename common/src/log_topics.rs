//! Which apps have a log topic, and deleting the topics of deleted apps.
//! Apart from [`crate::logs`] (which writes records) because only the
//! backend's retention prunes.

use crate::logs::LogError;
use berth_proto::names;
use rdkafka::admin::{AdminClient, AdminOptions};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::RDKafkaErrorCode;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

const TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Clone)]
pub struct LogTopics {
    admin: Arc<AdminClient<DefaultClientContext>>,
}

impl LogTopics {
    pub fn new(brokers: &str) -> Result<Self, LogError> {
        let admin = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .create()
            .map_err(LogError::Config)?;
        Ok(Self {
            admin: Arc::new(admin),
        })
    }

    /// The apps whose log topic exists.
    pub async fn apps(&self) -> Result<BTreeSet<Uuid>, LogError> {
        let admin = self.admin.clone();
        let metadata =
            tokio::task::spawn_blocking(move || admin.inner().fetch_metadata(None, TIMEOUT))
                .await
                .map_err(|_| LogError::Delivery(rdkafka::error::KafkaError::Canceled))?
                .map_err(LogError::Delivery)?;
        Ok(metadata
            .topics()
            .iter()
            .filter_map(|topic| names::app_of_log_topic(topic.name()))
            .collect())
    }

    /// Deletes the log topics of `apps`; a topic that is already gone is
    /// success.
    pub async fn delete(&self, apps: &[Uuid]) -> Result<(), LogError> {
        if apps.is_empty() {
            return Ok(());
        }
        let topics: Vec<String> = apps.iter().map(|app| names::log_topic(*app)).collect();
        let topics: Vec<&str> = topics.iter().map(String::as_str).collect();
        let options = AdminOptions::new().operation_timeout(Some(TIMEOUT));
        let results = self
            .admin
            .delete_topics(&topics, &options)
            .await
            .map_err(LogError::Delivery)?;
        for result in results {
            match result {
                Ok(_) | Err((_, RDKafkaErrorCode::UnknownTopicOrPartition)) => {}
                Err((topic, code)) => {
                    return Err(LogError::Topic {
                        topic,
                        reason: code.to_string(),
                    })
                }
            }
        }
        Ok(())
    }
}
