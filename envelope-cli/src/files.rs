//! Directories of ciphertext files (one ciphertext per file, binary or text form): census
//! and jobs. Every replaced file is written to a temporary file in the same directory,
//! fsynced, renamed over the original and the directory fsynced: a crash leaves either the
//! old or the new ciphertext, never a truncated one.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::aad::AadTemplate;
use crate::action::{Item, Outcome, Processor, Stop};
use crate::census::{Census, observe_stored};
use crate::exit::CliError;
use crate::labels::LabelVerifier;
use crate::summary::{Counts, Summary, progress};
use crate::value::Stored;

/// Prefix of the temporary files a replacement writes (skipped by walks).
const TEMP_PREFIX: &str = ".envelope-tmp-";

/// The regular files under `dir`, recursively, in path order (symlinks are not followed;
/// leftover temporary files of an interrupted replacement are skipped).
pub fn walk(dir: &Path) -> Result<Vec<PathBuf>, CliError> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries = fs::read_dir(&d)
            .map_err(|e| CliError::new(format!("cannot read directory {}: {e}", d.display())))?;
        for entry in entries {
            let entry = entry?;
            let file_type = entry.file_type()?;
            let name = entry.file_name();
            if file_type.is_dir() {
                stack.push(entry.path());
            } else if file_type.is_file() && !name.to_string_lossy().starts_with(TEMP_PREFIX) {
                out.push(entry.path());
            }
        }
    }
    out.sort();
    Ok(out)
}

fn relative(dir: &Path, path: &Path) -> String {
    let rel = path.strip_prefix(dir).unwrap_or(path);
    rel.components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join("/")
}

fn read_item(
    dir: &Path,
    path: &Path,
    template: Option<&AadTemplate>,
) -> Result<(Item, Vec<u8>), CliError> {
    let bytes = fs::read(path)
        .map_err(|e| CliError::new(format!("cannot read {}: {e}", path.display())))?;
    let rel = relative(dir, path);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let aad = match template {
        None => Ok(Vec::new()),
        Some(t) => t.render(|var| match var {
            "path" => Some(rel.as_str()),
            "name" => Some(name.as_str()),
            _ => None,
        }),
    };
    Ok((
        Item {
            location: path.display().to_string(),
            stored: Stored::from_file_bytes(bytes.clone()),
            aad,
        },
        bytes,
    ))
}

/// Checks that an AAD template uses only the placeholders files have.
pub fn check_template(template: &AadTemplate) -> Result<(), CliError> {
    for var in template.variables() {
        if var != "path" && var != "name" {
            return Err(CliError::new(format!(
                "--aad placeholder {{{var}}}: files have {{path}} (relative, /-separated) and {{name}}"
            )));
        }
    }
    Ok(())
}

/// A census of directories.
pub async fn census(
    dirs: &[PathBuf],
    verifier: Option<&LabelVerifier>,
    store: Option<&crate::dekstore::StoreHeaders>,
) -> Result<Census, CliError> {
    let mut census = Census::default();
    for dir in dirs {
        for path in walk(dir)? {
            let (item, _) = read_item(dir, &path, None)?;
            observe_stored(&mut census, &item, verifier, store).await?;
        }
    }
    Ok(census)
}

/// Replaces `path` with `contents` atomically (temp file, fsync, rename, directory fsync),
/// keeping its permissions.
pub fn replace_atomically(path: &Path, contents: &[u8]) -> Result<(), CliError> {
    // `ct.bin`'s parent is the empty path: the working directory.
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let fail = |what: &str, e: std::io::Error| {
        CliError::new(format!("cannot {what} {}: {e}", path.display()))
    };
    let permissions = fs::metadata(path)
        .map_err(|e| fail("stat", e))?
        .permissions();
    let mut temp = tempfile::Builder::new()
        .prefix(TEMP_PREFIX)
        .tempfile_in(parent)
        .map_err(|e| fail("create a temporary file beside", e))?;
    temp.write_all(contents)
        .map_err(|e| fail("write the replacement of", e))?;
    temp.as_file()
        .set_permissions(permissions)
        .map_err(|e| fail("set permissions on the replacement of", e))?;
    temp.as_file()
        .sync_all()
        .map_err(|e| fail("fsync the replacement of", e))?;
    temp.persist(path)
        .map_err(|e| fail("rename the replacement over", e.error))?;
    fs::File::open(parent)
        .and_then(|d| d.sync_all())
        .map_err(|e| fail("fsync the directory of", e))?;
    Ok(())
}

/// How a files job ended.
pub struct FilesEnd {
    /// The summary.
    pub summary: Summary,
    /// Why it stopped early, if it did (files done so far stay done; a rerun continues).
    pub stopped: Option<envelope::Error>,
}

/// Rewraps or re-encrypts every file under `dir`, `batch_size` files at a time.
pub async fn run_job(
    dir: &Path,
    processor: &Processor,
    template: Option<&AadTemplate>,
    batch_size: usize,
) -> Result<FilesEnd, CliError> {
    let started = Instant::now();
    let calls_before = processor.envelope().stats().kms_calls();
    let paths = walk(dir)?;
    let bar = progress(Some(paths.len() as u64), processor.kind().name());
    let mut counts = Counts::default();
    let mut failed_samples = Vec::new();
    let mut stopped = None;
    for chunk in paths.chunks(batch_size.max(1)) {
        let mut read = Vec::with_capacity(chunk.len());
        for path in chunk {
            read.push(read_item(dir, path, template)?);
        }
        let items: Vec<&Item> = read.iter().map(|(item, _)| item).collect();
        let outcomes = match processor.process(&items).await {
            Ok(o) => o,
            Err(Stop(e)) => {
                stopped = Some(e);
                break;
            }
        };
        for ((path, (item, original)), outcome) in chunk.iter().zip(&read).zip(outcomes) {
            let outcome = match outcome {
                Outcome::Changed(new) => {
                    // A writer that replaced the file since we read it wins.
                    if fs::read(path).ok().as_deref() != Some(original.as_slice()) {
                        counts.concurrent_updates += 1;
                        Outcome::Failed("changed_concurrently")
                    } else {
                        replace_atomically(path, &new)?;
                        Outcome::Changed(Vec::new())
                    }
                }
                other => other,
            };
            if let Outcome::Failed(kind) = &outcome
                && failed_samples.len() < 20
            {
                failed_samples.push((item.location.clone(), (*kind).to_owned()));
            }
            counts.record(&outcome);
        }
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();
    let mut summary = Summary {
        job_id: String::new(),
        kind: processor.kind().name().to_owned(),
        store: dir.display().to_string(),
        database_connection: None,
        total: counts.clone(),
        this_run: counts,
        failed_samples,
        kms_calls: processor.envelope().stats().kms_calls() - calls_before,
        duration_seconds: 0.0,
        rows_per_second: 0.0,
        status: match &stopped {
            None => "finished".into(),
            Some(e) => format!("stopped: {e}"),
        },
    };
    summary.timing(started.elapsed());
    Ok(FilesEnd { summary, stopped })
}
