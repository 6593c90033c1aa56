//! The streamer: follows every berth workload, including those started
//! later, and turns lifecycle events into `source: event` records.
//!
//! Start-up subscribes to events first (from the events checkpoint), then
//! lists the workloads, so none starts unseen in between. Each workload has
//! at most one follower; a follower whose stream ended re-follows while the
//! container runs again (Podman ends a log stream at every exit, even when
//! the restart policy brings the container back), and a `start` event that
//! arrives while a follower is finishing asks it to go on rather than
//! starting a second one.

use berth_proto::{LogRecord, LogSource as RecordSource, LogStream};
use chrono::DateTime;
use futures::StreamExt;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::checkpoint::CheckpointStore;
use crate::follower::{Ended, Follower};
use crate::sink::RecordSink;
use crate::source::{Lifecycle, LogSource, Workload, WorkloadEvent};

const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// How often checkpoints of vanished containers are looked for.
const SWEEP_EVERY: Duration = Duration::from_secs(600);
/// Event records waiting for Kafka; when they fill up, the events stream
/// waits (the engine keeps the events, and the checkpoint replays them).
const EVENTS_BUFFER: usize = 1024;

pub struct Streamer<S, K> {
    follower: Follower<S, K>,
    /// Followed workloads; `true` when a start arrived while it was ending.
    following: Mutex<HashMap<String, bool>>,
    tracker: TaskTracker,
    shutdown: CancellationToken,
    events_up: AtomicBool,
    /// Event records for [`Self::write_events`], from the events stream
    /// and from followers that find lines lost.
    records: mpsc::Sender<WorkloadEvent>,
    pending: Mutex<Option<mpsc::Receiver<WorkloadEvent>>>,
}

impl<S: LogSource, K: RecordSink> Streamer<S, K> {
    pub fn new(
        source: Arc<S>,
        sink: Arc<K>,
        store: CheckpointStore,
        max_in_flight: usize,
        shutdown: CancellationToken,
    ) -> Arc<Self> {
        let (records, pending) = mpsc::channel(EVENTS_BUFFER);
        Arc::new(Self {
            follower: Follower::new(source, sink, store, max_in_flight),
            following: Mutex::new(HashMap::new()),
            tracker: TaskTracker::new(),
            shutdown,
            events_up: AtomicBool::new(false),
            records,
            pending: Mutex::new(Some(pending)),
        })
    }

    /// Whether the events subscription is up (for `/readyz`).
    pub fn is_ready(&self) -> bool {
        self.events_up.load(Ordering::Relaxed)
    }

    /// Runs until shutdown; returns once every follower has delivered and
    /// checkpointed what it read.
    pub async fn run(self: Arc<Self>) {
        let store = &self.follower.store;
        let mut cursor = match self.recover_events_cursor().await {
            Some(cursor) => cursor,
            None => {
                // First start: events from now on, and remember that, so a
                // restart replays what happened while it was down.
                let now = chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default();
                if let Err(error) = store.save_events_cursor(now) {
                    tracing::error!(%error, "cannot save the events checkpoint");
                }
                now
            }
        };
        let pending = self.pending.lock().expect("lock poisoned").take();
        let pending = pending.expect("a streamer runs once");
        let written = CancellationToken::new();
        let writer = tokio::spawn(self.clone().write_events(pending, written.clone(), cursor));
        let mut first = true;
        let mut backoff = Duration::from_millis(250);
        while !self.shutdown.is_cancelled() {
            let mut events = self.follower.source.events(Some(cursor));
            if first || !self.events_up.load(Ordering::Relaxed) {
                // (Re)discover the workloads once the subscription exists.
                match self.follower.source.workloads().await {
                    Ok(workloads) => {
                        if first {
                            self.forget_vanished(&workloads).await;
                            first = false;
                        }
                        for workload in workloads {
                            self.ensure_following(workload, false);
                        }
                    }
                    Err(error) => {
                        tracing::warn!(%error, "cannot list the workloads; retrying");
                        if self.pause(&mut backoff).await {
                            break;
                        }
                        continue;
                    }
                }
            }
            self.events_up.store(true, Ordering::Relaxed);
            let mut sweep = tokio::time::interval(SWEEP_EVERY);
            sweep.tick().await;
            loop {
                let next = tokio::select! {
                    _ = self.shutdown.cancelled() => break,
                    _ = sweep.tick() => {
                        self.sweep().await;
                        continue;
                    }
                    next = events.next() => next,
                };
                match next {
                    Some(Ok(event)) if event.cursor <= cursor => {} // replayed
                    Some(Ok(event)) => {
                        backoff = Duration::from_millis(250);
                        cursor = event.cursor;
                        self.apply(&event);
                        tokio::select! {
                            _ = self.shutdown.cancelled() => break,
                            _ = self.records.send(event) => {}
                        }
                    }
                    Some(Err(error)) => {
                        tracing::warn!(%error, "the events stream failed; resubscribing");
                        break;
                    }
                    None => {
                        tracing::warn!("the events stream ended; resubscribing");
                        break;
                    }
                }
            }
            self.events_up.store(false, Ordering::Relaxed);
            if self.shutdown.is_cancelled() || self.pause(&mut backoff).await {
                break;
            }
        }
        self.tracker.close();
        self.tracker.wait().await;
        written.cancel();
        let _ = writer.await;
        tracing::info!("log-streamer stopped");
    }

