//! A PostgreSQL column as a store of the engine: keyset pages in primary-key order
//! (compared in the key's own type, so integers, text, uuid, numeric and timestamps all
//! work), each page's conditional `UPDATE` and its checkpoint in one transaction, and the
//! `envelope_jobs` ledger whose leases let processes on many machines share one job.

mod index_census;
mod ledger;
mod target;

use std::collections::HashSet;

use async_trait::async_trait;
use envelope_dekstore::pg_connect::{PgConnector, Transport};
use tokio::sync::Mutex;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Row};

pub use index_census::{IndexCensus, index_census};
pub use target::{Target, quote_ident};

use crate::aad::AadTemplate;
use crate::engine::store::{
    Change, Checkpoint, CommitError, Committed, ConnectionInfo, IndexCell, Ledger, Range, Record,
    Store, StoreInfo, Value, Write, WriteGuarantee,
};
use crate::exit::CliError;
use crate::value::{Form, Stored};

impl From<tokio_postgres::Error> for CliError {
    fn from(e: tokio_postgres::Error) -> Self {
        CliError::new(describe_pg_error(&e))
    }
}

/// One line for a PostgreSQL error: the server's message and detail when it sent one.
pub fn describe_pg_error(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => match db.detail() {
            Some(detail) => format!("PostgreSQL: {} ({detail})", db.message()),
            None => format!("PostgreSQL: {}", db.message()),
        },
        None => {
            let mut message = format!("PostgreSQL: {e}");
            let mut source = std::error::Error::source(e);
            while let Some(s) = source {
                message.push_str(&format!(": {s}"));
                source = s.source();
            }
            message
        }
    }
}

/// Connects with libpq's TLS parameters (`sslmode`, `sslrootcert`, `sslcert`, `sslkey` in
/// the connection string or `PGSSLMODE`… in the environment), drives the connection on the
/// runtime, and says how it is carried.
pub async fn connect(url: &str) -> Result<(Client, Transport), CliError> {
    let connector = PgConnector::new(url)?;
    connector
        .connect()
        .await
        .map_err(|e| CliError::new(format!("cannot connect to the database: {}", e.message)))
}

fn connection_info(t: &Transport) -> ConnectionInfo {
    ConnectionInfo {
        encrypted: t.encrypted(),
        tls_version: t.tls_version.clone(),
        sslmode: t.sslmode.as_str().to_owned(),
        server_verified: t.server_verified(),
    }
}

/// Decodes a row of [`Target::page_query`] / [`Target::reread_query`]; `None` for NULL.
fn decode_row(target: &Target, template: Option<&AadTemplate>, row: &Row) -> Option<Record> {
    let key: String = row.get(0);
    let (raw, stored) = match target.form {
        Form::Text => {
            let text: Option<String> = row.get(1);
            let text = text?;
            let stored = Stored::from_text(&text);
            (text.into_bytes(), stored)
        }
        Form::Binary => {
            let bytes: Option<Vec<u8>> = row.get(1);
            let bytes = bytes?;
            let stored = Ok(Stored {
                form: Form::Binary,
                binary: bytes.clone(),
            });
            (bytes, stored)
        }
    };
    let aad = match template {
        None => Ok(Vec::new()),
        Some(t) => {
            let values: Vec<Option<String>> = (0..target.aad_columns.len())
                .map(|i| row.get(2 + i))
                .collect();
            t.render(|name| match name {
                "table" => Some(target.table.as_str()),
                "column" => Some(target.column.as_str()),
                other => target
                    .aad_columns
                    .iter()
                    .position(|(n, _)| n == other)
                    .and_then(|i| values[i].as_deref()),
            })
        }
    };
    let index = target.index_column.as_ref().and_then(|(_, _, form)| {
        let at = 2 + target.aad_columns.len();
        match form {
            Form::Text => row.get::<_, Option<String>>(at).map(|t| IndexCell {
                raw: t.into_bytes(),
                text: true,
            }),
            Form::Binary => row
                .get::<_, Option<Vec<u8>>>(at)
                .map(|raw| IndexCell { raw, text: false }),
        }
    });
    Some(Record {
        location: format!("{}[{key}]", target.name()),
        position: key,
        read: raw,
        value: Value::Ciphertext { stored, aad },
        index,
    })
}

/// A column of a table, as records: the rows whose value is not NULL.
pub struct Column {
    url: String,
    target: Target,
    template: Option<AadTemplate>,
    transport: Transport,
    /// Idle connections (each worker takes one per call; a transaction needs its own).
    idle: Mutex<Vec<Client>>,
}

