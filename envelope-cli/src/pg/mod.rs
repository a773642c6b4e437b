//! PostgreSQL: connecting, reading a column page by page in primary-key order, the census
//! over a column, and the rewrap / re-encrypt job engine ([`job`]).

mod checkpoint;
pub mod job;
mod target;

use tokio_postgres::{Client, NoTls, Row};

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

/// Connects (without TLS) and drives the connection on the runtime.
pub async fn connect(url: &str) -> Result<Client, CliError> {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await.map_err(|e| {
        CliError::new(format!(
            "cannot connect to the database: {}",
            describe_pg_error(&e)
        ))
    })?;
    tokio::spawn(async move {
        // The client's calls report a closed connection; nothing more to do here.
        let _ = connection.await;
    });
    Ok(client)
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
