//! Store calls on the wrapper's hot path answer synchronously when they can. A future that
//! needs no I/O (no quota applies and the quota list is cached; an event queued for the batched
//! writer) completes on its first poll: returning its value at once saves two thread hand-offs
//! per wrapped call. A future that would wait (a reservation, a durable write, a cache refresh)
//! is handed to napi's tokio runtime as it stands, and JS gets a Promise.

use std::future::Future;
use std::task::{Context, Poll, Waker};

use napi::Env;
use napi::bindgen_prelude::{Either, PromiseRaw, ToNapiValue, within_runtime_if_available};

/// The future's value if it is ready on the first poll, else a Promise of it.
pub fn now_or_spawn<'env, T, F>(
    env: &'env Env,
    fut: F,
) -> napi::Result<Either<T, PromiseRaw<'env, T>>>
where
    T: 'static + Send + ToNapiValue,
    F: 'static + Send + Future<Output = napi::Result<T>>,
{
    let mut fut = Box::pin(fut);
    let mut cx = Context::from_waker(Waker::noop());
    // Inside the runtime's context, so tokio primitives the future touches find their runtime.
    match within_runtime_if_available(|| fut.as_mut().poll(&mut cx)) {
        Poll::Ready(r) => r.map(Either::A),
        // Polled again by the runtime with a real waker, which every tokio primitive re-registers.
        Poll::Pending => Ok(Either::B(env.spawn_future(fut)?)),
    }
}
