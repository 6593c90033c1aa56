//! When and how long a message waits before its next attempt, and what a
//! handler learns about the delivery it handles.
//!
//! A retried message is not handed back to its work queue (that would count
//! against the queue's delivery limit within seconds). It is copied into a
//! retry queue of a fixed delay (one queue per delay tier, so every message
//! in a queue expires in the order it arrived), with headers that count the
//! retries and the time waited; when the delay is over the broker
//! dead-letters it back to the work queue through the `berth` exchange.

use berth_proto::names;
use lapin::types::{AMQPValue, FieldTable};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Default delay tiers: the n-th retry waits `DEFAULT_TIERS[n]`, every
/// later one the last tier.
pub const DEFAULT_TIERS: [Duration; 5] = [
    Duration::from_secs(1),
    Duration::from_secs(5),
    Duration::from_secs(20),
    Duration::from_secs(60),
    Duration::from_secs(120),
];

/// Default total wait before a message that keeps failing is dead-lettered.
pub const DEFAULT_BUDGET: Duration = Duration::from_secs(15 * 60);

/// How a consumer spaces the attempts at a message that returned
/// [`Outcome::Retry`](super::Outcome::Retry), and when it gives up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    tiers: Vec<Duration>,
    budget: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self::new(DEFAULT_TIERS.to_vec(), DEFAULT_BUDGET)
    }
}

impl RetryPolicy {
    /// `tiers` are the delays (whole milliseconds, at least 1 ms; sorted and
    /// deduplicated here); `budget` is the total time a message may wait
    /// in retry queues: a retry that would exceed it dead-letters instead.
    pub fn new(tiers: Vec<Duration>, budget: Duration) -> Self {
        let mut tiers: Vec<Duration> = tiers
            .into_iter()
            .map(|tier| Duration::from_millis(tier.as_millis().max(1) as u64))
            .collect();
        tiers.sort();
        tiers.dedup();
        assert!(!tiers.is_empty(), "a retry policy needs a delay tier");
        Self { tiers, budget }
    }

    /// The default tiers with another budget.
    pub fn with_budget(budget: Duration) -> Self {
        Self::new(DEFAULT_TIERS.to_vec(), budget)
    }

    pub fn tiers(&self) -> &[Duration] {
        &self.tiers
    }

    pub fn budget(&self) -> Duration {
        self.budget
    }

    /// The delay before the retry that follows `retries` earlier ones, or
    /// `None` when waiting it would exceed the budget.
    pub fn next_delay(&self, retries: u32, waited: Duration) -> Option<Duration> {
        let delay = self.tiers[(retries as usize).min(self.tiers.len() - 1)];
        (waited + delay <= self.budget).then_some(delay)
    }
}

/// What the consumer knows about one delivery, for the handler.
#[derive(Debug, Clone, Default)]
pub struct DeliveryInfo {
    /// How often this message went through a retry queue: 0 on its first
    /// attempt.
    pub retries: u32,
    /// Why the previous attempt asked for a retry, if one did.
    pub last_error: Option<String>,
    /// The broker delivered this message before without it being settled
    /// (a consumer crashed or lost its connection).
    pub redelivered: bool,
    /// Cancelled when the channel this delivery came on is gone: the broker
    /// has put the message back on its queue, so it will be handled again,
    /// and whatever this handler returns is ignored. Long work should stop.
    pub lost: CancellationToken,
}

impl DeliveryInfo {
    /// 1 on the first attempt, 2 after one retry, ...
    pub fn attempt(&self) -> u32 {
        self.retries + 1
    }

    pub(crate) fn from_headers(
        headers: Option<&FieldTable>,
        redelivered: bool,
        lost: CancellationToken,
    ) -> Self {
        Self {
            retries: header_u64(headers, names::RETRIES_HEADER) as u32,
            last_error: header_text(headers, names::LAST_ERROR_HEADER),
            redelivered,
            lost,
        }
    }
}

