//! Measures this machine on the reference workloads that the storage issue quotes ("measured on
//! this machine for reference"), and prints each next to the issue's figure, so that bench
//! figures taken on machines of different speed can be compared.
//!
//! ```text
//! cargo run --release -p usage-benches --bin calibrate
//! cargo run --release -p usage-benches --bin calibrate -- --url postgres://postgres@127.0.0.1:5432/test
//! ```
//!
//! Options: `--rows N` (rows of the one-transaction and COPY workloads, default 1,000,000),
//! `--batched-rows N` (rows of the 1,000-per-statement or -commit workloads, default a fifth of
//! `--rows`), `--inserts N` (timed single-row inserts, default 2,000), `--dir DIR` (where the
//! SQLite files go, default the temp directory), `--url URL` (also measure PostgreSQL there, in
//! a schema of its own that is dropped at the end).
//!
//! Every SQLite workload gets a fresh file in WAL mode with `synchronous = NORMAL` (the store's
//! defaults) and SQLite's other defaults; every row is generated before the clock starts.
#![allow(clippy::print_stdout)]

use std::error::Error;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::Utc;
use rusqlite::{Connection, params};
use sqlx::{Connection as _, PgConnection};
use usage_benches::cli::Args;
use usage_benches::dataset;
use usage_benches::rng::Rng;
use usage_benches::stats::{Samples, fmt_count, fmt_duration, machine, markdown_table};

/// The workloads' table, the same on both databases (`user` is a reserved word in PostgreSQL).
const COLUMNS: &str = r#"(id TEXT, ts BIGINT, "user" TEXT, tokens BIGINT, cost BIGINT)"#;
const SQLITE_INSERT: &str =
    r#"INSERT INTO t (id, ts, "user", tokens, cost) VALUES (?1, ?2, ?3, ?4, ?5)"#;
const PG_INSERT: &str =
    r#"INSERT INTO t (id, ts, "user", tokens, cost) VALUES ($1, $2, $3, $4, $5)"#;
const PG_UNNEST: &str = r#"INSERT INTO t (id, ts, "user", tokens, cost)
    SELECT * FROM UNNEST($1::text[], $2::int8[], $3::text[], $4::int8[], $5::int8[])"#;
/// Rows of the one-transaction and COPY workloads, as in the issue; the batched ones get a fifth.
const DEFAULT_ROWS: usize = 1_000_000;
/// Rows per commit (SQLite) or per statement (PostgreSQL) of the batched workloads.
const BATCH: usize = 1_000;
/// Single-row inserts run before the timed ones.
const WARMUP: usize = 100;
/// `msg_` and 24 base62 characters.
const ID_LEN: usize = 28;

// One thread: the client adds no hop between threads to the single-insert latency, and the
// SQLite workloads, which block, have the runtime to themselves.
#[tokio::main(flavor = "current_thread")]
async fn main() {
    if let Err(e) = run().await {
        eprintln!("calibrate: {e}");
        std::process::exit(1);
    }
}

/// The rows every workload inserts, column by column; the ids are random like provider message
/// ids (so a unique index on them is written at random places), held in one string.
struct Rows {
    ids: String,
    ts: Vec<i64>,
    users: Vec<u16>,
    tokens: Vec<i64>,
    cost: Vec<i64>,
    user_names: Vec<String>,
}

impl Rows {
    fn generate(n: usize) -> Rows {
        let mut rng = Rng::stream(dataset::SEED, "calibrate");
        let mut ids = String::with_capacity(n * ID_LEN);
        for _ in 0..n {
            ids.push_str("msg_");
            rng.base62(ID_LEN - 4, &mut ids);
        }
        let start_ms = Utc::now().timestamp_millis();
        Rows {
            ids,
            ts: (0..n as i64).map(|i| start_ms + i * 10).collect(),
            users: (0..n).map(|_| rng.below(1_000) as u16).collect(),
            tokens: (0..n).map(|_| rng.below(20_000) as i64).collect(),
            cost: (0..n).map(|_| rng.below(5_000_000) as i64).collect(),
            user_names: (0..1_000).map(|u| format!("user_{u:04}")).collect(),
        }
    }

    fn id(&self, i: usize) -> &str {
        &self.ids[i * ID_LEN..(i + 1) * ID_LEN]
    }

