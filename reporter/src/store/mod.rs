//! The reporter's database: every query lives here, on SQLite (standalone mode, the default) and
//! PostgreSQL (a cluster), with the same tables and the same query texts.
//!
//! # Model
//!
//! - `events`: every call event as received, keyed by `event_id`. Storing is idempotent
//!   (`INSERT … ON CONFLICT DO NOTHING`): a resent event is acknowledged again and changes
//!   nothing. An id that comes back with *different* content is refused (the first copy stays).
//! - `cdrs`: one row per call, rebuilt in the same transaction whenever a new event of the call
//!   arrives, from *all* stored events of that call ([`crate::assemble_call`]), so order and
//!   repetition of delivery never matter. The row keeps the whole [`Cdr`] as JSON plus the
//!   columns report windows select on.
//! - `agent_states`: the router's agent state changes, idempotent by event id.
//! - `handlings`: manual processing of unprocessed groups.
//! - `webhook_events`, `webhook_outbox`, `webhook_alerts` (schema 2): the durable webhook
//!   outbox (see [`crate::webhooks`]). When a call's CDR is rebuilt, its call events
//!   (`{call_id}:call.started`, …) are enqueued in the same transaction, once by id.
//!
//! A transaction commits before [`Store::ingest`] returns, so what it reports as stored is
//! durable (SQLite runs in WAL mode with `synchronous=FULL`; PostgreSQL with its defaults).
//!
//! # One text, two databases
//!
//! sqlx runs the same SQL on both: `$1` placeholders (SQLite accepts them), `ON CONFLICT`, and
//! integers for instants. The pools stay concrete (`SqlitePool`, `PgPool`) so that each gets its
//! own connection settings; the `with_pool!` macro expands one query body for each, which keeps
//! the queries in one place without generic trait bounds. SQLite gets a single-connection
//! writer pool (SQLite allows one writer at a time anyway; queuing in the pool is fairer than
//! sleeping in the busy handler) and a pool of readers; PostgreSQL one pool, with a per-call
//! advisory lock so that two transactions adding events to one call cannot both rebuild its CDR
//! from a view that lacks the other's event.

/// Runs `$body` with `$pool` bound to the concrete pool of the store's backend: the writer pool
/// (`write`) or a reader pool (`read`). The body is compiled once per backend.
macro_rules! with_pool {
    ($store:expr, write, |$pool:ident| $body:expr) => {
        match &$store.inner.pools {
            $crate::store::Pools::Sqlite { write: $pool, .. } => $body,
            $crate::store::Pools::Postgres($pool) => $body,
        }
    };
    ($store:expr, read, |$pool:ident| $body:expr) => {
        match &$store.inner.pools {
            $crate::store::Pools::Sqlite { read: $pool, .. } => $body,
            $crate::store::Pools::Postgres($pool) => $body,
        }
    };
}

mod codec;
mod error;
mod groups;
mod read;
mod reports;
mod summary;
mod webhooks;
mod write;

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::SqlSafeStr as _;
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

pub use codec::validate;
pub use error::StoreError;
pub use groups::{CallbackSums, GroupsOf};
pub use read::{Counts, ReportWindow};
pub use reports::{CallHour, PageFilter, SummaryCuts};
pub use webhooks::{Delivery, NewDelivery, OutboxCounts, OutboxRow, OutboxStats, WebhookEventRow};
pub use write::{Deleted, IngestOutcome};

use crate::Cdr;

/// Which database a store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// SQLite (a file; standalone mode).
    Sqlite,
    /// PostgreSQL (a server; cluster mode).
    Postgres,
}

/// How a store connects.
#[derive(Debug, Clone)]
pub struct OpenOptions {
    /// How long a query waits for a connection (including reconnecting to a server that went
    /// away) before the store answers [`StoreError::Unavailable`]. Short, so that ingestion
    /// falls back to its journal quickly instead of holding senders.
    pub acquire_timeout: Duration,
    /// PostgreSQL: the pool's size. SQLite: the number of readers (there is one writer).
    pub max_connections: u32,
    /// SQLite: how long a connection waits for a lock held by another process.
    pub busy_timeout: Duration,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions {
            acquire_timeout: Duration::from_secs(3),
            max_connections: 8,
            busy_timeout: Duration::from_secs(5),
        }
    }
}

/// The reporter's database. Cheap to clone (the pools are shared).
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    pools: Pools,
    backend: Backend,
}

pub(crate) enum Pools {
    Sqlite { write: SqlitePool, read: SqlitePool },
    Postgres(PgPool),
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.inner.backend)
            .finish_non_exhaustive()
    }
}

