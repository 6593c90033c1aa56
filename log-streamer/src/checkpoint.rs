//! Resuming a container's log without losing or repeating a line.
//!
//! Engines are asked for a container's log `since` a UNIX second, and
//! Podman 4.3's Docker-compatible endpoint stamps lines to the second only,
//! so a timestamp cannot say which of several lines printed in the same
//! second was the last one shipped. The checkpoint therefore is a
//! [`Position`]: the second of the last delivered line plus how many
//! delivered lines carry that second. Resuming asks for the log since that
//! second (inclusive: the engine returns every line of it, in the order
//! they were printed) and skips that many lines of it ([`Resume`]).
//!
//! * A position only moves after Kafka confirmed the line: lines are
//!   enqueued to the producer as they are read, their deliveries awaited in
//!   order (a bounded number in flight), and the checkpoint written after
//!   each run of confirmed deliveries. A graceful stop drains the in-flight
//!   lines first, so a restart repeats nothing.
//! * A crash can come between Kafka's confirmation and the checkpoint's
//!   write. So each record carries the position after its line (a Kafka
//!   header, [`berth_common::logs::MARK_HEADER`]) and the checkpoint holds
//!   the topic offset its lines reach; following again first reads the
//!   topic after that offset and goes on from the last position stored
//!   there, if that is further ([`crate::follower`]). A container followed
//!   for the first time gets a checkpoint at the topic's end before any of
//!   its lines is shipped. Nothing is repeated and nothing lost.
//! * Files are written atomically: a temporary file, then `rename`.
//! * A restarted container (same id) keeps appending to the same log, so
//!   its checkpoint stays valid: following resumes from it after each
//!   restart, and lines of the earlier run are skipped.
//! * A line stamped earlier than the checkpoint's second (a clock stepping
//!   back) is shipped but does not move the position; an engine asked
//!   `since` would not return it again anyway.
//! * The events stream has its own checkpoint: the time (ns) of the last
//!   event whose record Kafka confirmed, and the event being stored, if
//!   any ([`PendingEvent`], see [`crate::service`]'s events writer).
//! * A removed container's checkpoint is deleted once its stream ended; at
//!   start-up, checkpoints of containers that no longer exist are deleted.
//! * The checkpoint also names whose log it is and whether the log was
//!   read to its end after the container stopped ([`CheckpointStore::
//!   mark_drained`]). A container removed before that (while the streamer
//!   was down, or cutting a stream short) may have taken lines along: the
//!   streamer then says so in the app's log rather than lose them silently.

use serde::{Deserialize, Serialize};
use std::cmp::Ordering;
use std::path::{Path, PathBuf};

use crate::error::StreamError;
use crate::source::Workload;

/// How far into a container's log the delivered lines reach.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    /// UNIX second of the last delivered line.
    pub second: i64,
    /// How many delivered lines are stamped with that second.
    pub lines: u64,
    /// The topic offset the delivered lines reach to (at least): where a
    /// restart looks for lines stored after the checkpoint was written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<i64>,
}

impl Position {
    /// The position after one more line stamped `second`.
    pub fn advance(self, second: i64) -> Self {
        match second.cmp(&self.second) {
            Ordering::Greater => Self {
                second,
                lines: 1,
                ..self
            },
            Ordering::Equal => Self {
                lines: self.lines + 1,
                ..self
            },
            Ordering::Less => self,
        }
    }

    /// How the position in `workload`'s log travels with a record
    /// (`<workload> <second>:<lines>`: records of one key can come from
    /// several workloads, the pods of one deployment).
    pub fn mark(self, workload: &str) -> String {
        format!("{workload} {}:{}", self.second, self.lines)
    }

    /// The position a [`mark`](Self::mark) of `workload` names.
    pub fn from_mark(mark: &str, workload: &str) -> Option<Self> {
        let position = mark.strip_prefix(workload)?.strip_prefix(' ')?;
        let (second, lines) = position.split_once(':')?;
        Some(Self {
            second: second.parse().ok()?,
            lines: lines.parse().ok()?,
            offset: None,
        })
    }

    /// Whether more lines are delivered at `self` than at `other`.
    pub fn is_past(self, other: Self) -> bool {
        (self.second, self.lines) > (other.second, other.lines)
    }
}

/// Whose log a checkpoint is of: enough to report in that app's log that
/// lines may be missing, after the container is gone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owner {
    pub app_id: uuid::Uuid,
    pub key: String,
    pub name: String,
}

/// A checkpoint file.
#[derive(Default, Serialize, Deserialize)]
struct Saved {
    #[serde(flatten)]
    position: Position,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    owner: Option<Owner>,
    /// The log was read to its end after the container stopped.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    drained: bool,
}

/// Skips, in a log read again `since` a position's second, the lines that
/// were delivered already.
#[derive(Debug, Clone)]
pub struct Resume {
    from: Position,
    to_skip: u64,
}

