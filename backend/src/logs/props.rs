//! Property-based tests of the log frames: each WebSocket text frame (and
//! each entry of a REST page) is a [`LogEntry`] as JSON, the stored record
//! flattened in beside its offset. Any record serializes (the socket's
//! `expect` never fires) and reads back as it was.

use super::{LogEntry, LogPage};
use berth_proto::{LogRecord, LogSource, LogStream};
use chrono::DateTime;
use proptest::prelude::*;
use serde_json::Value;

fn entry() -> impl Strategy<Value = LogEntry> {
    (
        any::<i64>(),
        proptest::option::of(".*"),
        (0i64..7_258_118_400, 0u32..1_000_000_000),
        prop::sample::select(vec![
            LogSource::Build,
            LogSource::App,
            LogSource::Event,
            LogSource::Router,
        ]),
        ".*",
        prop::sample::select(vec![LogStream::Stdout, LogStream::Stderr]),
        ".*",
    )
        .prop_map(
            |(offset, deployment_id, (secs, nanos), source, instance, stream, line)| LogEntry {
                offset,
                deployment_id,
                record: LogRecord {
                    ts: DateTime::from_timestamp(secs, nanos).unwrap(),
                    source,
                    instance,
                    stream,
                    line,
                },
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn a_frame_reads_back_as_the_entry(entry in entry()) {
        let frame = serde_json::to_string(&entry).expect("log entries serialize");
        let value: Value = serde_json::from_str(&frame).unwrap();
        prop_assert_eq!(value["offset"].as_i64(), Some(entry.offset));
        prop_assert_eq!(value["deployment_id"].as_str(), entry.deployment_id.as_deref());
        let record: LogRecord = serde_json::from_value(value).unwrap();
        prop_assert_eq!(record, entry.record);
    }

    #[test]
    fn a_page_carries_its_entries_in_order(entries in prop::collection::vec(entry(), 0..8), next in any::<i64>(), truncated in any::<bool>()) {
        let page = LogPage { entries: entries.clone(), next_offset: next, truncated, skipped: None };
        let value: Value = serde_json::from_str(&serde_json::to_string(&page).unwrap()).unwrap();
        let offsets: Vec<i64> = value["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["offset"].as_i64().unwrap())
            .collect();
        prop_assert_eq!(offsets, entries.iter().map(|e| e.offset).collect::<Vec<_>>());
        prop_assert_eq!(value["next_offset"].as_i64(), Some(next));
        prop_assert_eq!(value["truncated"].as_bool(), Some(truncated));
    }
}