    fn user(&self, i: usize) -> &str {
        &self.user_names[usize::from(self.users[i])]
    }

    /// Rows `range` in PostgreSQL's COPY text format (no value needs escaping).
    fn copy_text(&self, range: std::ops::Range<usize>) -> Vec<u8> {
        let mut out = Vec::with_capacity(range.len() * 64);
        for i in range {
            let line = format!(
                "{}\t{}\t{}\t{}\t{}\n",
                self.id(i),
                self.ts[i],
                self.user(i),
                self.tokens[i],
                self.cost[i]
            );
            out.extend_from_slice(line.as_bytes());
        }
        out
    }
}

/// Whether a workload is a rate (rows per second) or the time of one operation.
#[derive(Clone, Copy)]
enum Unit {
    RowsPerSec,
    Latency,
}

/// One workload: the issue's figure and this machine's, both as operations per second so that
/// their ratio means the same for rates and latencies.
struct Measured {
    workload: String,
    unit: Unit,
    /// The issue's figure, or its range.
    reference: [f64; 2],
    per_sec: f64,
}

impl Measured {
    fn rate(workload: String, reference: [f64; 2], rows: usize, took: Duration) -> Measured {
        Measured {
            workload,
            unit: Unit::RowsPerSec,
            reference,
            per_sec: rows as f64 / took.as_secs_f64(),
        }
    }

    fn show(&self, per_sec: f64) -> String {
        match self.unit {
            Unit::RowsPerSec => format!("{}/s", fmt_count(per_sec)),
            Unit::Latency => fmt_duration(Duration::from_secs_f64(1.0 / per_sec)),
        }
    }

    fn cells(&self) -> [String; 4] {
        let [low, high] = self.reference;
        let reference = if low == high {
            format!("≈ {}", self.show(low))
        } else {
            format!("{}–{}", fmt_count(low), self.show(high))
        };
        // Against a range's midpoint; above 1 means this machine is faster.
        let ratio = self.per_sec / ((low + high) / 2.0);
        [
            self.workload.clone(),
            reference,
            self.show(self.per_sec),
            format!("{ratio:.2}"),
        ]
    }
}

/// Prints a workload's result as it comes and keeps it for the table.
fn report(out: &mut Vec<Measured>, m: Measured) {
    println!("- {}: {}", m.workload, m.show(m.per_sec));
    out.push(m);
}

/// The results as a Markdown table (`stats::table` lays out `stats::Row`s, whose columns are a
/// target's, not a reference's).
fn table(rows: &[Measured]) -> String {
    let head = [
        "workload",
        "reference (from the issue)",
        "this machine",
        "ratio",
    ];
    let body: Vec<Vec<String>> = rows.iter().map(|r| r.cells().to_vec()).collect();
    markdown_table(&head, &body)
}

/// A database file that is removed, with its `-wal` and `-shm`, when made and when dropped, so
/// each workload starts from an empty file and none is left behind, even on an error.
struct Scratch(PathBuf);

impl Scratch {
    fn new(path: PathBuf) -> Scratch {
        let s = Scratch(path);
        s.remove();
        s
    }

    fn remove(&self) {
        for suffix in ["", "-wal", "-shm"] {
            let mut p = self.0.clone().into_os_string();
            p.push(suffix);
            let _ = std::fs::remove_file(p);
        }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        self.remove();
    }
}

/// Inserts rows `0..n` into a fresh SQLite file, committing every `per_commit` rows; the time
/// from the first BEGIN to the last COMMIT (automatic checkpoints included).
fn sqlite_insert(
    dir: &Path,
    data: &Rows,
    n: usize,
    unique: bool,
    per_commit: usize,
) -> Result<Duration, Box<dyn Error>> {
    let file = Scratch::new(dir.join(format!("usage-calibrate-{}.db", std::process::id())));
    let mut conn = Connection::open(&file.0)?;
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(format!("{} cannot use WAL mode (stays {mode})", file.0.display()).into());
    }
    conn.execute_batch(&format!(
        "PRAGMA synchronous = NORMAL; CREATE TABLE t {COLUMNS};"
    ))?;
    if unique {
        conn.execute_batch("CREATE UNIQUE INDEX t_id ON t (id)")?;
    }
    let started = Instant::now();
    for start in (0..n).step_by(per_commit) {
        let tx = conn.transaction()?;
        {
            let mut insert = tx.prepare_cached(SQLITE_INSERT)?;
            for i in start..n.min(start + per_commit) {
                insert.execute(params![
                    data.id(i),
                    data.ts[i],
                    data.user(i),
                    data.tokens[i],
                    data.cost[i]
                ])?;
            }
        }
        tx.commit()?;
    }
    Ok(started.elapsed())
}

