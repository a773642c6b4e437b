//! `envelope index …`: index keys in the index key store (create, rotate, list, describe,
//! rewrap) and the bit-length recommendation for a column.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};

use envelope::Envelope;
use envelope::blind_index::{
    BitsAdvice, BlindIndexes, IndexMode, IndexSettings, Normalizer, StoredIndexKey,
    estimate_distinct,
};
use serde_json::json;
use zeroize::Zeroizing;

use crate::aad::AadTemplate;
use crate::cli::{IndexCommand, IndexDefineArgs, RecommendArgs};
use crate::engine::store::{Range, Store, Value};
use crate::exit::{CliError, CliResult, OK, USAGE};
use crate::stores::{dek_store, postgres};

/// Blind indexes whose keys the KEK `key_uri` wraps, kept in the store `store_uri`.
pub fn open_indexes(key_uri: &str, store_uri: &str) -> Result<BlindIndexes, CliError> {
    let (kms, key_id) = envelope::kms_from_uri(key_uri)?;
    let envelope = crate::audit_log::attach(Envelope::builder_dyn(kms, key_id)).build()?;
    let store = envelope_dekstore::open_index_key_store(store_uri)?;
    Ok(BlindIndexes::new(&envelope, store))
}

/// An index key store row as JSON (no key material: the wrapped key's length only).
pub fn row_json(row: &StoredIndexKey) -> serde_json::Value {
    json!({
        "index": row.index,
        "version": row.version,
        "state": row.state.as_str(),
        "bits": row.bits,
        "mode": row.mode.as_str(),
        "normalizer": row.normalizer,
        "provider": row.wrapped.provider.to_string(),
        "key_id": row.wrapped.key_id,
        "key_version": row.wrapped.key_version,
        "created_unix": row.created.duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0),
    })
}

fn print_rows(rows: &[StoredIndexKey], json: bool) {
    if json {
        println!(
            "{}",
            serde_json::Value::Array(rows.iter().map(row_json).collect())
        );
        return;
    }
    println!(
        "{:<24} {:>7}  {:<8} {:>4}  {:<7}  {:<28}  KEK version",
        "index", "version", "state", "bits", "mode", "normalizer"
    );
    for r in rows {
        println!(
            "{:<24} {:>7}  {:<8} {:>4}  {:<7}  {:<28}  {} {}",
            r.index,
            r.version,
            r.state,
            r.bits,
            r.mode,
            r.normalizer,
            r.wrapped.key_id,
            r.wrapped.key_version
        );
    }
}

fn settings(
    args: &IndexDefineArgs,
    base: Option<&StoredIndexKey>,
) -> Result<IndexSettings, CliError> {
    let normalizer = match (&args.normalizer, base) {
        (Some(spec), _) => Normalizer::parse(spec)?,
        (None, Some(row)) => Normalizer::parse(&row.normalizer)?,
        (None, None) => Normalizer::exact(),
    };
    let mode = match (&args.mode, base) {
        (Some(m), _) => IndexMode::parse(m).ok_or_else(|| {
            CliError::with_code(USAGE, format!("--mode {m:?}: give unique or private"))
        })?,
        (None, Some(row)) if args.bits.is_none() => row.mode,
        (None, _) => IndexMode::Unique,
    };
    let bits = match (args.bits, mode, base) {
        (Some(b), _, _) => b,
        (None, _, Some(row)) if args.mode.is_none() => row.bits,
        (None, IndexMode::Unique, _) => envelope::blind_index::DEFAULT_UNIQUE_BITS,
        (None, IndexMode::Private, _) => {
            return Err(CliError::with_code(
                USAGE,
                "--mode private needs --bits N (see `envelope index recommend`)",
            ));
        }
    };
    Ok(IndexSettings {
        bits,
        mode,
        normalizer,
    })
}

/// Runs an `index` subcommand.
pub async fn run(command: IndexCommand) -> CliResult {
    match command {
        IndexCommand::Create(args) => {
            let indexes = open_indexes(&args.key, &args.store.uri)?;
            let row = indexes.create(&args.index, &settings(&args, None)?).await?;
            print_rows(&[row], args.json);
        }
        IndexCommand::Rotate(args) => {
            let indexes = open_indexes(&args.key, &args.store.uri)?;
            let rows = indexes.describe(&args.index).await?;
            let base = rows
                .iter()
                .find(|r| r.state == envelope::blind_index::IndexState::Active)
                .or(rows.last());
            let settings = settings(&args, base)?;
            let row = indexes.rotate(&args.index, Some(&settings)).await?;
            if !args.json {
                eprintln!(
                    "version {} of {} is active; older versions answer queries until retired: \
                     run `envelope reindex`, then `envelope retire --index {} --version V`",
                    row.version, row.index, row.index
                );
            }
            print_rows(&indexes.describe(&args.index).await?, args.json);
        }
        IndexCommand::List { store, json } => {
            let store = envelope_dekstore::open_index_key_store(&store.uri)?;
            print_rows(&store.all_index_keys().await?, json);
        }
        IndexCommand::Describe { store, index, json } => {
            let rows = envelope_dekstore::open_index_key_store(&store.uri)?
                .index_keys(&index)
                .await?;
            if rows.is_empty() {
                return Err(envelope::Error::IndexNotFound {
                    index,
                    version: None,
                }
                .into());
            }
            print_rows(&rows, json);
        }
        IndexCommand::Rewrap { key, store } => {
            let report = open_indexes(&key, &store.uri)?.rewrap_keys().await?;
            println!(
                "index keys: {} examined, {} rewrapped to the KEK's current version, {} superseded (no index value changes)",
                report.examined, report.rewrapped, report.superseded
            );
        }
        IndexCommand::Recommend(args) => return recommend(args).await,
    }
    Ok(OK)
}

