//! The idempotency check: whether an event id is already stored.
//!
//! A unique index on the text ids (random provider ids such as `msg_…`) puts every new id at
//! a random leaf of a large b-tree, so a batch of N events dirties about min(N, leaves) pages
//! and the WAL writes each of them: on a 1M-event store that index was 60% of the pages a
//! batch wrote. Instead, ids are kept as 64-bit hashes, `(h, seq)` pairs pointing at the
//! `events` row, in two tables:
//!
//! - `event_ids_recent`, which every insert writes: small, so a batch rewrites few pages;
//! - `event_ids`, the rest. Once `event_ids_recent` holds an eighth of the store (at least
//!   [`MERGE_AT_LEAST`] ids), each large write moves one of [`SLICES`] slices of the hash
//!   space from it into `event_ids`, in key order, the slices taken in turn: a page of
//!   `event_ids` is rewritten once per sweep rather than once per batch, and no write pays
//!   for more than a slice (a whole merge took 0.3 s at 1M events and 7.6 s at 10M on the
//!   bench machine).
//!
//! An id is stored when a pair with its hash points at an event with that very id: a hash
//! shared by two ids (about 1 in 2^64 / n) costs one more row read, never a wrong answer.
//! The hash is part of the file format: [`hash`] must never change.

use std::rc::Rc;

use rusqlite::functions::FunctionFlags;
use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, params};

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
/// `record_many`): a merge rewrites a slice of `event_ids`, which a single `record` in a
/// request must never wait for. Stores written one event at a time just keep their ids in
/// `event_ids_recent`, which costs a single event nothing more.
const MERGE_MIN_BATCH: i64 = 256;

/// The hash space is merged in this many equal slices, one per due merge.
const SLICES: i64 = 16;

/// `meta` key of the slice the next merge moves (0 to `SLICES - 1`).
const NEXT_SLICE: &str = "event_ids_next_slice";

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

/// Makes [`hash`] callable from SQL as `usage_id_hash(id)`, and `rarray(?)` (a bound list of
/// values as a table) available for [`stored`].
pub(super) fn register(conn: &Connection) -> rusqlite::Result<()> {
    rusqlite::vtab::array::load_module(conn)?;
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

/// `SELECT {cols}` (over `events e`) of the stored event with id `?2`, whose hash is `?1`,
/// through either id table: the lookup of one event by id, for reads.
pub(super) fn lookup_sql(cols: &str) -> String {
    format!(
        "SELECT {cols} FROM event_ids_recent i JOIN events e ON e.seq = i.seq WHERE i.h = ?1 AND e.id = ?2
         UNION ALL
         SELECT {cols} FROM event_ids i JOIN events e ON e.seq = i.seq WHERE i.h = ?1 AND e.id = ?2
         LIMIT 1"
    )
}

/// A batch's ids with their hashes, and the hashes sorted for [`Lookup::stored`]: made before
/// the write lock is taken.
pub(super) struct Lookup<'a> {
    ids: Vec<&'a str>,
    hashes: Vec<i64>,
    /// Positions in the batch, by hash: the lookup's matches are found here.
    by_hash: Vec<usize>,
    /// Per id, whether an earlier one of the batch has the same id (a duplicate, whatever
    /// the store holds: the first one wins).
    repeated: Vec<bool>,
    /// The distinct hashes, in order, as `rarray` takes them.
    list: Rc<Vec<Value>>,
}

impl<'a> Lookup<'a> {
    pub(super) fn new(ids: Vec<&'a str>) -> Lookup<'a> {
        let hashes: Vec<i64> = ids.iter().map(|id| hash(id)).collect();
        let mut by_hash: Vec<usize> = (0..ids.len()).collect();
        // Equal ids next to each other, the first of them first (ids are compared only
        // where hashes are equal).
        by_hash.sort_unstable_by_key(|&i| (hashes[i], ids[i], i));
        let mut repeated = vec![false; ids.len()];
        for pair in by_hash.windows(2) {
            let (a, b) = (pair[0], pair[1]);
            repeated[b] = hashes[a] == hashes[b] && ids[a] == ids[b];
        }
        let mut list: Vec<Value> = by_hash.iter().map(|&i| Value::Integer(hashes[i])).collect();
        list.dedup();
        Lookup {
            ids,
            hashes,
            by_hash,
            repeated,
            list: Rc::new(list),
        }
    }

    /// Each id's hash, and whether an earlier id of the batch is the same, in the batch's
    /// order.
    pub(super) fn iter(&self) -> impl Iterator<Item = (i64, bool)> + '_ {
        self.hashes
            .iter()
            .copied()
            .zip(self.repeated.iter().copied())
    }

