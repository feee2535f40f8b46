//! SQLite files: a file that is not ours (random bytes, another application's database) is
//! refused with a Store error and left exactly as it was; a second process writing the same
//! file at the same time loses nothing and double-counts nothing.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use usage_core::Error;
use usage_core::event::{NewEvent, UsageEvent};
use usage_core::store::Store;
use usage_store::{Tracker, TrackerOptions};

use super::backend::{open_sqlite, remove_db_files, temp_db_path};
use super::check::Check;
use super::data::{Rng, all_events, at, random_event, sorted};

const CHILD_ENV: &str = "USAGE_CONFORMANCE_CHILD_DB";

/// Removes the files when dropped.
struct Files<'a>(&'a Path);

impl Drop for Files<'_> {
    fn drop(&mut self) {
        remove_db_files(self.0);
    }
}

async fn expect_refused(c: &mut Check, label: &str, path: &Path) {
    let before = std::fs::read(path).expect("read the file");
    match open_sqlite(path).await {
        Err(e @ Error::Store { .. }) => c.that(
            format!("{label}: the error says sqlite: {e}"),
            e.to_string().contains("sqlite"),
        ),
        Err(e) => c.fail(format!(
            "{label}: expected a Store error, got {} ({e})",
            e.code()
        )),
        Ok(s) => c.fail(format!("{label}: opened it: {s:?}")),
    }
    match Tracker::open(&format!("sqlite://{}", path.display())).await {
        Err(e) => c.eq(
            format!("{label}: Tracker::open error code"),
            e.code(),
            "STORE_ERROR",
        ),
        Ok(_) => c.fail(format!("{label}: Tracker::open opened it")),
    }
    let after = std::fs::read(path).expect("read the file again");
    c.that(
        format!(
            "{label}: the file is unchanged byte for byte ({} bytes before, {} after)",
            before.len(),
            after.len()
        ),
        before == after,
    );
    for suffix in ["-wal", "-shm", "-journal"] {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        c.that(
            format!("{label}: no {suffix} file left behind"),
            !Path::new(&p).exists(),
        );
    }
}

/// 64 KiB of random bytes.
pub async fn random_bytes_file_is_refused_and_left_unchanged() {
    let mut c = Check::new("sqlite", "random_bytes_file_is_refused_and_left_unchanged");
    let path = temp_db_path("random");
    let _files = Files(&path);
    let mut rng = Rng::new(99);
    let bytes: Vec<u8> = (0..65_536).map(|_| rng.next_u64() as u8).collect();
    std::fs::write(&path, bytes).expect("write random bytes");
    expect_refused(&mut c, "random bytes", &path).await;
    c.finish();
}

/// A valid SQLite database made by another application.
pub async fn foreign_database_is_refused_and_left_unchanged() {
    let mut c = Check::new("sqlite", "foreign_database_is_refused_and_left_unchanged");
    let path = temp_db_path("foreign");
    let _files = Files(&path);
    {
        let conn = rusqlite::Connection::open(&path).expect("create a foreign database");
        conn.execute_batch("CREATE TABLE invoices (id INTEGER PRIMARY KEY, customer TEXT, amount REAL); INSERT INTO invoices (customer, amount) VALUES ('acme', 12.5), ('globex', 99.0);")
            .expect("fill it");
    }
    expect_refused(&mut c, "foreign database", &path).await;
    let conn = rusqlite::Connection::open(&path).expect("reopen");
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
        .expect("list tables");
    c.eq(
        "foreign database: its tables",
        tables,
        vec!["invoices".to_owned()],
    );
    c.finish();
}

/// The `i`th event written by `who`; `both-*` ids are written by both processes, identically.
fn process_event(who: &str, i: usize) -> NewEvent {
    let shared = i.is_multiple_of(3);
    let (id, seed) = if shared {
        (format!("both-{i}"), 50_000 + i as u64)
    } else {
        (
            format!("{who}-{i}"),
            if who == "parent" { 60_000 } else { 70_000 } + i as u64,
        )
    };
    let mut rng = Rng::new(seed);
    let ts = at("2026-08-01T00:00:00Z")
        + chrono::Duration::milliseconds(rng.below(2 * 86_400_000) as i64);
    random_event(&mut rng, id, ts)
}

const PER_PROCESS: usize = 240;

async fn write_as(tracker: &Tracker, who: &str) -> Vec<(String, bool, UsageEvent)> {
    let mut out = Vec::new();
    for i in 0..PER_PROCESS {
        let r = tracker
            .record(process_event(who, i))
            .await
            .unwrap_or_else(|e| panic!("{who} record {i}: {e}"));
        out.push((r.event.id.to_string(), r.duplicate, r.event));
    }
    out
}

/// This test binary runs again as a child process writing the same file while this process
/// writes too; afterwards each id is stored once and the sums are exact.
pub async fn second_process_writes_concurrently() {
    let mut c = Check::new("sqlite", "second_process_writes_concurrently");
    let path = temp_db_path("two-processes");
    let _files = Files(&path);
    let store: Arc<dyn Store> = Arc::new(open_sqlite(&path).await.expect("create the file"));
    let tracker = Tracker::with_store(store.clone(), TrackerOptions::default());

    let exe = std::env::current_exe().expect("current_exe");
    let child = Command::new(exe)
        .args([
            "--exact",
            "sqlite_only::child_writer",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, &path)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn the child writer");
    let child = tokio::task::spawn_blocking(move || child.wait_with_output());
    let mine = write_as(&tracker, "parent").await;
    let out = child.await.expect("join").expect("child output");
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    c.that(
        format!("the child writer succeeded ({}):\n{log}", out.status),
        out.status.success(),
    );
    c.that(
        format!("the child writer really ran:\n{log}"),
        log.contains("1 passed"),
    );

    // Every event the two processes meant to write, each id once.
    let mut expected: BTreeMap<String, UsageEvent> = BTreeMap::new();
    for (id, _, e) in &mine {
        expected.insert(id.clone(), e.clone());
    }
    let child_tracker = Tracker::with_store(
        Arc::new(usage_store::memory::MemoryStore::default()),
        TrackerOptions::default(),
    );
    for i in 0..PER_PROCESS {
        let (e, _) = child_tracker
            .prepare(process_event("child", i))
            .expect("prepare");
        expected.entry(e.id.to_string()).or_insert(e);
    }
    let expected: Vec<UsageEvent> = expected.into_values().collect();
    c.eq(
        "unique events",
        expected.len(),
        2 * PER_PROCESS - PER_PROCESS / 3,
    );
    let stored = all_events(&*store).await;
    c.events("stored events", &stored, &sorted(expected.clone()));
    super::ingest::check_totals_every_way(
        &mut c,
        "after two processes",
        &tracker,
        &*store,
        &expected,
    )
    .await;
    c.verified("verify_rollups", tracker.verify_rollups(None).await);
    tracker.close().await.expect("close");
    c.finish();
}

/// The child half: writes its events into the file named by the environment.
pub async fn child_writer() {
    let Ok(path) = std::env::var(CHILD_ENV) else {
        eprintln!("child_writer: {CHILD_ENV} is not set; nothing to do");
        return;
    };
    let store: Arc<dyn Store> = Arc::new(
        open_sqlite(Path::new(&path))
            .await
            .expect("child: open the file"),
    );
    let tracker = Tracker::with_store(store, TrackerOptions::default());
    let results = write_as(&tracker, "child").await;
    eprintln!(
        "child_writer: wrote {} events ({} new)",
        results.len(),
        results.iter().filter(|r| !r.1).count()
    );
    tracker.close().await.expect("child: close");
}
