//! The idempotency check: whether an event id is already stored.
//!
//! A unique index on the text ids (random provider ids such as `msg_…`) puts every new id at
//! a random leaf of a large b-tree, so a batch of N events dirties about min(N, leaves) pages
//! and the WAL writes each of them: on a 1M-event store that index was 60% of the pages a
//! batch wrote. Instead, ids are kept as 64-bit hashes, `(h, seq)` pairs pointing at the
//! `events` row, in two tables:
//!
//! - `event_ids_recent`, which every insert writes: small, so a batch rewrites few pages;
//! - `event_ids`, the rest, into which a large write merges `event_ids_recent` in one sorted
//!   pass once it holds an eighth of the store (at least [`MERGE_AT_LEAST`] ids), so each of
//!   its pages is rewritten once per merge rather than once per batch.
//!
//! An id is stored when a pair with its hash points at an event with that very id: a hash
//! shared by two ids (about 1 in 2^64 / n) costs one more row read, never a wrong answer.
//! The hash is part of the file format: [`hash`] must never change.

use rusqlite::Connection;
use rusqlite::functions::FunctionFlags;

use super::Fail;

/// The SQL name of [`hash`], registered on every writer connection (the migration that
/// creates the tables and `purge` use it).
pub(super) const SQL_FUNCTION: &str = "usage_id_hash";

/// The fewest recent ids that are merged into `event_ids`.
const MERGE_AT_LEAST: i64 = 50_000;

/// Sequence numbers are checked for a due merge each time they cross a multiple of this:
/// counting `event_ids_recent` is then rare enough to cost nothing measurable.
const MERGE_CHECK_EVERY: i64 = 4_096;

/// Only a write of at least this many new events merges (the batched writer's, or a large
/// `record_many`): a merge rewrites `event_ids` (tens of milliseconds at a million events, a
/// second or more at ten million), which a single `record` in a request must never wait for.
/// Stores written one event at a time just keep their ids in `event_ids_recent`, which costs
/// a single event nothing more.
const MERGE_MIN_BATCH: i64 = 256;

/// The 64-bit hash of an event id: FNV-1a over its UTF-8 bytes, then a SplitMix64 finaliser
/// so that ids differing in their last characters spread over the whole key space.
pub(super) fn hash(id: &str) -> i64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in id.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^= h >> 31;
    h as i64
}

/// Makes [`hash`] callable from SQL as `usage_id_hash(id)`.
pub(super) fn register(conn: &Connection) -> rusqlite::Result<()> {
    conn.create_scalar_function(
        SQL_FUNCTION,
        1,
        FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC,
        |ctx| {
            let id: String = ctx.get(0)?;
            Ok(hash(&id))
        },
    )
}

/// Whether an event with `id` (whose hash is `h`) is stored, this transaction's inserts
/// included.
pub(super) fn exists(conn: &Connection, h: i64, id: &str) -> Result<bool, Fail> {
    let mut stmt = conn.prepare_cached(
        "SELECT 1 FROM event_ids_recent i JOIN events e ON e.seq = i.seq WHERE i.h = ?1 AND e.id = ?2
         UNION ALL
         SELECT 1 FROM event_ids i JOIN events e ON e.seq = i.seq WHERE i.h = ?1 AND e.id = ?2
         LIMIT 1",
    )?;
    stmt.raw_bind_parameter(1, h)?;
    stmt.raw_bind_parameter(2, id)?;
    Ok(stmt.raw_query().next()?.is_some())
}

/// Records that the event at `seq` has hash `h`.
pub(super) fn add(conn: &Connection, h: i64, seq: i64) -> Result<(), Fail> {
    let mut stmt = conn.prepare_cached("INSERT INTO event_ids_recent (h, seq) VALUES (?1, ?2)")?;
    stmt.raw_bind_parameter(1, h)?;
    stmt.raw_bind_parameter(2, seq)?;
    stmt.raw_execute()?;
    Ok(())
}

/// After inserting events numbered `first_seq` to `last_seq`, merges the recent ids into
/// `event_ids` when they have grown past their share, inside the caller's transaction.
pub(super) fn merge_if_due(conn: &Connection, first_seq: i64, last_seq: i64) -> Result<(), Fail> {
    if last_seq - first_seq + 1 < MERGE_MIN_BATCH
        || first_seq / MERGE_CHECK_EVERY == last_seq / MERGE_CHECK_EVERY
    {
        return Ok(());
    }
    let recent: i64 = conn.query_row("SELECT COUNT(*) FROM event_ids_recent", [], |r| r.get(0))?;
    // The highest sequence number is the store's size, purged events aside: an estimate is
    // all a merge threshold needs.
    if recent >= MERGE_AT_LEAST.max(last_seq / 8) {
        merge(conn)?;
    }
    Ok(())
}

/// Moves every recent id into `event_ids`, in key order.
pub(super) fn merge(conn: &Connection) -> Result<(), Fail> {
    conn.execute_batch(
        "INSERT INTO event_ids (h, seq) SELECT h, seq FROM event_ids_recent ORDER BY h, seq;
         DELETE FROM event_ids_recent;",
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::hash;

    /// The hash is part of the file format: these values must never change.
    #[test]
    fn hash_is_stable() {
        for (id, want) in [
            ("", -780_787_492_076_525_413),
            ("msg_01XFDUDYJgAACzvnptvVoYEL", 4_287_810_030_232_258_585),
            (
                "chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG",
                2_474_712_374_834_413_850,
            ),
            ("é", 2_536_656_207_217_688_990),
        ] {
            assert_eq!(hash(id), want, "{id:?}");
        }
    }
}