impl Column {
    /// Connects and resolves `table` and `column` (and the columns `template` reads).
    pub async fn open(
        url: &str,
        table: &str,
        column: &str,
        template: Option<AadTemplate>,
    ) -> Result<Self, CliError> {
        let (client, transport) = connect(url).await?;
        let vars: Vec<&str> = template
            .as_ref()
            .map(|t| t.variables().collect())
            .unwrap_or_default();
        let target = Target::resolve(&client, table, column, &vars).await?;
        Ok(Column {
            url: url.to_owned(),
            target,
            template,
            transport,
            idle: Mutex::new(vec![client]),
        })
    }

    /// Adds the blind-index column `reindex` reads and writes beside the ciphertexts.
    pub async fn with_index_column(mut self, column: &str) -> Result<Self, CliError> {
        let client = self.client().await?;
        let target = self.target.clone().with_index_column(&client, column).await;
        self.give_back(client).await;
        self.target = target?;
        Ok(self)
    }

    /// The resolved table and column.
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// An idle connection, or a new one.
    async fn client(&self) -> Result<Client, CliError> {
        let idle = self.idle.lock().await.pop();
        if let Some(c) = idle
            && !c.is_closed()
        {
            return Ok(c);
        }
        Ok(connect(&self.url).await?.0)
    }

    async fn give_back(&self, client: Client) {
        self.idle.lock().await.push(client);
    }

    fn decode(&self, rows: &[Row]) -> Vec<Record> {
        rows.iter()
            .filter_map(|r| decode_row(&self.target, self.template.as_ref(), r))
            .collect()
    }

