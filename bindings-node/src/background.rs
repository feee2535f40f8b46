//! Recording that runs after a wrapped call returned: the SDK wrapper hands the outcome over
//! and goes on; the core reads, prices and records it on the tokio runtime, off the JS thread,
//! without a JS Promise per call (napi's promise machinery costs the JS thread more than the
//! recording itself). `settled()` waits for all of it; failures are kept for `takeErrors()`.
//!
//! Successful calls are handed over through a queue drained every [`DRAIN_DELAY`]: waking a
//! runtime thread costs the JS thread more than the rest of the hand-over, and one wake-up per
//! drain instead of per call keeps that off the request path. The outcome carries the instant
//! the call ended, so the delay never shows in recorded durations.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use usage_core::Error;

use crate::error::error_json;

/// How long queued outcomes wait for company before a drain runs them.
pub const DRAIN_DELAY: Duration = Duration::from_millis(1);

type Job = Pin<Box<dyn Future<Output = usage_core::Result<()>> + Send>>;

/// Work handed to the runtime and not finished yet, and the errors it ended with.
#[derive(Default)]
pub struct Background {
    pending: AtomicUsize,
    idle: Notify,
    errors: Mutex<Vec<String>>,
    queue: Mutex<Vec<Job>>,
    draining: AtomicBool,
}

impl std::fmt::Debug for Background {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Background")
            .field("pending", &self.pending.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl Background {
    /// Queues `fut` for the next drain (started now if none is due), which runs it on the
    /// runtime; its error, if any, is kept.
    pub fn queue<F>(self: &Arc<Self>, fut: F)
    where
        F: Future<Output = usage_core::Result<()>> + Send + 'static,
    {
        self.pending.fetch_add(1, Ordering::SeqCst);
        self.queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Box::pin(fut));
        if !self.draining.swap(true, Ordering::SeqCst) {
            let me = self.clone();
            napi::bindgen_prelude::spawn(async move {
                tokio::time::sleep(DRAIN_DELAY).await;
                // Cleared before taking the queue: a job queued after this starts a new drain.
                me.draining.store(false, Ordering::SeqCst);
                let jobs = std::mem::take(&mut *me.queue.lock().unwrap_or_else(|p| p.into_inner()));
                for job in jobs {
                    let me = me.clone();
                    tokio::spawn(async move { me.done(job.await) });
                }
            });
        }
    }

    fn done(&self, r: usage_core::Result<()>) {
        if let Err(e) = r {
            self.keep(&e);
        }
        if self.pending.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.idle.notify_waiters();
        }
    }

    /// Runs `fut` on the runtime; its error, if any, is kept.
    pub fn spawn<F>(self: &Arc<Self>, fut: F)
    where
        F: Future<Output = usage_core::Result<()>> + Send + 'static,
    {
        self.pending.fetch_add(1, Ordering::SeqCst);
        let me = self.clone();
        napi::bindgen_prelude::spawn(async move { me.done(fut.await) });
    }

    fn keep(&self, e: &Error) {
        let mut errors = self.errors.lock().unwrap_or_else(|p| p.into_inner());
        // Bounded: a store that is down must not grow this without end.
        if errors.len() < 1000 {
            errors.push(error_json(e).to_string());
        }
    }

    /// Resolves once nothing handed over so far is still running.
    pub async fn settled(&self) {
        loop {
            let notified = self.idle.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.pending.load(Ordering::SeqCst) == 0 {
                return;
            }
            notified.await;
        }
    }

    /// The errors kept since the last call (as the JSON the JS layer turns into errors).
    pub fn take_errors(&self) -> Vec<String> {
        std::mem::take(&mut *self.errors.lock().unwrap_or_else(|p| p.into_inner()))
    }
}
