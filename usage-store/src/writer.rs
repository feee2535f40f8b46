//! The batched writer: `Tracker::enqueue` hands events to a background task that writes them
//! once `max_batch` are queued (taking up to `max_write` of those already waiting) or every
//! `flush_interval`, whichever comes first. A crash loses what was queued and not yet written:
//! what the app enqueued in the last `flush_interval`, plus, under sustained load, the queue
//! (at most `max_queue` events, at which point `enqueue` waits for the writer).
//!
//! Writes run one at a time, or as many at once as the store says it can use
//! ([`Store::concurrent_inserts`]: two on SQLite, where one batch is prepared while the other
//! holds the write lock, and on PostgreSQL). While a write runs, the next starts only once
//! `max_write` events are queued (or a flush, the flush interval or closing asks for it), so
//! that under load the events arriving meanwhile make one large write rather than several
//! small ones. A flush waits for every write running before it, so it still reports on
//! everything queued before it. An id queued twice is stored once either way; with two writes
//! at once, the copy stored is the one whose batch commits first, not always the one queued
//! first.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, Semaphore, oneshot};
use usage_core::event::UsageEvent;
use usage_core::store::Store;
use usage_core::{Error, Result};

/// Batched-writer settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchOptions {
    /// Queued events that start a write when none is running (default 1,000).
    pub max_batch: usize,
    /// Most events one write takes when more are already queued (default 20,000), and the
    /// queued events that start a write beside one still running. Larger writes share a
    /// transaction's cost among more events; the events still queued are what a crash can
    /// lose.
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

/// What callers hand the writer task: queued events, flushes waiting for them, and whether the
/// tracker is gone. Behind a mutex rather than a channel so that queueing an event is a push,
/// not a wake-up of the writer: the task is woken once per batch (when the first event of a
/// batch arrives, when `max_batch` are queued, on a flush and on drop).
#[derive(Default)]
struct Queue {
    events: Vec<UsageEvent>,
    flushes: Vec<oneshot::Sender<Result<()>>>,
    closed: bool,
}

struct Shared {
    queue: Mutex<Queue>,
    wake: Notify,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The handle to the background writer.
pub(crate) struct BatchWriter {
    shared: Arc<Shared>,
    opts: BatchOptions,
    last_error: Arc<Mutex<Option<String>>>,
}

impl std::fmt::Debug for BatchWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchWriter")
            .field("opts", &self.opts)
            .finish_non_exhaustive()
    }
}

impl Drop for BatchWriter {
    /// The tracker is gone: the task writes what is queued and stops.
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.wake.notify_one();
    }
}