    /// Sleeps `backoff` (doubling it); true when shutdown came first.
    async fn pause(&self, backoff: &mut Duration) -> bool {
        let wait = *backoff;
        *backoff = (*backoff * 2).min(MAX_BACKOFF);
        tokio::select! {
            _ = self.shutdown.cancelled() => true,
            _ = tokio::time::sleep(wait) => false,
        }
    }

    /// Forgets checkpoints of containers removed while nobody followed
    /// them (a removal missed while the streamer was down, say).
    async fn sweep(&self) {
        match self.follower.source.workloads().await {
            Ok(workloads) => self.forget_vanished(&workloads).await,
            Err(error) => tracing::warn!(%error, "cannot list the workloads to sweep checkpoints"),
        }
    }

    async fn forget_vanished(&self, workloads: &[Workload]) {
        // Checkpoint files are named after a stem of the id (a Kubernetes
        // container id has a `://`), so ids are compared as stems.
        let mut keep: HashSet<String> = self
            .lock()
            .keys()
            .map(|id| CheckpointStore::stem(id))
            .collect();
        keep.extend(
            workloads
                .iter()
                .map(|workload| CheckpointStore::stem(&workload.id)),
        );
        for stem in self.follower.store.known() {
            if !keep.contains(&stem) {
                tracing::info!(
                    container = stem,
                    "forgetting the checkpoint of a removed container"
                );
                self.report_lost(&stem, workloads).await;
                self.follower.forget(&stem);
            }
        }
    }

    /// Says in the app's log that a removed workload may have taken lines
    /// along, unless its log was read to its end. Not for a deleted app
    /// (none of its workloads is left): a record would bring back its topic.
    async fn report_lost(&self, id: &str, workloads: &[Workload]) {
        let Some((owner, position)) = self.follower.store.undrained(id) else {
            return;
        };
        if !workloads.iter().any(|w| w.app_id == owner.app_id) {
            return;
        }
        tracing::warn!(
            container = owner.name,
            after = position.second,
            "removed before its log was read to its end; lines may be lost"
        );
        metrics::counter!("berth_log_workloads_with_lost_lines_total").increment(1);
        let event = WorkloadEvent {
            workload: Workload {
                id: id.to_owned(),
                name: owner.name,
                app_id: owner.app_id,
                key: owner.key,
                running: false,
            },
            kind: Lifecycle::LinesLost {
                after: position.second,
            },
            at: chrono::Utc::now(),
            cursor: 0,
        };
        tokio::select! {
            _ = self.shutdown.cancelled() => {}
            _ = self.records.send(event) => {}
        }
    }

