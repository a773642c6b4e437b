//! `census`, `rewrap`, `reencrypt` and `retire`: the stores named on the command line, one
//! after the other, with one envelope (and so one DEK cache) for the whole run.

use std::sync::Arc;
use std::time::Duration;

use envelope::{Envelope, Kms};

use crate::aad::AadTemplate;
use crate::cli::{CensusArgs, JobArgs, ReencryptArgs, RetireAction, RetireArgs, StoreArgs};
use crate::engine::census::{self, Census};
use crate::engine::headers::StoreHeaders;
use crate::engine::process::{Filter, JobKind, KeyScope, Processor};
use crate::engine::ratelimit::RateLimitedKms;
use crate::engine::run::{self, JobOptions};
use crate::engine::store::{ConnectionInfo, Store};
use crate::engine::summary::Summary;
use crate::exit::{
    CliError, CliResult, FINISHED_WITH_FAILURES, OK, RETIRE_REFUSED, STOPPED_RESUMABLE,
};
use crate::labels::LabelVerifier;
use crate::stores::{self, dek_store, dek_store::DekStoreRows};

fn require_store(stores: &StoreArgs) -> Result<(), CliError> {
    if stores.is_empty() {
        return Err(CliError::with_code(
            crate::exit::USAGE,
            "name a store: --db URL --table T --column C, and/or --dir D, and/or --parquet DIR, and/or --s3 s3://BUCKET/PREFIX, and/or --dek-store URI",
        ));
    }
    Ok(())
}

/// The census of the named values (column, directories; compact ones read through the
/// DEK store) and, with `--dek-store`, of the store's own rows.
struct Censuses {
    values: Census,
    dek_store: Option<Census>,
    /// The DEK store's location (no password), for messages.
    dek_store_location: Option<String>,
    /// How the database connection of the column census was carried.
    database_connection: Option<ConnectionInfo>,
}

impl Censuses {
    fn to_json(&self) -> serde_json::Value {
        let mut json = self.values.to_json();
        if let (Some(store), Some(object)) = (&self.dek_store, json.as_object_mut()) {
            object.insert("dek_store".into(), store.to_json());
        }
        if let (Some(connection), Some(object)) = (&self.database_connection, json.as_object_mut())
        {
            object.insert(
                "database_connection".into(),
                serde_json::to_value(connection).unwrap_or_default(),
            );
        }
        json
    }

    fn render(&self) -> String {
        let mut out = self.values.render();
        if let Some(connection) = &self.database_connection {
            out.push_str(&format!("database connection: {connection}\n"));
        }
        if let Some(store) = &self.dek_store {
            out.push_str("DEK store (one row per DEK of the compact values):\n");
            out.push_str(&store.render_counting("rows"));
        }
        out
    }

    /// Values and store rows under a KEK version, with samples.
    fn under_version(&self, provider: &str, key_id: &str, version: &str) -> (u64, Vec<String>) {
        let (mut n, mut samples) = self.values.under_version(provider, key_id, version);
        if let Some(store) = &self.dek_store {
            let (m, more) = store.under_version(provider, key_id, version);
            n += m;
            samples.extend(more.into_iter().take(5usize.saturating_sub(samples.len())));
        }
        (n, samples)
    }

    fn problems(&self) -> u64 {
        self.values.problems() + self.dek_store.as_ref().map_or(0, Census::problems)
    }
}

/// A census of every named store, merged.
async fn census_of(
    args: &StoreArgs,
    verifier: Option<&LabelVerifier>,
) -> Result<Censuses, CliError> {
    let dek_store = args.dek_store.as_deref().map(dek_store::open).transpose()?;
    let headers = dek_store.clone().map(StoreHeaders::new);
    let mut values = Census::default();
    let mut database_connection = None;
    for store in stores::open_values(args, None, None).await? {
        if database_connection.is_none() {
            database_connection = store.info().connection;
        }
        values.merge(census::of_store(&*store, verifier, headers.as_ref()).await?);
    }
    let store_census = match &dek_store {
        Some(store) => {
            Some(census::of_store(&DekStoreRows::new(store.clone()), verifier, None).await?)
        }
        None => None,
    };
    Ok(Censuses {
        values,
        dek_store: store_census,
        dek_store_location: dek_store.map(|s| s.location()),
        database_connection,
    })
}