impl BatchWriter {
    pub(crate) fn spawn(store: Arc<dyn Store>, opts: BatchOptions, after: AfterWrite) -> Self {
        // A write takes at least a batch, so that the task and `push` agree on both.
        let opts = BatchOptions {
            max_write: opts.max_write.max(opts.max_batch).max(1),
            ..opts
        };
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue::default()),
            wake: Notify::new(),
        });
        let last_error = Arc::new(Mutex::new(None));
        let errors = last_error.clone();
        let task = shared.clone();
        // One slot per write the store can usefully run at once. A batch is taken from the
        // queue only once a slot is free, so while every slot is busy arrivals join the next
        // batch rather than queueing up small ones.
        let lanes = u32::try_from(store.concurrent_inserts())
            .unwrap_or(u32::MAX)
            .clamp(1, 64);
        let slots = Arc::new(Semaphore::new(lanes as usize));
        tokio::spawn(async move {
            // When the oldest queued event must be written by: later arrivals never postpone it.
            let mut deadline: Option<tokio::time::Instant> = None;
            loop {
                enum Next {
                    Stop,
                    Wait(Option<tokio::time::Instant>),
                    Write(Vec<UsageEvent>, Vec<oneshot::Sender<Result<()>>>, bool),
                }
                let Ok(slot) = slots.clone().acquire_owned().await else {
                    break;
                };
                let next = {
                    let mut q = task.lock();
                    if q.events.is_empty() && q.flushes.is_empty() {
                        deadline = None;
                        if q.closed {
                            Next::Stop
                        } else {
                            Next::Wait(None)
                        }
                    } else {
                        let due = *deadline.get_or_insert_with(|| {
                            tokio::time::Instant::now() + opts.flush_interval
                        });
                        let running = lanes as usize - 1 - slots.available_permits();
                        let ready = q.closed
                            || !q.flushes.is_empty()
                            || tokio::time::Instant::now() >= due
                            || enough(q.events.len(), &opts, running);
                        if ready {
                            // Under load, one write takes what else is already queued (up to
                            // `max_write`): a commit's fixed cost and its index pages are then
                            // shared by many more events. Flushes wait until everything
                            // queued before them is written.
                            let n = q.events.len().min(opts.max_write);
                            let batch: Vec<UsageEvent> = if n == q.events.len() {
                                std::mem::take(&mut q.events)
                            } else {
                                q.events.drain(..n).collect()
                            };
                            let flushes = if q.events.is_empty() {
                                std::mem::take(&mut q.flushes)
                            } else {
                                Vec::new()
                            };
                            deadline = None;
                            Next::Write(batch, flushes, q.closed && q.events.is_empty())
                        } else {
                            Next::Wait(Some(due))
                        }
                    }
                };
                let (mut batch, mut flushes, last) = match next {
                    Next::Stop => break,
                    Next::Wait(None) => {
                        drop(slot);
                        task.wake.notified().await;
                        continue;
                    }
                    Next::Wait(Some(due)) => {
                        drop(slot);
                        tokio::select! {
                            _ = tokio::time::sleep_until(due) => {}
                            _ = task.wake.notified() => {}
                        }
                        continue;
                    }
                    Next::Write(b, f, last) => (b, f, last),
                };
                if flushes.is_empty() && !last {
                    let (store, after, errors) = (store.clone(), after.clone(), errors.clone());
                    let done = task.clone();
                    tokio::spawn(async move {
                        write(&*store, &after, &mut batch, &errors, &mut flushes).await;
                        drop(slot);
                        // What queued up meanwhile may be waiting for this write to end.
                        done.wake.notify_one();
                    });
                    continue;
                }
                // A flush reports on everything queued before it: the writes still running
                // finish first (their errors land in `errors`, which this write reports).
                let others = slots.acquire_many(lanes - 1).await;
                write(&*store, &after, &mut batch, &errors, &mut flushes).await;
                drop((slot, others));
                if last {
                    break;
                }
            }
            // Stopping: the writes still running finish before the task ends.
            let _ = slots.acquire_many(lanes).await;
        });
        BatchWriter {
            shared,
            opts,
            last_error,
        }
    }

    /// Queues an event. Waits (without blocking a thread) while `max_queue` events are queued.
    pub(crate) async fn send(&self, e: UsageEvent) -> Result<()> {
        while !self.has_room() {
            // The queue is full: the writer is behind. Let it catch up.
            self.shared.wake.notify_one();
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        self.push(e)
    }

    /// Whether an event can be queued without waiting: fewer than `max_queue` are queued, or
    /// the writer is closed (then [`push`](Self::push) says so rather than anyone waiting).
    pub(crate) fn has_room(&self) -> bool {
        let q = self.shared.lock();
        q.closed || q.events.len() < self.opts.max_queue.max(1)
    }

    /// Queues an event now, room or not: callers check [`has_room`](Self::has_room) first, so
    /// the queue outgrows `max_queue` by at most one event per caller racing it.
    pub(crate) fn push(&self, e: UsageEvent) -> Result<()> {
        let mut q = self.shared.lock();
        if q.closed {
            return Err(Error::store("writer", "enqueue", "the tracker is closed"));
        }
        q.events.push(e);
        let n = q.events.len();
        drop(q);
        // The first event starts the batch's clock; a full batch is written now, and a full
        // write is started beside one already running.
        if n == 1 || n == self.opts.max_batch || n == self.opts.max_write {
            self.shared.wake.notify_one();
        }
        Ok(())
    }

    /// Writes everything queued so far; reports a write error that happened since the last
    /// flush (those events were not stored).
    pub(crate) async fn flush(&self) -> Result<()> {
        let (done, wait) = oneshot::channel();
        {
            let mut q = self.shared.lock();
            if q.closed {
                return Err(Error::store("writer", "flush", "the tracker is closed"));
            }
            q.flushes.push(done);
        }
        self.shared.wake.notify_one();
        wait.await
            .map_err(|_| Error::store("writer", "flush", "the writer stopped"))??;
        Ok(())
    }

    pub(crate) fn take_error(&self) -> Option<String> {
        self.last_error.lock().ok().and_then(|mut e| e.take())
    }
}

/// Whether `queued` events make a write worth starting, with `running` writes under way: once
/// `max_batch` are queued when none runs; while one does, only once a whole `max_write` are.
/// The events arriving during a write then make one large write after it rather than several
/// small ones (a commit rewrites a page of every b-tree it touches, so a small one costs more
/// per event), and a full write is prepared while the other one commits.
fn enough(queued: usize, opts: &BatchOptions, running: usize) -> bool {
    queued >= opts.max_batch && (running == 0 || queued >= opts.max_write)
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
                let mut fresh = inserted.into_iter();
                buf.retain(|_| fresh.next().unwrap_or(false));
                let new = std::mem::take(buf);
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

#[cfg(test)]
mod tests {
    use super::{BatchOptions, enough};

    #[test]
    fn a_write_starts_at_max_batch_or_beside_another_at_max_write() {
        let opts = BatchOptions {
            max_batch: 100,
            max_write: 1_000,
            ..Default::default()
        };
        // Nothing running: a batch's worth starts one.
        assert!(!enough(99, &opts, 0));
        assert!(enough(100, &opts, 0));
        // One running: the queue waits for it, unless a whole write is waiting.
        assert!(!enough(100, &opts, 1));
        assert!(!enough(999, &opts, 1));
        assert!(enough(1_000, &opts, 1));
        assert!(enough(5_000, &opts, 1));
    }
}
