//! A guarded provider call in steps, for code that cannot hand the call to
//! [`Tracker::guard`] as one future: the Python and Node SDK wrappers, streams consumed by the
//! caller. [`Tracker::begin_call`] reserves the estimate (or fails before anything is sent);
//! the returned [`CallGuard`] then records the outcome exactly once and drops the hold.

use std::sync::Mutex;
use std::time::Instant;

use usage_core::event::NewEvent;
use usage_core::quota::estimate::Estimate;
use usage_core::store::Reservation;
use usage_core::{Error, Result};

use crate::quotas::GuardContext;
use crate::tracker::{
    Recorded, ResponseMeta, Tracker, extracted_event, provider_key, response_events,
};

/// An open guarded call: its hold (when a quota applies), its clock, and the identity to record
/// its outcome under. Finish it with [`succeed`](CallGuard::succeed),
/// [`succeed_with`](CallGuard::succeed_with) or [`fail`](CallGuard::fail); an unfinished guard
/// keeps its hold until the reservation's TTL runs out.
#[derive(Debug)]
pub struct CallGuard {
    tracker: Tracker,
    ctx: GuardContext,
    reservation: Option<Reservation>,
    started: Instant,
    first_token: Mutex<Option<Instant>>,
    finished: Mutex<bool>,
}

impl Tracker {
    /// Starts a guarded call: atomically holds `estimate` against every quota that applies to
    /// `ctx.subjects` (and every global quota), or fails with `QuotaExceeded` before the caller
    /// sends anything. When no quota applies nothing is written until the call finishes.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// use usage_core::extract::Provider;
    /// use usage_store::{GuardContext, Tracker};
    /// let tracker = Tracker::open("memory://").await?;
    /// let ctx = GuardContext { provider: Some(Provider::Anthropic), ..Default::default() };
    /// let call = tracker.begin_call(ctx, &Default::default()).await?;
    /// let response = serde_json::json!({
    ///     "id": "msg_1", "type": "message", "model": "claude-haiku-4-5",
    ///     "usage": { "input_tokens": 1000, "output_tokens": 200 }
    /// });
    /// let recorded = call.succeed(&response).await?;
    /// assert_eq!(recorded[0].event.total_cost().to_string(), "0.002");
    /// # Ok::<_, usage_core::Error>(()) }).unwrap();
    /// ```
    pub async fn begin_call(&self, ctx: GuardContext, estimate: &Estimate) -> Result<CallGuard> {
        needs_provider(&ctx)?;
        let reservation = if self.applicable(&ctx.subjects).await?.is_empty() {
            None
        } else {
            Some(self.reserve(&ctx.subjects, estimate, ctx.ttl).await?)
        };
        Ok(self.started_call(ctx, reservation))
    }

    /// Starts a guarded call without waiting when nothing is to be reserved: the quotas are
    /// cached and none applies to `ctx.subjects` (what [`begin_call_sized`] then does too).
    /// `Ok(None)` when telling needs the store: await [`begin_call_sized`] or [`begin_call`]
    /// instead. It lets a binding start a blocking call of an app without quotas without
    /// entering the async runtime.
    ///
    /// [`begin_call_sized`]: Tracker::begin_call_sized
    /// [`begin_call`]: Tracker::begin_call
    pub fn begin_call_unreserved(&self, ctx: &GuardContext) -> Result<Option<CallGuard>> {
        needs_provider(ctx)?;
        Ok(match self.any_applicable_cached(&ctx.subjects)? {
            Some(false) => Some(self.started_call(ctx.clone(), None)),
            Some(true) | None => None,
        })
    }

    /// A guard for a call starting now, holding `reservation` when a quota applied.
    fn started_call(&self, ctx: GuardContext, reservation: Option<Reservation>) -> CallGuard {
        CallGuard {
            tracker: self.clone(),
            ctx,
            reservation,
            started: Instant::now(),
            first_token: Mutex::new(None),
            finished: Mutex::new(false),
        }
    }
}