    fn apply(self: &Arc<Self>, event: &WorkloadEvent) {
        match &event.kind {
            Lifecycle::Started => self.ensure_following(event.workload.clone(), true),
            Lifecycle::Removed => {
                if !self.lock().contains_key(&event.workload.id) {
                    self.follower.forget(&event.workload.id);
                }
            }
            Lifecycle::Died { .. }
            | Lifecycle::OutOfMemory
            | Lifecycle::Reported { .. }
            | Lifecycle::LinesLost { .. } => {}
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, bool>> {
        self.following.lock().expect("registry poisoned")
    }

    /// Starts a follower for the workload; when one runs and the workload
    /// `started` again, asks it to go on after its current stream ends.
    fn ensure_following(self: &Arc<Self>, workload: Workload, started: bool) {
        let mut following = self.lock();
        if let Some(again) = following.get_mut(&workload.id) {
            *again |= started;
            return;
        }
        following.insert(workload.id.clone(), false);
        metrics::gauge!("berth_log_followed_containers").set(following.len() as f64);
        drop(following);
        tracing::info!(container = workload.name, app_id = %workload.app_id, "following");
        self.tracker.spawn(self.clone().follow(workload));
    }

    /// Follows one workload for as long as it exists and runs.
    async fn follow(self: Arc<Self>, workload: Workload) {
        let mut backoff = Duration::from_millis(250);
        loop {
            match self.follower.follow(&workload, &self.shutdown).await {
                Ok(Ended::Cancelled) => break,
                Ok(Ended::StreamEnded) => backoff = Duration::from_millis(250),
                Err(error) => {
                    tracing::warn!(container = workload.name, %error, "following failed; resuming from the checkpoint");
                    if self.pause(&mut backoff).await {
                        break;
                    }
                    // Removed meanwhile (a retired container, a stream cut
                    // by the removal): its log is gone with it, and asking
                    // for it again would fail forever. A stopped one is
                    // followed again, to ship the rest of its log.
                    if let Ok(None) = self.follower.source.is_running(&workload.id).await {
                        if let Ok(workloads) = self.follower.source.workloads().await {
                            self.report_lost(&workload.id, &workloads).await;
                        }
                        return self.forget_removed(&workload);
                    }
                    continue;
                }
            }
            if self.shutdown.is_cancelled() {
                break;
            }
            match self.follower.source.is_running(&workload.id).await {
                // Restarted (or the engine closed a live stream): go on.
                Ok(Some(true)) => {
                    if self.pause(&mut Duration::from_millis(200)).await {
                        break;
                    }
                }
                Ok(Some(false)) => {
                    let mut following = self.lock();
                    if following.get(&workload.id) == Some(&true) {
                        following.insert(workload.id.clone(), false);
                        continue;
                    }
                    following.remove(&workload.id);
                    metrics::gauge!("berth_log_followed_containers").set(following.len() as f64);
                    drop(following);
                    if let Err(error) = self.follower.store.mark_drained(&workload) {
                        tracing::warn!(container = workload.name, %error, "cannot record that its log was read to its end");
                    }
                    tracing::info!(container = workload.name, "stopped; no longer following");
                    return;
                }
                Ok(None) => return self.forget_removed(&workload),
                Err(error) => {
                    tracing::warn!(container = workload.name, %error, "cannot tell whether it runs");
                    if self.pause(&mut backoff).await {
                        break;
                    }
                }
            }
        }
        self.unfollow(&workload.id);
    }

    /// The workload is gone, and its log with it: no longer followed, its
    /// checkpoint forgotten.
    fn forget_removed(&self, workload: &Workload) {
        self.unfollow(&workload.id);
        self.follower.forget(&workload.id);
        tracing::info!(container = workload.name, "removed; checkpoint forgotten");
    }

    fn unfollow(&self, id: &str) {
        let mut following = self.lock();
        following.remove(id);
        metrics::gauge!("berth_log_followed_containers").set(following.len() as f64);
    }
}

#[path = "events.rs"]
mod events;

#[cfg(test)]
#[path = "service_tests.rs"]
mod follow_tests;
