//! `envelope evidence`: evidence for an auditor over a time window, joined from the KMS
//! (key inventory), the stores (a census of each), the jobs (`envelope_jobs` and the log's
//! job lines), and the verified key-use log, judged against a policy, and written as a
//! pack (docs/EVIDENCE.md):
//!
//! | file | what |
//! |---|---|
//! | `evidence.json` | everything, in the documented schema `envelope-evidence/1` |
//! | `assessment-results.json` | the findings as OSCAL 1.1 assessment results |
//! | `index.html` | one self-contained page (inline CSS and SVG, no network) |
//! | `manifest.json` | the SHA-256 of every file, signed like a checkpoint |
//!
//! | module | what it holds |
//! |---|---|
//! | this one | gathering the facts |
//! | [`policy`] | `envelope-policy.toml` |
//! | [`findings`] | the checks, each with its SOC 2 and HIPAA references |
//! | [`schema`] | `evidence.json` |
//! | [`oscal`] | the OSCAL document |
//! | [`html`] | the page |
//! | [`manifest`] | the signed manifest and its verification |

pub mod findings;
pub mod html;
pub mod manifest;
pub mod oscal;
pub mod policy;
pub mod schema;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::SystemTime;

use envelope::KeyDescription;
use envelope_audit::{Report, rfc3339_millis, verify_dir};
use serde_json::{Value, json};

use crate::audit_log::{self, window};
use crate::cli::{EvidenceArgs, StoreArgs};
use crate::engine::census::{self, Census};
use crate::engine::headers::StoreHeaders;
use crate::engine::store::ConnectionInfo;
use crate::exit::{CliError, CliResult, OK};
use crate::stores::{self, dek_store::DekStoreRows};
use policy::Policy;

/// Exit code when a finding fails (the pack is still written).
pub const FINDINGS_FAILED: u8 = 7;

/// A key as the inventory shows it.
#[derive(Debug, Clone)]
pub struct KeyFact {
    /// The key URI as given.
    pub uri: String,
    /// The provider's scheme and key id (how the census names it).
    pub provider: String,
    /// See `provider`.
    pub key_id: String,
    /// Its owner, from the policy.
    pub owner: Option<String>,
    /// What the KMS said, or why it could not.
    pub description: Result<KeyDescription, String>,
}

/// One store's census.
#[derive(Debug, Clone)]
pub struct StoreFact {
    /// `postgres`, `files`, `dek-store`.
    pub kind: String,
    /// Where.
    pub name: String,
    /// How it was reached.
    pub connection: Option<ConnectionInfo>,
    /// What it holds.
    pub census: Census,
}

/// The key-use log over the window.
#[derive(Debug, Clone)]
pub struct LogFact {
    /// The directory.
    pub dir: PathBuf,
    /// What verification found (over the whole log).
    pub report: Report,
}

/// Everything the pack says, before it is written.
#[derive(Debug, Clone)]
pub struct Facts {
    /// When the pack was made (Unix milliseconds).
    pub generated_at: u64,
    /// The window (Unix milliseconds, inclusive).
    pub window: (u64, u64),
    /// The policy applied, and its file.
    pub policy: Policy,
    /// See `policy`.
    pub policy_file: Option<PathBuf>,
    /// The key inventory.
    pub keys: Vec<KeyFact>,
    /// The stores' censuses.
    pub stores: Vec<StoreFact>,
    /// Jobs recorded in `envelope_jobs` that overlap the window, one object per job.
    pub ledger_jobs: Vec<Value>,
    /// The key-use log.
    pub log: Option<LogFact>,
    /// Keyring files and their modes.
    pub keyring_files: Vec<(PathBuf, Result<u32, String>)>,
}

impl Facts {
    /// The log's lines of `kind` whose time is in the window.
    pub fn log_lines(&self, kind: &str) -> Vec<&Value> {
        let Some(log) = &self.log else {
            return Vec::new();
        };
        let lines = match kind {
            "job" => &log.report.jobs,
            _ => &log.report.admin,
        };
        lines
            .iter()
            .filter(|l| {
                l["time"]
                    .as_str()
                    .and_then(envelope_audit::parse_rfc3339)
                    .is_some_and(|t| (self.window.0..=self.window.1).contains(&t))
            })
            .collect()
    }

    /// Key use per key version and day, for the days in the window.
    pub fn key_use(
        &self,
    ) -> Vec<(
        &envelope_audit::verify::UseKey,
        &envelope_audit::verify::DayUse,
    )> {
        let Some(log) = &self.log else {
            return Vec::new();
        };
        let (from, to) = (
            envelope_audit::day(self.window.0),
            envelope_audit::day(self.window.1),
        );
        log.report
            .usage
            .iter()
            .filter(|((.., day), _)| *day >= from && *day <= to)
            .collect()
    }
}