/// The headers for the copy of a message that goes to a retry queue: the
/// original ones, without the broker's dead-lettering history (its own
/// count would grow with every round), plus the retry count, the time
/// waited and the last error.
pub(crate) fn retry_headers(
    original: Option<&FieldTable>,
    retries: u32,
    waited: Duration,
    last_error: &str,
) -> FieldTable {
    let mut headers = FieldTable::default();
    for (key, value) in original
        .map(|table| table.inner().iter())
        .into_iter()
        .flatten()
    {
        if !matches!(
            key.as_str(),
            "x-death" | "x-first-death-reason" | "x-first-death-queue" | "x-first-death-exchange"
        ) {
            headers.insert(key.clone(), value.clone());
        }
    }
    headers.insert(
        names::RETRIES_HEADER.into(),
        AMQPValue::LongLongInt(i64::from(retries)),
    );
    headers.insert(
        names::RETRY_WAITED_HEADER.into(),
        AMQPValue::LongLongInt(waited.as_millis() as i64),
    );
    headers.insert(
        names::LAST_ERROR_HEADER.into(),
        AMQPValue::LongString(last_error.into()),
    );
    headers
}

/// The time a message has waited in retry queues so far.
pub(crate) fn waited(headers: Option<&FieldTable>) -> Duration {
    Duration::from_millis(header_u64(headers, names::RETRY_WAITED_HEADER))
}

/// An unsigned integer header, whatever integer type carries it; 0 if absent.
pub(crate) fn header_u64(headers: Option<&FieldTable>, key: &str) -> u64 {
    match headers.and_then(|table| table.inner().get(key)) {
        Some(AMQPValue::ShortShortUInt(n)) => u64::from(*n),
        Some(AMQPValue::ShortUInt(n)) => u64::from(*n),
        Some(AMQPValue::LongUInt(n)) => u64::from(*n),
        Some(AMQPValue::ShortShortInt(n)) => (*n).max(0) as u64,
        Some(AMQPValue::ShortInt(n)) => (*n).max(0) as u64,
        Some(AMQPValue::LongInt(n)) => (*n).max(0) as u64,
        Some(AMQPValue::LongLongInt(n)) => (*n).max(0) as u64,
        _ => 0,
    }
}

/// A text header, if present.
pub(crate) fn header_text(headers: Option<&FieldTable>, key: &str) -> Option<String> {
    match headers.and_then(|table| table.inner().get(key)) {
        Some(AMQPValue::LongString(text)) => Some(text.to_string()),
        Some(AMQPValue::ShortString(text)) => Some(text.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn delays_grow_by_tier_then_stay_at_the_last_until_the_budget_is_spent() {
        let policy = RetryPolicy::new(vec![ms(400), ms(100), ms(200)], ms(1500));
        assert_eq!(policy.tiers(), &[ms(100), ms(200), ms(400)]);
        assert_eq!(policy.next_delay(0, ms(0)), Some(ms(100)));
        assert_eq!(policy.next_delay(1, ms(100)), Some(ms(200)));
        assert_eq!(policy.next_delay(2, ms(300)), Some(ms(400)));
        assert_eq!(policy.next_delay(3, ms(700)), Some(ms(400)));
        assert_eq!(policy.next_delay(4, ms(1100)), Some(ms(400)));
        assert_eq!(policy.next_delay(5, ms(1500)), None);
    }

    #[test]
    fn the_default_policy_retries_for_about_fifteen_minutes() {
        let policy = RetryPolicy::default();
        let (mut retries, mut waited) = (0, Duration::ZERO);
        while let Some(delay) = policy.next_delay(retries, waited) {
            retries += 1;
            waited += delay;
        }
        assert!(waited > Duration::from_secs(12 * 60), "{waited:?}");
        assert!(waited <= DEFAULT_BUDGET);
        assert!((8..=15).contains(&retries), "{retries}");
    }

    #[test]
    fn retry_headers_count_and_drop_the_brokers_history() {
        let mut original = FieldTable::default();
        original.insert("traceparent".into(), AMQPValue::LongString("00-1".into()));
        original.insert("x-death".into(), AMQPValue::LongString("...".into()));
        let headers = retry_headers(Some(&original), 3, ms(700), "database down");
        assert_eq!(header_u64(Some(&headers), names::RETRIES_HEADER), 3);
        assert_eq!(waited(Some(&headers)), ms(700));
        assert_eq!(
            header_text(Some(&headers), names::LAST_ERROR_HEADER).as_deref(),
            Some("database down")
        );
        assert!(headers.inner().contains_key("traceparent"));
        assert!(!headers.inner().contains_key("x-death"));
        let info = DeliveryInfo::from_headers(Some(&headers), true, CancellationToken::new());
        assert_eq!(
            (info.retries, info.attempt(), info.redelivered),
            (3, 4, true)
        );
        assert_eq!(info.last_error.as_deref(), Some("database down"));
    }
}
