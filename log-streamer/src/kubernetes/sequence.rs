//! The cursors of the `kubernetes` driver's events.
//!
//! Kubernetes stamps what it reports to the second (an Event's
//! `lastTimestamp`, a container's `startedAt`), and two watches (Pods and
//! Events) deliver it in no common order, so an event's time in
//! nanoseconds can neither order nor tell apart the events of a second.
//! The cursor is therefore a [`Position`], as for log lines: the event's
//! second, and in the nanosecond digits how many events of that second this
//! stream gave out before it (`second * 10⁹ + count - 1`). It still orders
//! like a time, and is what the events checkpoint stores.
//!
//! * After a restart, the initial lists replay what Kubernetes still has
//!   (Events live an hour), sorted by time; [`Resume`] drops what is older
//!   than the checkpoint's second and skips as many events of that second
//!   as were delivered. Only when events of that very second were delivered
//!   in another order than the sorted replay can the wrong one of them be
//!   skipped; nothing older than the checkpoint's second repeats.
//! * Cursors only grow within a stream, so the streamer never drops an
//!   event that came late (stamped before one already given out); such an
//!   event counts in the latest second.
//! * A status seen again (every pod update re-reads it) gives nothing new:
//!   each happening has an identity, remembered for the stream's life.

use std::collections::HashMap;

use super::pods::Item;
use crate::checkpoint::{Position, Resume};
use crate::source::WorkloadEvent;

const NANOS: i64 = 1_000_000_000;
/// Identities older than this (seconds) are forgotten once many are kept;
/// Kubernetes keeps Events for an hour.
const REMEMBER: i64 = 2 * 3600;
const MANY: usize = 50_000;

pub fn position_of(cursor: i64) -> Position {
    Position {
        second: cursor.div_euclid(NANOS),
        lines: cursor.rem_euclid(NANOS).unsigned_abs() + 1,
        offset: None,
    }
}

pub fn cursor_of(position: Position) -> i64 {
    let count = i64::try_from(position.lines.saturating_sub(1)).unwrap_or(NANOS - 1);
    position.second * NANOS + count.min(NANOS - 1)
}

/// Gives items their cursors, in time order, leaving out what was seen in
/// this stream or delivered before `since`.
#[derive(Debug)]
pub struct Sequencer {
    resume: Resume,
    position: Position,
    last: i64,
    seen: HashMap<String, i64>,
}

impl Sequencer {
    /// From the events checkpoint `since`; everything Kubernetes has without one.
    pub fn new(since: Option<i64>) -> Self {
        let from = since.map(position_of).unwrap_or_default();
        Self {
            resume: Resume::new(from),
            position: from,
            last: since.unwrap_or(i64::MIN),
            seen: HashMap::new(),
        }
    }

    /// The new ones of `items` as events, oldest first.
    pub fn admit(&mut self, mut items: Vec<Item>) -> Vec<WorkloadEvent> {
        items.sort_by_key(|item| item.at);
        let events = items
            .into_iter()
            .filter_map(|item| self.admit_one(item))
            .collect();
        if self.seen.len() > MANY {
            let horizon = self.position.second - REMEMBER;
            self.seen.retain(|_, second| *second >= horizon);
        }
        events
    }

    fn admit_one(&mut self, item: Item) -> Option<WorkloadEvent> {
        let second = item.at.timestamp();
        if self.seen.insert(item.identity, second).is_some()
            || self.resume.already_delivered(second)
        {
            return None;
        }
        self.position = self.position.advance(second.max(self.position.second));
        // Strictly growing even where the count would not fit a second
        // (a first start's checkpoint is a plain time in nanoseconds).
        self.last = cursor_of(self.position).max(self.last.saturating_add(1));
        Some(WorkloadEvent {
            workload: item.workload,
            kind: item.kind,
            at: item.at,
            cursor: self.last,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::{Lifecycle, Workload};
    use chrono::{DateTime, Utc};
    use uuid::Uuid;

    const S: i64 = 1_795_313_598;

    fn item(identity: &str, second: i64) -> Item {
        Item {
            identity: identity.into(),
            at: DateTime::<Utc>::from_timestamp(second, 0).unwrap(),
            kind: Lifecycle::Reported {
                reason: identity.into(),
                message: String::new(),
            },
            workload: Workload {
                id: "pod-uid".into(),
                name: "web-1".into(),
                app_id: Uuid::nil(),
                key: "d".into(),
                running: false,
            },
        }
    }

    fn names(events: &[WorkloadEvent]) -> Vec<String> {
        events
            .iter()
            .map(|event| match &event.kind {
                Lifecycle::Reported { reason, .. } => reason.clone(),
                other => format!("{other:?}"),
            })
            .collect()
    }

    #[test]
    fn cursors_count_the_events_of_a_second_and_only_grow() {
        let mut sequencer = Sequencer::new(None);
        let events = sequencer.admit(vec![item("b", S), item("a", S - 1), item("c", S)]);
        assert_eq!(names(&events), ["a", "b", "c"], "oldest first");
        let cursors: Vec<_> = events.iter().map(|event| event.cursor).collect();
        assert_eq!(
            cursors,
            [(S - 1) * NANOS, S * NANOS, S * NANOS + 1],
            "the second, and how many of it came before"
        );
        // Seen again (a pod's status re-read): nothing new.
        assert!(sequencer.admit(vec![item("c", S)]).is_empty());
        // Late: stamped before the latest second, counted in it.
        let late = sequencer.admit(vec![item("late", S - 5)]);
        assert_eq!(late[0].cursor, S * NANOS + 2);
        assert_eq!(
            position_of(late[0].cursor),
            Position {
                second: S,
                lines: 3,
                offset: None,
            }
        );
    }

    #[test]
    fn a_restart_skips_what_was_delivered_and_repeats_nothing_older() {
        let replay = || {
            vec![
                item("old", S - 10),
                item("a", S),
                item("b", S),
                item("c", S),
                item("next", S + 1),
            ]
        };
        // Delivered up to "b": the checkpoint is its cursor.
        let mut first = Sequencer::new(Some((S - 20) * NANOS));
        let delivered = first.admit(replay());
        let checkpoint = delivered[2].cursor;
        assert_eq!(names(&delivered[..3]), ["old", "a", "b"]);

        let mut second = Sequencer::new(Some(checkpoint));
        let events = second.admit(replay());
        assert_eq!(names(&events), ["c", "next"]);
        assert!(events[0].cursor > checkpoint);
    }

    #[test]
    fn a_first_start_at_a_plain_time_gives_growing_cursors() {
        let now = S * NANOS + 999_999_999;
        let mut sequencer = Sequencer::new(Some(now));
        let events = sequencer.admit(vec![
            item("before", S - 1),
            item("same", S),
            item("after", S + 1),
        ]);
        assert_eq!(
            names(&events),
            ["after"],
            "the start's second counts as delivered"
        );
        assert!(events[0].cursor > now);
    }
}
