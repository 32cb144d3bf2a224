//! The store's errors, and the one place where database errors become them.
//!
//! Callers decide what to do by kind, not by driver message: ingestion journals events on
//! [`StoreError::Unavailable`] (and on anything else that is not the events' fault), the
//! gRPC layer answers `UNAVAILABLE` / `ABORTED` / `DATA_LOSS` / `INTERNAL`, and a write that
//! lost a race ([`StoreError::Conflict`]) is retried by the store itself before it surfaces.

/// What went wrong with the database.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The server cannot be reached or refuses work for now: connection refused or reset,
    /// the server shutting down or starting, the pool timing out, SQLite busy, disk full.
    /// The same request will succeed once the database is back.
    #[error("the database is unavailable ({what}): {source}")]
    Unavailable {
        /// What the store was doing.
        what: &'static str,
        /// The driver's error.
        #[source]
        source: sqlx::Error,
    },
    /// A concurrent write won: serialization failure, deadlock, or a uniqueness race. The store
    /// retries these a few times; this surfaces only when retries did not help.
    #[error("a concurrent write conflicted ({what}): {source}")]
    Conflict {
        /// What the store was doing.
        what: &'static str,
        /// The driver's error.
        #[source]
        source: sqlx::Error,
    },
    /// The database reports corruption (SQLite `SQLITE_CORRUPT` / `SQLITE_NOTADB`, PostgreSQL
    /// `XX001` / `XX002`), or a stored row cannot be decoded.
    #[error("the database content is corrupt ({what}): {detail}")]
    Corrupt {
        /// What the store was doing, or which row.
        what: String,
        /// The driver's or decoder's message.
        detail: String,
    },
    /// The URL names no supported database, or its options are wrong.
    #[error("bad database URL {url:?}: {reason}")]
    BadUrl {
        /// The URL, with any password removed.
        url: String,
        /// Why.
        reason: String,
    },
    /// The schema could not be brought up to date (e.g. the database was migrated by a newer
    /// reporter, or a migration was edited after it ran).
    #[error("database migration failed: {0}")]
    Migration(#[source] sqlx::migrate::MigrateError),
    /// Anything else the driver reports (a bug in a query, a constraint that should hold).
    #[error("database error ({what}): {source}")]
    Other {
        /// What the store was doing.
        what: &'static str,
        /// The driver's error.
        #[source]
        source: sqlx::Error,
    },
}

impl StoreError {
    /// The error's kind as a short code, for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            StoreError::Unavailable { .. } => "unavailable",
            StoreError::Conflict { .. } => "conflict",
            StoreError::Corrupt { .. } => "corrupt",
            StoreError::BadUrl { .. } => "bad_url",
            StoreError::Migration(_) => "migration",
            StoreError::Other { .. } => "other",
        }
    }

    /// True when trying again later can succeed without anyone fixing anything.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            StoreError::Unavailable { .. } | StoreError::Conflict { .. }
        )
    }

    /// Classifies a driver error raised while doing `what`.
    pub(crate) fn from_sqlx(what: &'static str, source: sqlx::Error) -> StoreError {
        match classify(&source) {
            Kind::Unavailable => StoreError::Unavailable { what, source },
            Kind::Conflict => StoreError::Conflict { what, source },
            Kind::Corrupt => StoreError::Corrupt {
                what: what.to_owned(),
                detail: source.to_string(),
            },
            Kind::Other => StoreError::Other { what, source },
        }
    }

    /// A stored row that does not decode.
    pub(crate) fn corrupt_row(what: impl Into<String>, detail: impl ToString) -> StoreError {
        StoreError::Corrupt {
            what: what.into(),
            detail: detail.to_string(),
        }
    }
}

