//! JSON access logs (`gateway.accessLog`): one line per HTTP request or
//! TCP connection, to standard output or appended to a file.
//!
//! The data path only builds the line's fields and offers them to a
//! bounded queue ([`AccessLogWriter::write`]); it never waits on a disk or
//! a pipe. A full queue drops the line and counts it
//! (`fedmesh_gateway_observe_dropped_total{kind="access_log"}`). One thread
//! of its own takes lines off the queue, serializes them, and writes each
//! batch of whole lines with one write, so lines never interleave with one
//! another (the process's own log goes to standard error).

use std::fs::OpenOptions;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};

use fedmesh_proto::config::AccessLog;

use crate::metrics::Metrics;

/// Lines waiting for the writer; past this they are dropped.
const QUEUE: usize = 8192;
/// The most bytes gathered into one write.
const BATCH_BYTES: usize = 256 << 10;

/// One line as queued: its fields, turned into JSON by the writer, so the
/// data path neither formats nor allocates the object.
type Line = Box<dyn FnOnce() -> serde_json::Value + Send>;

/// Why the access log could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum AccessLogError {
    /// The file could not be opened for appending.
    #[error("cannot open gateway.accessLog {}: {source}; check that its folder exists and is writable", path.display())]
    Open {
        /// The file.
        path: PathBuf,
        /// What the system said.
        #[source]
        source: std::io::Error,
    },
    /// The writer thread could not be started.
    #[error("cannot start the access log writer: {0}")]
    Thread(#[source] std::io::Error),
}

/// The data path's end of the access log.
#[derive(Debug)]
pub struct AccessLogWriter {
    queue: SyncSender<Line>,
    /// Lines queued and not yet written.
    pending: Arc<AtomicUsize>,
    metrics: Arc<Metrics>,
}

impl AccessLogWriter {
    /// Opens `target` and starts the writer thread.
    ///
    /// # Errors
    /// [`AccessLogError`] when the file cannot be opened.
    pub fn start(target: &AccessLog, metrics: Arc<Metrics>) -> Result<Self, AccessLogError> {
        let out: Box<dyn Write + Send> = match target {
            AccessLog::Stdout => Box::new(std::io::stdout()),
            AccessLog::File(path) => Box::new(
                OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .map_err(|source| AccessLogError::Open {
                        path: path.clone(),
                        source,
                    })?,
            ),
        };
        Self::with_writer(out, metrics)
    }

    /// Starts the writer thread on `out`.
    fn with_writer(
        out: Box<dyn Write + Send>,
        metrics: Arc<Metrics>,
    ) -> Result<Self, AccessLogError> {
        let (queue, rx) = sync_channel(QUEUE);
        let pending = Arc::new(AtomicUsize::new(0));
        let written = pending.clone();
        std::thread::Builder::new()
            .name("fedgw-access-log".into())
            .spawn(move || run(&rx, out, &written))
            .map_err(AccessLogError::Thread)?;
        Ok(Self {
            queue,
            pending,
            metrics,
        })
    }

    /// Offers one line, built by `line` on the writer's thread; never
    /// waits.
    pub fn write(&self, line: impl FnOnce() -> serde_json::Value + Send + 'static) {
        self.pending.fetch_add(1, Ordering::Relaxed);
        match self.queue.try_send(Box::new(line)) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.pending.fetch_sub(1, Ordering::Relaxed);
                self.metrics.observe_dropped("access_log");
            }
        }
    }

    /// Lines offered and not yet written.
    pub fn pending(&self) -> usize {
        self.pending.load(Ordering::Relaxed)
    }
}

/// The writer thread: until every sender is gone, writes what is queued
/// in batches of whole lines, flushing when the queue runs empty.
fn run(rx: &Receiver<Line>, mut out: Box<dyn Write + Send>, pending: &AtomicUsize) {
    let mut buf = Vec::with_capacity(BATCH_BYTES);
    let mut failing = false;
    while let Ok(first) = rx.recv() {
        let mut lines = 0;
        let mut next = Some(first);
        while let Some(line) = next.take() {
            // Serializing a Value cannot fail (no maps with non-string keys).
            let _ = serde_json::to_writer(&mut buf, &line());
            buf.push(b'\n');
            lines += 1;
            if buf.len() < BATCH_BYTES {
                next = rx.try_recv().ok();
            }
        }
        let result = out.write_all(&buf).and_then(|()| out.flush());
        buf.clear();
        pending.fetch_sub(lines, Ordering::Relaxed);
        match result {
            Ok(()) => failing = false,
            // One warning per outage (a full disk), not one per line.
            Err(error) if !failing => {
                tracing::warn!(%error, lines, "cannot write the access log; lines are lost until it works");
                failing = true;
            }
            Err(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;

    #[test]
    fn lines_reach_the_file_whole_and_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access.log");
        let metrics = Arc::new(Metrics::new());
        let log = AccessLogWriter::start(&AccessLog::File(path.clone()), metrics).unwrap();
        for i in 0..100 {
            log.write(move || serde_json::json!({ "n": i, "path": "/a\"b" }));
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while log.pending() > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 100, "{text}");
        assert!(lines.iter().enumerate().all(|(i, l)| l["n"] == i));
    }

    /// A writer stuck until told to go on, as a full pipe is.
    struct Stuck(std::sync::mpsc::Receiver<()>);

    impl Write for Stuck {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            let _ = self.0.recv_timeout(Duration::from_secs(10));
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_stuck_writer_drops_and_counts_lines_without_blocking_the_caller() {
        let metrics = Arc::new(Metrics::new());
        let (go, wait) = std::sync::mpsc::channel();
        let log = AccessLogWriter::with_writer(Box::new(Stuck(wait)), metrics.clone()).unwrap();
        // Lines of 1 KiB: the writer holds at most a batch (256 KiB) of
        // them, the queue QUEUE more; the rest are dropped.
        let filler = "x".repeat(1024);
        let started = Instant::now();
        for i in 0..QUEUE + 1000 {
            let pad = filler.clone();
            log.write(move || serde_json::json!({ "n": i, "pad": pad }));
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "writes never wait"
        );
        let text = metrics.encode(crate::metrics::Format::Classic);
        let dropped = text
            .lines()
            .find(|l| l.starts_with("fedmesh_gateway_observe_dropped_total{kind=\"access_log\"}"))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(0);
        assert!(
            dropped >= 400,
            "at least the lines past the queue: {dropped}\n{text}"
        );
        drop(go);
    }

    #[test]
    fn a_file_that_cannot_be_opened_is_named() {
        let metrics = Arc::new(Metrics::new());
        let bad = AccessLog::File("/nonexistent-folder/access.log".into());
        let e = AccessLogWriter::start(&bad, metrics).unwrap_err();
        assert!(
            e.to_string().contains("/nonexistent-folder/access.log"),
            "{e}"
        );
    }
}