    /// Writes the page's values and its checkpoint in one transaction; nothing when a row
    /// no longer holds what was read.
    async fn commit_on(
        &self,
        client: &mut Client,
        writes: &[Write<'_>],
        checkpoint: Option<&Checkpoint<'_>>,
    ) -> Result<Committed, CommitError> {
        let tx = client.transaction().await?;
        if let Some(c) = checkpoint {
            // First: it locks the part's row and proves the lease is still ours.
            if !ledger::save(&tx, c).await? {
                return Err(CommitError::LeaseLost);
            }
        }
        let keys: Vec<&str> = writes.iter().map(|w| w.record.position.as_str()).collect();
        if let Some(Write {
            change: Change::Index(_),
            ..
        }) = writes.first()
        {
            let updated = self.update_index(&tx, &keys, writes).await?;
            return finish(tx, keys, updated).await;
        }
        let mut news = Vec::with_capacity(writes.len());
        for w in writes {
            news.push(w.ciphertext()?);
        }
        let update = self.target.update_query();
        let updated: HashSet<String> = if writes.is_empty() {
            Default::default()
        } else {
            match self.target.form {
                Form::Text => {
                    let olds: Vec<&str> = writes.iter().map(|w| utf8(&w.record.read)).collect();
                    let news: Vec<&str> = news.iter().map(|n| utf8(n)).collect();
                    tx.query(&update, &[&keys, &olds, &news]).await?
                }
                Form::Binary => {
                    let olds: Vec<&[u8]> =
                        writes.iter().map(|w| w.record.read.as_slice()).collect();
                    tx.query(&update, &[&keys, &olds, &news]).await?
                }
            }
            .iter()
            .map(|r| r.get::<_, String>(0))
            .collect()
        };
        finish(tx, keys, updated).await
    }

    /// The page's blind-index writes (`reindex`): each where the ciphertext and the index
    /// value are still the ones read; returns the keys written.
    async fn update_index(
        &self,
        tx: &tokio_postgres::Transaction<'_>,
        keys: &[&str],
        writes: &[Write<'_>],
    ) -> Result<HashSet<String>, CommitError> {
        let (Some(update), Some((_, _, index_form))) =
            (self.target.update_index_query(), &self.target.index_column)
        else {
            return Err(CommitError::Failed(CliError::new(format!(
                "{}: no index column was named (--index-column)",
                self.target.name()
            ))));
        };
        let mut news = Vec::with_capacity(writes.len());
        for w in writes {
            news.push(w.index()?);
        }
        let olds = sql_array(
            self.target.form,
            writes.iter().map(|w| Some(w.record.read.clone())).collect(),
        );
        let old_index = sql_array(
            *index_form,
            writes
                .iter()
                .map(|w| w.record.index.as_ref().map(|c| c.raw.clone()))
                .collect(),
        );
        let new_index = sql_array(
            *index_form,
            news.iter()
                .map(|v| {
                    Some(match index_form {
                        Form::Text => v.to_text().into_bytes(),
                        Form::Binary => v.to_bytes(),
                    })
                })
                .collect(),
        );
        let rows = tx
            .query(&update, &[&keys, &*olds, &*old_index, &*new_index])
            .await?;
        Ok(rows.iter().map(|r| r.get::<_, String>(0)).collect())
    }
}

/// Values of a column of `form` as one SQL array parameter (`text[]` of UTF-8, or
/// `bytea[]`), NULLs kept.
fn sql_array(form: Form, values: Vec<Option<Vec<u8>>>) -> Box<dyn ToSql + Sync + Send> {
    match form {
        Form::Text => Box::new(
            values
                .into_iter()
                .map(|v| v.map(|b| String::from_utf8(b).unwrap_or_default()))
                .collect::<Vec<Option<String>>>(),
        ),
        Form::Binary => Box::new(values),
    }
}

/// Commits when every key was written, else rolls back and names the conflicts.
async fn finish(
    tx: tokio_postgres::Transaction<'_>,
    keys: Vec<&str>,
    updated: HashSet<String>,
) -> Result<Committed, CommitError> {
    let conflicts: Vec<String> = keys
        .iter()
        .filter(|k| !updated.contains(**k))
        .map(|k| (*k).to_owned())
        .collect();
    if conflicts.is_empty() {
        tx.commit().await?;
    } else {
        tx.rollback().await?;
    }
    Ok(Committed {
        conflicts,
        superseded: 0,
    })
}

#[async_trait]
impl Store for Column {
    fn info(&self) -> StoreInfo {
        StoreInfo {
            kind: "postgres",
            name: self.target.name(),
            connection: Some(connection_info(&self.transport)),
            writes: WriteGuarantee::Transactional,
        }
    }

    async fn split(&self, n: u16) -> Result<Vec<Range>, CliError> {
        if n <= 1 {
            return Ok(vec![Range::all()]);
        }
        let client = self.client().await?;
        let ends: Result<Vec<String>, _> = client
            .query(&self.target.split_query(n), &[])
            .await
            .map(|rows| rows.iter().map(|r| r.get(0)).collect());
        self.give_back(client).await;
        let ends = ends?;
        let mut ranges = Vec::with_capacity(ends.len().max(1));
        let mut start = None;
        for (i, end) in ends.iter().enumerate() {
            let last = i + 1 == ends.len();
            ranges.push(Range {
                start: start.clone(),
                end: if last { None } else { Some(end.clone()) },
            });
            start = Some(end.clone());
        }
        if ranges.is_empty() {
            ranges.push(Range::all());
        }
        Ok(ranges)
    }

    async fn page(
        &self,
        range: &Range,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Record>, CliError> {
        let after = after.map(str::to_owned).or_else(|| range.start.clone());
        let limit = limit as i64;
        let (sql, params) = self.target.page_query(&after, &range.end, &limit);
        let client = self.client().await?;
        let rows = client.query(&sql, &params).await;
        self.give_back(client).await;
        Ok(self.decode(&rows?))
    }

    async fn reread(&self, positions: &[String]) -> Result<Vec<Record>, CliError> {
        let client = self.client().await?;
        let rows = client
            .query(&self.target.reread_query(), &[&positions])
            .await;
        self.give_back(client).await;
        Ok(self.decode(&rows?))
    }

    async fn commit(
        &self,
        writes: &[Write<'_>],
        checkpoint: Option<&Checkpoint<'_>>,
    ) -> Result<Committed, CommitError> {
        let mut client = self.client().await?;
        let result = self.commit_on(&mut client, writes, checkpoint).await;
        self.give_back(client).await;
        result
    }

    fn ledger(&self) -> Option<&dyn Ledger> {
        Some(self)
    }

    async fn preflight(&self) -> Result<(), CliError> {
        // A column whose first values include no envelope ciphertext at all is refused (a
        // wrong --column would otherwise be reported row by row as failures).
        let read = self.page(&Range::all(), None, 100).await?;
        let envelope_values = read
            .iter()
            .filter(|r| match &r.value {
                Value::Ciphertext { stored: Ok(s), .. } => {
                    crate::engine::headers::parses(&s.binary)
                }
                _ => false,
            })
            .count();
        if !read.is_empty() && envelope_values == 0 {
            return Err(CliError::new(format!(
                "column {} holds no envelope ciphertexts (none of its first {} values parses): wrong --column?",
                self.target.name(),
                read.len()
            )));
        }
        Ok(())
    }

    async fn count(&self) -> Option<u64> {
        let client = self.client().await.ok()?;
        let row = client.query_one(&self.target.count_query(), &[]).await;
        self.give_back(client).await;
        row.ok().map(|r| r.get::<_, i64>(0) as u64)
    }
}

fn utf8(bytes: &[u8]) -> &str {
    // Text-column values and their text-form replacements are UTF-8 by construction.
    std::str::from_utf8(bytes).unwrap_or_default()
}