/// `envelope evidence`.
pub async fn run(args: EvidenceArgs) -> CliResult {
    if args.keys.is_empty()
        && args.columns.is_empty()
        && args.dirs.is_empty()
        && args.parquet.is_empty()
        && args.s3.is_empty()
        && args.dek_store.is_none()
        && args.log.is_none()
    {
        return Err(CliError::with_code(
            crate::exit::USAGE,
            "evidence over what? name keys (--key), stores (--db/--column, --dir, --parquet, --s3, --dek-store) and the log (--log)",
        ));
    }
    let facts = gather(&args).await?;
    let findings = findings::evaluate(&facts);
    let signer = match args.sign_with.as_deref().or(audit_log::signer_spec()) {
        Some(spec) => Some(audit_log::signer(spec)?),
        None => None,
    };
    let written = write_pack(&args.out, &facts, &findings, signer.as_deref())?;
    let failed = findings
        .iter()
        .filter(|f| f.status == findings::Status::Fail)
        .count();
    for f in &findings {
        println!("{:<5} {:<28} {}", f.status.as_str(), f.id, f.detail);
    }
    println!(
        "wrote {} ({} files{}); {failed} finding(s) failed",
        args.out.display(),
        written,
        if signer.is_some() {
            ", manifest signed"
        } else {
            ", manifest NOT signed (give --sign-with)"
        }
    );
    Ok(if failed > 0 { FINDINGS_FAILED } else { OK })
}

/// Writes the pack's files and the manifest; returns how many files.
pub fn write_pack(
    out: &std::path::Path,
    facts: &Facts,
    findings: &[findings::Finding],
    signer: Option<&dyn envelope::audit::CheckpointSigner>,
) -> Result<usize, CliError> {
    std::fs::create_dir_all(out).map_err(|e| CliError::new(format!("{}: {e}", out.display())))?;
    let evidence = schema::evidence_json(facts, findings);
    let files: Vec<(&str, String)> = vec![
        ("evidence.json", pretty(&evidence)),
        (
            "assessment-results.json",
            pretty(&oscal::assessment_results(facts, findings)),
        ),
        ("index.html", html::page(facts, findings)),
    ];
    for (name, text) in &files {
        let path = out.join(name);
        std::fs::write(&path, text)
            .map_err(|e| CliError::new(format!("{}: {e}", path.display())))?;
    }
    let names: Vec<&str> = files.iter().map(|(n, _)| *n).collect();
    manifest::write(out, &names, facts.generated_at, signer)?;
    Ok(files.len() + 1)
}

fn pretty(value: &Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_default() + "\n"
}

async fn gather(args: &EvidenceArgs) -> Result<Facts, CliError> {
    let now = envelope_audit::rfc3339_millis(
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0),
    );
    let to = args.to.clone().unwrap_or_else(|| now.clone());
    let to_millis = window(&to, &to)?.1;
    let from = args
        .from
        .clone()
        .unwrap_or_else(|| rfc3339_millis(to_millis.saturating_sub(90 * 86_400_000)));
    let window = window(&from, &to)?;
    let policy = Policy::load(args.policy.as_deref())?;

    let mut keys = Vec::new();
    for uri in &args.keys {
        keys.push(key_fact(uri, &policy).await);
    }
    let stores = store_facts(args).await?;
    let ledger_jobs = match &args.db {
        Some(db) => ledger_jobs(db, window).await?,
        None => Vec::new(),
    };
    let log = match &args.log {
        Some(dir) => {
            let key = args.public_key.as_deref().ok_or_else(|| {
                CliError::with_code(crate::exit::USAGE, "--log needs the log's --public-key")
            })?;
            let key = audit_log::verifier_key(key)?;
            let report = verify_dir(dir, &key, None).map_err(|e| CliError::new(e.to_string()))?;
            Some(LogFact {
                dir: dir.clone(),
                report,
            })
        }
        None => None,
    };
    let mut files = args.keyring_files.clone();
    if files.is_empty() {
        for uri in &args.keys {
            if let Some(path) = uri
                .strip_prefix("local://")
                .map(|p| p.split('#').next().unwrap_or(p))
            {
                files.push(PathBuf::from(path));
            }
        }
        files.dedup();
    }
    let keyring_files = files
        .into_iter()
        .map(|p| {
            let mode = std::fs::metadata(&p)
                .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o777)
                .map_err(|e| e.to_string());
            (p, mode)
        })
        .collect();
    Ok(Facts {
        generated_at: envelope_audit::parse_rfc3339(&now).unwrap_or(0),
        window,
        policy,
        policy_file: args.policy.clone(),
        keys,
        stores,
        ledger_jobs,
        log,
        keyring_files,
    })
}

