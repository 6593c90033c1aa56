//! Test support: containers that print numbered lines on the real engine,
//! an in-process streamer following only the test's own containers (by a
//! label selector), and a reader of the app's Kafka topic.
#![allow(dead_code)]

use berth_common::engine::connect;
use berth_common::testing::setting;
use berth_common::LogProducer;
use berth_log_streamer::docker::DockerLogSource;
use berth_log_streamer::{CheckpointStore, Streamer};
use berth_proto::{labels, names, LogRecord};
use bollard::models::{ContainerCreateBody, HostConfig, RestartPolicy, RestartPolicyNameEnum};
use bollard::query_parameters::{
    BuildImageOptionsBuilder, CreateContainerOptionsBuilder, RemoveContainerOptionsBuilder,
};
use bollard::Docker;
use futures::StreamExt;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

pub const SELECTOR_LABEL: &str = "berth.dev/tenant";

pub async fn docker() -> Docker {
    connect(&setting("BERTH_DOCKER_HOST")).await.unwrap()
}

/// Prints `out <i>`/`err <i>` pairs (`$COUNT`, `$PAUSE` seconds apart),
/// numbered per run (`run <n>`), then exits with `$EXIT` or sleeps.
pub const COUNTER_IMAGE: &str = "localhost/berth-test/counter:test";
const COUNTER_SCRIPT: &str = r#"n=$(cat /run-count 2>/dev/null || echo 0); n=$((n+1)); echo $n > /run-count
i=1
while [ $i -le ${COUNT:-10} ]; do
  echo "run $n out $i"
  echo "run $n err $i" >&2
  i=$((i+1))
  if [ -n "$PAUSE" ]; then sleep $PAUSE; fi
done
if [ -n "$EXIT" ]; then exit $EXIT; fi
exec sleep 3600
"#;

pub async fn counter_image() -> &'static str {
    static BUILT: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    BUILT
        .get_or_init(|| async {
            let dockerfile =
                "FROM localhost/berth/static:latest\nCOPY counter.sh /counter.sh\nCMD [\"sh\", \"/counter.sh\"]\n";
            let mut archive = tar::Builder::new(Vec::new());
            for (name, body) in [("Dockerfile", dockerfile), ("counter.sh", COUNTER_SCRIPT)] {
                let mut header = tar::Header::new_gnu();
                header.set_size(body.len() as u64);
                header.set_mode(0o644);
                header.set_cksum();
                archive.append_data(&mut header, name, body.as_bytes()).unwrap();
            }
            let context = archive.into_inner().unwrap();
            let options = BuildImageOptionsBuilder::default()
                .dockerfile("Dockerfile")
                .t(COUNTER_IMAGE)
                .rm(true)
                .build();
            let docker = docker().await;
            let mut build =
                docker.build_image(options, None, Some(bollard::body_full(context.into())));
            while let Some(step) = build.next().await {
                let step = step.unwrap();
                assert!(step.error_detail.is_none(), "{:?}", step.error_detail);
            }
        })
        .await;
    COUNTER_IMAGE
}

/// A berth-labelled container of the test's own (selector) tenant.
pub struct TestApp {
    pub app_id: Uuid,
    pub deployment: Uuid,
    pub tenant: String,
}

impl TestApp {
    pub fn new() -> Self {
        Self {
            app_id: Uuid::now_v7(),
            deployment: Uuid::now_v7(),
            tenant: format!("lt-{}", Uuid::new_v4().simple()),
        }
    }

    pub fn topic(&self) -> String {
        names::log_topic(self.app_id)
    }

    /// Starts a counter container; returns (id, name).
    pub async fn start(&self, env: &[(&str, &str)], restart: Option<i64>) -> (String, String) {
        // Named as the deploy-worker names it: the streamer follows no other.
        let name = labels::container_name(&self.tenant, "web", self.deployment);
        (self.start_as(&name, env, restart).await, name)
    }

