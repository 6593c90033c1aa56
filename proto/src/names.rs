//! Names of the exchanges, queues and topics. Routing keys equal queue names.

use uuid::Uuid;

/// The direct exchange every berth message is published to.
pub const EXCHANGE: &str = "berth";
/// Where messages a consumer cannot handle end, with the reason in a header.
pub const DEAD_LETTER_EXCHANGE: &str = "berth.dlx";
/// Build requests, consumed by the build-worker.
pub const BUILDS_QUEUE: &str = "berth.builds";
/// Deploy, scale, stop and delete commands, consumed by the deploy-worker.
pub const DEPLOYS_QUEUE: &str = "berth.deploys";
/// Progress reports from the workers, consumed by the backend.
pub const INFORM_QUEUE: &str = "berth.inform";
/// The routing key of cancellations. It has no queue of its own: every
/// worker process binds a private, exclusive queue to it on [`EXCHANGE`], so
/// each one hears every cancellation (a direct exchange copies a message to
/// every queue bound with its key).
pub const CONTROL_ROUTING_KEY: &str = "berth.control";
/// Prefix of the workers' private control queues (`berth.control.<process>.<id>`).
pub const CONTROL_QUEUE_PREFIX: &str = "berth.control.";
/// Every work queue berth declares.
pub const WORK_QUEUES: [&str; 3] = [BUILDS_QUEUE, DEPLOYS_QUEUE, INFORM_QUEUE];
/// Header on a dead-lettered message that says why it was refused.
pub const DEAD_LETTER_REASON_HEADER: &str = "x-berth-reason";
/// Prefix of every per-app log topic.
pub const LOG_TOPIC_PREFIX: &str = "berth.logs.";

/// The dead-letter queue that collects what `queue` refused.
pub fn dead_letter_queue(queue: &str) -> String {
    format!("{queue}.dead")
}

/// The Kafka topic that holds an app's build, runtime and event log lines.
pub fn log_topic(app_id: Uuid) -> String {
    format!("{LOG_TOPIC_PREFIX}{app_id}")
}

/// The app id a log topic belongs to, if `topic` is one of berth's.
pub fn app_of_log_topic(topic: &str) -> Option<Uuid> {
    topic.strip_prefix(LOG_TOPIC_PREFIX)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_topic_round_trips() {
        let id = Uuid::now_v7();
        assert_eq!(app_of_log_topic(&log_topic(id)), Some(id));
        assert_eq!(app_of_log_topic("other.topic"), None);
        assert_eq!(dead_letter_queue(BUILDS_QUEUE), "berth.builds.dead");
    }
}
