//! The SQLite DEK store: one file, the embedded default (beside the local keyring).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use envelope_core::compact::{
    DekId, DekState, DekStore, NewDek, StoreCheckpoint, StoredDek, WrappedDekChange,
};
use envelope_core::{Error, Result};
use rusqlite::{Connection, OptionalExtension, params};

use crate::row::{RawRow, assigned_id, sql_id, unix_seconds};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS envelope_deks (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    suite       INTEGER NOT NULL,
    provider    INTEGER NOT NULL,
    key_id      TEXT    NOT NULL,
    key_version TEXT    NOT NULL,
    wrapped_dek BLOB    NOT NULL,
    commitment  BLOB    NOT NULL CHECK (length(commitment) = 32),
    created     INTEGER NOT NULL,
    state       TEXT    NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'retired')),
    bound       INTEGER NOT NULL DEFAULT 0 CHECK (bound IN (0, 1))
);
CREATE TABLE IF NOT EXISTS envelope_index_keys (
    index_name  TEXT    NOT NULL,
    version     INTEGER NOT NULL CHECK (version BETWEEN 1 AND 65535),
    state       TEXT    NOT NULL CHECK (state IN ('active', 'query', 'retired')),
    bits        INTEGER NOT NULL CHECK (bits BETWEEN 8 AND 256),
    mode        TEXT    NOT NULL CHECK (mode IN ('unique', 'private')),
    normalizer  TEXT    NOT NULL,
    provider    INTEGER NOT NULL,
    key_id      TEXT    NOT NULL,
    key_version TEXT    NOT NULL,
    wrapped_key BLOB    NOT NULL,
    commitment  BLOB    NOT NULL CHECK (length(commitment) = 32),
    created     INTEGER NOT NULL,
    PRIMARY KEY (index_name, version)
);
CREATE UNIQUE INDEX IF NOT EXISTS envelope_index_keys_one_active
    ON envelope_index_keys (index_name) WHERE state = 'active';
CREATE TABLE IF NOT EXISTS envelope_dek_jobs (
    job      TEXT PRIMARY KEY,
    last_id  INTEGER NOT NULL,
    progress TEXT NOT NULL,
    updated  INTEGER NOT NULL
);";

const COLUMNS: &str =
    "id, suite, provider, key_id, key_version, wrapped_dek, commitment, created, state, bound";

/// Adds the `bound` column to a file written before rows were bound to their ids (its rows
/// read as unbound until a rotation binds them).
fn migrate(connection: &Connection) -> rusqlite::Result<()> {
    let has_bound: bool = connection.query_row(
        "SELECT count(*) FROM pragma_table_info('envelope_deks') WHERE name = 'bound'",
        [],
        |r| r.get::<_, i64>(0).map(|n| n > 0),
    )?;
    if !has_bound {
        connection.execute_batch(
            "ALTER TABLE envelope_deks ADD COLUMN bound INTEGER NOT NULL DEFAULT 0 CHECK (bound IN (0, 1))",
        )?;
    }
    Ok(())
}

/// A DEK store in a SQLite file (`sqlite:///path/deks.sqlite`).
///
/// Ids come from `INTEGER PRIMARY KEY AUTOINCREMENT`, which never hands out a number twice
/// in the file's life, even after the row with the largest id is deleted. The file is in
/// WAL mode with a 5 s busy timeout, so several processes can share it. Calls run on
/// tokio's blocking pool; a forked child opens its own connection.
pub struct SqliteDekStore {
    path: PathBuf,
    connection: Arc<Mutex<Option<(u32, Connection)>>>,
}

impl std::fmt::Debug for SqliteDekStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteDekStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

fn store_error(operation: &'static str, path: &Path, e: rusqlite::Error) -> Error {
    let busy = matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    );
    if busy {
        return Error::Unavailable {
            operation,
            source: Some(Box::new(e)),
        };
    }
    Error::DekStore {
        operation,
        message: format!("SQLite {}: {e}", path.display()),
        source: Some(Box::new(e)),
    }
}

fn open_connection(path: &Path) -> Result<Connection> {
    let connection = Connection::open(path).map_err(|e| store_error("open", path, e))?;
    connection
        .busy_timeout(std::time::Duration::from_secs(5))
        .map_err(|e| store_error("open", path, e))?;
    connection
        .pragma_update(None, "journal_mode", "WAL")
        .map_err(|e| store_error("open", path, e))?;
    connection
        .execute_batch(SCHEMA)
        .map_err(|e| store_error("create tables", path, e))?;
    migrate(&connection).map_err(|e| store_error("add the bound column", path, e))?;
    #[cfg(unix)]
    {
        // Wrapped DEKs are not secret, but the file says which data exists: owner only.
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
    }
    Ok(connection)
}

