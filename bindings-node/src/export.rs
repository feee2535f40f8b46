//! Exports to a file or, chunk by chunk with back-pressure, to a JS stream. The core writes to a
//! `std::io::Write`; for a stream that writer runs on a blocking thread and hands 64 KiB chunks
//! over a bounded channel, so memory stays flat however large the export.

use std::io::Write;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};

use napi::bindgen_prelude::Buffer;
use napi_derive::napi;
use usage_core::Error;
use usage_core::query::Filter;
use usage_store::Tracker;

use crate::error::{IntoNapi, PREFIX, bad_arg, error_json, to_napi};

const CHUNK: usize = 64 * 1024;

/// What the producing thread hands the reader.
enum Chunk {
    /// The next bytes.
    Data(Vec<u8>),
    /// The export is complete: this many rows.
    Done(u64),
    /// The error (as the addon's error message) that ended it.
    Failed(String),
}

#[derive(Clone, Copy)]
enum Format {
    Csv,
    Jsonl,
}

fn format(s: &str) -> napi::Result<Format> {
    match s {
        "csv" => Ok(Format::Csv),
        "jsonl" => Ok(Format::Jsonl),
        other => Err(bad_arg("format", format!("`{other}` is not csv or jsonl"))),
    }
}

async fn run<W: Write>(
    tracker: &Tracker,
    filter: &Filter,
    f: Format,
    out: W,
) -> usage_core::Result<u64> {
    match f {
        Format::Csv => tracker.export_csv(filter, out).await,
        Format::Jsonl => tracker.export_jsonl(filter, out).await,
    }
}

/// Writes the export to `path` on a blocking thread; the number of rows.
pub async fn export_to_file(
    tracker: &Tracker,
    filter: Filter,
    path: String,
    fmt: &str,
) -> napi::Result<i64> {
    let f = format(fmt)?;
    let tracker = tracker.clone();
    let handle = tokio::runtime::Handle::current();
    let n = tokio::task::spawn_blocking(move || {
        let file = std::fs::File::create(&path)
            .map_err(|e| Error::store("export", format!("create {path}"), e))?;
        handle.block_on(run(&tracker, &filter, f, std::io::BufWriter::new(file)))
    })
    .await
    .map_err(|e| to_napi(Error::store("export", "export", e)))?
    .napi()?;
    Ok(n as i64)
}

/// Hands full chunks to the reader; blocks (on its own thread) while the reader is behind.
struct ChannelWriter {
    buf: Vec<u8>,
    tx: SyncSender<Chunk>,
}

impl ChannelWriter {
    fn send(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK));
        self.tx
            .send(Chunk::Data(chunk))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the reader stopped"))
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.send()?;
        }
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.send()
    }
}

/// An export being produced; read it with `next()` until it resolves to `null`.
#[napi]
pub struct ExportStream {
    rx: Arc<Mutex<Receiver<Chunk>>>,
    rows: Arc<Mutex<Option<u64>>>,
}

impl ExportStream {
    pub(crate) fn start(tracker: &Tracker, filter: Filter, fmt: &str) -> napi::Result<Self> {
        let f = format(fmt)?;
        let (tx, rx) = sync_channel(4);
        let tracker = tracker.clone();
        let handle = tokio::runtime::Handle::current();
        tokio::task::spawn_blocking(move || {
            let w = ChannelWriter {
                buf: Vec::with_capacity(CHUNK),
                tx: tx.clone(),
            };
            // Nobody may be listening any more; then there is no one to tell.
            let _ = tx.send(match handle.block_on(run(&tracker, &filter, f, w)) {
                Ok(rows) => Chunk::Done(rows),
                Err(e) => Chunk::Failed(format!("{PREFIX}{}", error_json(&e))),
            });
        });
        Ok(ExportStream {
            rx: Arc::new(Mutex::new(rx)),
            rows: Arc::new(Mutex::new(None)),
        })
    }
}

#[napi]
impl ExportStream {
    /// The number of rows written, once `next()` has returned `null` (else `null`).
    #[napi(getter)]
    pub fn rows(&self) -> Option<i64> {
        self.rows
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .map(|n| n as i64)
    }

    /// The next chunk, or `null` at the end.
    #[napi]
    pub async fn next(&self) -> napi::Result<Option<Buffer>> {
        let rx = self.rx.clone();
        let item = tokio::task::spawn_blocking(move || {
            rx.lock().unwrap_or_else(|p| p.into_inner()).recv().ok()
        })
        .await
        .map_err(|e| to_napi(Error::store("export", "read", e)))?;
        match item {
            // The producer is gone: it ended (and said so) before.
            None => Ok(None),
            Some(Chunk::Data(chunk)) => Ok(Some(Buffer::from(chunk))),
            Some(Chunk::Done(rows)) => {
                *self.rows.lock().unwrap_or_else(|p| p.into_inner()) = Some(rows);
                Ok(None)
            }
            Some(Chunk::Failed(message)) => {
                Err(napi::Error::new(napi::Status::GenericFailure, message))
            }
        }
    }
}
