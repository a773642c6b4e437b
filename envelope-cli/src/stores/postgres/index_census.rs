//! The census of a blind-index column: values per index version, counted in SQL from each
//! value's version prefix (no key, no decryption).

use std::collections::BTreeMap;

use serde::Serialize;

use tokio_postgres::Client;

use super::Target;
use crate::exit::CliError;
use crate::value::Form;

/// What a blind-index column holds.
#[derive(Debug, Clone, Default, Serialize)]
pub struct IndexCensus {
    /// `table.index_column`.
    pub column: String,
    /// Values per index version.
    pub versions: BTreeMap<u16, u64>,
    /// Rows with a ciphertext and no index value (a back-fill is due).
    pub missing: u64,
    /// Values that are not index values (neither form parses).
    pub malformed: u64,
}

impl IndexCensus {
    /// Values under `version`.
    pub fn under(&self, version: u16) -> u64 {
        self.versions.get(&version).copied().unwrap_or(0)
    }

    /// For people.
    pub fn render(&self) -> String {
        let mut out = format!("blind index column {}:\n", self.column);
        for (v, n) in &self.versions {
            out.push_str(&format!("  index version {v}: {n} value(s)\n"));
        }
        out.push_str(&format!(
            "  without an index value: {}\n  malformed: {}\n",
            self.missing, self.malformed
        ));
        out
    }
}

/// Counts the index column of `target`'s rows that hold a ciphertext.
pub async fn index_census(
    client: &Client,
    target: &Target,
    column: &str,
) -> Result<IndexCensus, CliError> {
    let target = target.clone().with_index_column(client, column).await?;
    let Some((_, idx, form)) = &target.index_column else {
        unreachable!("with_index_column set it")
    };
    let version = match form {
        Form::Binary => format!(
            "CASE WHEN length({idx}) >= 3 AND get_byte({idx}, 0) * 256 + get_byte({idx}, 1) > 0 \
             THEN get_byte({idx}, 0) * 256 + get_byte({idx}, 1) ELSE -1 END"
        ),
        Form::Text => format!(
            "CASE WHEN {idx} ~ '^bi[1-9][0-9]{{0,4}}:[A-Za-z0-9_-]+$' \
             AND substring({idx} FROM '^bi([0-9]+):')::int <= 65535 \
             THEN substring({idx} FROM '^bi([0-9]+):')::int ELSE -1 END"
        ),
    };
    let sql = format!(
        "SELECT CASE WHEN {idx} IS NULL THEN NULL ELSE {version} END AS v, count(*) \
         FROM {table} WHERE {col} IS NOT NULL GROUP BY 1",
        table = target.table_sql,
        col = target.column_sql,
    );
    let mut census = IndexCensus {
        column: format!("{}.{column}", target.table),
        ..Default::default()
    };
    for row in client.query(&sql, &[]).await? {
        let (v, n): (Option<i32>, i64) = (row.get(0), row.get(1));
        match v {
            None => census.missing += n as u64,
            Some(v) => match u16::try_from(v) {
                Ok(v) if v > 0 => *census.versions.entry(v).or_default() += n as u64,
                _ => census.malformed += n as u64,
            },
        }
    }
    Ok(census)
}