/// The numbered migrations of each backend, embedded so that the reporter runs from any
/// working directory. sqlx records them in `_sqlx_migrations` with a checksum, so an edited
/// migration is refused instead of silently diverging. A new migration is a new pair of files
/// (`migrations/{sqlite,postgres}/000N_name.sql`) and a new line in each list below.
fn migrator(backend: Backend) -> Migrator {
    let sources: &[(i64, &'static str, &'static str)] = match backend {
        Backend::Sqlite => &[
            (
                1,
                "init",
                include_str!("../../migrations/sqlite/0001_init.sql"),
            ),
            (
                2,
                "webhooks",
                include_str!("../../migrations/sqlite/0002_webhooks.sql"),
            ),
            (
                4,
                "report_summaries",
                include_str!("../../migrations/sqlite/0004_report_summaries.sql"),
            ),
            (
                5,
                "miss_groups",
                include_str!("../../migrations/sqlite/0005_miss_groups.sql"),
            ),
        ],
        Backend::Postgres => &[
            (
                1,
                "init",
                include_str!("../../migrations/postgres/0001_init.sql"),
            ),
            (
                2,
                "webhooks",
                include_str!("../../migrations/postgres/0002_webhooks.sql"),
            ),
            (
                4,
                "report_summaries",
                include_str!("../../migrations/postgres/0004_report_summaries.sql"),
            ),
            (
                5,
                "miss_groups",
                include_str!("../../migrations/postgres/0005_miss_groups.sql"),
            ),
        ],
    };
    Migrator::with_migrations(
        sources
            .iter()
            .map(|(version, name, sql)| {
                Migration::new(
                    *version,
                    (*name).into(),
                    MigrationType::Simple,
                    sql.into_sql_str(),
                    false,
                )
            })
            .collect(),
    )
}

/// The URL without its password, for messages.
fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    match rest.split_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{scheme}://{user}:***@{host}")
        }
        None => url.to_owned(),
    }
}

impl Store {
    /// Opens (creating it if the URL says so) and migrates the database at `url`:
    /// `sqlite://path/to/file.db?mode=rwc` or `postgres://user@host:port/db`.
    ///
    /// # Errors
    ///
    /// [`StoreError::BadUrl`] for an unknown scheme or bad options, [`StoreError::Unavailable`]
    /// when the server cannot be reached within the acquire timeout,
    /// [`StoreError::Migration`] when the schema cannot be brought up to date.
    pub async fn open(url: &str) -> Result<Store, StoreError> {
        Store::open_with(url, &OpenOptions::default()).await
    }

    /// [`Store::open`] with explicit connection settings.
    ///
    /// # Errors
    ///
    /// As [`Store::open`].
    pub async fn open_with(url: &str, options: &OpenOptions) -> Result<Store, StoreError> {
        let bad = |reason: String| StoreError::BadUrl {
            url: redact(url),
            reason,
        };
        if url.starts_with("sqlite:") {
            let connect = SqliteConnectOptions::from_str(url).map_err(|e| bad(e.to_string()))?;
            Store::open_sqlite(connect, options).await
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let connect = PgConnectOptions::from_str(url).map_err(|e| bad(e.to_string()))?;
            let pool = PgPoolOptions::new()
                .max_connections(options.max_connections.max(2))
                .acquire_timeout(options.acquire_timeout)
                .connect_with(connect)
                .await
                .map_err(|e| StoreError::from_sqlx("connecting to PostgreSQL", e))?;
            migrator(Backend::Postgres).run(&pool).await?;
            Ok(Store::new(Pools::Postgres(pool), Backend::Postgres))
        } else {
            Err(bad(
                "expected sqlite://PATH?mode=rwc or postgres://USER@HOST:PORT/DB".to_owned(),
            ))
        }
    }

