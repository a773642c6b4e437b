//! DEK store URIs: `sqlite:///path` and `postgres://…[?table=NAME]`.

use std::path::PathBuf;

use envelope_core::{Error, Result};

/// The table a PostgreSQL store uses when the URI names none.
pub const DEFAULT_TABLE: &str = "envelope_deks";

/// A parsed DEK store URI.
#[derive(Clone, PartialEq, Eq)]
pub enum DekStoreUri {
    /// `sqlite://` + a path (`sqlite:///var/lib/app/deks.sqlite`; `sqlite://deks.sqlite` is
    /// relative to the working directory).
    Sqlite {
        /// The database file.
        path: PathBuf,
    },
    /// `postgres://` or `postgresql://` (libpq URI syntax; `PGPASSWORD` is not read: put the
    /// password in the URI or use trust/peer authentication), plus an optional
    /// `table=[schema.]name` parameter.
    Postgres {
        /// The connection string without the `table` parameter.
        config: String,
        /// The table (optionally schema-qualified); its jobs table is `<table>_jobs`.
        table: String,
    },
}

impl std::fmt::Debug for DekStoreUri {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DekStoreUri::Sqlite { path } => f.debug_struct("Sqlite").field("path", path).finish(),
            // The connection string may hold a password: never printed.
            DekStoreUri::Postgres { table, .. } => f
                .debug_struct("Postgres")
                .field("table", table)
                .finish_non_exhaustive(),
        }
    }
}

fn invalid(uri: &str, reason: impl Into<String>) -> Error {
    Error::InvalidConfig(format!(
        "DEK store URI {:?}: {}",
        redact(uri),
        reason.into()
    ))
}

/// The URI with any password replaced by `***`, for messages.
pub(crate) fn redact(uri: &str) -> String {
    if let Some((scheme, rest)) = uri.split_once("://")
        && let Some((userinfo, host)) = rest.split_once('@')
        && let Some((user, _password)) = userinfo.split_once(':')
    {
        return format!("{scheme}://{user}:***@{host}");
    }
    uri.to_owned()
}

/// Whether `name` is a plain SQL identifier, optionally `schema.`-qualified.
pub(crate) fn valid_table(name: &str) -> bool {
    let part = |p: &str| {
        let mut chars = p.chars();
        chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
            && p.len() <= 58
    };
    match name.split_once('.') {
        Some((schema, table)) => part(schema) && part(table),
        None => part(name),
    }
}

impl DekStoreUri {
    /// Parses a DEK store URI.
    pub fn parse(uri: &str) -> Result<Self> {
        if let Some(path) = uri.strip_prefix("sqlite://") {
            if path.is_empty() {
                return Err(invalid(uri, "no file path after sqlite://"));
            }
            if path.contains('?') || path.contains('#') {
                return Err(invalid(uri, "a SQLite store URI takes no parameters"));
            }
            return Ok(DekStoreUri::Sqlite {
                path: PathBuf::from(path),
            });
        }
        if uri.starts_with("postgres://") || uri.starts_with("postgresql://") {
            let (base, query) = match uri.split_once('?') {
                Some((base, query)) => (base, query),
                None => (uri, ""),
            };
            let mut table = DEFAULT_TABLE.to_owned();
            let mut kept = Vec::new();
            for pair in query.split('&').filter(|p| !p.is_empty()) {
                match pair.split_once('=') {
                    Some(("table", name)) => table = name.to_owned(),
                    _ => kept.push(pair),
                }
            }
            if !valid_table(&table) {
                return Err(invalid(
                    uri,
                    format!("table {table:?} is not a plain [schema.]name identifier"),
                ));
            }
            let config = if kept.is_empty() {
                base.to_owned()
            } else {
                format!("{base}?{}", kept.join("&"))
            };
            return Ok(DekStoreUri::Postgres { config, table });
        }
        Err(invalid(
            uri,
            "expected sqlite:///path/deks.sqlite or postgres://user@host:port/db[?table=NAME]",
        ))
    }

    /// The URI scheme.
    pub fn scheme(&self) -> &'static str {
        match self {
            DekStoreUri::Sqlite { .. } => "sqlite",
            DekStoreUri::Postgres { .. } => "postgres",
        }
    }

    /// The cargo feature of this crate that opens it.
    pub fn feature(&self) -> &'static str {
        match self {
            DekStoreUri::Sqlite { .. } => "sqlite",
            DekStoreUri::Postgres { .. } => "postgres",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_parse_and_bad_ones_say_why() {
        assert_eq!(
            DekStoreUri::parse("sqlite:///var/lib/deks.sqlite").ok(),
            Some(DekStoreUri::Sqlite {
                path: "/var/lib/deks.sqlite".into()
            })
        );
        assert_eq!(
            DekStoreUri::parse("postgres://app:pw@db:5432/app?table=keys.deks&connect_timeout=5")
                .ok(),
            Some(DekStoreUri::Postgres {
                config: "postgres://app:pw@db:5432/app?connect_timeout=5".into(),
                table: "keys.deks".into()
            })
        );
        let Some(DekStoreUri::Postgres { table, .. }) =
            DekStoreUri::parse("postgresql://localhost/app").ok()
        else {
            panic!("postgresql:// parses");
        };
        assert_eq!(table, DEFAULT_TABLE);
        for (bad, says) in [
            ("sqlite://", "no file path"),
            ("sqlite:///x.db?mode=ro", "no parameters"),
            ("postgres://u:secret@h/db?table=x;drop", "identifier"),
            ("mysql://h/db", "expected sqlite"),
        ] {
            let err = DekStoreUri::parse(bad).err().map(|e| e.to_string());
            let err = err.unwrap_or_default();
            assert!(err.contains(says), "{bad}: {err}");
            assert!(!err.contains("secret"), "{err}");
        }
        let debug = format!("{:?}", DekStoreUri::parse("postgres://u:secret@h/db").ok());
        assert!(!debug.contains("secret"), "{debug}");
    }
}
