//! The census: stored ciphertexts (and DEK store rows) counted by provider, key, KEK
//! version and suite, from their headers alone, over any store.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt::Write as _;

use envelope::compact::StoredDek;
use envelope::{HeaderInfo, LabelCheck};
use serde::Serialize;

use crate::engine::headers::{self, StoreHeaders};
use crate::engine::store::{Range, Record, Store, Value};
use crate::exit::CliError;
use crate::labels::{LabelVerifier, Verdict};

/// Records read per page by a census.
const PAGE: usize = 5000;

/// How many locations a census remembers per group (to name where data is).
const SAMPLES: usize = 5;

/// One group of the census: ciphertexts with the same provider, key, version and suite.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct GroupKey {
    /// The provider's scheme (`local`, `aws-kms`, `gcp-kms`, `vault`).
    pub provider: String,
    /// The KEK's key id.
    pub key_id: String,
    /// The KEK version label (empty when the KMS did not report one).
    pub key_version: String,
    /// The algorithm suite.
    pub suite: String,
}

/// The counts of one group.
#[derive(Debug, Clone, Default, Serialize)]
pub struct GroupCount {
    /// Ciphertexts in the group.
    pub count: u64,
    /// How far the version label is trusted: `matches` (carried by the wrapped DEK),
    /// `verified` (unwrapped under it by `--verify-with`), `bound_by_wrap` (the local
    /// keyring: checked by every unwrap, not by a headers-only census), `opaque` (AWS, GCP:
    /// only the KMS knows).
    pub label: String,
    /// Distinct DEKs (fingerprints) seen in the group.
    pub deks: u64,
    /// Up to five locations (primary keys or file paths).
    pub samples: Vec<String>,
    #[serde(skip)]
    fingerprints: std::collections::BTreeSet<String>,
}

/// A ciphertext whose header names another KEK version than its wrapped DEK carries.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct MislabeledKey {
    /// The provider's scheme.
    pub provider: String,
    /// The key id.
    pub key_id: String,
    /// The version the header claims.
    pub labeled: String,
    /// The version the wrapped DEK carries (or opens under); empty when it carries none.
    pub actual: String,
}

/// What the census groups by: a ciphertext's header facts, or a DEK store row's.
struct Facts {
    provider: String,
    key_id: String,
    key_version: String,
    suite: String,
    label: LabelCheck,
    dek_fingerprint: String,
}

impl Facts {
    fn of_header(info: &HeaderInfo) -> Self {
        Facts {
            provider: info.provider.to_string(),
            key_id: info.key_id.clone(),
            key_version: info.key_version.clone(),
            suite: info.suite.to_string(),
            label: info.label.clone(),
            dek_fingerprint: info.dek_fingerprint.clone(),
        }
    }

    /// The census group these facts fall in.
    fn group_key(&self) -> GroupKey {
        GroupKey {
            provider: self.provider.clone(),
            key_id: self.key_id.clone(),
            key_version: self.key_version.clone(),
            suite: self.suite.clone(),
        }
    }

    fn of_row(row: &StoredDek) -> Self {
        Facts {
            provider: row.wrapped.provider.to_string(),
            key_id: row.wrapped.key_id.clone(),
            key_version: row.wrapped.key_version.clone(),
            suite: row.suite.to_string(),
            label: row.wrapped.check_label(),
            dek_fingerprint: row.id.to_string(),
        }
    }
}

/// The census's name for why a value is unreadable: the error kind, or `needs_dek_store`
/// for a compact value counted without `--dek-store`.
pub fn unreadable_kind(e: &envelope::Error) -> &'static str {
    match e {
        envelope::Error::UnsupportedFormatVersion(v)
            if envelope::compact::CompactVersion::from_byte(*v).is_some() =>
        {
            "needs_dek_store"
        }
        e => e.kind().as_str(),
    }
}

/// Counts of a census over one or more stores.
#[derive(Debug, Clone, Default)]
pub struct Census {
    /// Values examined (NULLs are not values).
    pub scanned: u64,
    /// Readable ciphertexts by group.
    pub groups: BTreeMap<GroupKey, GroupCount>,
    /// Mislabeled ciphertexts, with up to five locations each.
    pub mislabeled: BTreeMap<MislabeledKey, Tally>,
    /// Values that are not readable envelope ciphertexts, by error kind, with samples.
    pub unreadable: BTreeMap<String, Tally>,
    /// Weaker-than-current forms, with samples: `not_key_committing` (compact version 2
    /// values: re-encrypt them, then refuse version 2) and `unbound_rows` (DEK store rows
    /// written before rows were bound to their ids: the next store rotation binds them).
    pub weaker: BTreeMap<&'static str, Tally>,
    /// Values whose version label could not be checked because their DEK did not unwrap
    /// (a disabled version, a denied permission, a damaged wrap), by the label they carry:
    /// `retire` counts them as still under that version (destroying it could lose them).
    pub unverified: BTreeMap<GroupKey, Tally>,
}

