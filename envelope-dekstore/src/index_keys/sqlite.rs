//! The index key table of the SQLite store.

use async_trait::async_trait;
use envelope_core::blind_index::{IndexKeyStore, IndexState, StoredIndexKey};
use envelope_core::{DekStore, Result, WrappedDek};
use rusqlite::{Connection, params};

use super::{INDEX_COLUMNS, RawIndexRow, version_taken};
use crate::row::unix_seconds;
use crate::sqlite::SqliteDekStore;

fn read_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RawIndexRow> {
    Ok(RawIndexRow {
        index: r.get(0)?,
        version: r.get(1)?,
        state: r.get(2)?,
        bits: r.get(3)?,
        mode: r.get(4)?,
        normalizer: r.get(5)?,
        provider: r.get(6)?,
        key_id: r.get(7)?,
        key_version: r.get(8)?,
        wrapped_key: r.get(9)?,
        commitment: r.get(10)?,
        created_unix: r.get(11)?,
    })
}

fn select(c: &Connection, filter: &str, index: Option<&str>) -> rusqlite::Result<Vec<RawIndexRow>> {
    let mut statement = c.prepare(&format!(
        "SELECT {INDEX_COLUMNS}, created FROM envelope_index_keys {filter} ORDER BY index_name, version"
    ))?;
    // Bound first: the rows borrow `statement`, which must outlive them.
    #[allow(clippy::let_and_return)]
    let rows = match index {
        Some(index) => statement.query_map([index], read_row)?.collect(),
        None => statement.query_map([], read_row)?.collect(),
    };
    rows
}

#[async_trait]
impl IndexKeyStore for SqliteDekStore {
    async fn insert_index_key(&self, key: &StoredIndexKey, activate: bool) -> Result<()> {
        let row = key.clone();
        let inserted = self
            .with("insert index key", move |c| {
                let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
                if activate {
                    tx.execute(
                        "UPDATE envelope_index_keys SET state = 'query' WHERE index_name = ?1 AND state = 'active'",
                        [&row.index],
                    )?;
                }
                let n = tx.execute(
                    "INSERT INTO envelope_index_keys (index_name, version, state, bits, mode, normalizer, provider, key_id, key_version, wrapped_key, commitment, created)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12) ON CONFLICT DO NOTHING",
                    params![
                        row.index,
                        row.version,
                        if activate { "active" } else { row.state.as_str() },
                        row.bits,
                        row.mode.as_str(),
                        row.normalizer,
                        row.wrapped.provider.id(),
                        row.wrapped.key_id,
                        row.wrapped.key_version,
                        row.wrapped.ciphertext,
                        &row.commitment[..],
                        unix_seconds(row.created),
                    ],
                )?;
                if n == 1 {
                    tx.commit()?;
                }
                Ok(n)
            })
            .await?;
        if inserted == 0 {
            return Err(version_taken(key, &DekStore::location(self)));
        }
        Ok(())
    }

    async fn index_keys(&self, index: &str) -> Result<Vec<StoredIndexKey>> {
        let index = index.to_owned();
        let raws = self
            .with("read index keys", move |c| {
                select(c, "WHERE index_name = ?1", Some(&index))
            })
            .await?;
        raws.into_iter().map(RawIndexRow::into_stored).collect()
    }

    async fn all_index_keys(&self) -> Result<Vec<StoredIndexKey>> {
        let raws = self
            .with("read index keys", |c| select(c, "", None))
            .await?;
        raws.into_iter().map(RawIndexRow::into_stored).collect()
    }

    async fn set_index_state(&self, index: &str, version: u16, state: IndexState) -> Result<bool> {
        let index = index.to_owned();
        self.with("set index state", move |c| {
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            if state == IndexState::Active {
                tx.execute(
                    "UPDATE envelope_index_keys SET state = 'query' WHERE index_name = ?1 AND state = 'active' AND version <> ?2",
                    params![index, version],
                )?;
            }
            let n = tx.execute(
                "UPDATE envelope_index_keys SET state = ?1 WHERE index_name = ?2 AND version = ?3",
                params![state.as_str(), index, version],
            )?;
            tx.commit()?;
            Ok(n > 0)
        })
        .await
    }

    async fn replace_index_wrap(
        &self,
        index: &str,
        version: u16,
        old: &WrappedDek,
        new: &WrappedDek,
    ) -> Result<bool> {
        let (index, old, new) = (index.to_owned(), old.clone(), new.clone());
        self.with("rewrap index key", move |c| {
            c.execute(
                "UPDATE envelope_index_keys SET provider = ?1, key_id = ?2, key_version = ?3, wrapped_key = ?4
                 WHERE index_name = ?5 AND version = ?6 AND provider = ?7 AND key_id = ?8 AND key_version = ?9 AND wrapped_key = ?10",
                params![
                    new.provider.id(),
                    new.key_id,
                    new.key_version,
                    new.ciphertext,
                    index,
                    version,
                    old.provider.id(),
                    old.key_id,
                    old.key_version,
                    old.ciphertext,
                ],
            )
            .map(|n| n > 0)
        })
        .await
    }

    fn index_store_location(&self) -> String {
        DekStore::location(self)
    }
}
