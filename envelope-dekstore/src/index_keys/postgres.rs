//! The index key table of the PostgreSQL store (`<table>_index_keys`).

use async_trait::async_trait;
use envelope_core::blind_index::{IndexKeyStore, IndexState, StoredIndexKey};
use envelope_core::{DekStore, Error, Result, WrappedDek};

use super::{INDEX_COLUMNS, RawIndexRow, version_taken};
use crate::postgres::PgDekStore;
use crate::row::unix_seconds;

fn raw(r: &tokio_postgres::Row) -> RawIndexRow {
    RawIndexRow {
        index: r.get(0),
        version: i64::from(r.get::<_, i32>(1)),
        state: r.get(2),
        bits: i64::from(r.get::<_, i16>(3)),
        mode: r.get(4),
        normalizer: r.get(5),
        provider: i64::from(r.get::<_, i16>(6)),
        key_id: r.get(7),
        key_version: r.get(8),
        wrapped_key: r.get(9),
        commitment: r.get(10),
        created_unix: r.get(11),
    }
}

impl PgDekStore {
    /// Runs `f` in one transaction on a connection of its own (the shared one cannot hold
    /// a transaction while other calls use it; admin operations only). `f`'s `None` rolls
    /// the transaction back.
    async fn in_transaction<T>(
        &self,
        operation: &'static str,
        f: impl AsyncFnOnce(
            &tokio_postgres::Transaction<'_>,
        ) -> Result<Option<T>, tokio_postgres::Error>,
    ) -> Result<Option<T>> {
        // The tables exist once the shared connection has been opened.
        self.client().await?;
        let (mut client, _) = self
            .connector
            .connect()
            .await
            .map_err(|e| self.error(operation, e.source))?;
        let tx = client
            .transaction()
            .await
            .map_err(|e| self.error(operation, e))?;
        let out = f(&tx).await.map_err(|e| self.error(operation, e))?;
        if out.is_some() {
            tx.commit().await.map_err(|e| self.error(operation, e))?;
        }
        Ok(out)
    }
}

#[async_trait]
impl IndexKeyStore for PgDekStore {
    async fn insert_index_key(&self, key: &StoredIndexKey, activate: bool) -> Result<()> {
        let table = self.index_keys.clone();
        let state = if activate {
            "active"
        } else {
            key.state.as_str()
        };
        let inserted = self
            .in_transaction("insert index key", async |tx| {
                if activate {
                    tx.execute(
                        &format!("UPDATE {table} SET state = 'query' WHERE index_name = $1 AND state = 'active'"),
                        &[&key.index],
                    )
                    .await?;
                }
                let n = tx.execute(
                    &format!(
                        "INSERT INTO {table} (index_name, version, state, bits, mode, normalizer, provider, key_id, key_version, wrapped_key, commitment, created)
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, to_timestamp($12::float8)) ON CONFLICT DO NOTHING"
                    ),
                    &[
                        &key.index,
                        &i32::from(key.version),
                        &state,
                        &(key.bits as i16),
                        &key.mode.as_str(),
                        &key.normalizer,
                        &i16::from(key.wrapped.provider.id()),
                        &key.wrapped.key_id,
                        &key.wrapped.key_version,
                        &key.wrapped.ciphertext,
                        &&key.commitment[..],
                        &(unix_seconds(key.created) as f64),
                    ],
                )
                .await?;
                // A version taken: roll the demotion back with it.
                Ok((n == 1).then_some(()))
            })
            .await?;
        inserted.ok_or_else(|| version_taken(key, &DekStore::location(self)))
    }

    async fn index_keys(&self, index: &str) -> Result<Vec<StoredIndexKey>> {
        let client = self.client().await?;
        let rows = client
            .query(
                &format!(
                    "SELECT {INDEX_COLUMNS}, extract(epoch FROM created)::int8 FROM {} WHERE index_name = $1 ORDER BY version",
                    self.index_keys
                ),
                &[&index],
            )
            .await
            .map_err(|e| self.error("read index keys", e))?;
        rows.iter().map(|r| raw(r).into_stored()).collect()
    }

    async fn all_index_keys(&self) -> Result<Vec<StoredIndexKey>> {
        let client = self.client().await?;
        let rows = client
            .query(
                &format!(
                    "SELECT {INDEX_COLUMNS}, extract(epoch FROM created)::int8 FROM {} ORDER BY index_name, version",
                    self.index_keys
                ),
                &[],
            )
            .await
            .map_err(|e| self.error("read index keys", e))?;
        rows.iter().map(|r| raw(r).into_stored()).collect()
    }

    async fn set_index_state(&self, index: &str, version: u16, state: IndexState) -> Result<bool> {
        let table = self.index_keys.clone();
        let version = i32::from(version);
        self.in_transaction("set index state", async |tx| {
            if state == IndexState::Active {
                tx.execute(
                    &format!("UPDATE {table} SET state = 'query' WHERE index_name = $1 AND state = 'active' AND version <> $2"),
                    &[&index, &version],
                )
                .await?;
            }
            let n = tx
                .execute(
                    &format!("UPDATE {table} SET state = $1 WHERE index_name = $2 AND version = $3"),
                    &[&state.as_str(), &index, &version],
                )
                .await?;
            Ok(Some(n > 0))
        })
        .await
        .map(|changed| changed.unwrap_or(false))
    }

    async fn replace_index_wrap(
        &self,
        index: &str,
        version: u16,
        old: &WrappedDek,
        new: &WrappedDek,
    ) -> Result<bool> {
        let client = self.client().await?;
        let n = client
            .execute(
                &format!(
                    "UPDATE {} SET provider = $1, key_id = $2, key_version = $3, wrapped_key = $4
                     WHERE index_name = $5 AND version = $6 AND provider = $7 AND key_id = $8
                       AND key_version = $9 AND wrapped_key = $10",
                    self.index_keys
                ),
                &[
                    &i16::from(new.provider.id()),
                    &new.key_id,
                    &new.key_version,
                    &new.ciphertext,
                    &index,
                    &i32::from(version),
                    &i16::from(old.provider.id()),
                    &old.key_id,
                    &old.key_version,
                    &old.ciphertext,
                ],
            )
            .await
            .map_err(|e| self.error("rewrap index key", e))?;
        if n > 1 {
            return Err(Error::DekStore {
                operation: "rewrap index key",
                message: format!("{n} rows matched one (index, version)"),
                source: None,
            });
        }
        Ok(n == 1)
    }

    fn index_store_location(&self) -> String {
        DekStore::location(self)
    }
}