fn push_sample(samples: &mut Vec<String>, location: &str) {
    if samples.len() < SAMPLES {
        samples.push(location.to_owned());
    }
}

/// A count with up to [`SAMPLES`] sample locations.
type Tally = (u64, Vec<String>);

/// Counts one value at `location` under `key`.
fn tally<K: Ord>(map: &mut BTreeMap<K, Tally>, key: K, location: &str) {
    let entry = map.entry(key).or_default();
    entry.0 += 1;
    push_sample(&mut entry.1, location);
}

/// Adds the tallies of `from` into `into`.
fn merge_tallies<K: Ord>(into: &mut BTreeMap<K, Tally>, from: BTreeMap<K, Tally>) {
    for (key, (n, samples)) in from {
        let entry = into.entry(key).or_default();
        entry.0 += n;
        for s in samples {
            push_sample(&mut entry.1, &s);
        }
    }
}

impl Census {
    /// Counts one value: its header, or the error that made it unreadable. `verdict` is
    /// the `--verify-with` result for labels the header cannot show.
    pub fn observe(
        &mut self,
        location: &str,
        header: Result<&HeaderInfo, &envelope::Error>,
        verdict: Option<&Verdict>,
    ) {
        match header {
            Ok(info) => {
                if info.format_version == envelope::compact::CompactVersion::V2.byte() {
                    self.count_weaker("not_key_committing", location);
                }
                self.observe_facts(location, &Facts::of_header(info), verdict)
            }
            Err(e) => {
                self.scanned += 1;
                self.count_unreadable(location, unreadable_kind(e));
            }
        }
    }

    /// Counts one DEK store row (a census of the store itself: rows by KEK version).
    pub fn observe_row(&mut self, row: &StoredDek, verdict: Option<&Verdict>) {
        let location = format!("dek {}", row.id);
        if !row.bound {
            self.count_weaker("unbound_rows", &location);
        }
        self.observe_facts(&location, &Facts::of_row(row), verdict);
    }

    fn count_weaker(&mut self, what: &'static str, location: &str) {
        tally(&mut self.weaker, what, location);
    }

    fn observe_facts(&mut self, location: &str, info: &Facts, verdict: Option<&Verdict>) {
        self.scanned += 1;
        let label = match (&info.label, verdict) {
            (LabelCheck::Mislabeled { carried }, _)
            | (_, Some(Verdict::Mislabeled { carried })) => {
                self.count_mislabeled(location, info, carried);
                return;
            }
            (_, Some(Verdict::Unopenable(kind))) => {
                self.count_unreadable(location, kind);
                tally(&mut self.unverified, info.group_key(), location);
                return;
            }
            (_, Some(Verdict::Verified)) => "verified",
            (check, None) => check.as_str(),
        };
        let group = self.groups.entry(info.group_key()).or_default();
        group.count += 1;
        if group.label.is_empty() || group.label == "verified" {
            group.label = label.to_owned();
        }
        if group.fingerprints.insert(info.dek_fingerprint.clone()) {
            group.deks += 1;
        }
        push_sample(&mut group.samples, location);
    }

    fn count_unreadable(&mut self, location: &str, kind: &str) {
        tally(&mut self.unreadable, kind.to_owned(), location);
    }

    fn count_mislabeled(&mut self, location: &str, info: &Facts, actual: &str) {
        let key = MislabeledKey {
            provider: info.provider.clone(),
            key_id: info.key_id.clone(),
            labeled: info.key_version.clone(),
            actual: actual.to_owned(),
        };
        tally(&mut self.mislabeled, key, location);
    }

    /// Adds another census's counts (another store, another worker).
    pub fn merge(&mut self, other: Census) {
        self.scanned += other.scanned;
        for (key, count) in other.groups {
            let group = self.groups.entry(key).or_default();
            group.count += count.count;
            if group.label.is_empty() {
                group.label = count.label;
            }
            for f in count.fingerprints {
                if group.fingerprints.insert(f) {
                    group.deks += 1;
                }
            }
            for s in count.samples {
                push_sample(&mut group.samples, &s);
            }
        }
        merge_tallies(&mut self.mislabeled, other.mislabeled);
        merge_tallies(&mut self.unreadable, other.unreadable);
        merge_tallies(&mut self.weaker, other.weaker);
        merge_tallies(&mut self.unverified, other.unverified);
    }