impl Resume {
    pub fn new(from: Position) -> Self {
        Self {
            from,
            to_skip: from.lines,
        }
    }

    /// Whether the next line, stamped `second`, was delivered before.
    pub fn already_delivered(&mut self, second: i64) -> bool {
        if second < self.from.second {
            return true;
        }
        if second == self.from.second && self.to_skip > 0 {
            self.to_skip -= 1;
            return true;
        }
        false
    }
}

/// Checkpoints on disk, one small JSON file per container.
#[derive(Debug, Clone)]
pub struct CheckpointStore {
    dir: PathBuf,
}

#[derive(Serialize, Deserialize)]
struct EventsCursor {
    time_nano: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pending: Option<PendingEvent>,
}

/// An event whose record is being stored: after a crash, the record is
/// looked for in the app's topic after `after` (the offset of its last
/// record before) by its mark, so that it is stored once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingEvent {
    pub cursor: i64,
    pub app_id: uuid::Uuid,
    pub key: String,
    pub after: i64,
}

impl CheckpointStore {
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self, StreamError> {
        let dir = dir.into();
        let containers = dir.join("containers");
        std::fs::create_dir_all(&containers).map_err(|source| StreamError::Checkpoint {
            path: containers,
            source,
        })?;
        Ok(Self { dir })
    }

    /// The name of a container's checkpoint file (without `.json`): its id
    /// with only the characters that cannot escape the folder. Docker ids
    /// are hex and stay as they are; a Kubernetes `containerd://<hex>` loses
    /// its `://`.
    pub fn stem(id: &str) -> String {
        id.chars()
            .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            .collect()
    }

    fn container_path(&self, id: &str) -> PathBuf {
        let stem = Self::stem(id);
        self.dir.join("containers").join(format!("{stem}.json"))
    }

    /// The container's position; the start of its log when none is saved.
    pub fn load(&self, id: &str) -> Position {
        self.saved(id).position
    }

    fn saved(&self, id: &str) -> Saved {
        read_json(&self.container_path(id)).unwrap_or_default()
    }

    pub fn save(&self, workload: &Workload, position: Position) -> Result<(), StreamError> {
        self.write(workload, position, false)
    }

    /// Records that the stopped workload's log was read to its end.
    pub fn mark_drained(&self, workload: &Workload) -> Result<(), StreamError> {
        self.write(workload, self.load(&workload.id), true)
    }

    fn write(
        &self,
        workload: &Workload,
        position: Position,
        drained: bool,
    ) -> Result<(), StreamError> {
        let saved = Saved {
            position,
            owner: Some(Owner {
                app_id: workload.app_id,
                key: workload.key.clone(),
                name: workload.name.clone(),
            }),
            drained,
        };
        write_atomically(&self.container_path(&workload.id), &saved)
    }

    /// Whose log the checkpoint (by [`stem`](Self::stem) or id) is of, and
    /// how far it was shipped, unless the log was read to its end.
    pub fn undrained(&self, id: &str) -> Option<(Owner, Position)> {
        let saved = self.saved(id);
        (!saved.drained).then_some(())?;
        Some((saved.owner?, saved.position))
    }

    pub fn forget(&self, id: &str) {
        let _ = std::fs::remove_file(self.container_path(id));
    }

    /// The [`stem`](Self::stem)s of the containers with a checkpoint.
    pub fn known(&self) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(self.dir.join("containers")) else {
            return Vec::new();
        };
        entries
            .filter_map(Result::ok)
            .filter_map(|entry| {
                let name = entry.file_name().into_string().ok()?;
                name.strip_suffix(".json").map(str::to_owned)
            })
            .collect()
    }

    pub fn events_cursor(&self) -> Option<i64> {
        read_json::<EventsCursor>(&self.dir.join("events.json")).map(|cursor| cursor.time_nano)
    }

    /// The event whose record was being stored when the streamer stopped.
    pub fn pending_event(&self) -> Option<PendingEvent> {
        read_json::<EventsCursor>(&self.dir.join("events.json"))?.pending
    }

    pub fn save_events_cursor(&self, time_nano: i64) -> Result<(), StreamError> {
        let cursor = EventsCursor {
            time_nano,
            pending: None,
        };
        write_atomically(&self.dir.join("events.json"), &cursor)
    }

    /// Notes, with the cursor so far, the event whose record is stored next.
    pub fn save_pending_event(
        &self,
        time_nano: i64,
        pending: PendingEvent,
    ) -> Result<(), StreamError> {
        let cursor = EventsCursor {
            time_nano,
            pending: Some(pending),
        };
        write_atomically(&self.dir.join("events.json"), &cursor)
    }
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Option<T> {
    let bytes = std::fs::read(path).ok()?;
    match serde_json::from_slice(&bytes) {
        Ok(value) => Some(value),
        Err(error) => {
            tracing::warn!(path = %path.display(), %error, "ignoring an unreadable checkpoint");
            None
        }
    }
}