/// How many rows each workload writes.
#[derive(Clone, Copy)]
struct Sizes {
    /// Rows of the one-transaction and COPY workloads.
    rows: usize,
    /// Rows of the 1,000-at-a-time workloads.
    batched: usize,
    /// Timed single-row inserts.
    inserts: usize,
}

fn sqlite(
    dir: &Path,
    data: &Rows,
    sizes: Sizes,
    out: &mut Vec<Measured>,
) -> Result<(), Box<dyn Error>> {
    let Sizes { rows, batched, .. } = sizes;
    let took = sqlite_insert(dir, data, rows, false, rows)?;
    report(
        out,
        Measured::rate(
            format!(
                "SQLite: plain rows, one transaction ({} rows)",
                fmt_count(rows as f64)
            ),
            [750_000.0; 2],
            rows,
            took,
        ),
    );
    let took = sqlite_insert(dir, data, rows, true, rows)?;
    report(
        out,
        Measured::rate(
            format!(
                "SQLite: unique index on random ids, one transaction ({} rows)",
                fmt_count(rows as f64)
            ),
            [165_000.0; 2],
            rows,
            took,
        ),
    );
    let took = sqlite_insert(dir, data, batched, true, BATCH)?;
    report(
        out,
        Measured::rate(
            format!(
                "SQLite: unique index on random ids, a commit per 1,000 rows ({} rows)",
                fmt_count(batched as f64)
            ),
            [37_000.0; 2],
            batched,
            took,
        ),
    );
    Ok(())
}

/// Runs the PostgreSQL workloads in a fresh schema of their own, which is dropped afterwards
/// whether they succeeded or not.
async fn postgres(
    url: &str,
    data: &Rows,
    sizes: Sizes,
    out: &mut Vec<Measured>,
) -> Result<(), Box<dyn Error>> {
    let mut conn = PgConnection::connect(url).await?;
    let version: String = sqlx::query_scalar("SHOW server_version")
        .fetch_one(&mut conn)
        .await?;
    let schema = format!("usage_calibrate_{}", std::process::id());
    println!("PostgreSQL {version} at {url}, schema {schema} (dropped at the end)");
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}; SET search_path TO {schema}"
    )))
    .execute(&mut conn)
    .await?;
    let measured = postgres_workloads(&mut conn, data, sizes, out).await;
    let dropped = sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
        .execute(&mut conn)
        .await;
    measured?;
    dropped?;
    conn.close().await?;
    Ok(())
}

/// A fresh table `t`, with a unique index on `id` when `unique`.
async fn pg_table(conn: &mut PgConnection, unique: bool) -> Result<(), sqlx::Error> {
    let index = if unique {
        "CREATE UNIQUE INDEX t_id ON t (id);"
    } else {
        ""
    };
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "DROP TABLE IF EXISTS t; CREATE TABLE t {COLUMNS}; {index}"
    )))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

