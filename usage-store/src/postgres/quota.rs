//! Quotas, reservations and alerts for the postgres backend (being written: every call fails).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use usage_core::event::UsageEvent;
use usage_core::quota::Quota;
use usage_core::store::{Alert, QuotaStore, Reservation, ReserveRequest};
use usage_core::{Error, Result};

use super::PgStore;

fn todo(op: &str) -> Error {
    Error::store(
        "postgres",
        op.to_owned(),
        "quotas are not implemented for this backend yet",
    )
}

#[async_trait]
impl QuotaStore for PgStore {
    async fn put_quota(&self, _quota: &Quota) -> Result<()> {
        Err(todo("put_quota"))
    }
    async fn quotas(&self) -> Result<Vec<Quota>> {
        Err(todo("quotas"))
    }
    async fn delete_quota(&self, _id: &str) -> Result<bool> {
        Err(todo("delete_quota"))
    }
    async fn held(&self, _quota_id: &str, _now: DateTime<Utc>) -> Result<Decimal> {
        Err(todo("held"))
    }
    async fn reserve(&self, _req: &ReserveRequest) -> Result<Reservation> {
        Err(todo("reserve"))
    }
    async fn commit_reservation(&self, _id: &str, _events: &[UsageEvent]) -> Result<Vec<bool>> {
        Err(todo("commit_reservation"))
    }
    async fn release_reservation(&self, _id: &str) -> Result<bool> {
        Err(todo("release_reservation"))
    }
    async fn insert_alert(&self, _alert: &Alert) -> Result<bool> {
        Err(todo("insert_alert"))
    }
    async fn alerts(&self, _since: DateTime<Utc>, _limit: usize) -> Result<Vec<Alert>> {
        Err(todo("alerts"))
    }
}
