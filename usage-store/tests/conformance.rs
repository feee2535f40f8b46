//! The store conformance suite: every behaviour a user relies on, run against every backend
//! (memory, SQLite and, with the `postgres` feature, PostgreSQL) by one macro instantiated once
//! per backend, as tower-sessions' `route_tests!` does. Each test checks the backend's answers
//! against an independent computation over the events it recorded (plain loops in
//! `conformance/oracle.rs`), never against another backend.
//!
//! PostgreSQL reads its URL at run time from `USAGE_TEST_POSTGRES_URL` (or `DATABASE_URL`);
//! without one its tests print a skip notice, and with `USAGE_REQUIRE_POSTGRES=1` they fail
//! instead, so the suite is never skipped silently.

mod conformance {
    pub mod backend;
    pub mod buckets;
    pub mod check;
    pub mod data;
    pub mod dst;
    pub mod errors;
    pub mod export;
    pub mod ingest;
    pub mod invariants;
    pub mod oracle;
    pub mod purge;
    pub mod queries;
    pub mod quotas;
    pub mod reports;
    pub mod reprice;
    pub mod rollups;
    pub mod row_stats;
    pub mod scoping;
    #[cfg(feature = "sqlite")]
    pub mod sqlite_files;
}

use conformance::*;

/// Expands every conformance test for one backend: `conformance_tests!(name)` makes module
/// `name` whose tests each get a fresh store from `backend::name()`, an
/// `async fn() -> Option<Backend>` (`None`: the backend is not configured and the test was
/// skipped with a notice). `extra:` adds tests that need a database several handles
/// can open (two handles on one SQLite file or one PostgreSQL schema).
macro_rules! conformance_tests {
    ($backend:ident $(, extra: [$($xmod:ident :: $xcase:ident),* $(,)?])?) => {
        mod $backend {
            conformance_tests!(@cases $backend;
                ingest::record_same_id_twice_counts_once,
                ingest::batch_with_repeated_ids_counts_once,
                ingest::enqueue_and_flush_count_duplicates_once,
                ingest::trickle_is_written_within_the_flush_interval,
                ingest::a_batch_queued_during_a_write_follows_it,
                ingest::dropping_the_tracker_writes_its_queue,
                ingest::concurrent_writers_store_each_event_once,
                queries::totals_over_ragged_and_aligned_ranges,
                queries::group_by_every_dimension,
                queries::filters_and_combinations,
                buckets::buckets_in_five_time_zones,
                buckets::fill_empty_emits_zero_buckets,
                row_stats::distinct_counts,
                row_stats::latency_p95_nearest_rank,
                queries::sort_limit_offset,
                reports::summary_report,
                reports::timeseries_last_30_days,
                reports::breakdown_by_model_and_tag,
                reports::compare_this_month_with_last,
                reports::top_users_paginated,
                dst::new_york_days_are_23_and_25_hours,
                dst::fall_back_hours_are_separate_buckets,
                rollups::rollups_agree_with_raw_events,
                rollups::rebuild_rollups_keeps_totals,
                reprice::reprice_dry_run_then_real,
                reprice::cancelled_runs_change_nothing,
                purge::purge_keeps_rollup_totals,
                purge::purge_forgets_reservations_that_ended,
                export::csv_and_jsonl_round_trip,
                scoping::user_scope_sees_only_its_user,
                scoping::tag_scope_sees_only_its_tag,
                errors::bad_events_are_rejected_and_not_written,
                errors::bad_queries_name_the_field,
                errors::unknown_model_is_unpriced_not_free,
                invariants::rollup_totals_equal_raw_sums,
                quotas::levels_flags_and_alerts_once,
                quotas::reserve_commit_release,
                quotas::concurrent_reservations_never_overshoot,
                quotas::soft_quota_never_blocks,
                quotas::bad_quotas_are_rejected,
                quotas::guard_records_success_and_failure,
                quotas::begin_call_steps,
                quotas::queued_events_fire_alerts,
                quotas::threshold_passed_by_two_servers_together_fires_once,
                quotas::writes_read_back_the_usage_they_reached,
                quotas::forecast_for_any_filter,
                quotas::cut_off_stream_is_recorded_incomplete,
                quotas::unknown_model_calls_are_refused_only_under_a_cost_limit,
                $($($xmod::$xcase,)*)?
            );
        }
    };
    (@cases $make:ident; $($module:ident :: $case:ident,)*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let Some(backend) = crate::conformance::backend::$make().await else { return };
                crate::conformance::$module::$case(&backend).await;
            }
        )*
    };
}

conformance_tests!(memory);

#[cfg(feature = "sqlite")]
conformance_tests!(sqlite, extra: [ingest::two_handles_on_one_database]);

#[cfg(feature = "postgres")]
conformance_tests!(postgres, extra: [ingest::two_handles_on_one_database]);

/// `Tracker::open` names the URL in its error for anything it cannot use.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_rejects_malformed_urls() {
    errors::open_rejects_malformed_urls().await;
}

#[cfg(feature = "sqlite")]
mod sqlite_only {
    use super::conformance::sqlite_files;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn random_bytes_file_is_refused_and_left_unchanged() {
        sqlite_files::random_bytes_file_is_refused_and_left_unchanged().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn foreign_database_is_refused_and_left_unchanged() {
        sqlite_files::foreign_database_is_refused_and_left_unchanged().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn second_process_writes_concurrently() {
        sqlite_files::second_process_writes_concurrently().await;
    }

    /// The child half of `second_process_writes_concurrently`: that test runs this binary again
    /// with `--ignored --exact sqlite_only::child_writer` and the database path in
    /// `USAGE_CONFORMANCE_CHILD_DB`.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "run as a child process by second_process_writes_concurrently"]
    async fn child_writer() {
        sqlite_files::child_writer().await;
    }
}