/// `envelope census`.
pub async fn census(args: CensusArgs) -> CliResult {
    require_store(&args.stores)?;
    let verifier = match &args.verify_with {
        Some(uri) => Some(LabelVerifier::new(envelope::kms_from_uri(uri)?.0)),
        None => None,
    };
    let census = census_of(&args.stores, verifier.as_ref()).await?;
    let mut stores = args.stores.names();
    if let Some(location) = &census.dek_store_location {
        stores.push(location.clone());
    }
    crate::audit_log::job(
        "finish",
        serde_json::json!({
            "kind": "census",
            "stores": stores,
            "status": "finished",
            "scanned": census.values.scanned,
            "problems": census.values.problems(),
            "groups": census.values.groups.len(),
        }),
    )?;
    if args.json {
        println!("{}", census.to_json());
    } else {
        print!("{}", census.render());
    }
    Ok(OK)
}

fn job_kms(args: &JobArgs) -> Result<(Arc<dyn Kms>, String), CliError> {
    let (kms, key_id) = envelope::kms_from_uri(&args.key)?;
    let kms: Arc<dyn Kms> = match args.max_rate {
        Some(rate) if rate.is_finite() && rate > 0.0 => Arc::new(RateLimitedKms::new(kms, rate)),
        Some(rate) => {
            return Err(CliError::with_code(
                crate::exit::USAGE,
                format!("--max-rate {rate}: give a positive number of KMS calls per second"),
            ));
        }
        None => kms,
    };
    Ok((kms, key_id))
}

/// `envelope rewrap`.
pub async fn rewrap(args: JobArgs) -> CliResult {
    run_job(args, JobKind::Rewrap, None).await
}

/// `envelope reencrypt`.
pub async fn reencrypt(args: ReencryptArgs) -> CliResult {
    if !args.all && args.dek.is_empty() && args.kek_version.is_empty() {
        return Err(CliError::with_code(
            crate::exit::USAGE,
            "reencrypt needs a filter: --dek FINGERPRINT, --kek-version V, or --all",
        ));
    }
    let template = AadTemplate::parse(&args.aad)?;
    if args.job.stores.db.is_none()
        && args.job.stores.dirs.is_empty()
        && args.job.stores.s3.is_empty()
        && args.job.stores.parquet.is_empty()
    {
        return Err(CliError::with_code(
            crate::exit::USAGE,
            "reencrypt rewrites values: name them with --db/--table/--column, --dir, --parquet \
             and/or --s3 (--dek-store is where the new DEKs of compact values go)",
        ));
    }
    let filter = Filter {
        deks: args.dek.iter().map(|d| d.to_ascii_lowercase()).collect(),
        kek_versions: args.kek_version.iter().cloned().collect(),
    };
    run_job(args.job, JobKind::Reencrypt(filter), Some(template)).await
}

/// `reindex`: a job over the column with its blind-index column beside it.
pub(crate) async fn run_index_job(
    args: JobArgs,
    kind: JobKind,
    template: AadTemplate,
    index_column: &str,
) -> CliResult {
    run_job_with(args, kind, Some(template), Some(index_column)).await
}

async fn run_job(args: JobArgs, kind: JobKind, template: Option<AadTemplate>) -> CliResult {
    run_job_with(args, kind, template, None).await
}

