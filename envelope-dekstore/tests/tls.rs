//! TLS to PostgreSQL against real servers: this test makes a CA, server certificates (one
//! valid for `localhost`, one expired) and a client certificate, starts throwaway clusters
//! with `ssl=on` from the PostgreSQL binaries `scripts/lib/postgres.sh` exports
//! (`ENVELOPE_TEST_PG_BINDIR`; without it these tests fail, they never skip), and connects
//! through `PgConnector` and the DEK store with each `sslmode`.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use envelope_core::DekStore;
use envelope_core::testing::check_dek_store;
use envelope_dekstore::{PgConnector, PgDekStore, SslMode};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    date_time_ymd,
};

/// A CA, and what it signs, written as PEM files into `dir`.
struct Pki {
    dir: PathBuf,
    issuer: Issuer<'static, KeyPair>,
}

impl Pki {
    fn new(dir: &Path, name: &str) -> Self {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, format!("envelope test CA {name}"));
        let cert = params.self_signed(&key).unwrap();
        std::fs::write(dir.join(format!("{name}.pem")), cert.pem()).unwrap();
        Pki {
            dir: dir.to_owned(),
            issuer: Issuer::new(params, key),
        }
    }

    fn ca_file(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.pem"))
    }

    /// Signs a certificate for `names` (server) or with common name `cn` (client); writes
    /// `<file>.crt` and `<file>.key` and returns their paths.
    fn issue(
        &self,
        file: &str,
        names: &[&str],
        cn: &str,
        client: bool,
        expired: bool,
    ) -> (PathBuf, PathBuf) {
        let key = KeyPair::generate().unwrap();
        let mut params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        params.extended_key_usages = vec![if client {
            ExtendedKeyUsagePurpose::ClientAuth
        } else {
            ExtendedKeyUsagePurpose::ServerAuth
        }];
        if expired {
            params.not_before = date_time_ymd(2020, 1, 1);
            params.not_after = date_time_ymd(2021, 1, 1);
        }
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let (crt, pem) = (
            self.dir.join(format!("{file}.crt")),
            self.dir.join(format!("{file}.key")),
        );
        std::fs::write(&crt, cert.pem()).unwrap();
        std::fs::write(&pem, key.serialize_pem()).unwrap();
        set_mode(&pem, 0o600);
        (crt, pem)
    }
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn bindir() -> PathBuf {
    PathBuf::from(std::env::var("ENVELOPE_TEST_PG_BINDIR").expect(
        "ENVELOPE_TEST_PG_BINDIR is not set: run scripts/test.sh, which installs PostgreSQL",
    ))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Runs a PostgreSQL server program, as the `postgres` user when we are root (initdb and
/// postgres refuse to run as root).
fn pg_command(program: &str) -> Command {
    let path = bindir().join(program);
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(path);
        c
    } else {
        Command::new(path)
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.trim_ascii() == b"0")
        .unwrap_or(false)
}

/// Hands `path` to the `postgres` user when we are root.
fn give_to_postgres(path: &Path) {
    if is_root() {
        let status = Command::new("chown")
            .args(["-R", "postgres:"])
            .arg(path)
            .status()
            .unwrap();
        assert!(status.success());
    }
}

/// A throwaway cluster with `ssl=on`, stopped on drop.
struct Cluster {
    data: PathBuf,
    port: u16,
}

impl Cluster {
    /// Starts a cluster serving `cert`/`key`, trusting `client_ca` for client certificates.
    /// `pg_hba`: the user `certuser` must log in over TLS with a client certificate; every
    /// other user is trusted, over TLS or not.
    fn start(dir: &Path, cert: &Path, key: &Path, client_ca: &Path) -> Self {
        let data = dir.join(format!("data-{}", free_port()));
        std::fs::create_dir_all(&data).unwrap();
        give_to_postgres(dir);
        let out = pg_command("initdb")
            .arg("-D")
            .arg(&data)
            .args(["-U", "envelope", "--auth=trust", "--no-sync", "-E", "UTF8"])
            .output()
            .unwrap();
        assert!(out.status.success(), "initdb: {out:?}");
        std::fs::write(
            data.join("pg_hba.conf"),
            "local all all trust\n\
             hostssl all certuser 127.0.0.1/32 cert\n\
             hostssl all certuser ::1/128 cert\n\
             host all all 127.0.0.1/32 trust\n\
             host all all ::1/128 trust\n",
        )
        .unwrap();
        for (from, to) in [
            (cert, "server.crt"),
            (key, "server.key"),
            (client_ca, "ca.pem"),
        ] {
            std::fs::copy(from, data.join(to)).unwrap();
        }
        set_mode(&data.join("server.key"), 0o600);
        give_to_postgres(dir);
        let port = free_port();
        let out = pg_command("pg_ctl")
            .arg("-D")
            .arg(&data)
            .arg("-l")
            .arg(data.join("server.log"))
            .args(["-w", "-t", "60", "-o"])
            .arg(format!(
                "-c listen_addresses=127.0.0.1 -p {port} -k {} -c fsync=off -c ssl=on \
                 -c ssl_cert_file=server.crt -c ssl_key_file=server.key -c ssl_ca_file=ca.pem",
                data.display()
            ))
            .arg("start")
            .output()
            .unwrap();
        let log = std::fs::read_to_string(data.join("server.log")).unwrap_or_default();
        assert!(out.status.success(), "pg_ctl start: {out:?}\n{log}");
        Cluster { data, port }
    }

    fn url(&self, user: &str, host: &str, params: &str) -> String {
        format!("postgres://{user}@{host}:{}/postgres?{params}", self.port)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = pg_command("pg_ctl")
            .arg("-D")
            .arg(&self.data)
            .args(["-m", "immediate", "stop"])
            .output();
    }
}

/// The certificates and a cluster per test (stopped when the test ends).
struct World {
    pki: Pki,
    other_ca: PathBuf,
    client: (PathBuf, PathBuf),
    good: Cluster,
    /// Declared last: the clusters stop before their directory goes.
    dir: tempfile::TempDir,
}

impl World {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        set_mode(dir.path(), 0o755);
        let pki = Pki::new(dir.path(), "ca");
        let other = Pki::new(dir.path(), "other-ca");
        let (crt, key) = pki.issue("server", &["localhost"], "localhost", false, false);
        let client = pki.issue("client", &[], "certuser", true, false);
        let good = Cluster::start(dir.path(), &crt, &key, &pki.ca_file("ca"));
        World {
            other_ca: other.ca_file("other-ca"),
            pki,
            client,
            good,
            dir,
        }
    }

    fn ca(&self) -> String {
        self.pki.ca_file("ca").display().to_string()
    }

    /// A second cluster serving an expired certificate of the same CA.
    fn expired_cluster(&self) -> Cluster {
        let (crt, key) = self
            .pki
            .issue("expired", &["localhost"], "localhost", false, true);
        Cluster::start(self.dir.path(), &crt, &key, &self.pki.ca_file("ca"))
    }
}