    /// Opens (creating it and its folder) the SQLite database in the file `path` — what
    /// standalone mode uses under `--data`, without going through a URL (so any path works,
    /// spaces and all).
    ///
    /// # Errors
    ///
    /// As [`Store::open`].
    pub async fn open_sqlite_file(path: &Path, options: &OpenOptions) -> Result<Store, StoreError> {
        let connect = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true);
        Store::open_sqlite(connect, options).await
    }

    fn new(pools: Pools, backend: Backend) -> Store {
        Store {
            inner: Arc::new(Inner { pools, backend }),
        }
    }

    async fn open_sqlite(
        connect: SqliteConnectOptions,
        options: &OpenOptions,
    ) -> Result<Store, StoreError> {
        let connect = connect
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(options.busy_timeout);
        let file = connect.get_filename().to_owned();
        let in_memory = file.as_os_str().is_empty() || file == Path::new(":memory:");
        if !in_memory && let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
            // A fresh data folder: create it rather than fail with "unable to open".
            std::fs::create_dir_all(dir).map_err(|e| StoreError::BadUrl {
                url: file.display().to_string(),
                reason: format!("cannot create the folder {}: {e}", dir.display()),
            })?;
        }
        // The writer's page cache: 64 MiB instead of SQLite's 2 MiB. Event ids and call ids
        // arrive in no key order, so every insert lands on a random leaf of the indexes;
        // with years of events those leaves no longer fit 2 MiB and each insert re-read
        // pages. The cache fills only as far as the database is big.
        let write = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(options.acquire_timeout)
            .connect_with(
                connect
                    .clone()
                    .pragma("cache_size", "-65536")
                    // Checkpoint every 16k pages (64 MiB of WAL) rather than 1k: a page that
                    // several commits change is copied into the database once, not per commit.
                    .pragma("wal_autocheckpoint", "16384"),
            )
            .await
            .map_err(|e| StoreError::from_sqlx("opening the SQLite database", e))?;
        migrator(Backend::Sqlite).run(&write).await?;
        let read = if in_memory {
            // Every connection to ":memory:" is a new database: share the writer.
            write.clone()
        } else {
            SqlitePoolOptions::new()
                .max_connections(options.max_connections.max(1))
                .acquire_timeout(options.acquire_timeout)
                .connect_with(connect.read_only(true))
                .await
                .map_err(|e| StoreError::from_sqlx("opening SQLite readers", e))?
        };
        Ok(Store::new(Pools::Sqlite { write, read }, Backend::Sqlite))
    }

    /// The database this store runs on.
    pub fn backend(&self) -> Backend {
        self.inner.backend
    }

    /// Closes every connection; later queries fail with [`StoreError::Unavailable`].
    pub async fn close(&self) {
        match &self.inner.pools {
            Pools::Sqlite { write, read } => {
                read.close().await;
                write.close().await;
            }
            Pools::Postgres(pool) => pool.close().await,
        }
    }

    /// Checks that the database answers (and takes writes).
    ///
    /// # Errors
    ///
    /// [`StoreError::Unavailable`] when it does not.
    pub async fn ping(&self) -> Result<(), StoreError> {
        with_pool!(self, write, |pool| {
            sqlx::query("SELECT 1")
                .execute(pool)
                .await
                .map(|_| ())
                .map_err(|e| StoreError::from_sqlx("pinging", e))
        })
    }
}

/// Sorts CDRs as the reports expect them (and as [`crate::CallAssembler::cdrs`] gives them):
/// by start, then call id. Done in Rust, not SQL, because PostgreSQL's collation may order
/// strings differently from SQLite's bytes.
pub(crate) fn sort_cdrs(cdrs: &mut [Cdr]) {
    cdrs.sort_by(|a, b| (a.started_at, &a.call_id).cmp(&(b.started_at, &b.call_id)));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_redacted() {
        assert_eq!(
            redact("postgres://app:s3cret@db:5432/dialtone"),
            "postgres://app:***@db:5432/dialtone"
        );
        assert_eq!(
            redact("sqlite://data/x.db?mode=rwc"),
            "sqlite://data/x.db?mode=rwc"
        );
    }

    #[tokio::test]
    async fn unknown_schemes_are_bad_urls() {
        let err = Store::open("mysql://x@y/z").await.err();
        assert!(matches!(err, Some(StoreError::BadUrl { .. })), "{err:?}");
    }

    #[tokio::test]
    async fn a_file_with_spaces_in_a_new_folder_opens() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("my data").join("dialtone.db");
        let store = Store::open_sqlite_file(&path, &OpenOptions::default())
            .await
            .expect("opens");
        assert_eq!(store.backend(), Backend::Sqlite);
        store.close().await;
        // Again: the migrations are recorded, not re-run.
        let again = Store::open_sqlite_file(&path, &OpenOptions::default())
            .await
            .expect("reopens");
        assert_eq!(again.counts().await.expect("counts"), Counts::default());
    }

    #[tokio::test]
    async fn in_memory_sqlite_works() {
        let store = Store::open("sqlite::memory:").await.expect("opens");
        store.ping().await.expect("answers");
        assert_eq!(store.counts().await.expect("counts"), Counts::default());
    }
}
