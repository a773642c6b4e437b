//! PostgreSQL: connecting, reading a column page by page in primary-key order, the census
//! over a column, and the rewrap / re-encrypt job engine ([`job`]).

mod checkpoint;
pub mod job;
mod target;

use envelope_dekstore::pg_connect::{PgConnector, Transport};
use tokio_postgres::{Client, Row};

pub use target::{Target, quote_ident};

use crate::aad::AadTemplate;
use crate::action::Item;
use crate::census::Census;
use crate::exit::CliError;
use crate::labels::LabelVerifier;
use crate::value::{Form, Stored};

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

/// How a job's or census's database connection was carried, for summaries and evidence.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ConnectionInfo {
    /// Whether the connection was encrypted (TLS).
    pub encrypted: bool,
    /// The TLS version (`TLSv1.3`), when encrypted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_version: Option<String>,
    /// The `sslmode` it was made with.
    pub sslmode: String,
    /// Whether the server's certificate was verified (`verify-ca`, `verify-full`).
    pub server_verified: bool,
}

impl std::fmt::Display for ConnectionInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.tls_version, self.server_verified) {
            (None, _) => write!(f, "PLAINTEXT (sslmode={})", self.sslmode),
            (Some(v), true) => write!(f, "{v}, server verified (sslmode={})", self.sslmode),
            (Some(v), false) => write!(f, "{v}, server NOT verified (sslmode={})", self.sslmode),
        }
    }
}

impl From<&Transport> for ConnectionInfo {
    fn from(t: &Transport) -> Self {
        ConnectionInfo {
            encrypted: t.encrypted(),
            tls_version: t.tls_version.clone(),
            sslmode: t.sslmode.as_str().to_owned(),
            server_verified: t.server_verified(),
        }
    }
}

/// A row read from the column.
#[derive(Debug)]
pub struct ReadRow {
    /// The primary key as text.
    pub key: String,
    /// The raw stored value (text or bytea bytes) as read, for the update's check.
    pub raw: Vec<u8>,
    /// The processing item.
    pub item: Item,
}

/// Decodes a row of [`Target::page_query`] / [`Target::reread_query`]; `None` for NULL.
pub fn decode_row(target: &Target, template: Option<&AadTemplate>, row: &Row) -> Option<ReadRow> {
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
    Some(ReadRow {
        item: Item {
            location: format!("{}[{key}]", target.name()),
            stored,
            aad,
        },
        key,
        raw,
    })
}

/// A census of one column: headers only, page by page. With a verifier, labels the
/// header cannot show are checked by one unwrap per distinct DEK.
pub async fn census(
    client: &Client,
    target: &Target,
    verifier: Option<&LabelVerifier>,
    store: Option<&crate::dekstore::StoreHeaders>,
) -> Result<Census, CliError> {
    let mut census = Census::default();
    let mut after: Option<String> = None;
    let until: Option<String> = None;
    let limit: i64 = 5000;
    loop {
        let (sql, params) = target.page_query(&after, &until, &limit);
        let rows = client.query(&sql, &params).await?;
        let Some(last) = rows.last() else { break };
        let last_key: String = last.get(0);
        for row in &rows {
            let Some(read) = decode_row(target, None, row) else {
                continue;
            };
            crate::census::observe_stored(&mut census, &read.item, verifier, store).await?;
        }
        after = Some(last_key);
    }
    Ok(census)
}
