use super::*;
use crate::test_sink::MemorySink;
use std::io::Write;

const APP: &str = "0190c2d5-0000-7000-8000-000000000001";

fn entry(uri: &str, status: u16) -> String {
    format!(
        "{{\"level\":\"info\",\"ts\":1796536998.5,\"logger\":\"http.log.access.app-{APP}\",\
         \"msg\":\"handled request\",\"request\":{{\"remote_ip\":\"203.0.113.7\",\"method\":\"GET\",\
         \"host\":\"shop.acme.localhost\",\"uri\":\"{uri}\"}},\"duration\":0.0123,\"size\":2150,\"status\":{status}}}\n"
    )
}

fn append(path: &std::path::Path, text: &str) {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    file.write_all(text.as_bytes()).unwrap();
}

#[test]
fn a_request_reads_as_one_line_of_the_apps_log() {
    let (app, record) = parse(&entry("/cart?item=1", 200)).unwrap();
    assert_eq!(app.to_string(), APP);
    assert_eq!(record.source, LogSource::Router);
    assert_eq!(
        record.line,
        "GET /cart?item=1 → 200 in 12.3 ms, 2.1 kB, from 203.0.113.7"
    );
    assert_eq!(record.ts.timestamp_millis(), 1_796_536_998_500);
    assert!(parse(r#"{"logger":"http.log.access.other","ts":1,"request":{}}"#).is_none());
    assert!(parse("not json").is_none());
    let long = parse(&entry(&format!("/{}", "a".repeat(5000)), 200))
        .unwrap()
        .1;
    assert!(long.line.len() < 2100, "{}", long.line.len());
}

#[tokio::test]
async fn lines_are_shipped_once_across_restarts_rotations_and_half_written_lines() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("access.log");
    let sink = Arc::new(MemorySink::default());
    let mut log = AccessLog::new(path.clone(), dir.path(), sink.clone());
    assert_eq!(log.pass().await.unwrap(), 0, "no file yet");

    append(&path, &entry("/one", 200));
    // Half a line: not shipped until it is whole.
    let second = entry("/two", 404);
    append(&path, &second[..20]);
    assert_eq!(log.pass().await.unwrap(), 1);
    append(&path, &second[20..]);
    assert_eq!(log.pass().await.unwrap(), 1);

    // A restart goes on where the last delivered line ended.
    append(&path, &entry("/three", 200));
    let mut restarted = AccessLog::new(path.clone(), dir.path(), sink.clone());
    assert_eq!(restarted.pass().await.unwrap(), 1);

    // Rotation: the old file gets its last line read, then the new one.
    append(&path, &entry("/four", 200));
    std::fs::rename(&path, dir.path().join("access-1.log")).unwrap();
    append(&path, &entry("/five", 500));
    assert_eq!(restarted.pass().await.unwrap(), 2);

    // Cut shorter: read again from the start.
    std::fs::write(&path, entry("/six", 200)).unwrap();
    assert_eq!(restarted.pass().await.unwrap(), 1);

    let uris: Vec<String> = sink
        .lines()
        .iter()
        .map(|line| line.split(' ').nth(1).unwrap().to_owned())
        .collect();
    assert_eq!(uris, ["/one", "/two", "/three", "/four", "/five", "/six"]);
    assert!(sink
        .records()
        .iter()
        .all(|(app, key, _)| app.to_string() == APP && key == "router"));
}

#[tokio::test]
async fn a_failed_delivery_sends_the_batch_again_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("access.log");
    let sink = Arc::new(MemorySink::default());
    *sink.fail_at.lock().unwrap() = Some(2);
    let mut log = AccessLog::new(path.clone(), dir.path(), sink.clone());
    append(&path, &(entry("/a", 200) + &entry("/b", 200)));
    assert!(log.pass().await.is_err());
    assert_eq!(log.pass().await.unwrap(), 2);
    let lines = sink.lines();
    assert!(lines.iter().any(|l| l.starts_with("GET /b ")), "{lines:?}");
}