impl From<sqlx::migrate::MigrateError> for StoreError {
    fn from(e: sqlx::migrate::MigrateError) -> Self {
        use sqlx::migrate::MigrateError;
        match e {
            // A server that goes away while migrating is not a schema problem.
            MigrateError::Execute(source) if classify(&source) == Kind::Unavailable => {
                StoreError::Unavailable {
                    what: "migrating",
                    source,
                }
            }
            other => StoreError::Migration(other),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Unavailable,
    Conflict,
    Corrupt,
    Other,
}

fn classify(e: &sqlx::Error) -> Kind {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::BeginFailed => Kind::Unavailable,
        // The server hung up mid-message: the connection is gone, not the query wrong.
        sqlx::Error::Protocol(_) => Kind::Unavailable,
        sqlx::Error::Database(db) => {
            let postgres = db
                .try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
                .is_some();
            classify_code(db.code().as_deref(), db.is_unique_violation(), postgres)
        }
        _ => Kind::Other,
    }
}

/// PostgreSQL's codes are SQLSTATEs (five characters, often all digits); SQLite's are decimal
/// extended result codes, whose low byte is the primary code.
fn classify_code(code: Option<&str>, unique: bool, postgres: bool) -> Kind {
    let Some(code) = code else {
        return Kind::Other;
    };
    if !postgres {
        let Ok(sqlite) = code.parse::<i64>() else {
            return if unique { Kind::Conflict } else { Kind::Other };
        };
        return match sqlite & 0xff {
            // BUSY, LOCKED: another writer holds the file; NOMEM, IOERR, FULL, CANTOPEN,
            // PROTOCOL: the file cannot be used right now.
            5 | 6 | 7 | 10 | 13 | 14 | 15 => Kind::Unavailable,
            // CORRUPT, NOTADB.
            11 | 26 => Kind::Corrupt,
            _ if unique => Kind::Conflict,
            _ => Kind::Other,
        };
    }
    match code {
        // serialization_failure, deadlock_detected, unique_violation.
        "40001" | "40P01" | "23505" => Kind::Conflict,
        // data_corrupted, index_corrupted.
        "XX001" | "XX002" => Kind::Corrupt,
        // admin_shutdown, crash_shutdown, cannot_connect_now, database_dropped,
        // too_many_connections, disk_full, out_of_memory, idle session timeout.
        "57P01" | "57P02" | "57P03" | "57P04" | "57P05" | "53300" | "53100" | "53200" => {
            Kind::Unavailable
        }
        // connection_exception and its subclasses (08000, 08003, 08006, ...).
        c if c.starts_with("08") => Kind::Unavailable,
        _ if unique => Kind::Conflict,
        _ => Kind::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_map_to_kinds() {
        let pg = |code| classify_code(Some(code), false, true);
        assert_eq!(pg("57P01"), Kind::Unavailable);
        // All-digit SQLSTATEs are not SQLite codes.
        assert_eq!(pg("08006"), Kind::Unavailable);
        assert_eq!(pg("40001"), Kind::Conflict);
        assert_eq!(pg("40P01"), Kind::Conflict);
        assert_eq!(pg("23505"), Kind::Conflict);
        assert_eq!(pg("XX001"), Kind::Corrupt);
        assert_eq!(pg("42P01"), Kind::Other);
        let sqlite = |code, unique| classify_code(Some(code), unique, false);
        // SQLITE_BUSY_SNAPSHOT (517) is a BUSY.
        assert_eq!(sqlite("517", false), Kind::Unavailable);
        assert_eq!(sqlite("11", false), Kind::Corrupt);
        // SQLITE_CONSTRAINT_PRIMARYKEY.
        assert_eq!(sqlite("1555", true), Kind::Conflict);
        assert_eq!(sqlite("1", false), Kind::Other);
        assert_eq!(classify_code(None, false, true), Kind::Other);
        let refused = sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert_eq!(classify(&refused), Kind::Unavailable);
        assert!(StoreError::from_sqlx("x", sqlx::Error::PoolTimedOut).is_transient());
        assert_eq!(
            StoreError::from_sqlx("x", sqlx::Error::RowNotFound).kind(),
            "other"
        );
    }
}
