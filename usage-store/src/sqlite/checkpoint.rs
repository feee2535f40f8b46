//! Checkpoints on a thread of their own, not in the writer's commits.
//!
//! SQLite's automatic checkpoint runs inside the commit that takes the WAL past its threshold:
//! that commit, and the batch it carries, waits while the WAL's pages are copied into the
//! database file and both are synced (~12% of the batched writer's time on the bench). Here the
//! writer connection only notes the WAL's length after each commit (a WAL hook, which also
//! turns the automatic checkpoint off), and past [`START_AT`] frames a thread with its own
//! connection runs a PASSIVE checkpoint while the writer goes on.
//!
//! The WAL must also restart, which only happens when a write transaction begins with every
//! frame copied: a WAL that keeps growing makes every commit extend the file, and a commit
//! that appends costs a single `record` ~40 µs more than one that overwrites. A background
//! pass copies what was there when it began, so while commits keep coming it never catches
//! up by itself. Two things close the gap: when a finished pass left few frames behind (at
//! most [`CATCH_UP`], or a quarter of what it copied), the writer copies those itself, a
//! fraction of what an inline checkpoint would have copied; and at [`WAIT_AT`] frames the
//! writer waits for a pass that starts after its commit, as an inline checkpoint would have
//! made it wait, which bounds the WAL.
//!
//! A checkpoint changes no data: readers and writers, in this process or another, see the
//! same database whichever thread runs it.

use std::cell::Cell;
use std::ffi::c_int;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rusqlite::Connection;
use rusqlite::hooks::Wal;

/// When checkpoints happen, in WAL frames (pages).
#[derive(Clone, Copy, Debug)]
pub(super) struct Thresholds {
    /// A background pass starts past this many.
    pub start_at: i32,
    /// The writer waits for a pass at this many.
    pub wait_at: i32,
    /// The writer copies this many or fewer left behind by a finished pass (or up to a
    /// quarter of what the passes copied).
    pub catch_up: i32,
}

/// WAL frames (one page each) after which a background checkpoint starts: the threshold
/// SQLite's automatic checkpoint had here (~20 MB of WAL with a new store's 2 KiB pages,
/// ~40 MB with 4 KiB). In frames, not bytes: a commit writes about as many pages at either
/// size, so this keeps the number of commits between checkpoints.
const START_AT: i32 = 10_000;

/// WAL frames at which the writer waits for a checkpoint pass (~80 MB of WAL at 2 KiB pages,
/// ~160 MB at 4 KiB).
const WAIT_AT: i32 = 40_000;

/// Frames left behind by a finished pass that the writer copies itself (~2 MB at 2 KiB pages;
/// or up to a quarter of what the passes copied, when that is more).
const CATCH_UP: i32 = 1_000;

/// The longest the writer waits for a pass before copying the WAL itself.
const WAIT_AT_MOST: Duration = Duration::from_secs(10);

/// How much of the WAL file is kept when it restarts (`journal_size_limit`): more than
/// [`WAIT_AT`] frames even of 4 KiB pages, so that in steady use commits overwrite the file
/// rather than extend it (on the bench, enqueue 103-104k vs 106-108k/s, and single records
/// after a heavy write 64-80 µs vs 61-63 µs, with 64 MiB kept against this). The file goes
/// when the store is closed.
pub(super) const WAL_KEPT_BYTES: i64 = 192 * 1024 * 1024;

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            start_at: START_AT,
            wait_at: WAIT_AT,
            catch_up: CATCH_UP,
        }
    }
}

thread_local! {
    /// Frames in the WAL after the last commit on this thread's writer connection.
    static WAL_FRAMES: Cell<i32> = const { Cell::new(0) };
}

fn note_wal_frames(_: &Wal, frames: c_int) -> rusqlite::Result<()> {
    WAL_FRAMES.with(|f| f.set(frames));
    Ok(())
}

/// Makes `conn` note the WAL's length after each of its commits (for [`take_wal_frames`]) and
/// stops it checkpointing by itself.
pub(super) fn watch(conn: &Connection) {
    conn.wal_hook(Some(note_wal_frames));
}

/// The WAL's length after the last commit on this thread since the previous call; 0 when
/// nothing was committed.
pub(super) fn take_wal_frames() -> i32 {
    WAL_FRAMES.with(|f| f.replace(0))
}

