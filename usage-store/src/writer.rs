//! The batched writer: `Tracker::enqueue` hands events to a background task that writes them
//! once `max_batch` are queued (taking up to `max_write` of those already waiting) or every
//! `flush_interval`, whichever comes first. A crash loses what was queued and not yet written:
//! what the app enqueued in the last `flush_interval`, plus, under sustained load, the queue
//! (at most `max_queue` events, at which point `enqueue` waits for the writer).

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use usage_core::event::UsageEvent;
use usage_core::store::Store;
use usage_core::{Error, Result};

/// Batched-writer settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchOptions {
    /// Queued events that start a write (default 1,000).
    pub max_batch: usize,
    /// Most events one write takes when more are already queued (default 20,000). Larger
    /// writes share a transaction's cost among more events; the events still queued are
    /// what a crash can lose.
    pub max_write: usize,
    /// Longest an event waits before it is written (default 200 ms).
    pub flush_interval: Duration,
    /// Queue length at which `enqueue` starts waiting for the writer (default 100,000).
    pub max_queue: usize,
}

impl Default for BatchOptions {
    fn default() -> Self {
        BatchOptions {
            max_batch: 1_000,
            max_write: 20_000,
            flush_interval: Duration::from_millis(200),
            max_queue: 100_000,
        }
    }
}

/// Run after each batch is written, with the events that were new (not duplicates): the
/// tracker evaluates quota thresholds there, so queued events fire alerts like recorded ones.
pub(crate) type AfterWrite =
    Arc<dyn Fn(Vec<UsageEvent>) -> Pin<Box<dyn Future<Output = Result<()>> + Send>> + Send + Sync>;

enum Msg {
    Event(Box<UsageEvent>),
    Flush(oneshot::Sender<Result<()>>),
}

/// The handle to the background writer.
#[derive(Debug)]
pub(crate) struct BatchWriter {
    tx: mpsc::Sender<Msg>,
    last_error: Arc<Mutex<Option<String>>>,
}

impl BatchWriter {
    pub(crate) fn spawn(store: Arc<dyn Store>, opts: BatchOptions, after: AfterWrite) -> Self {
        let (tx, mut rx) = mpsc::channel::<Msg>(opts.max_queue.max(1));
        let last_error = Arc::new(Mutex::new(None));
        let errors = last_error.clone();
        tokio::spawn(async move {
            let mut buf: Vec<UsageEvent> = Vec::with_capacity(opts.max_batch);
            let mut waiters: Vec<oneshot::Sender<Result<()>>> = Vec::new();
            // When the oldest queued event must be written by: a steady trickle of events
            // must not postpone it.
            let mut deadline = tokio::time::Instant::now();
            loop {
                let msg = if buf.is_empty() {
                    let m = rx.recv().await;
                    deadline = tokio::time::Instant::now() + opts.flush_interval;
                    m
                } else {
                    match tokio::time::timeout_at(deadline, rx.recv()).await {
                        Ok(m) => m,
                        Err(_) => {
                            write(&*store, &after, &mut buf, &errors, &mut waiters).await;
                            continue;
                        }
                    }
                };
                match msg {
                    Some(Msg::Event(e)) => {
                        buf.push(*e);
                        // Under load, take what else is already queued into the same
                        // transaction (up to `max_write`): one commit's fixed cost and its
                        // index pages are then shared by many more events.
                        if buf.len() >= opts.max_batch {
                            while buf.len() < opts.max_write.max(opts.max_batch) {
                                match rx.try_recv() {
                                    Ok(Msg::Event(e)) => buf.push(*e),
                                    Ok(Msg::Flush(done)) => {
                                        waiters.push(done);
                                        break;
                                    }
                                    Err(_) => break,
                                }
                            }
                            write(&*store, &after, &mut buf, &errors, &mut waiters).await;
                        }
                    }
                    Some(Msg::Flush(done)) => {
                        waiters.push(done);
                        write(&*store, &after, &mut buf, &errors, &mut waiters).await;
                    }
                    None => {
                        write(&*store, &after, &mut buf, &errors, &mut waiters).await;
                        break;
                    }
                }
            }
        });
        BatchWriter { tx, last_error }
    }

    pub(crate) async fn send(&self, e: UsageEvent) -> Result<()> {
        self.tx
            .send(Msg::Event(Box::new(e)))
            .await
            .map_err(|_| Error::store("writer", "enqueue", "the tracker is closed"))
    }

    /// Writes everything queued so far; reports a write error that happened since the last
    /// flush (those events were not stored).
    pub(crate) async fn flush(&self) -> Result<()> {
        let (done, wait) = oneshot::channel();
        self.tx
            .send(Msg::Flush(done))
            .await
            .map_err(|_| Error::store("writer", "flush", "the tracker is closed"))?;
        wait.await
            .map_err(|_| Error::store("writer", "flush", "the writer stopped"))??;
        Ok(())
    }

    pub(crate) fn take_error(&self) -> Option<String> {
        self.last_error.lock().ok().and_then(|mut e| e.take())
    }
}

async fn write(
    store: &dyn Store,
    after: &AfterWrite,
    buf: &mut Vec<UsageEvent>,
    errors: &Mutex<Option<String>>,
    waiters: &mut Vec<oneshot::Sender<Result<()>>>,
) {
    let n = buf.len();
    let result = if buf.is_empty() {
        Ok(())
    } else {
        match store.insert(buf).await {
            Ok(inserted) => {
                let new: Vec<UsageEvent> = buf
                    .drain(..)
                    .zip(inserted)
                    .filter_map(|(e, ok)| ok.then_some(e))
                    .collect();
                if new.is_empty() {
                    Ok(())
                } else {
                    after(new).await.map_err(|e| {
                        format!("{n} queued events were stored, but their quota alerts could not be evaluated: {e}")
                    })
                }
            }
            Err(e) => Err(format!("{n} queued events were not stored: {e}")),
        }
    };
    buf.clear();
    let pending = errors.lock().ok().and_then(|mut e| e.take());
    let outcome = match (result, pending) {
        (Err(e), _) => Err(e),
        (Ok(()), Some(p)) => Err(p),
        (Ok(()), None) => Ok(()),
    };
    if waiters.is_empty() {
        if let Err(msg) = outcome
            && let Ok(mut slot) = errors.lock()
        {
            *slot = Some(msg);
        }
        return;
    }
    for w in waiters.drain(..) {
        let _ = w.send(
            outcome
                .clone()
                .map_err(|m| Error::store("writer", "flush", m)),
        );
    }
}