/// A guarded call is recorded under its provider, so it must name one (checked before anything
/// is reserved).
fn needs_provider(ctx: &GuardContext) -> Result<()> {
    match ctx.provider {
        Some(_) => Ok(()),
        None => Err(Error::argument(
            "provider",
            "a guarded call needs its provider",
        )),
    }
}

/// What a call may use, for [`Tracker::begin_call_sized`] to estimate: the model, the prompt's
/// token count (an approximation is fine) and the output limit.
#[derive(Clone, Debug, Default)]
pub struct CallSize {
    /// The model as the request names it.
    pub model: String,
    /// Tokens in the prompt.
    pub prompt_tokens: u64,
    /// The request's output limit (`max_tokens`); 0 when it sets none.
    pub max_tokens: u64,
    /// When the call is made, for the prices in force (now when absent).
    pub at: Option<chrono::DateTime<chrono::Utc>>,
    /// Service tier, speed, geography, platform, deployment.
    pub context: usage_core::PricingContext,
}

impl Tracker {
    /// [`begin_call`](Tracker::begin_call) with the estimate worked out here: the worst case of
    /// `size` at the catalog's prices. A model the catalog does not know cannot be priced, and
    /// its event will be recorded unpriced (counted by token and request quotas, not by cost
    /// ones): the call is refused with `UnknownModel` only when a hard cost quota applies, and
    /// otherwise goes ahead holding its tokens and one request.
    /// With no quota to enforce, nothing is estimated.
    pub async fn begin_call_sized(&self, ctx: GuardContext, size: &CallSize) -> Result<CallGuard> {
        needs_provider(&ctx)?;
        let quotas = self.applicable(&ctx.subjects).await?;
        if quotas.is_empty() {
            return Ok(self.started_call(ctx, None));
        }
        let at = size.at.unwrap_or_else(chrono::Utc::now);
        let estimate = match usage_core::quota::estimate::worst_case(
            &self.catalog(),
            &size.model,
            size.prompt_tokens,
            size.max_tokens,
            at,
            &size.context,
        ) {
            Ok(e) => e,
            Err(Error::UnknownModel { model }) => {
                let priced_limit = quotas
                    .iter()
                    .any(|q| q.hard && q.metric == usage_core::quota::QuotaMetric::Cost);
                if priced_limit {
                    return Err(Error::UnknownModel { model });
                }
                let usage = usage_core::TokenUsage {
                    input: size.prompt_tokens,
                    output: size.max_tokens,
                    ..Default::default()
                };
                Estimate::new(usage, usage_core::Usd::ZERO)
            }
            Err(e) => return Err(e),
        };
        self.begin_call(ctx, &estimate).await
    }
}

impl CallGuard {
    /// The reservation holding the estimate, when a quota applied.
    pub fn reservation_id(&self) -> Option<String> {
        self.reservation.as_ref().map(|r| r.id.clone())
    }

    /// The provider the call is recorded under.
    pub fn provider(&self) -> Option<usage_core::extract::Provider> {
        self.ctx.provider
    }

    /// Marks the first token's arrival (a stream's latency); later calls change nothing.
    pub fn first_token(&self) {
        let mut slot = self.first_token.lock().unwrap_or_else(|p| p.into_inner());
        slot.get_or_insert_with(Instant::now);
    }

    /// The identity and timings to record under, measured now.
    fn meta(&self) -> ResponseMeta {
        let ms = |at: Instant| at.duration_since(self.started).as_millis() as u64;
        let duration = ms(Instant::now());
        let first = *self.first_token.lock().unwrap_or_else(|p| p.into_inner());
        ResponseMeta {
            latency_ms: self
                .ctx
                .meta
                .latency_ms
                .or(Some(first.map_or(duration, ms))),
            duration_ms: self.ctx.meta.duration_ms.or(Some(duration)),
            ..self.ctx.meta.clone()
        }
    }

    /// Claims the right to finish; the second claim is an error.
    fn finish(&self) -> Result<()> {
        let mut done = self.finished.lock().unwrap_or_else(|p| p.into_inner());
        if *done {
            return Err(Error::argument("call", "this call was already finished"));
        }
        *done = true;
        Ok(())
    }