async fn run_job_with(
    args: JobArgs,
    kind: JobKind,
    template: Option<AadTemplate>,
    index_column: Option<&str>,
) -> CliResult {
    require_store(&args.stores)?;
    let store_resume = args
        .resume
        .as_deref()
        .filter(|id| id.starts_with("dekstore-"));
    if store_resume.is_some() && args.stores.dek_store.is_none() {
        return Err(CliError::with_code(
            crate::exit::USAGE,
            "--resume dekstore-…: name the DEK store with --dek-store",
        ));
    }
    if args.resume.is_some() && store_resume.is_none() && args.stores.db.is_none() {
        return Err(CliError::with_code(
            crate::exit::USAGE,
            "--resume applies to PostgreSQL jobs and DEK store rotations (file jobs are resumed by running them again)",
        ));
    }
    if args.join.is_some() && args.stores.db.is_none() {
        return Err(CliError::with_code(
            crate::exit::USAGE,
            "--join shares a PostgreSQL job between processes: name the column with --db/--table/--column",
        ));
    }
    let (kms, key_id) = job_kms(&args)?;
    let mut builder = crate::audit_log::attach(Envelope::builder_dyn(kms, key_id));
    let dek_store = args
        .stores
        .dek_store
        .as_deref()
        .map(dek_store::open)
        .transpose()?;
    if let Some(store) = &dek_store {
        builder = builder.dek_store(store.clone());
    }
    let envelope = builder.build()?;
    if args.dry_run {
        return dry_run(&args, &envelope, &kind).await;
    }
    // The DEK store's rows rotate first (rewrap), then the values, store by store.
    let mut queue: Vec<Arc<dyn Store>> = Vec::new();
    if let (JobKind::Rewrap, Some(store)) = (&kind, &dek_store) {
        queue.push(Arc::new(DekStoreRows::new(store.clone())));
    }
    match index_column {
        None => {
            let streams = matches!(kind, JobKind::Reencrypt(_)).then_some(&envelope);
            queue.extend(stores::open_values(&args.stores, template.as_ref(), streams).await?)
        }
        Some(column) => {
            queue.push(stores::open_indexed(&args.stores, template.as_ref(), column).await?)
        }
    }
    let index_keys = match (&kind, args.stores.dek_store.as_deref()) {
        // The index keys kept beside the DEKs move with them (no index value changes).
        (JobKind::Rewrap, Some(uri)) => Some(
            envelope::blind_index::BlindIndexes::new(
                &envelope,
                envelope_dekstore::open_index_key_store(uri)?,
            )
            .rewrap_keys()
            .await?,
        ),
        _ => None,
    };
    if let Some(report) = index_keys.filter(|r| r.examined > 0 && !args.json) {
        println!(
            "index keys: {} examined, {} rewrapped to the KEK's current version (no index value changes)",
            report.examined, report.rewrapped
        );
    }
    crate::audit_log::job(
        "start",
        serde_json::json!({
            "kind": kind.name(),
            "key": args.key,
            "stores": queue.iter().map(|s| s.info().name).collect::<Vec<_>>(),
        }),
    )?;
    let mut processor = Processor::new(envelope, kind);
    if !args.stores.parquet.is_empty() {
        // A tree's wrapped keys belong to several master keys: this job moves --key's.
        let scope = KeyScope::of(processor.envelope()).await?;
        processor = processor.scoped_to(scope);
    }
    let processor = Arc::new(processor);
    let mut summaries: Vec<Summary> = Vec::new();
    let mut stopped = None;
    for store in queue {
        let (resume, join) = match store.info().kind {
            "dek-store" => (store_resume.map(str::to_owned), None),
            "postgres" => (
                args.resume.clone().filter(|_| store_resume.is_none()),
                args.join.clone(),
            ),
            _ => (None, None),
        };
        let options = JobOptions {
            key_uri: args.key.clone(),
            batch_size: args.batch_size as usize,
            workers: args.workers,
            resume,
            join,
            parts: args.parts,
            lease: Duration::from_secs(args.lease),
        };
        let end = run::run(store, processor.clone(), &options).await?;
        let s = &end.summary;
        crate::audit_log::job(
            "finish",
            serde_json::json!({
                "job": s.job_id,
                "kind": s.kind,
                "key": args.key,
                "store": s.store,
                "store_kind": s.store_kind,
                "status": s.status,
                "total": s.total,
                "this_run": s.this_run,
                "kms_calls": s.kms_calls,
            }),
        )?;
        let job_id = Some(end.summary.job_id.clone()).filter(|id| !id.is_empty());
        summaries.push(end.summary);
        if let Some(e) = end.stopped {
            stopped = Some((e, job_id));
            break;
        }
    }
    if args.json {
        let list: Vec<_> = summaries
            .iter()
            .map(|s| serde_json::to_value(s).unwrap_or_default())
            .collect();
        println!("{}", serde_json::Value::Array(list));
    } else {
        for s in &summaries {
            print!("{}", s.render());
        }
        if !args.stores.s3.is_empty() {
            let (down, up) = crate::s3::TRAFFIC.totals();
            println!(
                "s3 traffic: {down} bytes downloaded, {up} bytes uploaded (object bodies: stream headers only, except reencrypt and value objects)"
            );
        }
    }
    if let Some((e, job_id)) = stopped {
        let how = match job_id {
            Some(id) => format!("rerun the same command with --resume {id}"),
            None => "rerun the same command (finished files are skipped)".into(),
        };
        return Err(CliError::with_code(
            STOPPED_RESUMABLE,
            format!("stopped: {e}; committed work is kept: {how}"),
        ));
    }
    let failed: u64 = summaries.iter().map(|s| s.total.failed).sum();
    Ok(if failed > 0 {
        FINISHED_WITH_FAILURES
    } else {
        OK
    })
}

