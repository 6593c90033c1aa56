//! The edge router's access log into each app's log, as `source: router`
//! lines ("GET /cart → 200 in 12 ms, 2.1 kB, from 203.0.113.7").
//!
//! Caddy writes one JSON line per request to the file
//! `BERTH_ROUTER_ACCESS_LOG`, under a logger named after the app
//! (`http.log.access.app-<app id>`; the deploy-worker maps each app's
//! hostnames to it, and requests for unknown hosts are not logged). This
//! follows the file by byte offset, a few times a second, and keeps the
//! file's inode and the offset of the last line Kafka confirmed in the
//! state folder: a restart goes on where it was, so nothing is lost; the
//! lines of a batch in flight at a crash or a failed delivery are sent
//! again, so they may show twice. Caddy rotates
//! the file by renaming it: the open handle is read to its end before the
//! new file is opened. A file cut shorter than the offset is read again
//! from its start.

use berth_proto::{LogRecord, LogSource, LogStream};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::error::StreamError;
use crate::sink::RecordSink;

const POLL: Duration = Duration::from_millis(250);
const LOGGER_PREFIX: &str = "http.log.access.app-";
/// Lines handed to Kafka before their deliveries are awaited.
const BATCH: usize = 500;
/// A request URI longer than this is cut.
const MAX_URI: usize = 2000;

/// Where reading stopped: the file (by inode) and the byte after the last
/// line delivered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Offset {
    pub inode: u64,
    pub offset: u64,
}

pub struct AccessLog<K> {
    path: PathBuf,
    state: PathBuf,
    sink: Arc<K>,
    reader: Option<(BufReader<File>, Offset)>,
}

impl<K: RecordSink> AccessLog<K> {
    pub fn new(path: PathBuf, state_dir: &std::path::Path, sink: Arc<K>) -> Self {
        Self {
            path,
            state: state_dir.join("router-access-log.json"),
            sink,
            reader: None,
        }
    }

    pub async fn run(mut self, shutdown: CancellationToken) {
        tracing::info!(path = %self.path.display(), "following the router's access log");
        while !shutdown.is_cancelled() {
            if let Err(error) = self.pass().await {
                tracing::warn!(%error, "could not ship the router's access log; trying again");
            }
            tokio::select! {
                _ = tokio::time::sleep(POLL) => {}
                _ = shutdown.cancelled() => {}
            }
        }
    }

    /// Ships what was written since the last pass; returns how many lines.
    pub async fn pass(&mut self) -> Result<usize, StreamError> {
        let mut shipped = 0;
        loop {
            if self.reader.is_none() {
                let Some(opened) = self.open()? else {
                    return Ok(shipped);
                };
                self.reader = Some(opened);
            }
            shipped += self.ship_new_lines().await?;
            // The file was renamed away (rotated) once read to its end:
            // go on with the new one.
            let current = std::fs::metadata(&self.path).ok().map(|m| m.ino());
            let reading = self.reader.as_ref().map(|(_, at)| at.inode);
            match current {
                Some(inode) if Some(inode) != reading => {
                    self.reader = None;
                    self.save(Offset { inode, offset: 0 })?;
                }
                _ => return Ok(shipped),
            }
        }
    }

    /// The file at its saved offset (its start when it is another file
    /// than the saved one, or shorter); `None` while there is no file.
    fn open(&self) -> Result<Option<(BufReader<File>, Offset)>, StreamError> {
        let file = match File::open(&self.path) {
            Ok(file) => file,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(error) => return Err(io(&self.path, error)),
        };
        let meta = file.metadata().map_err(|e| io(&self.path, e))?;
        let saved = self.load();
        let offset = if saved.inode == meta.ino() && saved.offset <= meta.len() {
            saved.offset
        } else {
            0
        };
        let mut reader = BufReader::new(file);
        reader
            .seek(SeekFrom::Start(offset))
            .map_err(|e| io(&self.path, e))?;
        Ok(Some((
            reader,
            Offset {
                inode: meta.ino(),
                offset,
            },
        )))
    }

