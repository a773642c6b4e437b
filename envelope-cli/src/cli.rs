//! The command line: every subcommand and option (clap, derive API).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Envelope encryption from the command line, and the jobs that follow a key rotation.
///
/// Key URIs name a KEK: `local:///path/keyring.json#KEY` (the local keyring; `#KEY` defaults
/// to `default`), `aws-kms://arn:aws:kms:…`, `gcp-kms://projects/P/locations/L/keyRings/R/cryptoKeys/K`,
/// `vault://HOST:PORT/transit/keys/NAME`.
///
/// After a rotation: `census` counts stored ciphertexts by KEK version (headers only),
/// `rewrap` moves stale ones to the current version (header only, bodies untouched),
/// `reencrypt` replaces DEKs after a suspected exposure, `retire` disables or destroys a
/// version once a census finds nothing left under it.
///
/// Exit codes: 0 success; 1 error (nothing or only whole batches written); 2 bad arguments;
/// 3 a job finished but some values failed (left untouched, counted by kind); 4 `retire`
/// refused because data remains under the version; 5 a job stopped early with a resumable
/// checkpoint (e.g. the KMS became unreachable): rerun with `--resume JOB`.
#[derive(Debug, Parser)]
#[command(name = "envelope", version, about, long_about, max_term_width = 100)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
    /// The key-use log (any subcommand).
    #[command(flatten)]
    pub audit: AuditLogArgs,
}

/// Where the key-use log goes: every KMS call, the cache use of each DEK per minute, every
/// job's start and end, every key administration (see `envelope audit`).
#[derive(Debug, Args, Clone, Default)]
#[command(next_help_heading = "Key-use log")]
pub struct AuditLogArgs {
    /// Append to the hash-chained, checkpoint-signed log in this directory (continuing its
    /// chain), or `-` for JSON lines on stdout (for a SIEM).
    #[arg(long, global = true, env = "ENVELOPE_AUDIT_LOG", value_name = "DIR")]
    pub audit_log: Option<String>,
    /// The checkpoint signer: an Ed25519 key file from `envelope audit keygen`, or
    /// `vault://HOST:PORT/transit/keys/NAME` (a Vault/OpenBao Transit ed25519 key: the
    /// private key never leaves the server).
    #[arg(
        long,
        global = true,
        env = "ENVELOPE_AUDIT_SIGNER",
        value_name = "FILE|URI"
    )]
    pub audit_signer: Option<String>,
    /// The service name every line carries.
    #[arg(
        long,
        global = true,
        env = "ENVELOPE_AUDIT_ACTOR",
        default_value = "envelope-cli"
    )]
    pub audit_actor: String,
    /// When the log cannot write: `block` (fail closed after 5 s; `block:SECONDS`) or
    /// `count` (never block; lost events are counted in the log).
    #[arg(
        long,
        global = true,
        env = "ENVELOPE_AUDIT_POLICY",
        default_value = "block"
    )]
    pub audit_policy: String,
    /// A signed checkpoint after this many lines (and at least once a minute).
    #[arg(long, global = true, default_value_t = 1000)]
    pub audit_checkpoint_every: u64,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Manage local keyring keys; describe a key of any backend.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// The compact form's DEK store: list its rows, retire or re-activate DEKs, copy rows
    /// to another store.
    #[command(subcommand)]
    DekStore(DekStoreCommand),
    /// Encrypt a file or stdin to a file or stdout.
    Encrypt(CryptArgs),
    /// Decrypt a file or stdin to a file or stdout.
    Decrypt(CryptArgs),
    /// Show a ciphertext's header (binary or text form) without any key or KMS call.
    Inspect(InspectArgs),
    /// Count stored ciphertexts by provider, key, KEK version and suite (headers only).
    Census(CensusArgs),
    /// Move every stale ciphertext to the current KEK version (header only).
    Rewrap(JobArgs),
    /// Re-encrypt ciphertexts under a new DEK (new nonce, new body) after a suspected exposure.
    Reencrypt(ReencryptArgs),
    /// Disable or destroy a KEK version once no stored ciphertext uses it; with `--index`,
    /// retire a blind-index version once no row carries it.
    Retire(RetireArgs),
    /// Blind indexes: create, rotate, list and describe index keys; rewrap them after a
    /// KEK rotation; recommend a bit length from a column's distinct values.
    #[command(subcommand)]
    Index(IndexCommand),
    /// Fill or move a blind-index column to the index's active version, from the decrypted
    /// values (back-fill a new index, or finish an index-key rotation).
    Reindex(ReindexArgs),
    /// The key-use log: make a signing key, verify a log, export a window of it.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Evidence for an auditor over a time window: key inventory, census of every store,
    /// job history, key use from the verified log, findings against a policy; written as
    /// evidence.json, OSCAL assessment results, a self-contained HTML page and a signed
    /// manifest.
    Evidence(EvidenceArgs),
}

