//! The publishing side of [`Broker`]: one cached connection and channel with
//! publisher confirms, a timeout on every publish, and a fresh connection
//! (which re-declares the topology) after anything went wrong.

use super::{Broker, BrokerError, MessagePublisher};
use async_trait::async_trait;
use berth_proto::{names, Envelope};
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Confirmation};

impl Broker {
    /// Connects and declares the topology; for start-up checks and setup.
    pub async fn ensure_topology(&self) -> Result<(), BrokerError> {
        match tokio::time::timeout(self.inner.publish_timeout, self.publisher_channel()).await {
            Ok(result) => result.map(drop),
            Err(_) => {
                self.forget_publisher().await;
                Err(BrokerError::Timeout(self.inner.publish_timeout))
            }
        }
    }

    pub fn is_connected(&self) -> bool {
        self.inner
            .publisher
            .try_lock()
            .map(|guard| {
                guard
                    .as_ref()
                    .is_some_and(|(connection, _)| connection.status().connected())
            })
            .unwrap_or(true)
    }

    async fn publisher_channel(&self) -> Result<Channel, BrokerError> {
        let mut guard = self.inner.publisher.lock().await;
        if let Some((connection, channel)) = guard.as_ref() {
            if connection.status().connected() && channel.status().connected() {
                return Ok(channel.clone());
            }
        }
        *guard = None;
        let (connection, channel) = self.connect("publisher").await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        *guard = Some((connection, channel.clone()));
        Ok(channel)
    }

    /// Drops the cached connection: the next publish connects again and
    /// re-declares the topology (a queue or binding may have been deleted,
    /// or the channel may be wedged). The old connection closes once the
    /// publishes still using it are over.
    async fn forget_publisher(&self) {
        drop(self.inner.publisher.lock().await.take());
    }

    /// Publishes with `mandatory` and waits for the broker's confirm, for at
    /// most the publish timeout.
    pub(crate) async fn publish_raw(
        &self,
        exchange: &str,
        routing_key: &str,
        body: &[u8],
        headers: FieldTable,
    ) -> Result<(), BrokerError> {
        let timeout = self.inner.publish_timeout;
        let attempt = async {
            let channel = self.publisher_channel().await?;
            let properties = BasicProperties::default()
                .with_delivery_mode(2)
                .with_content_type("application/json".into())
                .with_headers(headers);
            let options = BasicPublishOptions {
                mandatory: true,
                ..Default::default()
            };
            let confirmation = channel
                .basic_publish(
                    exchange.into(),
                    routing_key.into(),
                    options,
                    body,
                    properties,
                )
                .await?
                .await?;
            match confirmation {
                Confirmation::Ack(None) | Confirmation::NotRequested => Ok(()),
                Confirmation::Ack(Some(_)) => Err(BrokerError::Unroutable(routing_key.into())),
                Confirmation::Nack(_) => Err(BrokerError::Nacked),
            }
        };
        let result = match tokio::time::timeout(timeout, attempt).await {
            Ok(result) => result,
            Err(_) => Err(BrokerError::Timeout(timeout)),
        };
        if result.is_err() {
            self.forget_publisher().await;
        }
        result
    }

    /// Re-publishes a refused message to the dead-letter exchange, keeping
    /// its body and headers and adding why it was refused.
    pub async fn dead_letter(
        &self,
        queue: &str,
        body: &[u8],
        original: Option<&FieldTable>,
        reason: &str,
    ) -> Result<(), BrokerError> {
        let mut headers = original.cloned().unwrap_or_default();
        headers.insert(
            names::DEAD_LETTER_REASON_HEADER.into(),
            AMQPValue::LongString(reason.into()),
        );
        self.publish_raw(names::DEAD_LETTER_EXCHANGE, queue, body, headers)
            .await
    }
}

#[async_trait]
impl MessagePublisher for Broker {
    async fn publish(&self, routing_key: &str, envelope: &Envelope) -> Result<(), BrokerError> {
        self.publish_raw(
            names::EXCHANGE,
            routing_key,
            &envelope.to_bytes(),
            FieldTable::default(),
        )
        .await
    }
}