async fn postgres_workloads(
    conn: &mut PgConnection,
    data: &Rows,
    sizes: Sizes,
    out: &mut Vec<Measured>,
) -> Result<(), Box<dyn Error>> {
    let Sizes {
        rows,
        batched,
        inserts,
    } = sizes;
    // COPY, text format, in 1 MiB messages; its own transaction, so the commit is included.
    pg_table(conn, false).await?;
    let text = data.copy_text(0..rows);
    let started = Instant::now();
    let mut copy = conn.copy_in_raw("COPY t FROM STDIN").await?;
    for chunk in text.chunks(1 << 20) {
        if let Err(e) = copy.send(chunk).await {
            // Ends the COPY so the connection stays usable to drop the schema.
            let _ = copy.abort(e.to_string()).await;
            return Err(e.into());
        }
    }
    copy.finish().await?;
    let took = started.elapsed();
    report(
        out,
        Measured::rate(
            format!(
                "PostgreSQL: COPY (text) of plain rows ({} rows)",
                fmt_count(rows as f64)
            ),
            [300_000.0, 390_000.0],
            rows,
            took,
        ),
    );

    // 1,000 rows per statement, bound as arrays; each statement commits on its own.
    pg_table(conn, true).await?;
    let started = Instant::now();
    for start in (0..batched).step_by(BATCH) {
        let range = start..batched.min(start + BATCH);
        let ids: Vec<&str> = range.clone().map(|i| data.id(i)).collect();
        let users: Vec<&str> = range.clone().map(|i| data.user(i)).collect();
        sqlx::query(PG_UNNEST)
            .bind(ids)
            .bind(&data.ts[range.clone()])
            .bind(users)
            .bind(&data.tokens[range.clone()])
            .bind(&data.cost[range])
            .execute(&mut *conn)
            .await?;
    }
    let took = started.elapsed();
    report(
        out,
        Measured::rate(
            format!(
                "PostgreSQL: INSERT … UNNEST, 1,000 rows per statement, unique index on random ids ({} rows)",
                fmt_count(batched as f64)
            ),
            [70_000.0, 95_000.0],
            batched,
            took,
        ),
    );

    // One autocommit statement per row, into a table without an index.
    pg_table(conn, false).await?;
    let mut samples = Vec::with_capacity(inserts);
    for i in 0..WARMUP + inserts {
        let started = Instant::now();
        sqlx::query(PG_INSERT)
            .bind(data.id(i))
            .bind(data.ts[i])
            .bind(data.user(i))
            .bind(data.tokens[i])
            .bind(data.cost[i])
            .execute(&mut *conn)
            .await?;
        if i >= WARMUP {
            samples.push(started.elapsed());
        }
    }
    let median = Samples(samples).median();
    report(
        out,
        Measured {
            workload: format!(
                "PostgreSQL: one autocommit single-row INSERT (median of {})",
                fmt_count(inserts as f64)
            ),
            unit: Unit::Latency,
            reference: [1.0 / 230e-6; 2],
            per_sec: 1.0 / median.as_secs_f64(),
        },
    );
    Ok(())
}

async fn run() -> Result<(), Box<dyn Error>> {
    let args = Args::parse(&[])?;
    let rows: usize = args.num("rows", DEFAULT_ROWS)?;
    let batched: usize = args.num("batched-rows", rows / 5)?;
    let inserts: usize = args.num("inserts", 2_000)?;
    if rows == 0 || batched == 0 || inserts == 0 {
        return Err("--rows, --batched-rows and --inserts must be positive".into());
    }
    let dir = args
        .get("dir")
        .map_or_else(std::env::temp_dir, PathBuf::from);
    println!(
        "calibrate {}: {}; {}",
        env!("CARGO_PKG_VERSION"),
        machine(),
        Utc::now().format("%Y-%m-%d %H:%M UTC"),
    );
    println!(
        "SQLite {} in {} (a fresh file per workload; WAL, synchronous=NORMAL)",
        rusqlite::version(),
        dir.display()
    );
    let data = Rows::generate(rows.max(batched).max(WARMUP + inserts));
    let mut out = Vec::new();
    let sizes = Sizes {
        rows,
        batched,
        inserts,
    };
    sqlite(&dir, &data, sizes, &mut out)?;
    match args.get("url") {
        Some(url) => postgres(url, &data, sizes, &mut out).await?,
        None => println!("PostgreSQL not measured: give --url postgres://… to include it"),
    }
    println!("\n{}", table(&out));
    println!(
        "ratio: this machine / reference (a range's midpoint); above 1 means this machine is \
         faster, for the latency row too."
    );
    if rows != DEFAULT_ROWS || batched != DEFAULT_ROWS / 5 {
        // An index's cost grows with the table: a smaller run is faster than the reference's.
        println!(
            "Sizes differ from the reference's ({} and {} rows): the ratios do not compare.",
            fmt_count(DEFAULT_ROWS as f64),
            fmt_count((DEFAULT_ROWS / 5) as f64)
        );
    }
    Ok(())
}
