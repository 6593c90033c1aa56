//! Property-based tests: random input to the message envelope decoder and
//! the log record codec. Nothing may panic; what is encoded decodes to the
//! same value.

use berth_proto::{
    AppRef, AppScaleRequested, BuildRequested, DeploymentProgress, DeploymentState, Envelope,
    KnownImage, LogRecord, LogSource, LogStream, Message, ReleaseConfig, Resources, Sealed, Source,
};
use chrono::{DateTime, Utc};
use proptest::prelude::*;
use serde_json::{json, Value};
use uuid::Uuid;

fn uuid() -> impl Strategy<Value = Uuid> {
    any::<u128>().prop_map(Uuid::from_u128)
}

/// Any JSON value, a few levels deep.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        ".*".prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::from),
            prop::collection::btree_map(".{0,12}", inner, 0..8)
                .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

fn state() -> impl Strategy<Value = DeploymentState> {
    prop::sample::select(vec![
        DeploymentState::Queued,
        DeploymentState::Cloning,
        DeploymentState::Building,
        DeploymentState::Pushing,
        DeploymentState::Deploying,
        DeploymentState::Live,
        DeploymentState::Failed,
        DeploymentState::Cancelled,
        DeploymentState::TimedOut,
        DeploymentState::Superseded,
        DeploymentState::RolledBack,
    ])
}

fn time() -> impl Strategy<Value = DateTime<Utc>> {
    // Years 1970 to 2200, to the nanosecond.
    (0i64..7_258_118_400, 0u32..1_000_000_000)
        .prop_map(|(secs, nanos)| DateTime::from_timestamp(secs, nanos).unwrap())
}

fn app() -> impl Strategy<Value = AppRef> {
    (uuid(), ".*", ".*").prop_map(|(id, name, tenant)| AppRef { id, name, tenant })
}

fn sealed() -> impl Strategy<Value = Sealed> {
    (0u8..3, ".*", ".*").prop_map(|(format, nonce, ciphertext)| {
        serde_json::from_value(json!({"v": format, "nonce": nonce, "ciphertext": ciphertext}))
            .unwrap()
    })
}

fn progress() -> impl Strategy<Value = DeploymentProgress> {
    (
        state(),
        any::<u32>(),
        time(),
        proptest::option::of(".*"),
        proptest::option::of("[0-9a-f]{0,40}"),
        proptest::option::of(".*"),
        proptest::option::of(".*"),
    )
        .prop_map(
            |(state, seq, at, reason, commit, commit_message, endpoint)| DeploymentProgress {
                seq,
                at,
                reason,
                commit,
                commit_message,
                endpoint,
                ..DeploymentProgress::new(state)
            },
        )
}

fn build() -> impl Strategy<Value = BuildRequested> {
    (
        app(),
        uuid(),
        (
            ".*",
            ".*",
            proptest::option::of(".*"),
            proptest::option::of(".*"),
        ),
        proptest::option::of(sealed()),
        (any::<u16>(), sealed(), any::<i64>(), any::<u32>()),
        (
            proptest::option::of(any::<u32>()),
            proptest::option::of(any::<u32>()),
        ),
        proptest::collection::vec(("[0-9a-f]{40}", "sha256:[0-9a-f]{64}"), 0..3),
    )
        .prop_map(
            |(
                app,
                release_id,
                (repo_url, git_ref, commit, subdirectory),
                token,
                config,
                resources,
                known,
            )| {
                BuildRequested {
                    known_images: known
                        .into_iter()
                        .map(|(commit, digest)| KnownImage { commit, digest })
                        .collect(),
                    app,
                    release_id,
                    source: Source {
                        repo_url,
                        git_ref,
                        commit,
                        subdirectory,
                        token,
                    },
                    config: ReleaseConfig {
                        port: config.0,
                        env: config.1,
                        env_version: config.2,
                        replicas: config.3,
                        resources: Resources {
                            cpu_millis: resources.0,
                            memory_mb: resources.1,
                        },
                        health_check_path: None,
                    },
                }
            },
        )
}

fn record() -> impl Strategy<Value = LogRecord> {
    (
        time(),
        prop::sample::select(vec![LogSource::Build, LogSource::App, LogSource::Event]),
        ".*",
        prop::sample::select(vec![LogStream::Stdout, LogStream::Stderr]),
        ".*",
    )
        .prop_map(|(ts, source, instance, stream, line)| LogRecord {
            ts,
            source,
            instance,
            stream,
            line,
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Whatever arrives on a queue, decoding says why or succeeds.
    #[test]
    fn any_bytes_decode_or_fail_without_panicking(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        if let Ok(envelope) = Envelope::from_bytes(&bytes) {
            let _ = envelope.decode();
        }
    }

    /// Envelopes of every known (and some unknown) type, any version and
    /// any payload: decoding fails with a reason or yields a message.
    #[test]
    fn any_envelope_shape_decodes_or_fails_without_panicking(
        kind in prop_oneof![
            Just("build.requested".to_owned()),
            Just("deploy.requested".to_owned()),
            Just("app.removal_requested".to_owned()),
            Just("app.scale_requested".to_owned()),
            Just("deployment.progress".to_owned()),
            ".*",
        ],
        version in prop_oneof![Just(1u32), any::<u32>()],
        payload in json_value(),
        trace in prop::collection::btree_map(".*", ".*", 0..4),
    ) {
        let wire = json!({
            "type": kind, "version": version, "id": Uuid::nil(),
            "deployment_id": null, "attempt": 1, "sent_at": "2026-12-05T08:00:00Z",
            "trace": trace, "payload": payload,
        });
        let envelope = Envelope::from_bytes(&serde_json::to_vec(&wire).unwrap()).unwrap();
        let _ = envelope.decode();
    }

    #[test]
    fn progress_reports_round_trip(progress in progress(), deployment in proptest::option::of(uuid())) {
        let envelope = Envelope::new(deployment, 3, &progress);
        let back = Envelope::from_bytes(&envelope.to_bytes()).unwrap();
        prop_assert_eq!(&back, &envelope);
        prop_assert_eq!(back.decode().unwrap(), Message::DeploymentProgress(progress));
    }

    #[test]
    fn build_requests_round_trip(build in build()) {
        let envelope = Envelope::new(Some(Uuid::now_v7()), 1, &build);
        let back = Envelope::from_bytes(&envelope.to_bytes()).unwrap();
        prop_assert_eq!(back.decode().unwrap(), Message::BuildRequested(build));
    }

    #[test]
    fn scale_requests_round_trip(app in app(), replicas in any::<u32>(), live in proptest::option::of(any::<u128>())) {
        let live_deployment_id = live.map(uuid::Uuid::from_u128);
        let scale = AppScaleRequested { app, replicas, live_deployment_id };
        let back = Envelope::from_bytes(&Envelope::new(None, 1, &scale).to_bytes()).unwrap();
        prop_assert_eq!(back.decode().unwrap(), Message::AppScaleRequested(scale));
    }

    /// The log record is the value of every record in an app's topic.
    #[test]
    fn log_records_round_trip(record in record()) {
        let back: LogRecord = serde_json::from_slice(&record.to_json()).unwrap();
        prop_assert_eq!(back, record);
    }

    #[test]
    fn any_bytes_read_as_a_log_record_fail_without_panicking(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = serde_json::from_slice::<LogRecord>(&bytes);
    }
}
