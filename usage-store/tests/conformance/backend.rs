//! The backends under test: a fresh, empty store per test (a new SQLite file, a new PostgreSQL
//! schema), removed when the test ends, even when it panics.

#[cfg(feature = "sqlite")]
use std::path::{Path, PathBuf};
use std::sync::Arc;

use usage_core::store::Store;
use usage_store::memory::MemoryStore;
use usage_store::{Tracker, TrackerOptions};

/// One store under test and what it takes to clean it up.
pub struct Backend {
    /// `memory`, `sqlite` or `postgres`.
    pub name: &'static str,
    /// The store.
    pub store: Arc<dyn Store>,
    /// How to open a second, independent handle on the same database.
    #[cfg_attr(not(any(feature = "sqlite", feature = "postgres")), allow(dead_code))]
    reopen: Reopen,
    /// Dropped last: removes the file or schema.
    _cleanup: Cleanup,
}

enum Reopen {
    None,
    #[cfg(feature = "sqlite")]
    Sqlite(PathBuf),
    #[cfg(feature = "postgres")]
    Postgres {
        url: String,
        schema: String,
    },
}

impl Backend {
    /// A tracker over the store with default options.
    pub fn tracker(&self) -> Tracker {
        Tracker::with_store(self.store.clone(), TrackerOptions::default())
    }

    /// A tracker with options.
    pub fn tracker_with(&self, options: TrackerOptions) -> Tracker {
        Tracker::with_store(self.store.clone(), options)
    }

    /// A second handle on the same database, as another process or app server would open it.
    #[cfg_attr(not(any(feature = "sqlite", feature = "postgres")), allow(dead_code))]
    pub async fn second_handle(&self) -> Option<Arc<dyn Store>> {
        match &self.reopen {
            Reopen::None => None,
            #[cfg(feature = "sqlite")]
            Reopen::Sqlite(path) => Some(Arc::new(
                open_sqlite(path).await.expect("reopen the SQLite file"),
            )),
            #[cfg(feature = "postgres")]
            Reopen::Postgres { url, schema } => {
                use usage_store::postgres::{PgOptions, PgStore};
                let s = PgStore::connect(url, PgOptions::default().schema(schema.clone()))
                    .await
                    .expect("connect a second PgStore");
                Some(Arc::new(s))
            }
        }
    }

    /// A label for failure messages.
    pub fn label(&self) -> &'static str {
        self.name
    }
}

/// The in-memory store.
pub async fn memory() -> Option<Backend> {
    Some(Backend {
        name: "memory",
        store: Arc::new(MemoryStore::default()),
        reopen: Reopen::None,
        _cleanup: Cleanup::Nothing,
    })
}

/// A unique path under the temp dir (no file created).
#[cfg(feature = "sqlite")]
pub fn temp_db_path(what: &str) -> PathBuf {
    std::env::temp_dir().join(format!(
        "usage-conformance-{what}-{}.db",
        uuid::Uuid::now_v7().simple()
    ))
}

/// Opens (creating if needed) a SQLite store off the async threads.
#[cfg(feature = "sqlite")]
pub async fn open_sqlite(path: &Path) -> usage_core::Result<usage_store::sqlite::SqliteStore> {
    use usage_store::sqlite::{SqliteOptions, SqliteStore};
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || SqliteStore::open(&path, SqliteOptions::default()))
        .await
        .expect("the open task panicked")
}

/// A SQLite store in a fresh temp file.
#[cfg(feature = "sqlite")]
pub async fn sqlite() -> Option<Backend> {
    let path = temp_db_path("store");
    let cleanup = Cleanup::Files(path.clone());
    let store = open_sqlite(&path).await.expect("open a fresh SQLite file");
    Some(Backend {
        name: "sqlite",
        store: Arc::new(store),
        reopen: Reopen::Sqlite(path),
        _cleanup: cleanup,
    })
}

/// The PostgreSQL URL from the environment, or a skip notice (a failure with
/// `USAGE_REQUIRE_POSTGRES=1`).
#[cfg(feature = "postgres")]
pub fn postgres_url() -> Option<String> {
    let url = ["USAGE_TEST_POSTGRES_URL", "DATABASE_URL"]
        .iter()
        .find_map(|k| std::env::var(k).ok().filter(|v| !v.trim().is_empty()));
    if url.is_none() {
        if std::env::var("USAGE_REQUIRE_POSTGRES").is_ok_and(|v| v.trim() == "1") {
            panic!(
                "USAGE_REQUIRE_POSTGRES=1 but neither USAGE_TEST_POSTGRES_URL nor DATABASE_URL is set"
            );
        }
        // Written to the real stderr (not the captured test output) once per run, so a skipped
        // backend is visible even when every test passes.
        static NOTICE: std::sync::Once = std::sync::Once::new();
        NOTICE.call_once(|| {
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED: the postgres conformance tests (set USAGE_TEST_POSTGRES_URL, or USAGE_REQUIRE_POSTGRES=1 to fail instead)"
            );
        });
    }
    url
}

/// A PostgreSQL store in a fresh schema `conf_<random>`, dropped afterwards.
#[cfg(feature = "postgres")]
pub async fn postgres() -> Option<Backend> {
    use usage_store::postgres::{PgOptions, PgStore};
    let url = postgres_url()?;
    let schema = format!("conf_{}", uuid::Uuid::now_v7().simple());
    let cleanup = Cleanup::Schema {
        url: url.clone(),
        schema: schema.clone(),
    };
    let store = PgStore::connect(&url, PgOptions::default().schema(schema.clone()))
        .await
        .unwrap_or_else(|e| panic!("connect to {url} (schema {schema}): {e}"));
    Some(Backend {
        name: "postgres",
        store: Arc::new(store),
        reopen: Reopen::Postgres { url, schema },
        _cleanup: cleanup,
    })
}

/// Removes what a test created, on drop (so also after a failed assertion).
pub enum Cleanup {
    /// Nothing to remove.
    Nothing,
    /// A SQLite file and its `-wal`, `-shm` and `-journal` companions.
    #[cfg(feature = "sqlite")]
    Files(PathBuf),
    /// A PostgreSQL schema.
    #[cfg(feature = "postgres")]
    Schema {
        /// The server.
        url: String,
        /// The schema to drop.
        schema: String,
    },
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        match self {
            Cleanup::Nothing => {}
            #[cfg(feature = "sqlite")]
            Cleanup::Files(path) => remove_db_files(path),
            #[cfg(feature = "postgres")]
            Cleanup::Schema { url, schema } => {
                let (url, schema) = (url.clone(), schema.clone());
                // Drop may run on a runtime thread (or while unwinding): use a thread of our own.
                let done = std::thread::spawn(move || {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .expect("runtime");
                    rt.block_on(async {
                        use sqlx::Connection;
                        let mut conn = sqlx::PgConnection::connect(&url).await?;
                        let sql = format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE");
                        sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                            .execute(&mut conn)
                            .await?;
                        conn.close().await
                    })
                })
                .join();
                if !matches!(done, Ok(Ok(()))) {
                    eprintln!("warning: could not drop a conformance schema: {done:?}");
                }
            }
        }
    }
}

/// Removes a SQLite file and its companions, ignoring the ones that are not there.
#[cfg(feature = "sqlite")]
pub fn remove_db_files(path: &Path) {
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        let _ = std::fs::remove_file(PathBuf::from(p));
    }
}