    /// Reads the usage in the provider's response and records it with the measured latency,
    /// dropping the hold in the same transaction. A response without readable usage releases
    /// the hold and returns the extraction error.
    pub async fn succeed(&self, response: &serde_json::Value) -> Result<Vec<Recorded>> {
        let provider = self.ctx.provider.expect("checked in begin_call");
        match response_events(provider, response, self.meta()) {
            Ok(events) => self.record(events).await,
            Err(e) => {
                self.finish()?;
                if let Some(r) = &self.reservation {
                    self.tracker.release(&r.id).await?;
                }
                Err(e)
            }
        }
    }

    /// [`succeed`](CallGuard::succeed) without waiting, when it needs nothing but the batched
    /// writer's queue: the call holds no reservation, records batched, and the queue has room.
    /// `None` (nothing done) otherwise: await `succeed`. It lets a binding finish a blocking
    /// call of an app without quotas without entering the async runtime.
    pub fn succeed_now(&self, response: &serde_json::Value) -> Option<Result<Vec<Recorded>>> {
        if self.reservation.is_some() || !self.ctx.batched || !self.tracker.queue_has_room() {
            return None;
        }
        let provider = self.ctx.provider?;
        // As `succeed`: the call is finished either way; unreadable usage is the error.
        Some(match response_events(provider, response, self.meta()) {
            Ok(events) => self.finish().and_then(|()| {
                events
                    .into_iter()
                    .map(|e| self.tracker.enqueue_now(e))
                    .collect()
            }),
            Err(e) => self.finish().and(Err(e)),
        })
    }

    /// Records what a stream accumulated (a `usage_core::extract::StreamAccumulator`'s
    /// record) and drops the hold. A stream that ended before its final usage is recorded with
    /// the usage seen so far as an error: of type `stopped.0` with message `stopped.1` when the
    /// caller says why (it stopped reading, the connection broke), else `incomplete_stream`. Without
    /// a record (nothing arrived, or not even the model is known) the call is recorded as
    /// failed.
    pub async fn finish_stream(
        &self,
        record: Option<usage_core::extract::Extracted>,
        stopped: Option<(&str, &str)>,
    ) -> Result<Vec<Recorded>> {
        let provider = self.ctx.provider.expect("checked in begin_call");
        match record.map(|r| extracted_event(provider, r, &self.meta(), None)) {
            Some(Ok(mut event)) => {
                if let Some((kind, message)) = stopped {
                    event.status = usage_core::Status::Error;
                    if event
                        .error_type
                        .as_deref()
                        .is_none_or(|t| t == "incomplete_stream")
                    {
                        event.error_type = Some(kind.to_owned());
                    }
                    event
                        .error_message
                        .get_or_insert_with(|| message.to_owned());
                }
                self.record(vec![event]).await
            }
            _ => {
                let (kind, message) = stopped.unwrap_or((
                    "incomplete_stream",
                    "the stream ended before any usage was seen",
                ));
                Ok(vec![self.fail(kind, message).await?])
            }
        }
    }

    /// Records events built by the caller (from a stream accumulator, say), filling in the
    /// measured latency and duration and the call's user and tags where the events have none.
    pub async fn succeed_with(&self, mut events: Vec<NewEvent>) -> Result<Vec<Recorded>> {
        let meta = self.meta();
        for e in &mut events {
            e.latency_ms = e.latency_ms.or(meta.latency_ms);
            e.duration_ms = e.duration_ms.or(meta.duration_ms);
            if e.user_id.is_none() {
                e.user_id = meta.user_id.clone();
            }
            for (k, v) in &meta.tags {
                e.tags.entry(k.clone()).or_insert_with(|| v.clone());
            }
        }
        self.record(events).await
    }

    async fn record(&self, events: Vec<NewEvent>) -> Result<Vec<Recorded>> {
        self.finish()?;
        match &self.reservation {
            Some(r) => self.tracker.commit(&r.id, events).await,
            None if self.ctx.batched => {
                let mut out = Vec::with_capacity(events.len());
                for e in events {
                    out.push(self.tracker.enqueue_recorded(e).await?);
                }
                Ok(out)
            }
            None => self.tracker.record_many(events).await,
        }
    }