/// Writes `value` to a temporary file next to `path`, then renames it over
/// `path`: a reader sees the old or the new checkpoint, never half of one.
fn write_atomically<T: Serialize>(path: &Path, value: &T) -> Result<(), StreamError> {
    let temporary = path.with_extension("json.tmp");
    let bytes = serde_json::to_vec(value).expect("checkpoints serialize");
    std::fs::write(&temporary, bytes)
        .and_then(|()| std::fs::rename(&temporary, path))
        .map_err(|source| StreamError::Checkpoint {
            path: path.to_owned(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Delivers `lines` (their seconds) up to `crash_after`, then resumes
    /// from the saved position over the log read again from its second.
    fn resumed(lines: &[i64], crash_after: usize) -> Vec<usize> {
        let mut position = Position::default();
        for &second in &lines[..crash_after] {
            position = position.advance(second);
        }
        let mut resume = Resume::new(position);
        lines
            .iter()
            .enumerate()
            .filter(|(_, &second)| second >= position.second) // what `since` returns
            .filter(|(_, &second)| !resume.already_delivered(second))
            .map(|(index, _)| index)
            .collect()
    }

    #[test]
    fn resuming_in_the_middle_of_a_busy_second_neither_loses_nor_repeats() {
        let lines = [10, 10, 11, 11, 11, 11, 12, 12, 13];
        for crash_after in 0..=lines.len() {
            assert_eq!(
                resumed(&lines, crash_after),
                (crash_after..lines.len()).collect::<Vec<_>>(),
                "crash after {crash_after} lines"
            );
        }
    }

    #[test]
    fn a_line_stamped_in_the_past_does_not_move_the_position() {
        let position = Position::default().advance(20).advance(20).advance(19);
        assert_eq!(
            position,
            Position {
                second: 20,
                lines: 2,
                offset: None,
            }
        );
    }

    fn workload(id: &str) -> Workload {
        Workload {
            id: id.into(),
            name: "berth-acme-web-0123".into(),
            app_id: uuid::Uuid::now_v7(),
            key: "d".into(),
            running: true,
        }
    }

    #[test]
    fn checkpoints_survive_a_reopen_and_can_be_forgotten() {
        let dir = tempfile::tempdir().unwrap();
        let store = CheckpointStore::open(dir.path()).unwrap();
        assert_eq!(store.load("abc"), Position::default());
        let abc = workload("abc");
        let position = Position {
            second: 1_795_000_000,
            lines: 3,
            offset: None,
        };
        store.save(&abc, position).unwrap();
        store.save_events_cursor(42).unwrap();
        let store = CheckpointStore::open(dir.path()).unwrap();
        assert_eq!(store.load("abc"), position);
        let owner = Owner {
            app_id: abc.app_id,
            key: abc.key.clone(),
            name: abc.name.clone(),
        };
        assert_eq!(store.undrained("abc"), Some((owner, position)));
        store.mark_drained(&abc).unwrap();
        assert_eq!(store.undrained("abc"), None, "read to its end");
        assert_eq!(store.load("abc"), position);
        store.save(&abc, position).unwrap();
        assert!(
            store.undrained("abc").is_some(),
            "a restart has more to read"
        );
        assert_eq!(store.events_cursor(), Some(42));
        assert_eq!(store.known(), vec!["abc".to_owned()]);
        store.forget("abc");
        assert!(store.known().is_empty());
        assert!(
            !dir.path().join("containers/abc.json.tmp").exists(),
            "no temporary file is left"
        );
    }

    #[test]
    fn a_checkpoint_of_an_earlier_version_still_reads() {
        let dir = tempfile::tempdir().unwrap();
        let store = CheckpointStore::open(dir.path()).unwrap();
        std::fs::write(
            dir.path().join("containers/old.json"),
            r#"{"second":1795000000,"lines":2,"offset":7}"#,
        )
        .unwrap();
        assert_eq!(
            store.load("old"),
            Position {
                second: 1_795_000_000,
                lines: 2,
                offset: Some(7)
            }
        );
        assert_eq!(store.undrained("old"), None, "no owner to report to");
    }

    #[test]
    fn ids_cannot_escape_the_state_dir() {
        let dir = tempfile::tempdir().unwrap();
        let store = CheckpointStore::open(dir.path()).unwrap();
        store
            .save(&workload("../../etc/x"), Position::default())
            .unwrap();
        assert_eq!(store.known(), vec!["....etcx".to_owned()]);
        store
            .save(&workload("containerd://0a1b"), Position::default())
            .unwrap();
        assert!(store
            .known()
            .contains(&CheckpointStore::stem("containerd://0a1b")));
        store.forget("containerd://0a1b");
        assert_eq!(store.known(), vec!["....etcx".to_owned()]);
    }
}
