//! `NativeCall`: one guarded provider call in steps (the core's `CallGuard`), for the SDK
//! wrappers in `wrap.js`. A streamed call feeds its events to a `StreamAccumulator` here, so
//! usage is read by the core's parsers, never in JS.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use napi_derive::napi;
use serde_json::Value;
use usage_core::Error;
use usage_core::extract::{Provider, StreamAccumulator};
use usage_store::{CallGuard, ResponseMeta, response_events};

use crate::background::Background;
use crate::error::{IntoNapi, bad_arg, to_napi};

/// An open guarded call. Finish it exactly once with `succeed`, `finishStream` or `fail`.
#[napi]
pub struct NativeCall {
    provider: Provider,
    model: String,
    started: Instant,
    guard: Arc<CallGuard>,
    acc: Arc<Mutex<Option<StreamAccumulator>>>,
    background: Arc<Background>,
}

impl NativeCall {
    /// `started`: taken just before `begin_call`, as the guard's own clock is.
    pub(crate) fn new(
        provider: Provider,
        model: String,
        started: Instant,
        guard: CallGuard,
        background: Arc<Background>,
    ) -> Self {
        NativeCall {
            provider,
            model,
            started,
            guard: Arc::new(guard),
            acc: Arc::new(Mutex::new(None)),
            background,
        }
    }
}

#[napi]
impl NativeCall {
    /// The reservation holding the estimate (`null` when no quota applied).
    #[napi(getter)]
    pub fn reservation_id(&self) -> Option<String> {
        self.guard.reservation_id()
    }

    /// Marks the first token's arrival (the stream's latency); later calls change nothing.
    #[napi]
    pub fn first_token(&self) {
        self.guard.first_token();
    }

    /// Feeds one stream event (chunk) to the call's accumulator.
    #[napi]
    pub fn push(&self, event: Value) -> napi::Result<()> {
        let mut slot = self.acc.lock().unwrap_or_else(|p| p.into_inner());
        slot.get_or_insert_with(|| StreamAccumulator::new(self.provider))
            .push(&event)
            .napi()
    }

    /// Feeds one stream event given as JSON text (cheaper to cross than an object).
    #[napi]
    pub fn push_json(&self, event: String) -> napi::Result<()> {
        let v: Value = serde_json::from_str(&event).map_err(|e| bad_arg("event", e))?;
        self.push(v)
    }

    /// Hands the whole response (JSON text) over: its usage is read and recorded, and the hold
    /// dropped, on the runtime after this returns (see `settled()` and `takeErrors()` on the
    /// tracker).
    #[napi]
    pub fn succeed(&self, response: String) {
        // The call ends now: its latency (time to the whole response) is marked on the guard,
        // its duration and instant taken here, so when the queue is drained changes none.
        self.guard.first_token();
        let duration_ms = self.started.elapsed().as_millis() as u64;
        let ended = chrono::Utc::now();
        let guard = self.guard.clone();
        let (provider, model) = (self.provider, self.model.clone());
        self.background.queue(async move {
            let v: Value = serde_json::from_str(&response)
                .map_err(|e| Error::argument("response", e.to_string()))?;
            let meta = ResponseMeta {
                model: Some(model),
                duration_ms: Some(duration_ms),
                timestamp: Some(ended),
                ..Default::default()
            };
            match response_events(provider, &v, meta) {
                // User, tags and latency are filled in by the guard.
                Ok(events) => guard.succeed_with(events).await.map(|_| ()),
                // Unreadable usage: the guard releases the hold and reports the same error.
                Err(_) => guard.succeed(&v).await.map(|_| ()),
            }
        });
    }

    /// Hands the stream's outcome over: what its events said is recorded and the hold dropped.
    /// With `incomplete` (an error type: the consumer stopped reading, the connection broke,
    /// the provider sent an error), the figures seen so far are recorded as an error event of
    /// that type, with `message`; a stream with nothing identifying is recorded as failed.
    #[napi]
    pub fn finish_stream(&self, incomplete: Option<String>, message: Option<String>) {
        let acc = self.acc.lock().unwrap_or_else(|p| p.into_inner()).take();
        let guard = self.guard.clone();
        self.background.spawn(async move {
            let record = match (acc, &incomplete) {
                (None, _) => None,
                (Some(acc), Some(_)) => acc.snapshot(),
                (Some(acc), None) => acc.finish().ok(),
            };
            let message = message.unwrap_or_else(|| "the stream stopped early".to_owned());
            let stopped = incomplete.as_deref().map(|kind| (kind, message.as_str()));
            guard.finish_stream(record, stopped).await.map(|_| ())
        });
    }

    /// Hands the failure over: an error event (usage zero) is recorded and the hold dropped.
    #[napi]
    pub fn fail(&self, error_type: String, message: String) -> napi::Result<()> {
        if error_type.trim().is_empty() {
            return Err(to_napi(Error::argument("errorType", "is empty")));
        }
        let guard = self.guard.clone();
        self.background
            .spawn(async move { guard.fail(&error_type, &message).await.map(|_| ()) });
        Ok(())
    }
}