    /// Records the call as failed (`error_type`, `message`, usage zero) and drops its hold.
    pub async fn fail(&self, error_type: &str, message: &str) -> Result<Recorded> {
        self.finish()?;
        let meta = self.meta();
        let provider = self.ctx.provider.expect("checked in begin_call");
        // Named and placed as a response from this provider would be (a Vertex call is an
        // Anthropic event on the Vertex platform), so failures group with successes.
        let mut e = NewEvent::new(
            provider_key(provider),
            meta.model.clone().unwrap_or_else(|| "unknown".to_owned()),
            Default::default(),
        );
        e.context.platform = provider.platform();
        e.status = usage_core::Status::Error;
        e.error_type = Some(error_type.to_owned());
        e.error_message = Some(message.to_owned());
        e.user_id = meta.user_id;
        e.tags = meta.tags;
        e.latency_ms = meta.latency_ms;
        e.duration_ms = meta.duration_ms;
        e.id = meta.id;
        if let Some(r) = &self.reservation {
            self.tracker.release(&r.id).await?;
        }
        let mut recorded = if self.ctx.batched {
            vec![self.tracker.enqueue_recorded(e).await?]
        } else {
            self.tracker.record_many(vec![e]).await?
        };
        Ok(recorded.remove(0))
    }
}

#[cfg(test)]
mod tests {
    use usage_core::quota::{Quota, QuotaMetric, Subject, Window};

    use super::*;

    /// Ten requests a day for user `u`.
    async fn limit_requests_of_u(tracker: &Tracker) {
        let q = Quota::new(
            "q",
            Subject::user("u"),
            QuotaMetric::Requests,
            10,
            Window::Day,
        );
        tracker.set_quota(q).await.expect("quota");
    }

    /// A call without a provider is refused before anything is held, whether the estimate is
    /// given or worked out, and whether or not a quota applies.
    #[tokio::test]
    async fn a_call_without_a_provider_is_refused_before_anything_is_held() {
        let tracker = Tracker::open("memory://").await.expect("open");
        let ctx = || GuardContext {
            subjects: vec![Subject::user("u")],
            ..Default::default()
        };
        let size = CallSize {
            model: "claude-haiku-4-5".into(),
            prompt_tokens: 100,
            max_tokens: 100,
            ..Default::default()
        };
        for with_quota in [false, true] {
            if with_quota {
                limit_requests_of_u(&tracker).await;
            }
            for sized in [false, true] {
                let started = if sized {
                    tracker.begin_call_sized(ctx(), &size).await
                } else {
                    tracker.begin_call(ctx(), &Estimate::default()).await
                };
                match started {
                    Err(Error::InvalidArgument { field, .. }) => assert_eq!(field, "provider"),
                    other => panic!("expected a provider error, got {:?}", other.map(|_| ())),
                }
            }
        }
        let status = tracker
            .quota_status(&[Subject::user("u")])
            .await
            .expect("status");
        assert_eq!(status[0].held, 0.into());
    }

    /// A call starts without waiting only when the cached quotas say nothing is to be held; it
    /// is then recorded like any other. Otherwise (nothing cached yet, or a quota applies) the
    /// caller is sent to `begin_call_sized`. Bad subjects and a missing provider are refused.
    #[tokio::test]
    async fn a_call_starts_at_once_only_when_no_cached_quota_applies() {
        use usage_core::extract::Provider;

        let tracker = Tracker::open("memory://").await.expect("open");
        let ctx = |user: &str| GuardContext {
            provider: Some(Provider::Anthropic),
            subjects: vec![Subject::user(user)],
            ..Default::default()
        };
        let unreserved = |user: &str| tracker.begin_call_unreserved(&ctx(user)).expect("begin");
        assert!(
            unreserved("u").is_none(),
            "nothing is cached before the first look"
        );
        tracker.quotas().await.expect("quotas");
        let call = unreserved("u").expect("no quota applies");
        let response = serde_json::json!({
            "id": "msg_fast", "type": "message", "model": "claude-haiku-4-5",
            "usage": { "input_tokens": 10, "output_tokens": 2 }
        });
        let r = call.succeed(&response).await.expect("succeed");
        assert_eq!(
            (r[0].event.id.as_str(), r[0].duplicate),
            ("msg_fast", false)
        );

        limit_requests_of_u(&tracker).await;
        tracker.quotas().await.expect("quotas");
        assert!(unreserved("u").is_none(), "a quota applies to u");
        assert!(unreserved("v").is_some(), "none applies to v");

        let bad = GuardContext {
            subjects: vec![Subject::user("")],
            ..ctx("u")
        };
        assert!(tracker.begin_call_unreserved(&bad).is_err());
        let nameless = GuardContext {
            provider: None,
            ..ctx("v")
        };
        assert!(tracker.begin_call_unreserved(&nameless).is_err());
    }