/// `envelope audit …`
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Make an Ed25519 checkpoint-signing key: writes the private key file (mode 0600) and
    /// prints the verifier key an auditor uses (also written to FILE.pub).
    Keygen {
        /// The key's name in signatures (e.g. `acme-payments-audit`).
        #[arg(long)]
        name: String,
        /// The private key file to create.
        #[arg(long)]
        out: PathBuf,
    },
    /// Print the verifier key of a signer (a key file or a `vault://` Transit key).
    PublicKey {
        /// The signer.
        #[arg(long, value_name = "FILE|URI")]
        signer: String,
    },
    /// Verify a log: every line canonical and chained, no gaps, every checkpoint's root
    /// and signature; names the first damaged line and the kind of damage. Exit 0 when
    /// verified or open (intact, not closed), 6 when damaged.
    Verify(AuditVerifyArgs),
    /// Check an evidence pack: every file against manifest.json, and the manifest's
    /// signature. Exit 0 when whole, 6 otherwise.
    VerifyPack {
        /// The pack directory.
        dir: PathBuf,
        /// The verifier key (`NAME+HASH+KEY`, or a file holding it).
        #[arg(long)]
        public_key: String,
    },
    /// Write the lines of a time window, widened to the checkpoints around it, with the
    /// checkpoints' notes and consistency proofs, for storage off the host.
    Export {
        /// The log directory.
        dir: PathBuf,
        /// The verifier key (`NAME+HASH+KEY`, or a file holding it).
        #[arg(long)]
        public_key: String,
        /// Window start (RFC 3339 or YYYY-MM-DD, UTC).
        #[arg(long)]
        from: String,
        /// Window end (RFC 3339 or YYYY-MM-DD: the whole day).
        #[arg(long)]
        to: String,
        /// A new or empty directory.
        #[arg(long)]
        out: PathBuf,
    },
}

