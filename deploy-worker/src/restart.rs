//! Restarting crashed instances with growing pauses. Podman's restart
//! policies restart at once, so an app that crashes at start spins; with
//! `BERTH_RESTART_POLICY=no` (the default) berth restarts a crashed
//! instance itself: 1 s after its first crash, twice as long after each
//! crash after it, at most [`MAX_PAUSE`]; an instance that ran
//! [`RESET_AFTER`] without crashing starts over at 1 s.

use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::time::Duration;
use tokio::time::Instant;

pub const MAX_PAUSE: Duration = Duration::from_secs(300);
pub const RESET_AFTER: Duration = Duration::from_secs(600);

/// The pause before the restart that follows crash number `crashes`
/// (from 1) of an instance.
pub fn pause(crashes: u32) -> Duration {
    let doublings = crashes.saturating_sub(1).min(16);
    Duration::from_secs(1u64 << doublings).min(MAX_PAUSE)
}

/// Each instance's recent crashes, and the restarts that are due.
#[derive(Debug, Default)]
pub struct Restarts {
    crashes: HashMap<String, (u32, DateTime<Utc>)>,
    due: Vec<(Instant, String)>,
}

impl Restarts {
    /// Counts a crash of `instance` at `at` and schedules its restart;
    /// returns the crash's number and the pause.
    pub fn crashed(&mut self, instance: &str, at: DateTime<Utc>) -> (u32, Duration) {
        let reset = chrono::Duration::from_std(RESET_AFTER).unwrap_or_default();
        self.crashes.retain(|_, (_, last)| at - *last < reset);
        let entry = self.crashes.entry(instance.to_owned()).or_insert((0, at));
        entry.0 += 1;
        entry.1 = at;
        let number = entry.0;
        let pause = pause(number);
        self.due.retain(|(_, id)| id != instance);
        self.due.push((Instant::now() + pause, instance.to_owned()));
        (number, pause)
    }

    /// When the next restart is due.
    pub fn next_due(&self) -> Option<Instant> {
        self.due.iter().map(|(at, _)| *at).min()
    }

    /// The instances whose restart is due by now.
    pub fn take_due(&mut self) -> Vec<String> {
        let now = Instant::now();
        let (due, later): (Vec<_>, Vec<_>) = self.due.drain(..).partition(|(at, _)| *at <= now);
        self.due = later;
        due.into_iter().map(|(_, id)| id).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_double_from_a_second_up_to_five_minutes() {
        let pauses: Vec<u64> = (1..=11).map(|n| pause(n).as_secs()).collect();
        assert_eq!(pauses, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300]);
        assert_eq!(pause(u32::MAX), MAX_PAUSE);
    }

    #[test]
    fn an_instance_that_ran_ten_minutes_starts_over() {
        let mut restarts = Restarts::default();
        let start = DateTime::<Utc>::from_timestamp(1_700_000_000, 0).unwrap();
        let at = |secs| start + chrono::Duration::seconds(secs);
        assert_eq!(restarts.crashed("a", at(0)).0, 1);
        assert_eq!(restarts.crashed("a", at(5)), (2, Duration::from_secs(2)));
        assert_eq!(restarts.crashed("b", at(6)).0, 1, "counted per instance");
        assert_eq!(restarts.crashed("a", at(20)).0, 3);
        assert_eq!(
            restarts.crashed("a", at(20 + 601)),
            (1, Duration::from_secs(1))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_restart_is_due_after_its_pause_once() {
        let mut restarts = Restarts::default();
        restarts.crashed("a", Utc::now());
        restarts.crashed("a", Utc::now());
        assert!(restarts.take_due().is_empty());
        tokio::time::advance(Duration::from_millis(2100)).await;
        assert_eq!(restarts.take_due(), ["a"]);
        assert!(restarts.take_due().is_empty());
        assert_eq!(restarts.next_due(), None);
    }
}
