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

/// A connection string with every password replaced by `***`, for messages: the URI's
/// `user:password@`, a `password=` query parameter, and a `password=` of the libpq
/// key=value form.
pub fn redact(uri: &str) -> String {
    let hide = |pair: &str| match pair.split_once('=') {
        Some((key, _)) if key.trim().eq_ignore_ascii_case("password") => format!("{key}=***"),
        _ => pair.to_owned(),
    };
    let Some((scheme, rest)) = uri.split_once("://") else {
        // libpq key=value form: `host=… password=…`.
        return uri.split(' ').map(hide).collect::<Vec<_>>().join(" ");
    };
    let (base, query) = match rest.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (rest, None),
    };
    let base = match base.split_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _password)) => format!("{user}:***@{host}"),
            None => base.to_owned(),
        },
        None => base.to_owned(),
    };
    match query {
        Some(query) => format!(
            "{scheme}://{base}?{}",
            query.split('&').map(hide).collect::<Vec<_>>().join("&")
        ),
        None => format!("{scheme}://{base}"),
    }
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
        for (uri, shown) in [
            ("postgres://u:secret@h/db", "postgres://u:***@h/db"),
            (
                "postgres://u@h/db?password=secret&connect_timeout=5",
                "postgres://u@h/db?password=***&connect_timeout=5",
            ),
            (
                "host=h user=u password=secret dbname=db",
                "host=h user=u password=*** dbname=db",
            ),
            ("postgres://h/db", "postgres://h/db"),
        ] {
            assert_eq!(redact(uri), shown);
        }
        // Every message built from such a URI hides it too.
        let err = DekStoreUri::parse("postgres://u@h/db?password=secret&table=x;y")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.contains("identifier") && !err.contains("secret"),
            "{err}"
        );
    }
}
