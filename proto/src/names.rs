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
/// Snapshots of what should run, consumed by the deploy-workers' reconcilers.
/// A single-active-consumer queue: with several deploy-workers, one
/// reconciles at a time (the others stand by), so two reconcilers never
/// repair the same app at once.
pub const RECONCILE_QUEUE: &str = "berth.reconcile";
/// Work queues where only one consumer at a time receives messages.
pub const SINGLE_ACTIVE_QUEUES: [&str; 1] = [RECONCILE_QUEUE];
/// The routing key of cancellations. It has no queue of its own: every
/// worker process binds a private, exclusive queue to it on [`EXCHANGE`], so
/// each one hears every cancellation (a direct exchange copies a message to
/// every queue bound with its key).
pub const CONTROL_ROUTING_KEY: &str = "berth.control";
/// Prefix of the workers' private control queues (`berth.control.<process>.<id>`).
pub const CONTROL_QUEUE_PREFIX: &str = "berth.control.";
/// Every work queue berth declares.
pub const WORK_QUEUES: [&str; 4] = [BUILDS_QUEUE, DEPLOYS_QUEUE, INFORM_QUEUE, RECONCILE_QUEUE];
/// Header on a dead-lettered message that says why it was refused.
pub const DEAD_LETTER_REASON_HEADER: &str = "x-berth-reason";
/// Header counting how often a message went through a retry queue.
pub const RETRIES_HEADER: &str = "x-berth-retries";
/// Header with the milliseconds a message has waited in retry queues.
pub const RETRY_WAITED_HEADER: &str = "x-berth-retry-waited-ms";
/// Header with why the last attempt at a retried message failed.
pub const LAST_ERROR_HEADER: &str = "x-berth-last-error";
/// Prefix of every per-app log topic.
pub const LOG_TOPIC_PREFIX: &str = "berth.logs.";

/// The dead-letter queue that collects what `queue` refused.
pub fn dead_letter_queue(queue: &str) -> String {
    format!("{queue}.dead")
}

/// The retry queue that holds `queue`'s messages for `delay_ms` before
/// handing them back to it (`berth.builds.retry.5s`, `berth.inform.retry.100ms`).
pub fn retry_queue(queue: &str, delay_ms: u64) -> String {
    if delay_ms.is_multiple_of(1000) {
        format!("{queue}.retry.{}s", delay_ms / 1000)
    } else {
        format!("{queue}.retry.{delay_ms}ms")
    }
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
        assert_eq!(retry_queue(BUILDS_QUEUE, 5000), "berth.builds.retry.5s");
        assert_eq!(retry_queue(INFORM_QUEUE, 100), "berth.inform.retry.100ms");
    }
}