    /// A batched call without a hold finishes at once, exactly as `succeed` would: recorded
    /// once, finished (a second finish is refused), unreadable usage reported. A durable call,
    /// or one holding a reservation, is sent to `succeed`.
    #[tokio::test]
    async fn a_batched_call_without_a_hold_finishes_at_once() {
        use usage_core::extract::Provider;

        let tracker = Tracker::open("memory://").await.expect("open");
        let ctx = |user: &str, batched: bool| GuardContext {
            provider: Some(Provider::Anthropic),
            subjects: vec![Subject::user(user)],
            batched,
            ..Default::default()
        };
        let response = |id: &str| {
            serde_json::json!({
                "id": id, "type": "message", "model": "claude-haiku-4-5",
                "usage": { "input_tokens": 10, "output_tokens": 2 }
            })
        };
        let nothing = Estimate::default();
        let begin = |c: GuardContext| tracker.begin_call(c, &nothing);

        let call = begin(ctx("u", true)).await.expect("begin");
        let r = call
            .succeed_now(&response("msg_now"))
            .expect("at once")
            .expect("recorded");
        assert_eq!((r[0].event.id.as_str(), r[0].duplicate), ("msg_now", false));
        assert!(
            call.succeed_now(&response("msg_now"))
                .expect("at once")
                .is_err()
        );
        tracker.flush().await.expect("flush");
        assert!(tracker.event("msg_now").await.expect("read").is_some());

        let bad = begin(ctx("u", true)).await.expect("begin");
        let unreadable = serde_json::json!({"type": "message", "usage": {"input_tokens": "ten"}});
        assert!(bad.succeed_now(&unreadable).expect("at once").is_err());
        assert!(bad.fail("x", "y").await.is_err(), "the call was finished");

        let durable = begin(ctx("u", false)).await.expect("begin");
        assert!(durable.succeed_now(&response("msg_d")).is_none());
        limit_requests_of_u(&tracker).await;
        let held = begin(ctx("u", true)).await.expect("begin");
        assert!(held.reservation_id().is_some());
        assert!(held.succeed_now(&response("msg_h")).is_none());
        held.succeed(&response("msg_h")).await.expect("succeed");
    }

    /// A failed call is recorded under the same provider and platform as a response from it
    /// would be: a Vertex call is an Anthropic event on the Vertex platform either way.
    #[tokio::test]
    async fn a_failed_call_is_named_as_its_responses_are() {
        use usage_core::context::Platform;
        use usage_core::extract::Provider;

        let tracker = Tracker::open("memory://").await.expect("open");
        for (provider, id, name, platform) in [
            (Provider::Vertex, "v", "anthropic", Some(Platform::Vertex)),
            (Provider::Bedrock, "b", "bedrock", Some(Platform::Bedrock)),
            (Provider::OpenAI, "o", "openai", None),
        ] {
            let mut ctx = GuardContext {
                provider: Some(provider),
                ..Default::default()
            };
            ctx.meta.id = Some(id.to_owned());
            let call = tracker
                .begin_call(ctx, &Estimate::default())
                .await
                .expect("begin");
            let r = call.fail("api_error", "boom").await.expect("fail");
            assert_eq!(
                (r.event.provider.as_str(), r.event.context.platform),
                (name, platform),
                "{provider}"
            );
        }
    }
}