fn read_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RawRow> {
    Ok(RawRow {
        id: r.get(0)?,
        suite: r.get(1)?,
        provider: r.get(2)?,
        key_id: r.get(3)?,
        key_version: r.get(4)?,
        wrapped_dek: r.get(5)?,
        commitment: r.get(6)?,
        created_unix: r.get(7)?,
        state: r.get(8)?,
        bound: r.get(9)?,
    })
}

impl SqliteDekStore {
    /// Opens (creating if missing) the store file and its tables.
    pub fn open(path: impl Into<PathBuf>) -> Result<Self> {
        let path = path.into();
        let connection = open_connection(&path)?;
        Ok(SqliteDekStore {
            path,
            connection: Arc::new(Mutex::new(Some((std::process::id(), connection)))),
        })
    }

    /// The store file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` on this process's connection on the blocking pool.
    pub(crate) async fn with<T: Send + 'static>(
        &self,
        operation: &'static str,
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T> {
        let (slot, path) = (self.connection.clone(), self.path.clone());
        tokio::task::spawn_blocking(move || {
            let mut slot = slot.lock().unwrap_or_else(|e| e.into_inner());
            let pid = std::process::id();
            if slot.as_ref().is_none_or(|(owner, _)| *owner != pid) {
                // A forked child never uses its parent's connection.
                if let Some((_, inherited)) = slot.take() {
                    std::mem::forget(inherited);
                }
                *slot = Some((pid, open_connection(&path)?));
            }
            let Some((_, connection)) = slot.as_mut() else {
                unreachable!("the slot was filled above")
            };
            f(connection).map_err(|e| store_error(operation, &path, e))
        })
        .await
        .map_err(|e| Error::DekStore {
            operation,
            message: format!("the SQLite call did not finish: {e}"),
            source: None,
        })?
    }
}