/// `envelope audit verify`.
#[derive(Debug, Args)]
pub struct AuditVerifyArgs {
    /// The log directory (or an export's).
    pub dir: PathBuf,
    /// The verifier key (`NAME+HASH+KEY`, or a file holding it).
    #[arg(long)]
    pub public_key: String,
    /// A signed checkpoint kept elsewhere (a file): a log that ends before it was
    /// truncated.
    #[arg(long)]
    pub checkpoint: Option<PathBuf>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `envelope evidence`.
#[derive(Debug, Args)]
pub struct EvidenceArgs {
    /// Where to write the pack (created; an existing pack's files are replaced).
    #[arg(long)]
    pub out: PathBuf,
    /// Keys to inventory (repeat): any key URI.
    #[arg(long = "key")]
    pub keys: Vec<String>,
    /// PostgreSQL connection string for the --column stores (as `census --db`).
    #[arg(long, env = "ENVELOPE_DB")]
    pub db: Option<String>,
    /// A PostgreSQL column to take a census of, `TABLE.COLUMN` (repeat; schema-qualified
    /// tables as `SCHEMA.TABLE.COLUMN`).
    #[arg(long = "column", value_name = "TABLE.COLUMN", requires = "db")]
    pub columns: Vec<String>,
    /// A directory of ciphertext files to take a census of (repeat).
    #[arg(long = "dir")]
    pub dirs: Vec<PathBuf>,
    /// A tree of Parquet files under modular encryption (a directory or
    /// `s3://BUCKET/PREFIX`), counted by the KEK versions of the wrapped keys in its key
    /// material sidecars. Repeatable.
    #[arg(long = "parquet", value_name = "DIR|S3_URL")]
    pub parquet: Vec<PathBuf>,
    /// The objects under an S3 prefix (`s3://BUCKET/PREFIX`), one ciphertext per object: a
    /// stream's census and rewrap read and write its header only (the rewrap is a
    /// server-side copy with the new header slot in the object's metadata). Repeatable.
    #[arg(long = "s3", value_name = "S3_URL")]
    pub s3: Vec<String>,
    /// The S3 endpoint (MinIO, LocalStack, moto; path-style addressing). Credentials and
    /// region come from the standard AWS chain.
    #[arg(long, env = "ENVELOPE_S3_ENDPOINT", value_name = "URL")]
    pub s3_endpoint: Option<String>,
    /// The DEK store of compact values (its rows are counted too).
    #[arg(long, env = "ENVELOPE_DEK_STORE", value_name = "URI")]
    pub dek_store: Option<String>,
    /// The key-use log to verify and summarize (a directory).
    #[arg(long = "log", value_name = "DIR")]
    pub log: Option<PathBuf>,
    /// The log's verifier key (`NAME+HASH+KEY` or a file).
    #[arg(long)]
    pub public_key: Option<String>,
    /// The policy (`envelope-policy.toml`; see docs/EVIDENCE.md). Without one, the
    /// defaults apply.
    #[arg(long)]
    pub policy: Option<PathBuf>,
    /// Window start (RFC 3339 or YYYY-MM-DD, UTC; default 90 days before --to).
    #[arg(long)]
    pub from: Option<String>,
    /// Window end (default now).
    #[arg(long)]
    pub to: Option<String>,
    /// Signs manifest.json like a checkpoint (a key file or `vault://` Transit key;
    /// default the --audit-signer).
    #[arg(long, value_name = "FILE|URI")]
    pub sign_with: Option<String>,
    /// The keyring files whose mode to check (default: those of local:// --key URIs).
    #[arg(long = "keyring-file")]
    pub keyring_files: Vec<PathBuf>,
}

/// The index key store: where index keys live (a DEK store URI: the same file or database
/// keeps them in a table beside the DEKs).
#[derive(Debug, Args, Clone)]
pub struct IndexStoreArg {
    /// `sqlite:///path/deks.sqlite` or `postgres://…[?table=NAME]`.
    #[arg(long = "index-store", env = "ENVELOPE_INDEX_STORE", value_name = "URI")]
    pub uri: String,
}

/// `envelope index …`
#[derive(Debug, Subcommand)]
pub enum IndexCommand {
    /// Create an index: version 1, active, its key drawn fresh and wrapped by the KEK.
    Create(IndexDefineArgs),
    /// Add a version and make it active; the active one answers queries only until it is
    /// retired (the rotation window). Run `envelope reindex`, then `envelope retire --index`.
    Rotate(IndexDefineArgs),
    /// List every index and version: state, bits, mode, normalizer, KEK version.
    List {
        /// The index key store.
        #[command(flatten)]
        store: IndexStoreArg,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// The versions of one index.
    Describe {
        /// The index key store.
        #[command(flatten)]
        store: IndexStoreArg,
        /// The index name.
        #[arg(long)]
        index: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// After a KEK rotation: move every index key's wrap to the KEK's current version (no
    /// index value changes; `envelope rewrap --dek-store` does this too).
    Rewrap {
        /// The KEK.
        #[arg(long, env = "ENVELOPE_KEY")]
        key: String,
        /// The index key store.
        #[command(flatten)]
        store: IndexStoreArg,
    },
    /// Decrypt a column (or a sample), count its distinct normalized values and recommend
    /// the bits of a `unique` and of a `private` index.
    Recommend(RecommendArgs),
}

/// What an index version is (`index create`, `index rotate`).
#[derive(Debug, Args)]
pub struct IndexDefineArgs {
    /// The KEK that wraps the index key.
    #[arg(long, env = "ENVELOPE_KEY")]
    pub key: String,
    /// The index key store.
    #[command(flatten)]
    pub store: IndexStoreArg,
    /// The index name, the hash's domain (`users.email`: bind table and column).
    #[arg(long)]
    pub index: String,
    /// The normalizer: `exact`, or steps joined by `+` (`nfkc_casefold`, `trim_collapse`,
    /// `digits`, `custom:NAME` first). Create: default `exact`; rotate: default the active
    /// version's (a new normalizer is a new version).
    #[arg(long)]
    pub normalizer: Option<String>,
    /// `unique` (lookups return the row; default 64 bits) or `private` (deliberately
    /// colliding; give --bits, see `index recommend`).
    #[arg(long)]
    pub mode: Option<String>,
    /// Tag bits, 8 to 256.
    #[arg(long, value_parser = clap::value_parser!(u16).range(8..=256))]
    pub bits: Option<u16>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `envelope index recommend`.
#[derive(Debug, Args)]
pub struct RecommendArgs {
    /// The KEK of the column's values.
    #[arg(long, env = "ENVELOPE_KEY")]
    pub key: String,
    /// PostgreSQL connection string.
    #[arg(long, env = "ENVELOPE_DB")]
    pub db: String,
    /// The table.
    #[arg(long)]
    pub table: String,
    /// The ciphertext column.
    #[arg(long)]
    pub column: String,
    /// The DEK store of compact values.
    #[arg(long, env = "ENVELOPE_DEK_STORE", value_name = "URI")]
    pub dek_store: Option<String>,
    /// The AAD template the values were encrypted with (see `reencrypt --aad`).
    #[arg(long, default_value = "")]
    pub aad: String,
    /// The normalizer the index will use (distinct values are counted after it).
    #[arg(long, default_value = "exact")]
    pub normalizer: String,
    /// Decrypt about this many rows (a Bernoulli sample) instead of all; the distinct
    /// count is then an estimate with its error bound printed.
    #[arg(long)]
    pub sample: Option<u64>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `envelope reindex`.
#[derive(Debug, Args)]
pub struct ReindexArgs {
    /// Shared job options (`--key` is the KEK of the values and of the index keys).
    #[command(flatten)]
    pub job: JobArgs,
    /// The blind-index column beside `--column` (`bytea` for the binary form, `text` for
    /// the text form).
    #[arg(long)]
    pub index_column: String,
    /// The index name.
    #[arg(long)]
    pub index: String,
    /// The index key store (default: the `--dek-store`).
    #[arg(long, env = "ENVELOPE_INDEX_STORE", value_name = "URI")]
    pub index_store: Option<String>,
    /// The AAD template the values were encrypted with (see `reencrypt --aad`).
    #[arg(long, default_value = "")]
    pub aad: String,
}

/// `envelope keys …`
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create a local keyring key (and the keyring file, mode 0600, if missing).
    Create {
        /// The key to create: `local:///path/keyring.json#KEY` (`#KEY` defaults to
        /// `default`). The key starts at version 1.
        uri: String,
    },
    /// Add a new version to a local key and make it current.
    Rotate {
        /// The key to rotate: `local:///path/keyring.json#KEY`. New encryptions use the
        /// new version at once in new processes (running ones within the cache's max age);
        /// stored data moves with `envelope rewrap`.
        uri: String,
    },
    /// List the keys of a local keyring with their versions.
    List {
        /// The keyring: `local:///path/keyring.json` (any `#KEY` is ignored).
        uri: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Disable a version of a local key (reversible: `keys enable`).
    Disable(VersionArgs),
    /// Enable a disabled version of a local key.
    Enable(VersionArgs),
    /// Destroy a version of a local key: data under it becomes unrecoverable. Prefer
    /// `envelope retire`, which refuses while data remains.
    Destroy(VersionArgs),
    /// Describe a key of any backend: current version, versions and states, rotation.
    Describe {
        /// A key URI.
        uri: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// `envelope dek-store`.
#[derive(Debug, Subcommand)]
pub enum DekStoreCommand {
    /// List the rows: id, state, suite, whether bound to its id, age, KEK version.
    List {
        /// The store: `sqlite:///path/deks.sqlite`, `postgres://…[?table=NAME]`.
        uri: String,
        /// Only rows in this state (`active`, `retired`).
        #[arg(long)]
        state: Option<String>,
        /// Print the rows as JSON (the form `copy` and the C ABI's import take).
        #[arg(long)]
        json: bool,
    },
    /// Retire DEKs: compact values under them stop decrypting (`DekNotFound`, retired)
    /// until re-activated. Move their values first (`envelope reencrypt --dek`), and check
    /// with `envelope census --dek-store` that none remain.
    Retire {
        /// The store.
        uri: String,
        /// The DEK ids (as `inspect` and `census` show them).
        #[arg(required = true, num_args = 1..)]
        ids: Vec<u64>,
    },
    /// Re-activate retired DEKs.
    Activate {
        /// The store.
        uri: String,
        /// The DEK ids.
        #[arg(required = true, num_args = 1..)]
        ids: Vec<u64>,
    },
    /// Copy every row to another store, keeping ids, states and bindings (migrating from
    /// SQLite to PostgreSQL, say). Rows already there identically are skipped; a different
    /// row under the same id stops the copy (nothing is overwritten).
    Copy {
        /// The store to read.
        from: String,
        /// The store to write.
        to: String,
    },
}

/// A local key version.
#[derive(Debug, Args)]
pub struct VersionArgs {
    /// `local:///path/keyring.json#KEY`
    pub uri: String,
    /// The version number.
    #[arg(long)]
    pub version: u32,
}

/// `envelope encrypt` / `envelope decrypt`.
#[derive(Debug, Args)]
pub struct CryptArgs {
    /// The key URI (for decryption: the KMS holding the KEK named in the header).
    #[arg(long, env = "ENVELOPE_KEY")]
    pub key: String,
    /// Associated data the ciphertext is bound to (UTF-8; the same on both sides).
    #[arg(long, default_value = "")]
    pub aad: String,
    /// Input file (default: stdin); `decrypt` also reads `s3://BUCKET/KEY`.
    #[arg(short, long)]
    pub input: Option<PathBuf>,
    /// Output file, written atomically (default: stdout); `encrypt` also writes
    /// `s3://BUCKET/KEY` (a multipart upload of segment-aligned parts, or one PUT).
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// Encrypt to the text form (`ev1:` + base64url; `ev3:` with `--dek-store`) instead of
    /// binary. Decryption reads both forms without this flag.
    #[arg(long)]
    pub text: bool,
    /// A DEK store (`sqlite:///path/deks.sqlite`, `postgres://…?table=NAME`): encryption
    /// writes the compact form (72 bytes of overhead, key-committing, the wrapped DEK kept
    /// in the store); decryption of compact values needs it.
    #[arg(long, env = "ENVELOPE_DEK_STORE", value_name = "URI")]
    pub dek_store: Option<String>,
    /// The compact version to write with `--dek-store`: 3 (default, key-committing) or 2
    /// (40 bytes of overhead, NOT key-committing: someone who knows two DEKs and writes the
    /// store can make one v2 value decrypt to two plaintexts; only for readers that cannot
    /// read version 3 yet).
    #[arg(long, value_name = "N", default_value_t = 3, value_parser = clap::value_parser!(u8).range(2..=3), requires = "dek_store")]
    pub compact_version: u8,
    /// What `encrypt` writes: `auto` (the streaming form from 1 MiB of input on, else a
    /// value form), `stream` (always the streaming form: constant memory, random access,
    /// header-only rewrap), `value` (one message held in memory: format version 1, or the
    /// compact form with `--dek-store`). Decryption reads every form.
    #[arg(long, value_enum, default_value = "auto")]
    pub form: FormChoice,
    /// Plaintext bytes per segment of the streaming form (4096 to 16777216).
    #[arg(long, value_name = "BYTES", default_value_t = envelope::stream::DEFAULT_SEGMENT_SIZE)]
    pub segment_size: u32,
    /// Threads sealing or opening segments of the streaming form (default: the CPUs, at
    /// most 4).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=256))]
    pub threads: Option<u16>,
    /// `decrypt` only plaintext bytes START:END (END excluded; either may be left out). From
    /// a stream file or object only the segments holding them are read.
    #[arg(long, value_name = "START:END")]
    pub range: Option<crate::streaming::ByteRange>,
    /// The S3 endpoint for `s3://` inputs and outputs (MinIO, LocalStack, moto; path-style
    /// addressing). Credentials and region come from the standard AWS chain.
    #[arg(long, env = "ENVELOPE_S3_ENDPOINT", value_name = "URL")]
    pub s3_endpoint: Option<String>,
}

/// The form `encrypt` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FormChoice {
    /// The streaming form from 1 MiB of input on, else a value form.
    Auto,
    /// Always the streaming form (format version 4).
    Stream,
    /// Always a value form (format version 1, or compact with `--dek-store`).
    Value,
}

/// `envelope inspect`.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// The ciphertext file (default: stdin) or `s3://BUCKET/KEY`; binary or text form.
    pub input: Option<PathBuf>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    /// The DEK store of a compact ciphertext: its KEK facts are read from the DEK's row
    /// (without it a compact header shows its DEK id only).
    #[arg(long, env = "ENVELOPE_DEK_STORE", value_name = "URI")]
    pub dek_store: Option<String>,
    /// The S3 endpoint for an `s3://` input (see `encrypt --help`).
    #[arg(long, env = "ENVELOPE_S3_ENDPOINT", value_name = "URL")]
    pub s3_endpoint: Option<String>,
}

/// Where ciphertexts are stored: one PostgreSQL column, directories of files, S3 prefixes.
#[derive(Debug, Args, Clone, Default)]
pub struct StoreArgs {
    /// PostgreSQL connection string (`postgres://user@host:port/db`,
    /// `host=/run/postgresql dbname=app`); `PGPASSWORD` etc. apply. TLS as libpq:
    /// `sslmode` (disable, prefer (default), require, verify-ca, verify-full), `sslrootcert`,
    /// `sslcert`, `sslkey` in the string or `PGSSLMODE`, `PGSSLROOTCERT`, `PGSSLCERT`,
    /// `PGSSLKEY`; the summary says how the connection was carried.
    #[arg(long, env = "ENVELOPE_DB", requires_all = ["table", "column"])]
    pub db: Option<String>,
    /// The table (optionally schema-qualified). It needs a single-column primary key.
    #[arg(long, requires = "db")]
    pub table: Option<String>,
    /// The column holding ciphertexts: `text`/`varchar` (text form) or `bytea` (binary
    /// form). NULLs are skipped.
    #[arg(long, requires = "db")]
    pub column: Option<String>,
    /// A directory of ciphertext files (one ciphertext per file, binary or text form),
    /// walked recursively. Repeatable.
    #[arg(long = "dir")]
    pub dirs: Vec<PathBuf>,
    /// The objects under an S3 prefix (`s3://BUCKET/PREFIX`), one ciphertext per object: a
    /// stream's census and rewrap read and write its header only (the rewrap is a
    /// server-side copy with the new header slot in the object's metadata). Repeatable.
    #[arg(long = "s3", value_name = "S3_URL")]
    pub s3: Vec<String>,
    /// A tree of Parquet files under modular encryption whose keys envelope wraps
    /// (`envelope_sdk.parquet`, Spark with `EnvelopeKmsClient`): a directory, walked
    /// recursively, or `s3://BUCKET/PREFIX`. Its values are the wrapped keys in the key
    /// material sidecars (`_KEY_MATERIAL_FOR_<file>.json`), so a rewrap changes sidecars
    /// only and no data file. Parquet files without a sidecar are counted as unreadable,
    /// with why. Repeatable.
    #[arg(long = "parquet", value_name = "DIR|S3_URL")]
    pub parquet: Vec<PathBuf>,
    /// The S3 endpoint (MinIO, LocalStack, moto; path-style addressing). Credentials and
    /// region come from the standard AWS chain.
    #[arg(long, env = "ENVELOPE_S3_ENDPOINT", value_name = "URL")]
    pub s3_endpoint: Option<String>,
    /// The DEK store of compact ciphertexts (`sqlite:///path/deks.sqlite`,
    /// `postgres://…?table=NAME`): compact values in the column or files are read through
    /// it; `census` also counts its rows by KEK version, `rewrap` rotates its rows (the
    /// compact values themselves never change), `retire` checks its rows, `reencrypt`
    /// writes new DEKs into it.
    #[arg(long, env = "ENVELOPE_DEK_STORE", value_name = "URI")]
    pub dek_store: Option<String>,
}

impl StoreArgs {
    /// Whether no store was named.
    pub fn is_empty(&self) -> bool {
        self.db.is_none()
            && self.dirs.is_empty()
            && self.s3.is_empty()
            && self.parquet.is_empty()
            && self.dek_store.is_none()
    }

    /// The stores of values named, for people: `table.column`, each directory, Parquet tree
    /// and S3 prefix (the DEK store is named by its own location).
    pub fn names(&self) -> Vec<String> {
        let mut names = Vec::new();
        if let (Some(table), Some(column)) = (&self.table, &self.column) {
            names.push(format!("{table}.{column}"));
        }
        names.extend(self.dirs.iter().map(|d| d.display().to_string()));
        names.extend(
            self.parquet
                .iter()
                .map(|d| format!("parquet {}", d.display())),
        );
        names.extend(self.s3.iter().cloned());
        names
    }
}

/// `envelope census`.
#[derive(Debug, Args)]
pub struct CensusArgs {
    /// The stores to count.
    #[command(flatten)]
    pub stores: StoreArgs,
    /// A blind-index column beside `--column`: count its values per index version (no key
    /// needed) and the rows with a ciphertext but no index value.
    #[arg(long, requires = "db")]
    pub index_column: Option<String>,
    /// Also check the labels that headers alone cannot (the local keyring binds the
    /// version inside the wrap): one unwrap per distinct DEK through this key's KMS.
    #[arg(long = "verify-with", value_name = "KEY_URI")]
    pub verify_with: Option<String>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Options shared by `rewrap` and `reencrypt`.
#[derive(Debug, Args)]
pub struct JobArgs {
    /// The key URI whose current version ciphertexts move to.
    #[arg(long, env = "ENVELOPE_KEY")]
    pub key: String,
    /// The stores to process.
    #[command(flatten)]
    pub stores: StoreArgs,
    /// Rows per batch; each batch is one transaction (PostgreSQL).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub batch_size: u32,
    /// Parallel workers in this process, each over its own primary-key range (PostgreSQL).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub workers: u16,
    /// Share the job JOB with other processes, on this machine or others (PostgreSQL):
    /// run the same command with the same JOB anywhere; the first process records the
    /// job's key ranges in `envelope_jobs`, every process claims ranges with a lease until
    /// all are done, a range whose worker died is resumed from its checkpoint by another
    /// once its lease runs out, and each summary's `total` sums every worker.
    #[arg(long, value_name = "JOB", conflicts_with_all = ["resume", "dry_run"])]
    pub join: Option<String>,
    /// Key ranges a joined job is cut into (when this process is the first).
    #[arg(long, default_value_t = 16, requires = "join", value_parser = clap::value_parser!(u16).range(1..=4096))]
    pub parts: u16,
    /// Seconds a claimed range stays a worker's without a commit; a worker that dies
    /// loses its ranges to other workers after this long (each committed batch renews it).
    #[arg(long, value_name = "SECONDS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub lease: u64,
    /// At most this many KMS calls per second.
    #[arg(long, value_name = "CALLS_PER_SECOND")]
    pub max_rate: Option<f64>,
    /// Resume a job from its checkpoint (PostgreSQL: the same table, column, key and kind;
    /// a `dekstore-…` id resumes a DEK store rotation).
    #[arg(long, value_name = "JOB")]
    pub resume: Option<String>,
    /// Print a census and the plan; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Print the summary as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

/// `envelope reencrypt`.
#[derive(Debug, Args)]
pub struct ReencryptArgs {
    /// Shared job options.
    #[command(flatten)]
    pub job: JobArgs,
    /// Only ciphertexts under this DEK (its fingerprint, as `inspect` and `census` show it).
    #[arg(long, value_name = "FINGERPRINT")]
    pub dek: Vec<String>,
    /// Only ciphertexts whose KEK version is this one.
    #[arg(long, value_name = "VERSION")]
    pub kek_version: Vec<String>,
    /// Re-encrypt every ciphertext (no filter).
    #[arg(long, conflicts_with_all = ["dek", "kek_version"])]
    pub all: bool,
    /// The AAD each value was encrypted with, as a template: `{table}`, `{column}`, any
    /// column of the row as `{name}` (its text form), for files `{path}` (relative, `/`
    /// separated) and `{name}`; `{{` and `}}` are literal braces. The Python and Go column
    /// types bind `envelope:{table}.{column}`.
    #[arg(long)]
    pub aad: String,
}

/// `envelope retire`.
#[derive(Debug, Args)]
pub struct RetireArgs {
    /// The key URI.
    #[arg(long, env = "ENVELOPE_KEY")]
    pub key: String,
    /// The KEK version to retire (with `--index`: the index version).
    #[arg(long)]
    pub version: String,
    /// Retire a version of this blind index instead of a KEK version: refused while any
    /// row of `--index-column` carries it.
    #[arg(long, requires_all = ["index_column", "db"])]
    pub index: Option<String>,
    /// The blind-index column to check (with `--index`).
    #[arg(long, requires = "index")]
    pub index_column: Option<String>,
    /// The index key store (with `--index`; default: the `--dek-store`).
    #[arg(long, env = "ENVELOPE_INDEX_STORE", value_name = "URI")]
    pub index_store: Option<String>,
    /// What to do once nothing is left under the version.
    #[arg(long, value_enum, default_value_t = RetireAction::Disable)]
    pub action: RetireAction,
    /// The stores that must hold nothing under the version.
    #[command(flatten)]
    pub stores: StoreArgs,
    /// Print JSON evidence.
    #[arg(long)]
    pub json: bool,
}

/// What `retire` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RetireAction {
    /// Only check and print the evidence (any backend).
    Check,
    /// Disable the version (local keyring; reversible).
    Disable,
    /// Destroy the version (local keyring; data under it becomes unrecoverable).
    Destroy,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }
}
