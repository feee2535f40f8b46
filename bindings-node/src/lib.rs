//! The native addon behind the `usage-core` npm package: a thin napi-rs layer over
//! `usage-core` (pricing, extraction, estimates) and `usage-store` (the `Tracker`).
//!
//! Conventions, the same for every export: core data crosses in its serde shape (snake_case
//! keys, exact decimal strings for money, RFC 3339 strings for instants); options bags are
//! camelCase; absent options stay absent so the core applies its defaults; errors carry the
//! core's stable code and fields (see `error.rs`). The JS layer (`index.js`) adds `Date`
//! handling, typed errors, `wrap()` and `run()`.

pub mod background;
pub mod call;
pub mod catalog;
pub mod convert;
pub mod error;
pub mod export;
pub mod money;
pub mod now;
pub mod tracker;

use napi_derive::napi;

/// The version of the native addon.
#[napi]
pub fn version() -> String {
    env!("CARGO_PKG_VERSION").to_string()
}