#[async_trait]
impl DekStore for SqliteDekStore {
    async fn reserve_id(&self) -> Result<DekId> {
        // AUTOINCREMENT's counter is the sqlite_sequence row of the table: moving it past
        // every id (in one write transaction) reserves the next id for this caller alone.
        let id = self
            .with("reserve id", move |c| {
                let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
                tx.execute(
                    "INSERT INTO sqlite_sequence (name, seq)
                     SELECT 'envelope_deks', 0
                     WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'envelope_deks')",
                    [],
                )?;
                let id = tx.query_row(
                    "UPDATE sqlite_sequence
                     SET seq = max(seq, (SELECT coalesce(max(id), 0) FROM envelope_deks)) + 1
                     WHERE name = 'envelope_deks' RETURNING seq",
                    [],
                    |r| r.get::<_, i64>(0),
                )?;
                tx.commit()?;
                Ok(id)
            })
            .await?;
        assigned_id("reserve id", id)
    }

    async fn insert(&self, id: DekId, dek: &NewDek) -> Result<()> {
        let dek = dek.clone();
        let sql = sql_id(id)?;
        let inserted = self
            .with("insert", move |c| {
                c.execute(
                    "INSERT INTO envelope_deks (id, suite, provider, key_id, key_version, wrapped_dek, commitment, created, state, bound)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 'active', 1) ON CONFLICT (id) DO NOTHING",
                    params![
                        sql,
                        dek.suite.id(),
                        dek.wrapped.provider.id(),
                        dek.wrapped.key_id,
                        dek.wrapped.key_version,
                        dek.wrapped.ciphertext,
                        &dek.commitment[..],
                        unix_seconds(std::time::SystemTime::now()),
                    ],
                )
            })
            .await?;
        if inserted == 0 {
            return Err(Error::DekStore {
                operation: "insert",
                message: format!("DEK id {id} is taken in {}", self.path.display()),
                source: None,
            });
        }
        Ok(())
    }

    async fn import(&self, row: &StoredDek) -> Result<()> {
        let row = row.clone();
        let id = sql_id(row.id)?;
        let inserted = self
            .with("import", move |c| {
                c.execute(
                    "INSERT INTO envelope_deks (id, suite, provider, key_id, key_version, wrapped_dek, commitment, created, state, bound)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) ON CONFLICT (id) DO NOTHING",
                    params![
                        id,
                        row.suite.id(),
                        row.wrapped.provider.id(),
                        row.wrapped.key_id,
                        row.wrapped.key_version,
                        row.wrapped.ciphertext,
                        &row.commitment[..],
                        unix_seconds(row.created),
                        row.state.as_str(),
                        row.bound,
                    ],
                )
            })
            .await?;
        if inserted == 0 {
            return Err(Error::DekStore {
                operation: "import",
                message: format!("DEK id {id} is taken in {}", self.path.display()),
                source: None,
            });
        }
        Ok(())
    }

    async fn get(&self, id: DekId) -> Result<Option<StoredDek>> {
        let sql = sql_id(id)?;
        let raw = self
            .with("get", move |c| {
                c.query_row(
                    &format!("SELECT {COLUMNS} FROM envelope_deks WHERE id = ?1"),
                    [sql],
                    read_row,
                )
                .optional()
            })
            .await?;
        raw.map(RawRow::into_stored).transpose()
    }

    async fn list(&self, after: Option<DekId>, limit: usize) -> Result<Vec<StoredDek>> {
        let after = after.map(sql_id).transpose()?.unwrap_or(0);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let raws = self
            .with("list", move |c| {
                let mut statement = c.prepare(&format!(
                    "SELECT {COLUMNS} FROM envelope_deks WHERE id > ?1 ORDER BY id LIMIT ?2"
                ))?;
                let rows = statement.query_map(params![after, limit], read_row)?;
                rows.collect::<rusqlite::Result<Vec<_>>>()
            })
            .await?;
        raws.into_iter().map(RawRow::into_stored).collect()
    }

    async fn apply_rewraps(
        &self,
        changes: &[WrappedDekChange],
        checkpoint: &StoreCheckpoint,
    ) -> Result<usize> {
        let changes = changes
            .iter()
            .map(|c| Ok((sql_id(c.id)?, c.old.clone(), c.new.clone())))
            .collect::<Result<Vec<_>>>()?;
        let checkpoint = checkpoint.clone();
        let last = sql_id(checkpoint.last_id)?;
        self.with("apply rewraps", move |c| {
            let tx = c.transaction()?;
            let mut changed = 0;
            {
                let mut update = tx.prepare(
                    "UPDATE envelope_deks SET provider = ?1, key_id = ?2, key_version = ?3, wrapped_dek = ?4, bound = 1
                     WHERE id = ?5 AND provider = ?6 AND key_id = ?7 AND key_version = ?8 AND wrapped_dek = ?9",
                )?;
                for (id, old, new) in &changes {
                    changed += update.execute(params![
                        new.provider.id(),
                        new.key_id,
                        new.key_version,
                        new.ciphertext,
                        id,
                        old.provider.id(),
                        old.key_id,
                        old.key_version,
                        old.ciphertext,
                    ])?;
                }
            }
            tx.execute(
                "INSERT INTO envelope_dek_jobs (job, last_id, progress, updated) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (job) DO UPDATE SET last_id = excluded.last_id, progress = excluded.progress, updated = excluded.updated",
                params![
                    checkpoint.job,
                    last,
                    checkpoint.progress,
                    unix_seconds(std::time::SystemTime::now())
                ],
            )?;
            tx.commit()?;
            Ok(changed)
        })
        .await
    }

    async fn checkpoint(&self, job: &str) -> Result<Option<StoreCheckpoint>> {
        let job = job.to_owned();
        let found = self
            .with("checkpoint", move |c| {
                c.query_row(
                    "SELECT job, last_id, progress FROM envelope_dek_jobs WHERE job = ?1",
                    [job],
                    |r| {
                        Ok((
                            r.get::<_, String>(0)?,
                            r.get::<_, i64>(1)?,
                            r.get::<_, String>(2)?,
                        ))
                    },
                )
                .optional()
            })
            .await?;
        found
            .map(|(job, last, progress)| crate::row::checkpoint(job, last, progress))
            .transpose()
    }

    async fn set_state(&self, id: DekId, state: DekState) -> Result<bool> {
        let id = sql_id(id)?;
        let changed = self
            .with("set state", move |c| {
                c.execute(
                    "UPDATE envelope_deks SET state = ?1 WHERE id = ?2",
                    params![state.as_str(), id],
                )
            })
            .await?;
        Ok(changed > 0)
    }

    fn location(&self) -> String {
        format!("sqlite://{}", self.path.display())
    }
}