/// A 128-bit fingerprint of a normalized value under this run's random keys (distinct
/// counting without keeping plaintexts).
fn fingerprint(keys: &(RandomState, RandomState), value: &[u8]) -> u128 {
    (u128::from(keys.0.hash_one(value)) << 64) | u128::from(keys.1.hash_one(value))
}

async fn recommend(args: RecommendArgs) -> CliResult {
    let normalizer = Normalizer::parse(&args.normalizer)?;
    if normalizer.custom_name().is_some() {
        return Err(CliError::with_code(
            USAGE,
            "a custom:NAME normalizer runs in the application: recommend with its built-in steps",
        ));
    }
    let template = AadTemplate::parse(&args.aad)?;
    let (kms, key_id) = envelope::kms_from_uri(&args.key)?;
    let mut builder = crate::audit_log::attach(Envelope::builder_dyn(kms, key_id));
    if let Some(uri) = &args.dek_store {
        builder = builder.dek_store(dek_store::open(uri)?);
    }
    let envelope = builder.build()?;
    let column =
        postgres::Column::open(&args.db, &args.table, &args.column, Some(template)).await?;
    let rows = column.count().await.unwrap_or(0);
    let probability = args
        .sample
        .map(|n| (n as f64 / rows.max(1) as f64).min(1.0));
    let keys = (RandomState::new(), RandomState::new());
    let mut counts: HashMap<u128, u64> = HashMap::new();
    let (mut sampled, mut failed) = (0u64, 0u64);
    let mut after: Option<String> = None;
    loop {
        let page = column.page(&Range::all(), after.as_deref(), 2000).await?;
        let Some(last) = page.last() else { break };
        after = Some(last.position.clone());
        for record in &page {
            if probability.is_some_and(|p| rand::random::<f64>() >= p) {
                continue;
            }
            let Value::Ciphertext {
                stored: Ok(stored),
                aad: Ok(aad),
            } = &record.value
            else {
                failed += 1;
                continue;
            };
            match envelope.decrypt(&stored.binary, aad).await {
                Ok(plain) => {
                    let plain = Zeroizing::new(plain);
                    let normalized = normalizer.apply_builtin(&plain)?;
                    *counts.entry(fingerprint(&keys, &normalized)).or_default() += 1;
                    sampled += 1;
                }
                Err(e) if e.is_retryable() => return Err(e.into()),
                Err(_) => failed += 1,
            }
        }
    }
    let whole = probability.is_none_or(|p| p >= 1.0);
    let distinct = if whole {
        counts.len() as u64
    } else {
        estimate_distinct(counts.values().copied(), sampled, rows)
    };
    let advice = BitsAdvice::for_column(distinct, rows);
    let bound = (!whole).then(|| (rows as f64 / sampled.max(1) as f64).sqrt());
    let private: Vec<(u16, f64)> = advice
        .private_range
        .map(|(lo, hi)| (lo..=hi).map(|n| (n, advice.rows_per_lookup(n))).collect())
        .unwrap_or_default();
    if args.json {
        println!(
            "{}",
            json!({
                "rows": rows,
                "decrypted": sampled,
                "failed": failed,
                "distinct": distinct,
                "distinct_exact": whole,
                "distinct_ratio_error_bound": bound,
                "unique_bits": advice.unique_bits,
                "unique_rows_per_lookup": advice.rows_per_lookup(advice.unique_bits),
                "private_range": advice.private_range,
                "private_bits": advice.private_bits,
                "private_rows_per_lookup": private.iter().map(|(n, r)| json!({"bits": n, "rows_per_lookup": r})).collect::<Vec<_>>(),
            })
        );
        return Ok(OK);
    }
    println!(
        "{}.{}: {rows} row(s), {sampled} decrypted, {failed} unreadable",
        args.table, args.column
    );
    match bound {
        None => println!(
            "distinct values (after {}): {distinct} (exact)",
            normalizer.spec()
        ),
        Some(b) => println!(
            "distinct values (after {}): about {distinct} (GEE estimate from the sample: within a factor of {b:.1} either way)",
            normalizer.spec()
        ),
    }
    println!(
        "unique:  --mode unique --bits {}   ~{:.2} row(s) per lookup; equal values have equal index values (the column shows which rows are equal and how often)",
        advice.unique_bits,
        advice.rows_per_lookup(advice.unique_bits)
    );
    match advice.private_bits {
        Some(bits) => {
            println!(
                "private: --mode private --bits {bits}   ~{:.1} row(s) per lookup; every index value is shared by about {:.1} distinct values",
                advice.rows_per_lookup(bits),
                distinct as f64 / 2f64.powi(i32::from(bits))
            );
            println!("  the rule 2^N > sqrt(X) and 2^N < X/2 allows:");
            for (n, r) in &private {
                println!("    --bits {n:>3}: ~{r:.1} row(s) per lookup");
            }
        }
        None => println!(
            "private: no bit length of 8 or more satisfies 2^N > sqrt(X) and 2^N < X/2 for X = {distinct}: too few distinct values to hide equality"
        ),
    }
    Ok(OK)
}