async fn connect_err(url: &str) -> String {
    match PgConnector::new(url).unwrap().connect().await {
        Ok((_, transport)) => panic!("{url} connected: {transport}"),
        Err(e) => {
            let message = e.to_string();
            assert!(!message.contains('\n'), "one line: {message}");
            message
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_full_connects_and_the_store_keeps_its_contract_over_tls() {
    let w = World::new();
    let url = w.good.url(
        "envelope",
        "localhost",
        &format!("sslmode=verify-full&sslrootcert={}", w.ca()),
    );
    let (client, transport) = PgConnector::new(&url).unwrap().connect().await.unwrap();
    assert!(
        transport.encrypted() && transport.server_verified(),
        "{transport}"
    );
    assert!(
        transport
            .tls_version
            .as_deref()
            .unwrap()
            .starts_with("TLSv1."),
        "{transport}"
    );
    let ssl: bool = client
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(ssl, "the server reports a plaintext connection");
    let store = PgDekStore::new(&url, "deks_tls").unwrap();
    assert!(store.location().contains("not connected yet"));
    check_dek_store(&store).await.unwrap();
    let location = store.location();
    assert!(location.contains("TLSv1."), "{location}");
    assert!(location.contains("sslmode=verify-full"), "{location}");
    assert!(!location.contains("NOT verified"), "{location}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_host_name_is_refused_by_verify_full_and_accepted_by_verify_ca() {
    let w = World::new();
    let params = |mode: &str| format!("sslmode={mode}&sslrootcert={}", w.ca());
    let message = connect_err(&w.good.url("envelope", "127.0.0.1", &params("verify-full"))).await;
    assert!(message.contains("does not name the host"), "{message}");
    assert!(message.contains("verify-full"), "{message}");
    let (_, transport) =
        PgConnector::new(&w.good.url("envelope", "127.0.0.1", &params("verify-ca")))
            .unwrap()
            .connect()
            .await
            .unwrap();
    assert!(transport.server_verified(), "{transport}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_ca_is_refused() {
    let w = World::new();
    let url = w.good.url(
        "envelope",
        "localhost",
        &format!("sslmode=verify-full&sslrootcert={}", w.other_ca.display()),
    );
    let message = connect_err(&url).await;
    assert!(message.contains("untrusted issuer"), "{message}");
    // The DEK store says the same, as a typed, non-retryable error.
    let store = PgDekStore::new(&url, "deks_untrusted").unwrap();
    let err = store.list(None, 1).await.unwrap_err();
    assert!(!err.is_retryable(), "{err}");
    assert!(err.to_string().contains("untrusted issuer"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_server_certificate_is_refused() {
    let w = World::new();
    let expired = w.expired_cluster();
    let message = connect_err(&expired.url(
        "envelope",
        "localhost",
        &format!("sslmode=verify-full&sslrootcert={}", w.ca()),
    ))
    .await;
    assert!(message.contains("expired"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn require_against_a_server_without_tls_is_refused_and_prefer_falls_back() {
    let plain = std::env::var("ENVELOPE_TEST_PG_URL")
        .expect("ENVELOPE_TEST_PG_URL is not set: run scripts/test.sh, which starts PostgreSQL");
    let message = connect_err(&format!("{plain}?sslmode=require")).await;
    assert!(message.contains("does not offer TLS"), "{message}");
    let (_, transport) = PgConnector::new(&format!("{plain}?sslmode=prefer"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    assert!(!transport.encrypted());
    assert_eq!(transport.to_string(), "plaintext, sslmode=prefer");
    // prefer against a TLS server encrypts (without verifying it).
    let w = World::new();
    let (_, transport) = PgConnector::new(&w.good.url("envelope", "127.0.0.1", ""))
        .unwrap()
        .connect()
        .await
        .unwrap();
    assert!(
        transport.encrypted() && !transport.server_verified(),
        "{transport}"
    );
    assert_eq!(transport.sslmode, SslMode::Prefer);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_certificate_authentication_works() {
    let w = World::new();
    let admin = w.good.url(
        "envelope",
        "localhost",
        &format!("sslmode=verify-full&sslrootcert={}", w.ca()),
    );
    let (client, _) = PgConnector::new(&admin).unwrap().connect().await.unwrap();
    client
        .batch_execute(
            "DO $$ BEGIN CREATE ROLE certuser LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$;
             GRANT CREATE ON SCHEMA public TO certuser;",
        )
        .await
        .unwrap();
    let (crt, key) = &w.client;
    let with_cert = w.good.url(
        "certuser",
        "localhost",
        &format!(
            "sslmode=verify-full&sslrootcert={}&sslcert={}&sslkey={}",
            w.ca(),
            crt.display(),
            key.display()
        ),
    );
    let (client, transport) = PgConnector::new(&with_cert)
        .unwrap()
        .connect()
        .await
        .unwrap();
    assert!(transport.server_verified());
    let user: String = client
        .query_one("SELECT current_user::text", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(user, "certuser");
    let store: Arc<dyn DekStore> = Arc::new(PgDekStore::new(&with_cert, "deks_cert").unwrap());
    assert!(store.list(None, 1).await.unwrap().is_empty());
    // Without the certificate pg_hba refuses certuser.
    let message = connect_err(&w.good.url(
        "certuser",
        "localhost",
        &format!("sslmode=verify-full&sslrootcert={}", w.ca()),
    ))
    .await;
    assert!(message.contains("client certificate"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pgsslmode_and_pgsslrootcert_apply_when_the_url_names_none() {
    let w = World::new();
    let ca = w.ca();
    let env = |name: &str| match name {
        "PGSSLMODE" => Some("verify-full".to_owned()),
        "PGSSLROOTCERT" => Some(ca.clone()),
        _ => None,
    };
    let connector = PgConnector::with_env(&w.good.url("envelope", "localhost", ""), env).unwrap();
    let (_, transport) = connector.connect().await.unwrap();
    assert!(transport.server_verified(), "{transport}");
    let connector = PgConnector::with_env(&w.good.url("envelope", "127.0.0.1", ""), env).unwrap();
    let message = connector.connect().await.unwrap_err().to_string();
    assert!(message.contains("does not name the host"), "{message}");
}
