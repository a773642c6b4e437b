//! The table and column a job works on, resolved against the catalog, and the SQL it runs.

use tokio_postgres::Client;
use tokio_postgres::types::ToSql;

use crate::exit::CliError;
use crate::value::Form;

/// A resolved column: quoted identifiers, the primary key and its type, the stored form.
#[derive(Debug, Clone)]
pub struct Target {
    /// The table as the user named it (for messages and `{table}` in AAD templates).
    pub table: String,
    /// The column as the user named it.
    pub column: String,
    /// The table as SQL (the catalog's quoted, schema-qualified-when-needed name).
    pub table_sql: String,
    /// The column as a quoted identifier.
    pub column_sql: String,
    /// The primary key column as a quoted identifier.
    pub pk_sql: String,
    /// The primary key's SQL type (`bigint`, `uuid`, `text`, …).
    pub pk_type: String,
    /// How the column stores ciphertexts.
    pub form: Form,
    /// Other columns an AAD template reads, quoted, in template order (deduplicated).
    pub aad_columns: Vec<(String, String)>,
    /// The blind-index column `reindex` writes: its name, quoted name and form.
    pub index_column: Option<(String, String, Form)>,
}

/// Quotes an identifier for SQL (`"` doubled).
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

impl Target {
    /// Looks the table, column and primary key up; `aad_vars` are the AAD template's
    /// placeholders (`table` and `column` are built in, others must be columns).
    pub async fn resolve(
        client: &Client,
        table: &str,
        column: &str,
        aad_vars: &[&str],
    ) -> Result<Self, CliError> {
        let row = client
            .query_one("SELECT to_regclass($1)::text", &[&table])
            .await
            .map_err(|e| {
                CliError::new(format!("table {table:?}: {}", super::describe_pg_error(&e)))
            })?;
        let table_sql: String = row
            .get::<_, Option<String>>(0)
            .ok_or_else(|| CliError::new(format!("table {table:?} does not exist")))?;
        let form = Self::column_form(client, &table_sql, table, column).await?;
        let pks = client
            .query(
                "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod) \
                 FROM pg_index i JOIN pg_attribute a \
                   ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) \
                 WHERE i.indrelid = $1::text::regclass AND i.indisprimary",
                &[&table_sql],
            )
            .await?;
        let (pk, pk_type): (String, String) = match pks.as_slice() {
            [row] => (row.get(0), row.get(1)),
            [] => {
                return Err(CliError::new(format!(
                    "table {table:?} has no primary key: jobs page through a single-column primary key"
                )));
            }
            _ => {
                return Err(CliError::new(format!(
                    "table {table:?} has a composite primary key: only single-column keys are supported"
                )));
            }
        };
        let mut aad_columns = Vec::new();
        for var in aad_vars {
            if matches!(*var, "table" | "column") || aad_columns.iter().any(|(n, _)| n == var) {
                continue;
            }
            let exists = client
                .query_opt(
                    "SELECT 1 FROM pg_attribute WHERE attrelid = $1::text::regclass \
                     AND attname = $2 AND attnum > 0 AND NOT attisdropped",
                    &[&table_sql, var],
                )
                .await?;
            if exists.is_none() {
                return Err(CliError::new(format!(
                    "--aad placeholder {{{var}}}: table {table:?} has no column {var:?} \
                     (built in: {{table}}, {{column}})"
                )));
            }
            aad_columns.push(((*var).to_owned(), quote_ident(var)));
        }
        Ok(Target {
            table: table.to_owned(),
            column: column.to_owned(),
            table_sql,
            column_sql: quote_ident(column),
            pk_sql: quote_ident(&pk),
            pk_type,
            form,
            aad_columns,
            index_column: None,
        })
    }

    /// Adds the blind-index column a `reindex` reads and writes (`bytea` for the binary
    /// form, `text`/`varchar` for the text form).
    pub async fn with_index_column(
        mut self,
        client: &Client,
        column: &str,
    ) -> Result<Self, CliError> {
        if column == self.column {
            return Err(CliError::new(format!(
                "--index-column {column:?} is the ciphertext column: the index needs a column of its own"
            )));
        }
        let form = Self::column_form(client, &self.table_sql, &self.table, column)
            .await
            .map_err(|e| {
                CliError::new(format!(
                    "index column: {} (a blind index is bytea or text)",
                    e.to_string()
                        .replace("ciphertexts live in", "index values live in")
                ))
            })?;
        self.index_column = Some((column.to_owned(), quote_ident(column), form));
        Ok(self)
    }

    async fn column_form(
        client: &Client,
        table_sql: &str,
        table: &str,
        column: &str,
    ) -> Result<Form, CliError> {
        let row = client
            .query_opt(
                "SELECT t.typname::text, format_type(a.atttypid, a.atttypmod) \
                 FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid \
                 WHERE a.attrelid = $1::text::regclass AND a.attname = $2 \
                   AND a.attnum > 0 AND NOT a.attisdropped",
                &[&table_sql, &column],
            )
            .await?
            .ok_or_else(|| CliError::new(format!("table {table:?} has no column {column:?}")))?;
        let typname: String = row.get(0);
        match typname.as_str() {
            "text" | "varchar" => Ok(Form::Text),
            "bytea" => Ok(Form::Binary),
            _ => {
                let shown: String = row.get(1);
                Err(CliError::new(format!(
                    "column {table}.{column} is {shown}: ciphertexts live in text, varchar or bytea columns"
                )))
            }
        }
    }