    /// Starts a counter container named `name` with the app's labels;
    /// returns its id.
    pub async fn start_as(&self, name: &str, env: &[(&str, &str)], restart: Option<i64>) -> String {
        let image = counter_image().await;
        let labels = HashMap::from([
            (labels::APP.to_owned(), self.app_id.to_string()),
            (labels::APP_NAME.to_owned(), "web".to_owned()),
            (labels::DEPLOYMENT.to_owned(), self.deployment.to_string()),
            (labels::TENANT.to_owned(), self.tenant.clone()),
            // Not `berth`: streamers other suites run on the same engine
            // must not ship these lines into this test's topic.
            (labels::MANAGED_BY.to_owned(), "berth-test".to_owned()),
        ]);
        let body = ContainerCreateBody {
            image: Some(image.to_owned()),
            env: Some(env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
            labels: Some(labels),
            host_config: Some(HostConfig {
                restart_policy: restart.map(|max| RestartPolicy {
                    name: Some(RestartPolicyNameEnum::ON_FAILURE),
                    maximum_retry_count: Some(max),
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let docker = docker().await;
        let options = CreateContainerOptionsBuilder::default().name(name).build();
        let id = docker
            .create_container(Some(options), body)
            .await
            .unwrap()
            .id;
        docker.start_container(&id, None).await.unwrap();
        id
    }

    pub async fn remove(&self, id: &str) {
        let options = RemoveContainerOptionsBuilder::default().force(true).build();
        let _ = docker().await.remove_container(id, Some(options)).await;
    }

    /// Removes the app's containers (also done on drop, for failed tests).
    pub async fn remove_all(&self) {
        let docker = docker().await;
        let filters = HashMap::from([("label", vec![format!("{}={}", labels::APP, self.app_id)])]);
        let options = bollard::query_parameters::ListContainersOptionsBuilder::default()
            .all(true)
            .filters(&filters)
            .build();
        for container in docker
            .list_containers(Some(options))
            .await
            .unwrap_or_default()
        {
            self.remove(&container.id.unwrap_or_default()).await;
        }
    }

    /// Creates the app's topic, as the first record would.
    pub async fn create_topic(&self) {
        producer().ensure_topic(self.app_id).await.unwrap();
    }
}

pub fn producer() -> LogProducer {
    LogProducer::new(&setting("BERTH_KAFKA_BROKERS"), 1).unwrap()
}

/// An in-process streamer following only `tenant`'s containers.
pub struct RunningStreamer {
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl RunningStreamer {
    pub async fn start(state_dir: &Path, tenant: &str) -> Self {
        berth_common::ops::init_tracing();
        let source = DockerLogSource::new(docker().await).with_selector(SELECTOR_LABEL, tenant);
        let shutdown = CancellationToken::new();
        let streamer = Streamer::new(
            Arc::new(source),
            Arc::new(producer()),
            CheckpointStore::open(state_dir).unwrap(),
            1000,
            shutdown.clone(),
        );
        let task = tokio::spawn(streamer.run());
        Self { shutdown, task }
    }

    /// Cancels it and waits until it delivered and checkpointed everything.
    pub async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(30), self.task)
            .await
            .expect("the streamer stops within 30 s")
            .unwrap();
    }
}

/// Reads the topic from the beginning until `done` holds (or panics after
/// `timeout`); returns (key, record) pairs in offset order.
pub async fn read_until(
    topic: &str,
    timeout: Duration,
    mut done: impl FnMut(&[(String, LogRecord)]) -> bool + Send + 'static,
) -> Vec<(String, LogRecord)> {
    let topic = topic.to_owned();
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", setting("BERTH_KAFKA_BROKERS"))
            .set("group.id", format!("test-{}", Uuid::new_v4()))
            .set("enable.auto.commit", "false")
            .set("fetch.wait.max.ms", "10")
            .create()
            .unwrap();
        let mut assignment = TopicPartitionList::new();
        assignment
            .add_partition_offset(&topic, 0, Offset::Beginning)
            .unwrap();
        consumer.assign(&assignment).unwrap();
        let deadline = Instant::now() + timeout;
        let mut records = Vec::new();
        loop {
            if done(&records) {
                return records;
            }
            assert!(
                Instant::now() < deadline,
                "timed out reading {topic}; {} records: {:?}",
                records.len(),
                records.iter().rev().take(5).collect::<Vec<_>>()
            );
            if let Some(Ok(message)) = consumer.poll(Duration::from_millis(100)) {
                let key = String::from_utf8_lossy(message.key().unwrap_or_default()).into_owned();
                let record: LogRecord = serde_json::from_slice(message.payload().unwrap()).unwrap();
                records.push((key, record));
            }
        }
    })
    .await
    .unwrap()
}

/// Everything in the topic: reads until `at_least` app lines arrived and
/// then nothing more for two seconds (so a repeated line would show).
pub async fn read_all(topic: &str, at_least: usize) -> Vec<(String, LogRecord)> {
    let mut seen = 0;
    let mut quiet_since = Instant::now();
    let topic = topic.to_owned();
    let records = read_until(&topic, Duration::from_secs(120), move |records| {
        if records.len() != seen {
            seen = records.len();
            quiet_since = Instant::now();
        }
        let app_lines = records
            .iter()
            .filter(|(_, r)| r.source == berth_proto::LogSource::App)
            .count();
        app_lines >= at_least && quiet_since.elapsed() > Duration::from_secs(2)
    });
    records.await
}

/// The `source: app` lines of a stream, in order.
pub fn app_lines(records: &[(String, LogRecord)], stream: berth_proto::LogStream) -> Vec<String> {
    records
        .iter()
        .filter(|(_, r)| r.source == berth_proto::LogSource::App && r.stream == stream)
        .map(|(_, r)| r.line.clone())
        .collect()
}

pub fn numbered(run: u32, stream: &str, count: u32) -> Vec<String> {
    (1..=count)
        .map(|i| format!("run {run} {stream} {i}"))
        .collect()
}

impl Drop for TestApp {
    fn drop(&mut self) {
        let app = Self {
            app_id: self.app_id,
            deployment: self.deployment,
            tenant: self.tenant.clone(),
        };
        std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(app.remove_all());
            std::mem::forget(app);
        })
        .join()
        .ok();
    }
}
