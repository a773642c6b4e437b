//! An in-memory [`DekStore`] and the checks every DEK store implementation must pass.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::SystemTime;

use async_trait::async_trait;

use super::{CheckResult, Failure};
use crate::compact::{
    DekId, DekState, DekStore, NewDek, StoreCheckpoint, StoredDek, WrappedDekChange,
};
use crate::error::{Error, Result};
use crate::kms::{Provider, WrappedDek};
use crate::suite::Suite;

/// A [`DekStore`] in memory, for tests: ids from a counter that never goes back, and
/// [`MemoryDekStore::edit`] to tamper with rows the way an attacker with write access to a
/// real store could.
#[derive(Debug, Default)]
pub struct MemoryDekStore {
    state: Mutex<Memory>,
}

#[derive(Debug, Default)]
struct Memory {
    last_id: u64,
    rows: BTreeMap<u64, StoredDek>,
    checkpoints: HashMap<String, StoreCheckpoint>,
    reads: u64,
}

impl MemoryDekStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Memory> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` on the rows, keyed by id (tests: swap, alter or delete rows).
    pub fn edit<R>(&self, f: impl FnOnce(&mut BTreeMap<u64, StoredDek>) -> R) -> R {
        f(&mut self.lock().rows)
    }

    /// How many [`DekStore::get`] calls the store has answered.
    pub fn reads(&self) -> u64 {
        self.lock().reads
    }
}

#[async_trait]
impl DekStore for MemoryDekStore {
    async fn reserve_id(&self) -> Result<DekId> {
        let mut m = self.lock();
        m.last_id += 1;
        DekId::new(m.last_id).ok_or_else(|| Error::DekStore {
            operation: "reserve_id",
            message: "ids exhausted".into(),
            source: None,
        })
    }

    async fn insert(&self, id: DekId, dek: &NewDek) -> Result<()> {
        let mut m = self.lock();
        if m.rows.contains_key(&id.get()) {
            return Err(Error::DekStore {
                operation: "insert",
                message: format!("DEK id {id} is taken"),
                source: None,
            });
        }
        m.last_id = m.last_id.max(id.get());
        m.rows.insert(
            id.get(),
            StoredDek {
                id,
                suite: dek.suite,
                wrapped: dek.wrapped.clone(),
                commitment: dek.commitment,
                created: SystemTime::now(),
                state: DekState::Active,
                bound: true,
            },
        );
        Ok(())
    }

    async fn import(&self, row: &StoredDek) -> Result<()> {
        let mut m = self.lock();
        if m.rows.contains_key(&row.id.get()) {
            return Err(Error::DekStore {
                operation: "import",
                message: format!("DEK id {} is taken", row.id),
                source: None,
            });
        }
        m.last_id = m.last_id.max(row.id.get());
        m.rows.insert(row.id.get(), row.clone());
        Ok(())
    }

    async fn get(&self, id: DekId) -> Result<Option<StoredDek>> {
        let mut m = self.lock();
        m.reads += 1;
        Ok(m.rows.get(&id.get()).cloned())
    }

    async fn list(&self, after: Option<DekId>, limit: usize) -> Result<Vec<StoredDek>> {
        let from = after.map_or(0, DekId::get) + 1;
        Ok(self
            .lock()
            .rows
            .range(from..)
            .take(limit)
            .map(|(_, row)| row.clone())
            .collect())
    }

    async fn apply_rewraps(
        &self,
        changes: &[WrappedDekChange],
        checkpoint: &StoreCheckpoint,
    ) -> Result<usize> {
        let mut m = self.lock();
        let mut changed = 0;
        for change in changes {
            if let Some(row) = m.rows.get_mut(&change.id.get())
                && row.wrapped == change.old
            {
                row.wrapped = change.new.clone();
                row.bound = true;
                changed += 1;
            }
        }
        m.checkpoints
            .insert(checkpoint.job.clone(), checkpoint.clone());
        Ok(changed)
    }

    async fn checkpoint(&self, job: &str) -> Result<Option<StoreCheckpoint>> {
        Ok(self.lock().checkpoints.get(job).cloned())
    }

    async fn set_state(&self, id: DekId, state: DekState) -> Result<bool> {
        Ok(match self.lock().rows.get_mut(&id.get()) {
            Some(row) => {
                row.state = state;
                true
            }
            None => false,
        })
    }

    fn location(&self) -> String {
        "memory".into()
    }
}

fn sample(n: u8, version: &str) -> NewDek {
    NewDek {
        suite: if n.is_multiple_of(2) {
            Suite::Aes256Gcm
        } else {
            Suite::XChaCha20Poly1305
        },
        wrapped: WrappedDek {
            provider: Provider::VaultTransit,
            key_id: format!("conformance-{n}"),
            key_version: version.into(),
            ciphertext: vec![n; 40 + n as usize],
        },
        commitment: [n; 32],
    }
}

fn failed(what: &str, e: Error) -> Failure {
    Failure(format!("{what}: unexpected error {:?}: {e}", e.kind()))
}

macro_rules! ensure {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err(Failure(format!($($msg)+)));
        }
    };
}

/// Reserves an id and inserts `dek` under it.
async fn insert(store: &dyn DekStore, dek: &NewDek) -> std::result::Result<DekId, Failure> {
    let id = store
        .reserve_id()
        .await
        .map_err(|e| failed("reserve_id", e))?;
    store
        .insert(id, dek)
        .await
        .map_err(|e| failed("insert", e))?;
    Ok(id)
}

/// The [`DekStore`] contract on an empty store: reserved ids distinct and increasing (also
/// when reserved and never used), rows read back exactly and bound, an id inserted twice
/// refused, pages in id order, a rotation's change applied only over the wrapped DEK the
/// job read (binding the row, and with its checkpoint), states, and an absent id reads as
/// `None`.
pub async fn check_dek_store(store: &dyn DekStore) -> CheckResult {
    let mut ids: Vec<DekId> = Vec::new();
    for n in 0..5u8 {
        let id = insert(store, &sample(n, "1")).await?;
        ensure!(
            ids.last().is_none_or(|last| *last < id),
            "ids not increasing: {id} after {ids:?}"
        );
        ids.push(id);
    }
    let taken = store.insert(ids[0], &sample(1, "1")).await;
    ensure!(
        matches!(taken, Err(Error::DekStore { .. })),
        "inserting under a taken id: {taken:?}"
    );
    for (n, id) in ids.iter().enumerate() {
        let row = store
            .get(*id)
            .await
            .map_err(|e| failed("get", e))?
            .ok_or_else(|| Failure(format!("row {id} missing")))?;
        let want = sample(n as u8, "1");
        ensure!(row.id == *id, "row {id} came back as {}", row.id);
        ensure!(row.suite == want.suite, "row {id}: suite changed");
        ensure!(row.wrapped == want.wrapped, "row {id}: wrapped DEK changed");
        ensure!(
            row.commitment == want.commitment,
            "row {id}: commitment changed"
        );
        ensure!(row.state == DekState::Active, "row {id}: not active");
        ensure!(row.bound, "row {id}: an inserted row is bound");
        let age = SystemTime::now()
            .duration_since(row.created)
            .unwrap_or_default();
        ensure!(age.as_secs() < 3600, "row {id}: created {age:?} ago");
    }
    let absent = DekId::new(ids[4].get() + 1000).ok_or_else(|| Failure("id overflow".into()))?;
    ensure!(
        store
            .get(absent)
            .await
            .map_err(|e| failed("get absent", e))?
            .is_none(),
        "an id never assigned read as a row"
    );
    let imported = DekId::new(ids[4].get() + 100).ok_or_else(|| Failure("id overflow".into()))?;
    let row = StoredDek {
        id: imported,
        suite: Suite::Aes256Gcm,
        wrapped: sample(9, "4").wrapped,
        commitment: [9; 32],
        created: SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000),
        state: DekState::Retired,
        bound: false,
    };
    store.import(&row).await.map_err(|e| failed("import", e))?;
    let back = store
        .get(imported)
        .await
        .map_err(|e| failed("get imported", e))?;
    ensure!(
        back.as_ref() == Some(&row),
        "imported row read back as {back:?}"
    );
    let taken = store.import(&row).await;
    ensure!(
        matches!(taken, Err(Error::DekStore { .. })),
        "importing a taken id: {taken:?}"
    );
    let after_import = insert(store, &sample(5, "1")).await?;
    ensure!(
        after_import > imported,
        "insert after importing id {imported} got {after_import}"
    );
    let page1 = store.list(None, 2).await.map_err(|e| failed("list", e))?;
    let page2 = store
        .list(Some(ids[1]), 10)
        .await
        .map_err(|e| failed("list after", e))?;
    ensure!(
        page1.iter().map(|r| r.id).collect::<Vec<_>>() == ids[..2],
        "first page wrong"
    );
    ensure!(
        page2.iter().map(|r| r.id).collect::<Vec<_>>()
            == [&ids[2..], &[imported, after_import]].concat(),
        "second page wrong"
    );
    let fresh = sample(0, "2").wrapped;
    let checkpoint = StoreCheckpoint {
        job: "conformance-job".into(),
        last_id: ids[1],
        progress: "{\"changed\":1}".into(),
    };
    let changed = store
        .apply_rewraps(
            &[
                WrappedDekChange {
                    id: ids[0],
                    old: sample(0, "1").wrapped,
                    new: fresh.clone(),
                },
                WrappedDekChange {
                    id: ids[1],
                    old: sample(7, "1").wrapped,
                    new: fresh.clone(),
                },
            ],
            &checkpoint,
        )
        .await
        .map_err(|e| failed("apply_rewraps", e))?;
    ensure!(
        changed == 1,
        "apply_rewraps changed {changed} rows, want 1 (the second change read a stale row)"
    );
    let row0 = store.get(ids[0]).await.map_err(|e| failed("get", e))?;
    ensure!(
        row0.as_ref().map(|r| &r.wrapped) == Some(&fresh),
        "row {} not rewrapped",
        ids[0]
    );
    ensure!(
        row0.as_ref().map(|r| r.commitment) == Some(sample(0, "1").commitment),
        "a rewrap changed the commitment"
    );
    // A rotation binds the unbound (imported) row it moves.
    let bound = store
        .apply_rewraps(
            &[WrappedDekChange {
                id: imported,
                old: row.wrapped.clone(),
                new: fresh.clone(),
            }],
            &checkpoint,
        )
        .await
        .map_err(|e| failed("apply_rewraps", e))?;
    let moved = store.get(imported).await.map_err(|e| failed("get", e))?;
    ensure!(
        bound == 1 && moved.is_some_and(|r| r.bound && r.wrapped == fresh),
        "a rotation did not bind the row it moved"
    );
    let row1 = store.get(ids[1]).await.map_err(|e| failed("get", e))?;
    ensure!(
        row1.map(|r| r.wrapped) == Some(sample(1, "1").wrapped),
        "a change over a stale read was applied"
    );
    let saved = store
        .checkpoint("conformance-job")
        .await
        .map_err(|e| failed("checkpoint", e))?;
    ensure!(saved == Some(checkpoint), "checkpoint not saved: {saved:?}");
    ensure!(
        store
            .checkpoint("no-such-job")
            .await
            .map_err(|e| failed("checkpoint", e))?
            .is_none(),
        "a job never run has a checkpoint"
    );
    ensure!(
        store
            .set_state(ids[2], DekState::Retired)
            .await
            .map_err(|e| failed("set_state", e))?,
        "set_state found no row"
    );
    let row2 = store.get(ids[2]).await.map_err(|e| failed("get", e))?;
    ensure!(
        row2.map(|r| r.state) == Some(DekState::Retired),
        "state not saved"
    );
    ensure!(
        !store
            .set_state(absent, DekState::Retired)
            .await
            .map_err(|e| failed("set_state", e))?,
        "set_state on an absent row reported a change"
    );
    // A reservation never used (a writer that died before inserting) is never handed out
    // again, and reads as no row.
    let lost = store
        .reserve_id()
        .await
        .map_err(|e| failed("reserve_id", e))?;
    ensure!(lost > after_import, "reserved {lost} after {after_import}");
    let next = insert(store, &sample(6, "1")).await?;
    ensure!(next > lost, "reserved {next} after the unused {lost}");
    ensure!(
        store
            .get(lost)
            .await
            .map_err(|e| failed("get", e))?
            .is_none(),
        "an unused reservation reads as a row"
    );
    Ok(())
}
