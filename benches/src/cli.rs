//! The command line both storage binaries share: `--key value` options and which store to
//! open (`--backend sqlite --path FILE` or `--backend postgres --url URL --schema NAME`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;

use usage_core::store::Store;
use usage_store::postgres::{PgOptions, PgStore};
use usage_store::sqlite::{SqliteOptions, SqliteStore};

/// `--key value` / `--key=value` options and bare `--flag`s.
#[derive(Clone, Debug, Default)]
pub struct Args {
    values: BTreeMap<String, String>,
}

impl Args {
    /// Parses the process arguments; `flags` names the options that take no value.
    pub fn parse(flags: &[&str]) -> Result<Args, String> {
        Args::from_iter(std::env::args().skip(1), flags)
    }

    /// Parses `args`.
    pub fn from_iter(
        args: impl IntoIterator<Item = String>,
        flags: &[&str],
    ) -> Result<Args, String> {
        let mut values = BTreeMap::new();
        let mut it = args.into_iter();
        while let Some(a) = it.next() {
            let Some(key) = a.strip_prefix("--") else {
                return Err(format!("unexpected argument `{a}`"));
            };
            if let Some((k, v)) = key.split_once('=') {
                values.insert(k.to_owned(), v.to_owned());
            } else if flags.contains(&key) {
                values.insert(key.to_owned(), "true".to_owned());
            } else {
                let v = it.next().ok_or_else(|| format!("--{key} needs a value"))?;
                values.insert(key.to_owned(), v);
            }
        }
        Ok(Args { values })
    }

    /// The value of `--key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.values.get(key).map(String::as_str)
    }

    /// True when `--key` was given.
    pub fn flag(&self, key: &str) -> bool {
        self.get(key).is_some_and(|v| v != "false")
    }

    /// `--key` parsed, or `default` when absent. Underscores in numbers are allowed
    /// (`--events 10_000_000`).
    pub fn num<T: FromStr>(&self, key: &str, default: T) -> Result<T, String> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => v
                .replace('_', "")
                .parse()
                .map_err(|_| format!("--{key}: `{v}` is not a number")),
        }
    }
}

/// Which store to benchmark.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Backend {
    /// An SQLite file.
    Sqlite {
        /// The database file.
        path: PathBuf,
    },
    /// A PostgreSQL schema.
    Postgres {
        /// The server URL.
        url: String,
        /// The schema holding the tables.
        schema: String,
    },
}

/// Settings a benchmark may change from the defaults to compare durability levels.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Durability {
    /// SQLite `synchronous = FULL` (default NORMAL); PostgreSQL keeps `synchronous_commit`
    /// on unless `relaxed`.
    pub strict: bool,
    /// PostgreSQL `synchronous_commit = off`.
    pub relaxed: bool,
}

impl Backend {
    /// Reads `--backend`, `--path`, `--url` and `--schema`.
    pub fn from_args(args: &Args) -> Result<Backend, String> {
        match args.get("backend").unwrap_or("sqlite") {
            "sqlite" => Ok(Backend::Sqlite {
                path: args
                    .get("path")
                    .ok_or("--backend sqlite needs --path FILE")?
                    .into(),
            }),
            "postgres" | "postgresql" => Ok(Backend::Postgres {
                url: args
                    .get("url")
                    .unwrap_or("postgres://postgres@127.0.0.1:5432/test")
                    .to_owned(),
                schema: args.get("schema").unwrap_or("bench10m").to_owned(),
            }),
            other => Err(format!("--backend `{other}`: expected sqlite or postgres")),
        }
    }

    /// `sqlite` or `postgres`.
    pub fn name(&self) -> &'static str {
        match self {
            Backend::Sqlite { .. } => "sqlite",
            Backend::Postgres { .. } => "postgres",
        }
    }

    /// What is being measured, for the report.
    pub fn describe(&self) -> String {
        match self {
            Backend::Sqlite { path } => format!("sqlite file {}", path.display()),
            Backend::Postgres { url, schema } => format!("postgres {url}, schema {schema}"),
        }
    }

    /// Opens the store with default settings, or the durability asked for.
    pub async fn open(
        &self,
        durability: Durability,
        pg_connections: u32,
    ) -> usage_core::Result<Arc<dyn Store>> {
        match self {
            Backend::Sqlite { path } => {
                let path = path.clone();
                let options = SqliteOptions {
                    synchronous_full: durability.strict,
                    ..Default::default()
                };
                let store = tokio::task::spawn_blocking(move || SqliteStore::open(&path, options))
                    .await
                    .map_err(|e| usage_core::Error::store("sqlite", "open", e))??;
                Ok(Arc::new(store))
            }
            Backend::Postgres { url, schema } => {
                let options = PgOptions::default()
                    .schema(schema.clone())
                    .max_connections(pg_connections)
                    .synchronous_commit(!durability.relaxed);
                Ok(Arc::new(PgStore::connect(url, options).await?))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_and_flags() {
        let a = Args::from_iter(
            ["--events", "10_000", "--path=/tmp/x.db", "--force"].map(String::from),
            &["force"],
        )
        .unwrap();
        assert_eq!(a.num::<u64>("events", 0).unwrap(), 10_000);
        assert_eq!(a.get("path"), Some("/tmp/x.db"));
        assert!(a.flag("force"));
        assert!(Args::from_iter(["--events".to_owned()], &[]).is_err());
    }
}
