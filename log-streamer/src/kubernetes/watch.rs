//! The `kubernetes` driver's events stream: two watchers, one on the app
//! Pods (their status says which instance started, exited, was OOM-killed;
//! a deletion removes them), one on the Events about Pods ([`super::events`]).
//!
//! The pod watcher also keeps the [`Registry`] that says where an
//! instance's log is. The first initial lists of both watchers are held
//! until both are in, and what the watches say meanwhile until after them,
//! so that what happened while the streamer was down replays in time
//! order (see [`super::sequence`] for the cursors).

use chrono::Utc;
use futures::stream::{self, BoxStream};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Event, Pod};
use kube::runtime::watcher; // the module and its `watcher` function
use kube::{Api, Client};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::events::{reported, Reported, EVENTS_FIELD_SELECTOR};
use super::pods::{self, Item, PodView, Registry};
use super::sequence::Sequencer;
use crate::error::StreamError;
use crate::source::WorkloadEvent;

/// How long an Event about a pod not seen yet waits for the pod watcher.
const PENDING_FOR: Duration = Duration::from_secs(10);
const MAX_PENDING: usize = 1000;

/// The merged stream; see the module docs.
pub fn stream(
    client: Client,
    label_selector: String,
    registry: Arc<Mutex<Registry>>,
    since: Option<i64>,
) -> BoxStream<'static, Result<WorkloadEvent, StreamError>> {
    let pods = watcher(
        Api::<Pod>::all(client.clone()),
        watcher::Config::default().labels(&label_selector),
    )
    .boxed();
    let events = watcher(
        Api::<Event>::all(client),
        watcher::Config::default().fields(EVENTS_FIELD_SELECTOR),
    )
    .boxed();
    let merged = Merged {
        pods,
        events,
        registry,
        sequencer: Sequencer::new(since),
        listing_pods: Vec::new(),
        listing_events: Vec::new(),
        first: Some(First::default()),
        pending: VecDeque::new(),
        out: VecDeque::new(),
    };
    stream::unfold(merged, |mut merged| async move {
        loop {
            if let Some(next) = merged.out.pop_front() {
                return Some((next, merged));
            }
            merged.step().await;
        }
    })
    .boxed()
}

type Watch<K> = BoxStream<'static, watcher::Result<watcher::Event<K>>>;

/// The first initial lists, held until both are in, and what the watches
/// said meanwhile (released after them).
#[derive(Default)]
struct First {
    pods: Option<Vec<PodView>>,
    events: Option<Vec<Event>>,
    later: Vec<Step>,
}

struct Merged {
    pods: Watch<Pod>,
    events: Watch<Event>,
    registry: Arc<Mutex<Registry>>,
    sequencer: Sequencer,
    listing_pods: Vec<PodView>,
    listing_events: Vec<Event>,
    first: Option<First>,
    /// Events about pods not seen yet, with when they came.
    pending: VecDeque<(Instant, Event)>,
    out: VecDeque<Result<WorkloadEvent, StreamError>>,
}

/// What one of the watches said (boxed: a Pod is large).
enum Step {
    Pod(Box<watcher::Event<Pod>>),
    Event(Box<watcher::Event<Event>>),
    Failed(StreamError),
}

impl Step {
    fn from<K>(
        next: Option<watcher::Result<watcher::Event<K>>>,
        step: fn(Box<watcher::Event<K>>) -> Step,
    ) -> Step {
        match next {
            Some(Ok(event)) => step(Box::new(event)),
            Some(Err(error)) => Step::Failed(error.into()),
            None => Step::Failed(StreamError::Kubernetes("a watch ended".into())),
        }
    }

    /// A change after the initial list.
    fn is_live(&self) -> bool {
        match self {
            Step::Pod(event) => matches!(
                **event,
                watcher::Event::Apply(_) | watcher::Event::Delete(_)
            ),
            Step::Event(event) => matches!(
                **event,
                watcher::Event::Apply(_) | watcher::Event::Delete(_)
            ),
            Step::Failed(_) => false,
        }
    }
}

impl Merged {
    async fn step(&mut self) {
        let step = tokio::select! {
            next = self.pods.next() => Step::from(next, Step::Pod),
            next = self.events.next() => Step::from(next, Step::Event),
        };
        self.on_step(step);
    }

    fn on_step(&mut self, step: Step) {
        if let (true, Some(first)) = (step.is_live(), &mut self.first) {
            first.later.push(step);
            return;
        }
        match step {
            Step::Pod(event) => self.on_pod(*event),
            Step::Event(event) => self.on_event(*event),
            Step::Failed(error) => self.out.push_back(Err(error)),
        }
    }

