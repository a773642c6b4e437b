//! Helpers for the end-to-end tests: the `envelope` binary, a real PostgreSQL (started by
//! scripts/test.sh, ENVELOPE_TEST_PG_URL), local keyrings, tables of ciphertexts.

#![allow(dead_code, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use envelope::{CachePolicy, Envelope, HeaderInfo, LocalKeyring, LocalKms};
use tokio_postgres::Client;

/// The PostgreSQL URL; panics (fails, never skips) when the scripts did not start it.
pub fn pg_url() -> String {
    std::env::var("ENVELOPE_TEST_PG_URL").unwrap_or_else(|_| {
        panic!("ENVELOPE_TEST_PG_URL is not set: run scripts/test.sh, which starts PostgreSQL")
    })
}

/// A connected client.
pub async fn db() -> Client {
    let (client, conn) = tokio_postgres::connect(&pg_url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client
}

/// A name no other test uses.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Runs the binary.
pub fn envelope(args: &[&str]) -> Output {
    command(args).output().unwrap()
}

/// The binary as a command to adjust (env, spawn).
pub fn command(args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_envelope"));
    c.args(args);
    c
}

/// Stdout as JSON, asserting the exit code.
pub fn json_of(out: &Output, code: i32) -> serde_json::Value {
    assert_eq!(
        out.status.code(),
        Some(code),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// A local keyring in a temp dir with key `default` at version 1.
pub struct Keyring {
    pub dir: tempfile::TempDir,
    pub uri: String,
}

impl Keyring {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keyring.json");
        LocalKeyring::create(&path, "default").unwrap();
        let uri = format!("local://{}", path.display());
        Keyring { dir, uri }
    }

    pub fn path(&self) -> PathBuf {
        self.dir.path().join("keyring.json")
    }

    /// An envelope that starts a new DEK every `per_dek` messages.
    pub fn envelope(&self, per_dek: u64) -> Envelope {
        let (kms, key_id) = LocalKms::from_uri(&self.uri).unwrap();
        Envelope::builder(kms, key_id)
            .cache_policy(CachePolicy::default().with_max_messages(per_dek))
            .build()
            .unwrap()
    }

    pub fn rotate(&self) {
        let out = envelope(&["keys", "rotate", &self.uri]);
        assert!(out.status.success(), "{out:?}");
    }
}

/// The AAD the Python and Go column types bind.
pub fn column_aad(table: &str, column: &str) -> Vec<u8> {
    format!("envelope:{table}.{column}").into_bytes()
}

/// The plaintext of row `id`.
pub fn plaintext(id: i64) -> Vec<u8> {
    format!("{id:09}-ssn").into_bytes()
}

/// Creates `table (id bigint primary key, ssn text, doc bytea)` with `rows` rows
/// encrypted by `env` (ssn NULL every 10th row, doc NULL every 7th).
pub async fn fill_table(client: &Client, env: &Envelope, table: &str, rows: i64) {
    client
        .batch_execute(&format!(
            "CREATE TABLE {table} (id bigint PRIMARY KEY, ssn text, doc bytea, note text)"
        ))
        .await
        .unwrap();
    let ssn_aad = column_aad(table, "ssn");
    let doc_aad = column_aad(table, "doc");
    let mut start = 1;
    while start <= rows {
        let end = (start + 9_999).min(rows);
        let mut ids = Vec::new();
        let mut ssns: Vec<Option<String>> = Vec::new();
        let mut docs: Vec<Option<Vec<u8>>> = Vec::new();
        for id in start..=end {
            ids.push(id);
            ssns.push(if id % 10 == 0 {
                None
            } else {
                Some(env.encrypt_to_text(&plaintext(id), &ssn_aad).await.unwrap())
            });
            docs.push(if id % 7 == 0 {
                None
            } else {
                Some(env.encrypt(&plaintext(id), &doc_aad).await.unwrap())
            });
        }
        client
            .execute(
                &format!(
                    "INSERT INTO {table} (id, ssn, doc) SELECT * FROM unnest($1::bigint[], $2::text[], $3::bytea[])"
                ),
                &[&ids, &ssns, &docs],
            )
            .await
            .unwrap();
        start = end + 1;
    }
}

/// Every (id, ssn) of a table, in id order.
pub async fn ssn_column(client: &Client, table: &str) -> Vec<(i64, Option<String>)> {
    client
        .query(&format!("SELECT id, ssn FROM {table} ORDER BY id"), &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

/// Every (id, doc) of a table, in id order.
pub async fn doc_column(client: &Client, table: &str) -> Vec<(i64, Option<Vec<u8>>)> {
    client
        .query(&format!("SELECT id, doc FROM {table} ORDER BY id"), &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

/// The binary form of a stored text value.
pub fn binary(text: &str) -> Vec<u8> {
    envelope::format::from_text(text).unwrap()
}

/// Header facts.
pub fn header(ct: &[u8]) -> HeaderInfo {
    Envelope::inspect(ct).unwrap()
}

/// The stable part and body of a ciphertext: everything rewrap must not change.
pub fn stable_and_body(ct: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let info = header(ct);
    let stable_len = info.header_len - kek_ref_len(ct, &info);
    (ct[..stable_len].to_vec(), ct[info.header_len..].to_vec())
}

fn kek_ref_len(_ct: &[u8], info: &HeaderInfo) -> usize {
    1 + 2 + info.key_id.len() + 1 + info.key_version.len() + 2 + info.wrapped_dek_len
}

/// The ciphertext with its header's version label replaced (same provider and key).
pub fn relabel(ct: &[u8], new_version: &str) -> Vec<u8> {
    let info = header(ct);
    let stable_len = info.header_len - kek_ref_len(ct, &info);
    let at = stable_len + 1 + 2 + info.key_id.len();
    let mut out = ct[..at].to_vec();
    out.push(new_version.len() as u8);
    out.extend_from_slice(new_version.as_bytes());
    out.extend_from_slice(&ct[at + 1 + info.key_version.len()..]);
    out
}

/// The checkpoint rows of jobs on `table`: (job id, scanned, last key).
pub async fn checkpoints(client: &Client, table: &str) -> Vec<(String, i64, Option<String>)> {
    client
        .query(
            "SELECT job_id, scanned, last_key FROM envelope_jobs WHERE table_name = $1 ORDER BY started_at, part",
            &[&table],
        )
        .await
        .map(|rows| rows.iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect())
        .unwrap_or_default()
}

/// Writes a file (creating parents).
pub fn write_file(path: &Path, bytes: &[u8]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
}

/// A private OpenBao dev server a test may stop (ENVELOPE_TEST_BAO_BIN, set by the scripts).
pub struct Bao {
    child: std::process::Child,
    /// `127.0.0.1:PORT`.
    pub host: String,
    bin: String,
}

impl Bao {
    /// Starts a dev server (root token `private-root`) with Transit enabled.
    pub async fn start() -> Self {
        let bin = std::env::var("ENVELOPE_TEST_BAO_BIN")
            .expect("ENVELOPE_TEST_BAO_BIN is not set: run scripts/test.sh");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = std::process::Command::new(&bin)
            .args(["server", "-dev", "-dev-root-token-id=private-root"])
            .arg(format!("-dev-listen-address=127.0.0.1:{port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let bao = Bao {
            child,
            host: format!("127.0.0.1:{port}"),
            bin,
        };
        for _ in 0..150 {
            if std::net::TcpStream::connect(&bao.host).is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        for _ in 0..50 {
            if bao.try_cli(&["secrets", "enable", "transit"]) {
                return bao;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!("OpenBao did not start");
    }

    /// Runs the `bao` CLI against it; whether it succeeded.
    pub fn try_cli(&self, args: &[&str]) -> bool {
        std::process::Command::new(&self.bin)
            .args(args)
            .env("VAULT_ADDR", format!("http://{}", self.host))
            .env("VAULT_TOKEN", "private-root")
            .output()
            .unwrap()
            .status
            .success()
    }

    /// Runs the `bao` CLI against it, asserting success.
    pub fn cli(&self, args: &[&str]) {
        assert!(self.try_cli(args), "bao {args:?} failed");
    }
}

impl Drop for Bao {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The output, after asserting that the command succeeded (printing its output if not).
pub fn ok<O: std::borrow::Borrow<Output>>(out: O) -> O {
    let o = out.borrow();
    assert!(
        o.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    out
}

/// A local keyring with one key, created by the binary under `dir`; its URI.
pub fn local_key(dir: &Path) -> String {
    let uri = format!("local://{}#default", dir.join("keyring.json").display());
    ok(envelope(&["keys", "create", &uri]));
    uri
}

/// Deterministic bytes that differ everywhere (no two segments of a stream alike).
pub fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}