    /// For each id, whether an event with that id is stored: one statement for a whole
    /// batch, walking the hashes in key order, where a statement per id would open four
    /// cursors per event (a single event costs the same either way). A stored event whose id
    /// merely shares a hash is not a match.
    pub(super) fn stored(&self, conn: &Connection) -> Result<Vec<bool>, Fail> {
        // CROSS JOIN keeps the list the outer loop: one seek per hash into each id table.
        let mut stmt = conn.prepare_cached(
            "SELECT i.h, e.id FROM rarray(?1) AS a CROSS JOIN event_ids_recent AS i ON i.h = a.value
             JOIN events AS e ON e.seq = i.seq
             UNION ALL
             SELECT i.h, e.id FROM rarray(?1) AS a CROSS JOIN event_ids AS i ON i.h = a.value
             JOIN events AS e ON e.seq = i.seq",
        )?;
        let (ids, hashes, by_hash) = (&self.ids, &self.hashes, &self.by_hash);
        let mut found = vec![false; ids.len()];
        let mut rows = stmt.query([self.list.clone()])?;
        while let Some(row) = rows.next()? {
            let h: i64 = row.get(0)?;
            let id = row.get_ref(1)?.as_str().map_err(rusqlite::Error::from)?;
            let first = by_hash.partition_point(|&i| hashes[i] < h);
            for &i in by_hash[first..].iter().take_while(|&&i| hashes[i] == h) {
                if ids[i] == id {
                    found[i] = true;
                }
            }
        }
        Ok(found)
    }
}

/// Records the hashes of new events, `(h, seq)` pairs, in key order: a batch's inserts then
/// walk `event_ids_recent` from front to back instead of jumping around it.
pub(super) fn add(conn: &Connection, pairs: &mut [(i64, i64)]) -> Result<(), Fail> {
    pairs.sort_unstable();
    let mut stmt = conn.prepare_cached("INSERT INTO event_ids_recent (h, seq) VALUES (?1, ?2)")?;
    for &(h, seq) in pairs.iter() {
        stmt.raw_bind_parameter(1, h)?;
        stmt.raw_bind_parameter(2, seq)?;
        stmt.raw_execute()?;
    }
    Ok(())
}

/// After inserting events numbered `first_seq` to `last_seq`, moves the next slice of the
/// recent ids into `event_ids` when they have grown past their share, inside the caller's
/// transaction.
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
        let slice: i64 = conn
            .query_row(
                "SELECT CAST(value AS INTEGER) FROM meta WHERE key = ?1",
                [NEXT_SLICE],
                |r| r.get(0),
            )
            .optional()?
            .unwrap_or(0_i64)
            .rem_euclid(SLICES);
        merge_slice(conn, slice)?;
        conn.execute(
            "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            params![NEXT_SLICE, ((slice + 1) % SLICES).to_string()],
        )?;
    }
    Ok(())
}

/// The hashes of `slice`: an inclusive range, the slices covering all of `i64` in order.
fn slice_bounds(slice: i64) -> (i64, i64) {
    let width = u64::MAX / SLICES as u64 + 1;
    let lo = (i64::MIN as u64).wrapping_add(width * slice as u64) as i64;
    let hi = if slice == SLICES - 1 {
        i64::MAX
    } else {
        lo + (width - 1) as i64
    };
    (lo, hi)
}

/// Moves the recent ids of one slice of the hash space into `event_ids`, in key order.
fn merge_slice(conn: &Connection, slice: i64) -> Result<(), Fail> {
    let (lo, hi) = slice_bounds(slice);
    conn.execute(
        "INSERT INTO event_ids (h, seq) SELECT h, seq FROM event_ids_recent WHERE h BETWEEN ?1 AND ?2 ORDER BY h, seq",
        params![lo, hi],
    )?;
    conn.execute(
        "DELETE FROM event_ids_recent WHERE h BETWEEN ?1 AND ?2",
        params![lo, hi],
    )?;
    Ok(())
}

/// Moves every recent id into `event_ids`.
#[cfg(test)]
pub(super) fn merge(conn: &Connection) -> Result<(), Fail> {
    for slice in 0..SLICES {
        merge_slice(conn, slice)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{SLICES, hash, slice_bounds};

    /// The slices cover every hash once, in order.
    #[test]
    fn slices_cover_the_hash_space() {
        assert_eq!(slice_bounds(0).0, i64::MIN);
        assert_eq!(slice_bounds(SLICES - 1).1, i64::MAX);
        for s in 1..SLICES {
            assert_eq!(
                slice_bounds(s - 1).1.checked_add(1),
                Some(slice_bounds(s).0)
            );
        }
    }

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