async fn dry_run(args: &JobArgs, envelope: &Envelope, kind: &JobKind) -> CliResult {
    let census = census_of(&args.stores, None).await?;
    let description = envelope.describe_key().await?;
    let current = description.current_version.clone().unwrap_or_default();
    let provider = envelope.kms().provider().to_string();
    let stale_in = |c: &Census| -> u64 {
        c.groups
            .iter()
            .filter(|(k, _)| {
                k.provider == provider && k.key_id == envelope.key_id() && k.key_version != current
            })
            .map(|(_, c)| c.count)
            .sum()
    };
    let stale = stale_in(&census.values);
    let stale_rows = census.dek_store.as_ref().map(stale_in);
    let other_keys: u64 = census
        .values
        .groups
        .iter()
        .filter(|(k, _)| k.provider != provider || k.key_id != envelope.key_id())
        .map(|(_, c)| c.count)
        .sum();
    let store_plan = match stale_rows {
        Some(n) => format!(
            "rewrap {n} DEK store row(s) labeled with another version (no value is written); "
        ),
        None => String::new(),
    };
    let plan = match kind {
        JobKind::Rewrap => format!(
            "plan: {store_plan}{}",
            format_args!(
                "rewrap {stale} value(s) labeled with a version other than the current {current:?} \
             of {} (the job decides staleness from the wrapped DEK, one KMS call per distinct DEK); \
             {other_keys} value(s) under other keys are rewrapped to this key; {} problem value(s) \
             would be left untouched; dry run: nothing changed",
                envelope.key_id(),
                census.problems()
            )
        ),
        JobKind::Reindex(reindex) => format!(
            "plan: write the active version of blind index {:?} into every row whose index column holds anything else \
             (NULL, an older version); {} problem value(s) would be left untouched; dry run: nothing changed",
            reindex.index,
            census.problems()
        ),
        JobKind::Reencrypt(filter) => format!(
            "plan: re-encrypt the values whose DEK is one of {:?} and KEK version one of {:?} \
             (empty: any) under new DEKs of {} version {current:?}; dry run: nothing changed",
            filter.deks,
            filter.kek_versions,
            envelope.key_id()
        ),
    };
    if args.json {
        println!(
            "{}",
            serde_json::json!({ "census": census.to_json(), "current_version": current,
                "stale_by_label": stale, "stale_dek_store_rows": stale_rows, "plan": plan,
                "dry_run": true })
        );
    } else {
        print!("{}", census.render());
        println!("{plan}");
    }
    Ok(OK)
}