    /// Ciphertexts whose header names `provider`/`key_id`/`version`, trusted or mislabeled
    /// either way (a retire gate counts both), with sample locations.
    pub fn under_version(&self, provider: &str, key_id: &str, version: &str) -> (u64, Vec<String>) {
        let mut total = 0;
        let mut samples = Vec::new();
        for (key, count) in &self.groups {
            if key.provider == provider && key.key_id == key_id && key.key_version == version {
                total += count.count;
                for s in &count.samples {
                    push_sample(&mut samples, s);
                }
            }
        }
        for (key, (n, s)) in &self.mislabeled {
            if key.provider == provider
                && key.key_id == key_id
                && (key.labeled == version || key.actual == version)
            {
                total += n;
                for s in s {
                    push_sample(&mut samples, s);
                }
            }
        }
        // A label that could not be checked still names the version: refusing is safe,
        // destroying it is not.
        for (key, (n, s)) in &self.unverified {
            if key.provider == provider && key.key_id == key_id && key.key_version == version {
                total += n;
                for s in s {
                    push_sample(&mut samples, s);
                }
            }
        }
        (total, samples)
    }

    /// Values that could not be read or trusted (unreadable plus mislabeled).
    pub fn problems(&self) -> u64 {
        self.unreadable.values().map(|(n, _)| n).sum::<u64>()
            + self.mislabeled.values().map(|(n, _)| n).sum::<u64>()
    }

    /// The oldest and newest version label seen per provider and key.
    pub fn version_range(&self) -> BTreeMap<(String, String), (String, String)> {
        let mut out: BTreeMap<(String, String), (String, String)> = BTreeMap::new();
        for key in self.groups.keys() {
            let v = &key.key_version;
            out.entry((key.provider.clone(), key.key_id.clone()))
                .and_modify(|(lo, hi)| {
                    if compare_versions(v, lo) == Ordering::Less {
                        lo.clone_from(v);
                    }
                    if compare_versions(v, hi) == Ordering::Greater {
                        hi.clone_from(v);
                    }
                })
                .or_insert_with(|| (v.clone(), v.clone()));
        }
        out
    }

    /// The census as JSON.
    pub fn to_json(&self) -> serde_json::Value {
        let groups: Vec<_> = self
            .groups
            .iter()
            .map(|(k, c)| {
                serde_json::json!({
                    "provider": k.provider, "key_id": k.key_id, "key_version": k.key_version,
                    "suite": k.suite, "count": c.count, "label": c.label, "deks": c.deks,
                    "samples": c.samples,
                })
            })
            .collect();
        let keys: Vec<_> = self
            .version_range()
            .into_iter()
            .map(|((provider, key_id), (oldest, newest))| {
                serde_json::json!({
                    "provider": provider, "key_id": key_id,
                    "oldest_version": oldest, "newest_version": newest,
                })
            })
            .collect();
        let mislabeled: Vec<_> = self
            .mislabeled
            .iter()
            .map(|(k, (n, s))| {
                serde_json::json!({
                    "provider": k.provider, "key_id": k.key_id, "labeled_version": k.labeled,
                    "actual_version": k.actual, "count": n, "samples": s,
                })
            })
            .collect();
        let unreadable: serde_json::Map<_, _> = self
            .unreadable
            .iter()
            .map(|(kind, (n, s))| {
                (
                    kind.clone(),
                    serde_json::json!({ "count": n, "samples": s }),
                )
            })
            .collect();
        let weaker: serde_json::Map<_, _> = self
            .weaker
            .iter()
            .map(|(what, (n, s))| {
                (
                    (*what).to_owned(),
                    serde_json::json!({ "count": n, "samples": s }),
                )
            })
            .collect();
        let unverified: Vec<_> = self
            .unverified
            .iter()
            .map(|(k, (n, s))| {
                serde_json::json!({
                    "provider": k.provider, "key_id": k.key_id, "key_version": k.key_version,
                    "suite": k.suite, "count": n, "samples": s,
                })
            })
            .collect();
        serde_json::json!({
            "scanned": self.scanned,
            "groups": groups,
            "keys": keys,
            "mislabeled": mislabeled,
            "unreadable": unreadable,
            "unverified": unverified,
            "weaker": weaker,
        })
    }

    /// The census as an aligned table for a terminal.
    pub fn render(&self) -> String {
        self.render_counting("values")
    }