#[derive(Default)]
struct State {
    /// Passes asked for, started and finished, counted from the first.
    requested: u64,
    started: u64,
    finished: u64,
    closed: bool,
    /// The WAL's length after the writer's last commit.
    frames: i32,
    /// Frames of the current WAL copied by the last pass (0 after it restarted).
    copied: i32,
}

struct Shared {
    state: Mutex<State>,
    changed: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn wait<'a>(&self, guard: MutexGuard<'a, State>) -> MutexGuard<'a, State> {
        self.changed
            .wait(guard)
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// The checkpoint thread of one store. Stopped (and joined) on [`stop`](Self::stop) or drop.
pub(super) struct Checkpointer {
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
    at: Thresholds,
}

impl Checkpointer {
    /// Starts the thread, which checkpoints through `conn` (a connection of its own).
    pub(super) fn start(conn: Connection, at: Thresholds) -> std::io::Result<Checkpointer> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
        });
        let theirs = shared.clone();
        let thread = std::thread::Builder::new()
            .name("usage-sqlite-checkpoint".into())
            .spawn(move || run(&theirs, &conn))?;
        Ok(Checkpointer {
            shared,
            thread: Mutex::new(Some(thread)),
            at,
        })
    }

    /// Called by the writer, with its connection, after a commit that left `frames` frames
    /// in the WAL: asks for a pass, copies the last few frames itself, or waits for a pass
    /// (see the module's documentation).
    pub(super) fn after_commit(&self, writer: &Connection, frames: i32) {
        if frames == 0 {
            // Nothing was committed.
            return;
        }
        let mut s = self.shared.lock();
        if frames < s.frames {
            // The WAL restarted: what the last pass copied is gone with it.
            s.copied = 0;
        }
        s.frames = frames;
        if frames < self.at.start_at {
            return;
        }
        let idle = s.requested == s.finished;
        let few = self.at.catch_up.max(s.copied / 4);
        if idle && s.copied > 0 && frames - s.copied <= few {
            if let Some(copied) = checkpoint(writer) {
                s.copied = copied;
            }
            return;
        }
        if idle {
            s.requested += 1;
            self.shared.changed.notify_all();
        }
        if frames >= self.at.wait_at {
            // A pass that starts after this commit: the one just asked for, or the next.
            if s.requested == s.started {
                s.requested += 1;
                self.shared.changed.notify_all();
            }
            let target = s.requested;
            let deadline = Instant::now() + WAIT_AT_MOST;
            while s.finished < target && !s.closed {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    // The thread is stuck or gone (a fork keeps no threads): copy inline, as
                    // SQLite would have. A pass still running makes this a no-op.
                    drop(s);
                    checkpoint(writer);
                    return;
                }
                s = self
                    .shared
                    .changed
                    .wait_timeout(s, left)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
            }
        }
    }

    /// Passes finished so far.
    #[cfg(test)]
    fn passes_finished(&self) -> u64 {
        self.shared.lock().finished
    }

    /// Waits for a pass running now, if any, and ends the thread.
    pub(super) fn stop(&self) {
        self.shared.lock().closed = true;
        self.shared.changed.notify_all();
        let thread = self
            .thread
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(thread) = thread {
            // The thread only returns; a panic in it has nothing left to clean up.
            let _ = thread.join();
        }
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A PASSIVE checkpoint through `conn`: the frames of the WAL then copied, `None` when it
/// failed. Best effort, as the automatic checkpoint is: frames not copied stay in the WAL,
/// where readers find them, for the next pass.
fn checkpoint(conn: &Connection) -> Option<i32> {
    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| r.get::<_, i32>(2))
        .ok()
}