    /// Reads whole lines from the open file, ships them in batches, and
    /// saves the offset after each delivered batch.
    async fn ship_new_lines(&mut self) -> Result<usize, StreamError> {
        let mut shipped = 0;
        loop {
            let (reader, at) = self.reader.as_mut().expect("opened");
            if reader.get_ref().metadata().map(|m| m.len()).unwrap_or(0) < at.offset {
                // Cut shorter under us: from the start.
                at.offset = 0;
            }
            // From the last delivered line: a batch that failed is read
            // and sent again.
            reader
                .seek(SeekFrom::Start(at.offset))
                .map_err(|e| io(&self.path, e))?;
            let mut batch = Vec::new();
            let mut end = at.offset;
            let mut line = String::new();
            while batch.len() < BATCH {
                line.clear();
                let read = reader.read_line(&mut line).map_err(|e| io(&self.path, e))?;
                if read == 0 || !line.ends_with('\n') {
                    // The end, or a line being written: read again next time.
                    break;
                }
                end += read as u64;
                if let Some(entry) = parse(&line) {
                    batch.push(entry);
                }
            }
            let read_to = Offset {
                inode: at.inode,
                offset: end,
            };
            if end == at.offset {
                return Ok(shipped);
            }
            let mut deliveries = Vec::with_capacity(batch.len());
            for (app_id, record) in &batch {
                deliveries.push(self.sink.enqueue(*app_id, "router", record, None).await?);
            }
            for delivery in deliveries {
                // A record refused for good is dropped (it would hold up
                // every app's lines); any other failure sends the batch
                // again.
                match delivery.await {
                    Err(error) if error.is_permanent() => {
                        tracing::warn!(%error, "a router access log line was refused; dropped")
                    }
                    delivered => {
                        delivered?;
                    }
                }
            }
            shipped += batch.len();
            self.reader.as_mut().expect("opened").1 = read_to;
            self.save(read_to)?;
        }
    }

    fn load(&self) -> Offset {
        std::fs::read(&self.state)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default()
    }

    fn save(&self, offset: Offset) -> Result<(), StreamError> {
        let tmp = self.state.with_extension("tmp");
        let bytes = serde_json::to_vec(&offset).expect("offsets serialize");
        std::fs::write(&tmp, bytes)
            .and_then(|()| std::fs::rename(&tmp, &self.state))
            .map_err(|e| io(&self.state, e))
    }
}

fn io(path: &std::path::Path, source: std::io::Error) -> StreamError {
    StreamError::Checkpoint {
        path: path.to_owned(),
        source,
    }
}

#[derive(Deserialize)]
struct Entry {
    logger: String,
    ts: f64,
    request: Request,
    #[serde(default)]
    status: u16,
    #[serde(default)]
    duration: f64,
    #[serde(default)]
    size: u64,
}

#[derive(Deserialize)]
struct Request {
    #[serde(default)]
    remote_ip: String,
    #[serde(default)]
    method: String,
    #[serde(default)]
    uri: String,
}

/// One access log line as the app's log line; `None` for a line of no
/// app (or not an access log line).
pub fn parse(line: &str) -> Option<(Uuid, LogRecord)> {
    let entry: Entry = serde_json::from_str(line).ok()?;
    let app_id = entry.logger.strip_prefix(LOGGER_PREFIX)?.parse().ok()?;
    let secs = entry.ts.trunc() as i64;
    let nanos = ((entry.ts.fract() * 1e9) as u32).min(999_999_999);
    let ts = DateTime::<Utc>::from_timestamp(secs, nanos)?;
    let mut uri = entry.request.uri;
    if uri.len() > MAX_URI {
        let mut cut = MAX_URI;
        while !uri.is_char_boundary(cut) {
            cut -= 1;
        }
        uri.truncate(cut);
        uri.push('…');
    }
    let line = format!(
        "{} {uri} → {} in {} ms, {}, from {}",
        entry.request.method,
        entry.status,
        (entry.duration * 1000.0 * 10.0).round() / 10.0,
        size(entry.size),
        entry.request.remote_ip
    );
    Some((
        app_id,
        LogRecord {
            ts,
            source: LogSource::Router,
            instance: "router".into(),
            stream: LogStream::Stdout,
            line,
        },
    ))
}

fn size(bytes: u64) -> String {
    match bytes {
        b if b < 1024 => format!("{b} B"),
        b if b < 1024 * 1024 => format!("{:.1} kB", b as f64 / 1024.0),
        b => format!("{:.1} MB", b as f64 / (1024.0 * 1024.0)),
    }
}

#[cfg(test)]
#[path = "access_log_tests.rs"]
mod tests;