    /// [`Census::render`] naming what was counted (`values`, `rows` of a DEK store).
    pub fn render_counting(&self, noun: &str) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "{noun} scanned: {}", self.scanned);
        if !self.groups.is_empty() {
            let _ = writeln!(
                out,
                "{:<8} {:<24} {:>8} {:<18} {:>10} {:>6}  label",
                "provider", "key", "version", "suite", noun, "DEKs"
            );
        }
        for (k, c) in &self.groups {
            let _ = writeln!(
                out,
                "{:<8} {:<24} {:>8} {:<18} {:>10} {:>6}  {}",
                k.provider,
                k.key_id,
                if k.key_version.is_empty() {
                    "-"
                } else {
                    &k.key_version
                },
                k.suite,
                c.count,
                c.deks,
                c.label
            );
        }
        for ((provider, key_id), (oldest, newest)) in self.version_range() {
            let _ = writeln!(
                out,
                "{provider} {key_id}: oldest version {oldest}, newest version {newest}"
            );
        }
        for (k, (n, samples)) in &self.mislabeled {
            let _ = writeln!(
                out,
                "MISLABELED: {n} value(s) of {} {} labeled version {} but wrapped by {} (e.g. {})",
                k.provider,
                k.key_id,
                k.labeled,
                if k.actual.is_empty() {
                    "no version"
                } else {
                    &k.actual
                },
                samples.join(", ")
            );
        }
        for (k, (n, samples)) in &self.unverified {
            let _ = writeln!(
                out,
                "UNVERIFIED: {n} value(s) labeled version {} of {} {} did not unwrap to check it; still counted under it (e.g. {})",
                k.key_version,
                k.provider,
                k.key_id,
                samples.join(", ")
            );
        }
        for (what, (n, samples)) in &self.weaker {
            let advice = match *what {
                "not_key_committing" => {
                    "compact version 2, not key-committing: re-encrypt them, then refuse version 2"
                }
                _ => "DEK store rows not bound to their ids: rewrap --dek-store binds them",
            };
            let _ = writeln!(out, "{what}: {n} ({advice}; e.g. {})", samples.join(", "));
        }
        for (kind, (n, samples)) in &self.unreadable {
            let _ = writeln!(
                out,
                "unreadable ({kind}): {n} value(s) (e.g. {})",
                samples.join(", ")
            );
        }
        out
    }
}

/// A census of a whole store, page by page. With a verifier, labels the header cannot
/// show are checked by one unwrap per distinct DEK; compact values are read through
/// `headers` (their DEK store).
pub async fn of_store(
    store: &dyn Store,
    verifier: Option<&LabelVerifier>,
    headers: Option<&StoreHeaders>,
) -> Result<Census, CliError> {
    let mut census = Census::default();
    let mut after: Option<String> = None;
    loop {
        let records = store.page(&Range::all(), after.as_deref(), PAGE).await?;
        let Some(last) = records.last() else { break };
        after = Some(last.position.clone());
        for record in &records {
            observe(&mut census, record, verifier, headers).await?;
        }
    }
    Ok(census)
}

/// Counts one record, verifying its label through `verifier` when the header cannot show
/// it (fails only when the verifier's KMS or the DEK store fails retryably).
pub async fn observe(
    census: &mut Census,
    record: &Record,
    verifier: Option<&LabelVerifier>,
    store: Option<&StoreHeaders>,
) -> envelope::Result<()> {
    let stored = match &record.value {
        Value::DekRow(row) => {
            let verdict = match verifier {
                Some(v) if row.wrapped.check_label() == LabelCheck::BoundByWrap => {
                    v.verdict(&row.wrapped, Some(row)).await?
                }
                _ => None,
            };
            census.observe_row(row, verdict.as_ref());
            return Ok(());
        }
        Value::Ciphertext {
            stored: Ok(stored), ..
        } => stored,
        Value::Ciphertext { stored: Err(e), .. } => {
            census.observe(&record.location, Err(e), None);
            return Ok(());
        }
    };
    let header = headers::header(&stored.binary, store).await;
    if let Err(e) = &header
        && e.is_retryable()
    {
        // The store is unreachable: the census cannot be complete.
        return Err(envelope::Error::Unavailable {
            operation: "census",
            source: Some(e.to_string().into()),
        });
    }
    let verdict = match (&header, verifier) {
        (Ok(info), Some(v)) if info.label == LabelCheck::BoundByWrap => {
            headers::verdict(v, &stored.binary, store).await?
        }
        _ => None,
    };
    census.observe(&record.location, header.as_ref(), verdict.as_ref());
    Ok(())
}

/// Orders version labels: numerically when both are numbers, else as strings.
pub fn compare_versions(a: &str, b: &str) -> Ordering {
    match (a.parse::<u64>(), b.parse::<u64>()) {
        (Ok(x), Ok(y)) => x.cmp(&y),
        _ => a.cmp(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_order_numerically() {
        assert_eq!(compare_versions("9", "10"), Ordering::Less);
        assert_eq!(compare_versions("b", "a"), Ordering::Greater);
    }
}