fn run(shared: &Shared, conn: &Connection) {
    loop {
        let pass = {
            let mut s = shared.lock();
            while !s.closed && s.requested == s.started {
                s = shared.wait(s);
            }
            if s.closed {
                return;
            }
            s.started = s.requested;
            s.started
        };
        let copied = checkpoint(conn);
        let mut s = shared.lock();
        s.finished = pass;
        if let Some(copied) = copied {
            s.copied = copied;
        }
        shared.changed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use rusqlite::Connection;

    use super::{Checkpointer, Thresholds, take_wal_frames, watch};

    fn wal_len(db: &Path) -> u64 {
        std::fs::metadata(format!("{}-wal", db.display())).map_or(0, |m| m.len())
    }

    /// Thresholds a test reaches in a few hundred small commits.
    const SMALL: Thresholds = Thresholds {
        start_at: 40,
        wait_at: 160,
        catch_up: 10,
    };

    /// A fresh database file in WAL mode with a table `t` (its directory and path), its writer
    /// connection, watched, and a checkpointer with the thresholds `at`.
    fn watched_db(
        name: &str,
        at: Thresholds,
    ) -> (
        std::path::PathBuf,
        std::path::PathBuf,
        Connection,
        Checkpointer,
    ) {
        let dir = std::env::temp_dir().join(format!(
            "usage-ckpt-{name}-{}-{}",
            std::process::id(),
            chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let db = dir.join("t.db");
        let writer = Connection::open(&db).unwrap();
        writer
            .query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()))
            .unwrap();
        // Commits that do not sync, passes that do (FULL, the default, on a checkpoint
        // connection): passes are slow next to commits, as with a busy writer.
        writer
            .execute_batch("PRAGMA synchronous = NORMAL; CREATE TABLE t (x BLOB)")
            .unwrap();
        watch(&writer);
        let ckpt = Checkpointer::start(Connection::open(&db).unwrap(), at).unwrap();
        (dir, db, writer, ckpt)
    }

    /// Commits one row through `writer`; the WAL's length after it.
    fn commit(writer: &Connection, bytes: i64) -> i32 {
        writer
            .execute("INSERT INTO t (x) VALUES (zeroblob(?1))", [bytes])
            .unwrap();
        let frames = take_wal_frames();
        assert!(frames > 0, "the hook saw the commit");
        frames
    }

    /// Many commits through a watched connection: the WAL never outgrows the wait threshold
    /// by more than a commit, it restarts again and again (the writer catches up and waits as
    /// designed), and a reader sees every row.
    #[test]
    fn the_wal_stays_bounded_and_restarts_while_commits_keep_coming() {
        let at = SMALL;
        let (dir, db, writer, ckpt) = watched_db("bounded", at);
        let page = 4096 + 24;
        let (mut restarts, mut last, mut longest) = (0, 0, 0);
        for i in 0..3_000 {
            // A page or two per commit.
            let frames = commit(&writer, 3000 + i % 7);
            if frames < last {
                restarts += 1;
            }
            last = frames;
            longest = longest.max(frames);
            ckpt.after_commit(&writer, frames);
        }
        assert!(
            longest < at.wait_at + 10,
            "the WAL reached {longest} frames"
        );
        assert!(wal_len(&db) < ((at.wait_at + 10) * page) as u64);
        assert!(restarts >= 10, "the WAL restarted {restarts} times");
        ckpt.stop();
        let reader = Connection::open(&db).unwrap();
        let n: i64 = reader
            .query_row("SELECT COUNT(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 3_000);
        drop((writer, reader));
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A pass that could not copy the last few frames (a reader held an older snapshot while
    /// it ran) leaves them to the writer, which copies them itself once they are few, so the
    /// WAL restarts long before the writer would have to wait.
    #[test]
    fn the_writer_copies_the_few_frames_a_pass_left() {
        // The writer never has to wait here.
        let at = Thresholds {
            wait_at: 100_000,
            ..SMALL
        };
        let (dir, db, writer, ckpt) = watched_db("catch-up", at);
        let mut frames = 0;
        while frames < 36 {
            frames = commit(&writer, 10);
            ckpt.after_commit(&writer, frames);
        }
        // A reader's snapshot at ~36 frames: no pass copies past it while it lasts.
        let reader = Connection::open(&db).unwrap();
        reader.execute_batch("BEGIN").unwrap();
        let _: i64 = reader
            .query_row("SELECT COUNT(*) FROM t", [], |r| r.get(0))
            .unwrap();
        while frames < at.start_at {
            frames = commit(&writer, 10);
            ckpt.after_commit(&writer, frames);
        }
        // The pass asked for at 40 frames runs while the reader holds its snapshot.
        let asked = std::time::Instant::now();
        while ckpt.passes_finished() < 1 {
            assert!(asked.elapsed().as_secs() < 10, "no pass finished");
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        reader.execute_batch("COMMIT").unwrap();
        // A few frames are left: the writer copies them after its next commit ...
        let before = commit(&writer, 10);
        ckpt.after_commit(&writer, before);
        // ... so the one after that restarts the WAL.
        let after = commit(&writer, 10);
        assert!(
            after < before,
            "the WAL went on from {before} to {after} frames instead of restarting"
        );
        ckpt.stop();
        drop((writer, reader));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