/// `envelope retire`.
pub async fn retire(args: RetireArgs) -> CliResult {
    require_store(&args.stores)?;
    let (kms, key_id) = envelope::kms_from_uri(&args.key)?;
    let provider = kms.provider();
    let description = kms.describe_key(&key_id).await?;
    if !description
        .versions
        .iter()
        .any(|v| v.version == args.version)
    {
        return Err(CliError::new(format!(
            "key {key_id:?} has no version {:?}",
            args.version
        )));
    }
    if description.current_version.as_deref() == Some(args.version.as_str()) {
        return Err(CliError::with_code(
            RETIRE_REFUSED,
            format!(
                "refusing to retire version {} of {key_id:?}: it is the current version (rotate, then rewrap, first)",
                args.version
            ),
        ));
    }
    // Labels the headers cannot show are checked by unwrapping each distinct DEK once, so
    // that a relabeled row cannot hide data under the version being retired.
    let verifier = LabelVerifier::new(kms.clone());
    let census = census_of(&args.stores, Some(&verifier)).await?;
    let (remaining, samples) = census.under_version(provider.scheme(), &key_id, &args.version);
    if remaining > 0 {
        let mut stores = args.stores.names();
        if let Some(store) = &census.dek_store_location {
            stores.push(format!("the DEK store {store}"));
        }
        return Err(CliError::with_code(
            RETIRE_REFUSED,
            format!(
                "refusing to {} version {} of {key_id:?}: {remaining} {} in {} are still under it (e.g. {}); run `envelope rewrap` first",
                action_name(args.action),
                args.version,
                if census.dek_store.is_some() {
                    "ciphertext(s) or DEK store row(s)"
                } else {
                    "ciphertext(s)"
                },
                stores.join(", "),
                samples.join(", ")
            ),
        ));
    }
    match args.action {
        RetireAction::Check => {}
        RetireAction::Disable | RetireAction::Destroy => {
            if !args.key.starts_with("local://") {
                return Err(CliError::new(format!(
                    "no ciphertext is left under version {} of {key_id:?}, but retire can {} versions of \
                     the local keyring only: do it in the KMS itself ({})",
                    args.version,
                    action_name(args.action),
                    provider.scheme()
                )));
            }
            let (local, _) = envelope::LocalKms::from_uri(&args.key)?;
            let version: u32 = args.version.parse().map_err(|_| {
                CliError::new(format!("{:?} is not a local keyring version", args.version))
            })?;
            if args.action == RetireAction::Disable {
                local.keyring().disable_version(&key_id, version)?;
            } else {
                local.keyring().destroy_version(&key_id, version)?;
            }
        }
    }
    let after = kms.describe_key(&key_id).await?;
    let evidence = serde_json::json!({
        "key": args.key,
        "key_id": key_id,
        "version": args.version,
        "action": action_name(args.action),
        "at": crate::key_description::epoch(Some(std::time::SystemTime::now())),
        "census": census.to_json(),
        "ciphertexts_under_version": 0,
        "key_after": crate::key_description::description_json(&after),
    });
    if args.json {
        println!("{evidence}");
    } else {
        print!("{}", census.render());
        println!(
            "0 ciphertexts under version {} of {key_id:?} in the named stores; {}",
            args.version,
            match args.action {
                RetireAction::Check => "nothing changed (--action check)".to_owned(),
                a => format!("version {} {}", args.version, past(a)),
            }
        );
    }
    Ok(OK)
}

fn action_name(action: RetireAction) -> &'static str {
    match action {
        RetireAction::Check => "check",
        RetireAction::Disable => "disable",
        RetireAction::Destroy => "destroy",
    }
}

fn past(action: RetireAction) -> &'static str {
    match action {
        RetireAction::Check => "checked",
        RetireAction::Disable => "disabled",
        RetireAction::Destroy => "destroyed",
    }
}