    /// `table.column` for messages.
    pub fn name(&self) -> String {
        format!("{}.{}", self.table, self.column)
    }

    fn select_list(&self) -> String {
        // Output names that no ORDER BY can mistake for the key column (a bare ORDER BY
        // name matches output columns first: the key's text form would sort as text).
        let mut list = format!(
            "t.{}::text AS envelope_key, t.{} AS envelope_value",
            self.pk_sql, self.column_sql
        );
        for (i, (_, quoted)) in self.aad_columns.iter().enumerate() {
            list.push_str(&format!(", t.{quoted}::text AS envelope_aad_{i}"));
        }
        if let Some((_, quoted, _)) = &self.index_column {
            list.push_str(&format!(", t.{quoted} AS envelope_index"));
        }
        list
    }

    /// A page of non-NULL values after `after` and up to `until` (primary keys as text),
    /// in key order, and its parameters.
    pub fn page_query<'a>(
        &self,
        after: &'a Option<String>,
        until: &'a Option<String>,
        limit_param: &'a i64,
    ) -> (String, Vec<&'a (dyn ToSql + Sync)>) {
        let mut sql = format!(
            "SELECT {} FROM {} AS t WHERE t.{} IS NOT NULL",
            self.select_list(),
            self.table_sql,
            self.column_sql
        );
        let mut params: Vec<&(dyn ToSql + Sync)> = Vec::new();
        if let Some(after) = after {
            params.push(after);
            sql.push_str(&format!(
                " AND t.{} > ${}::text::{}",
                self.pk_sql,
                params.len(),
                self.pk_type
            ));
        }
        if let Some(until) = until {
            params.push(until);
            sql.push_str(&format!(
                " AND t.{} <= ${}::text::{}",
                self.pk_sql,
                params.len(),
                self.pk_type
            ));
        }
        params.push(limit_param);
        sql.push_str(&format!(
            " ORDER BY t.{} LIMIT ${}",
            self.pk_sql,
            params.len()
        ));
        (sql, params)
    }

    /// The rows with these primary keys (text), current values (NULLs included).
    pub fn reread_query(&self) -> String {
        format!(
            "SELECT {} FROM {} AS t WHERE t.{} = ANY($1::text[]::{}[])",
            self.select_list(),
            self.table_sql,
            self.pk_sql,
            self.pk_type
        )
    }

    fn column_type(&self) -> &'static str {
        match self.form {
            Form::Text => "text",
            Form::Binary => "bytea",
        }
    }

    /// Sets new values only where the row still holds the value read; returns the keys
    /// updated. Parameters: keys (text[]), old values, new values.
    pub fn update_query(&self) -> String {
        let ty = self.column_type();
        format!(
            "UPDATE {table} AS t SET {col} = v.new \
             FROM unnest($1::text[], $2::{ty}[], $3::{ty}[]) AS v(k, old, new) \
             WHERE t.{pk} = v.k::{pk_type} AND t.{col} = v.old RETURNING v.k",
            table = self.table_sql,
            col = self.column_sql,
            pk = self.pk_sql,
            pk_type = self.pk_type,
        )
    }

    /// Sets new blind-index values only where the row still holds the ciphertext read and
    /// the index value read (NULL included); returns the keys updated. Parameters: keys
    /// (text[]), ciphertexts read, index values read, new index values.
    pub fn update_index_query(&self) -> Option<String> {
        let (_, index_sql, index_form) = self.index_column.as_ref()?;
        let ty = self.column_type();
        let ity = match index_form {
            Form::Text => "text",
            Form::Binary => "bytea",
        };
        Some(format!(
            "UPDATE {table} AS t SET {idx} = v.new \
             FROM unnest($1::text[], $2::{ty}[], $3::{ity}[], $4::{ity}[]) AS v(k, old, old_index, new) \
             WHERE t.{pk} = v.k::{pk_type} AND t.{col} = v.old AND t.{idx} IS NOT DISTINCT FROM v.old_index \
             RETURNING v.k",
            table = self.table_sql,
            col = self.column_sql,
            idx = index_sql,
            pk = self.pk_sql,
            pk_type = self.pk_type,
        ))
    }

    /// The primary keys that end `workers` ranges of about equal row counts (the last
    /// range is open-ended). The last key of each tile is taken by ordering, not `max()`:
    /// every primary key type has an ordering (its btree index), not every one has `max`
    /// (`uuid` has none).
    pub fn split_query(&self, workers: u16) -> String {
        format!(
            "SELECT DISTINCT ON (tile) k::text FROM (SELECT {pk} AS k, ntile({workers}) OVER (ORDER BY {pk}) AS tile \
             FROM {table} WHERE {col} IS NOT NULL) s ORDER BY tile, k DESC",
            pk = self.pk_sql,
            table = self.table_sql,
            col = self.column_sql,
        )
    }

    /// Counts non-NULL values (for the progress bar's length).
    pub fn count_query(&self) -> String {
        format!(
            "SELECT count(*) FROM {} WHERE {} IS NOT NULL",
            self.table_sql, self.column_sql
        )
    }
}