async fn key_fact(uri: &str, policy: &Policy) -> KeyFact {
    let owner = policy.owners.get(uri).cloned();
    match envelope::kms_from_uri(uri) {
        Ok((kms, key_id)) => {
            let envelope =
                audit_log::attach(envelope::Envelope::builder_dyn(kms.clone(), &key_id)).build();
            let description = match envelope {
                Ok(e) => e.describe_key().await.map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            KeyFact {
                uri: uri.to_owned(),
                provider: kms.provider().scheme().to_owned(),
                key_id,
                owner,
                description,
            }
        }
        Err(e) => KeyFact {
            uri: uri.to_owned(),
            provider: String::new(),
            key_id: String::new(),
            owner,
            description: Err(e.to_string()),
        },
    }
}

async fn store_facts(args: &EvidenceArgs) -> Result<Vec<StoreFact>, CliError> {
    let dek_store = args
        .dek_store
        .as_deref()
        .map(stores::dek_store::open)
        .transpose()?;
    let headers = dek_store.clone().map(StoreHeaders::new);
    let mut specs: Vec<StoreArgs> = Vec::new();
    for column in &args.columns {
        let (table, column) = column.rsplit_once('.').ok_or_else(|| {
            CliError::with_code(
                crate::exit::USAGE,
                format!("--column {column}: give TABLE.COLUMN"),
            )
        })?;
        specs.push(StoreArgs {
            db: args.db.clone(),
            table: Some(table.to_owned()),
            column: Some(column.to_owned()),
            dek_store: None,
            ..StoreArgs::default()
        });
    }
    for dir in &args.dirs {
        specs.push(StoreArgs {
            db: None,
            table: None,
            column: None,
            dirs: vec![dir.clone()],
            ..StoreArgs::default()
        });
    }
    for dir in &args.parquet {
        specs.push(StoreArgs {
            parquet: vec![dir.clone()],
            s3_endpoint: args.s3_endpoint.clone(),
            ..StoreArgs::default()
        });
    }
    for url in &args.s3 {
        specs.push(StoreArgs {
            s3: vec![url.clone()],
            s3_endpoint: args.s3_endpoint.clone(),
            ..StoreArgs::default()
        });
    }
    let mut out = Vec::new();
    for spec in &specs {
        for store in stores::open_values(spec, None, None).await? {
            let info = store.info();
            let census = census::of_store(&*store, None, headers.as_ref()).await?;
            out.push(StoreFact {
                kind: info.kind.to_owned(),
                name: info.name,
                connection: info.connection,
                census,
            });
        }
    }
    if let Some(store) = dek_store {
        let rows = DekStoreRows::new(store.clone());
        let census = census::of_store(&rows, None, None).await?;
        out.push(StoreFact {
            kind: "dek-store".into(),
            name: store.location(),
            connection: None,
            census,
        });
    }
    Ok(out)
}

/// The jobs of `envelope_jobs` (if the table exists) that overlap the window.
async fn ledger_jobs(db: &str, window: (u64, u64)) -> Result<Vec<Value>, CliError> {
    let (client, _) = stores::postgres::connect(db).await?;
    let pg = |e: tokio_postgres::Error| CliError::new(stores::postgres::describe_pg_error(&e));
    let exists: Option<String> = client
        .query_one("SELECT to_regclass('envelope_jobs')::text", &[])
        .await
        .map_err(pg)?
        .get(0);
    if exists.is_none() {
        return Ok(Vec::new());
    }
    let rows = client
        .query(
            "SELECT job_id, min(kind), min(table_name), min(column_name), min(key_uri), count(*)::bigint, \
                    bool_and(finished), sum(scanned)::bigint, sum(changed)::bigint, \
                    sum(already_current)::bigint, sum(skipped)::bigint, sum(failed)::bigint, \
                    (extract(epoch from min(started_at)) * 1000)::bigint, \
                    (extract(epoch from max(updated_at)) * 1000)::bigint \
             FROM envelope_jobs GROUP BY job_id ORDER BY 13",
            &[],
        )
        .await
        .map_err(pg)?;
    let mut jobs = Vec::new();
    for r in rows {
        let (started, updated): (i64, i64) = (r.get(12), r.get(13));
        let (started, updated) = (started.max(0) as u64, updated.max(0) as u64);
        if updated < window.0 || started > window.1 {
            continue;
        }
        let n = |i: usize| r.get::<_, i64>(i).max(0) as u64;
        jobs.push(json!({
            "job_id": r.get::<_, String>(0),
            "kind": r.get::<_, String>(1),
            "store": format!("{}.{}", r.get::<_, String>(2), r.get::<_, String>(3)),
            "key_uri": r.get::<_, String>(4),
            "parts": n(5),
            "finished": r.get::<_, bool>(6),
            "scanned": n(7),
            "changed": n(8),
            "already_current": n(9),
            "skipped": n(10),
            "failed": n(11),
            "started_at": rfc3339_millis(started),
            "updated_at": rfc3339_millis(updated),
        }));
    }
    Ok(jobs)
}

/// Versions of a key, oldest first, as its description lists them.
pub fn versions_in_order(d: &KeyDescription) -> Vec<String> {
    let mut v: Vec<String> = d.versions.iter().map(|v| v.version.clone()).collect();
    v.sort_by(|a, b| census::compare_versions(a, b));
    v
}

/// Census counts by (provider, key id, version) over every store of values (the DEK
/// store's rows apart).
pub fn data_by_version(facts: &Facts) -> BTreeMap<(String, String, String), u64> {
    let mut out = BTreeMap::new();
    for store in &facts.stores {
        for (g, c) in &store.census.groups {
            *out.entry((g.provider.clone(), g.key_id.clone(), g.key_version.clone()))
                .or_default() += c.count;
        }
    }
    out
}