    fn registry(&self) -> std::sync::MutexGuard<'_, Registry> {
        self.registry.lock().expect("registry poisoned")
    }

    fn emit(&mut self, items: Vec<Item>) {
        let events = self.sequencer.admit(items);
        self.out.extend(events.into_iter().map(Ok));
    }

    fn on_pod(&mut self, event: watcher::Event<Pod>) {
        match event {
            watcher::Event::Init => self.listing_pods.clear(),
            watcher::Event::InitApply(pod) => self.listing_pods.extend(pods::pod_view(&pod)),
            watcher::Event::InitDone => {
                let views = std::mem::take(&mut self.listing_pods);
                match &mut self.first {
                    Some(first) => {
                        first.pods = Some(views);
                        self.release_first();
                    }
                    None => self.listed_pods(views),
                }
            }
            watcher::Event::Apply(pod) => match pods::pod_view(&pod) {
                Some(view) => {
                    let items = pods::lifecycle(&view);
                    self.registry().upsert(view);
                    self.emit(items);
                    self.retry_pending();
                }
                None => self.deleted(&pod),
            },
            watcher::Event::Delete(pod) => self.deleted(&pod),
        }
    }

    fn deleted(&mut self, pod: &Pod) {
        let Some(uid) = pod.metadata.uid.as_deref() else {
            return;
        };
        let gone = self.registry().remove(uid);
        // Its last status (an exit not seen yet), else the one known.
        if let Some(view) = pods::pod_view(pod).or(gone) {
            let mut items = pods::lifecycle(&view);
            items.extend(pods::removed(&view, Utc::now()));
            self.emit(items);
        }
    }

    fn listed_pods(&mut self, views: Vec<PodView>) {
        let items = self.relisted(views);
        self.emit(items);
        self.retry_pending();
    }

    /// After a list: the registry is the listed pods, and the pods not
    /// listed were deleted meanwhile.
    fn relisted(&mut self, views: Vec<PodView>) -> Vec<Item> {
        let mut items: Vec<Item> = views.iter().flat_map(pods::lifecycle).collect();
        let gone = self.registry().replace(views);
        let now = Utc::now();
        items.extend(gone.iter().flat_map(|view| pods::removed(view, now)));
        items
    }

    fn on_event(&mut self, event: watcher::Event<Event>) {
        match event {
            watcher::Event::Init => self.listing_events.clear(),
            watcher::Event::InitApply(event) => self.listing_events.push(event),
            watcher::Event::InitDone => {
                let listed = std::mem::take(&mut self.listing_events);
                match &mut self.first {
                    Some(first) => {
                        first.events = Some(listed);
                        self.release_first();
                    }
                    None => self.listed_events(listed, false),
                }
            }
            watcher::Event::Apply(event) => self.listed_events(vec![event], true),
            // An Event expiring says nothing new.
            watcher::Event::Delete(_) => {}
        }
    }

    /// Items of the Events about known pods; those about pods not seen
    /// yet wait for them when `wait`.
    fn listed_events(&mut self, events: Vec<Event>, wait: bool) {
        let mut items = Vec::new();
        {
            let registry = self.registry.lock().expect("registry poisoned");
            for event in events {
                match reported(&event, &registry) {
                    Reported::Item(item) => items.push(item),
                    Reported::UnknownPod if wait => {
                        while self.pending.front().is_some_and(|(since, _)| {
                            since.elapsed() >= PENDING_FOR || self.pending.len() >= MAX_PENDING
                        }) {
                            self.pending.pop_front();
                        }
                        self.pending.push_back((Instant::now(), event));
                    }
                    Reported::UnknownPod | Reported::Ignored => {}
                }
            }
        }
        self.emit(items);
    }

    /// Once both first lists are in: the registry from the pods, then the
    /// events of both in time order.
    fn release_first(&mut self) {
        if !matches!(&self.first, Some(first) if first.pods.is_some() && first.events.is_some()) {
            return;
        }
        let Some(First {
            pods: Some(views),
            events: Some(events),
            later,
        }) = self.first.take()
        else {
            unreachable!("both lists are in");
        };
        let mut items = self.relisted(views);
        {
            let registry = self.registry();
            items.extend(
                events
                    .iter()
                    .filter_map(|event| match reported(event, &registry) {
                        Reported::Item(item) => Some(item),
                        _ => None,
                    }),
            );
        }
        self.emit(items);
        for step in later {
            self.on_step(step);
        }
    }

    /// Events that waited for their pod: shipped once it is known, dropped
    /// after [`PENDING_FOR`].
    fn retry_pending(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let waiting = std::mem::take(&mut self.pending);
        let mut items = Vec::new();
        {
            let registry = self.registry.lock().expect("registry poisoned");
            for (since, event) in waiting {
                match reported(&event, &registry) {
                    Reported::Item(item) => items.push(item),
                    Reported::UnknownPod if since.elapsed() < PENDING_FOR => {
                        self.pending.push_back((since, event))
                    }
                    Reported::UnknownPod | Reported::Ignored => {}
                }
            }
        }
        self.emit(items);
    }
}
