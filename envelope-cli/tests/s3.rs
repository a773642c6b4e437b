//! Streams in S3, against the S3 API of the moto server scripts/test.sh starts
//! (ENVELOPE_TEST_AWS_ENDPOINT; the tests fail without it): a multipart upload of
//! segment-aligned parts, ranged reads, census, a rewrap that moves no body byte (a
//! server-side copy with the new header slot in the object's metadata), retire, and
//! re-encryption through ranged GETs into a new multipart upload.

#![allow(clippy::unwrap_used)]

mod common;

use std::process::Output;

use common::*;

fn endpoint() -> String {
    std::env::var("ENVELOPE_TEST_AWS_ENDPOINT").unwrap_or_else(|_| {
        panic!("ENVELOPE_TEST_AWS_ENDPOINT is not set: run scripts/test.sh, which starts moto")
    })
}

/// A client of moto with the test credentials.
fn client() -> aws_sdk_s3::Client {
    let config = aws_sdk_s3::config::Builder::new()
        .behavior_version_latest()
        .region(aws_sdk_s3::config::Region::new("us-east-1"))
        .endpoint_url(endpoint())
        .force_path_style(true)
        .credentials_provider(aws_sdk_s3::config::Credentials::new(
            "test", "test", None, None, "test",
        ))
        .build();
    aws_sdk_s3::Client::from_conf(config)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// An object's body, ETag and metadata slot (if any).
fn get(bucket: &str, key: &str) -> (Vec<u8>, String, Option<String>) {
    runtime().block_on(async {
        let out = client()
            .get_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .unwrap();
        let etag = out.e_tag().unwrap_or_default().to_owned();
        let slot = out.metadata().and_then(|m| m.get("envelope-slot").cloned());
        (
            out.body.collect().await.unwrap().into_bytes().to_vec(),
            etag,
            slot,
        )
    })
}

/// The binary with moto's endpoint and test credentials.
fn run(args: &[&str]) -> Output {
    command(args)
        .env("ENVELOPE_S3_ENDPOINT", endpoint())
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "us-east-1")
        .env_remove("AWS_PROFILE")
        .output()
        .unwrap()
}

fn inspect(url: &str) -> serde_json::Value {
    serde_json::from_slice(&ok(run(&["inspect", "--json", url])).stdout).unwrap()
}

/// The "s3 traffic" line of a job's summary: (downloaded, uploaded).
fn traffic(out: &Output) -> (u64, u64) {
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.starts_with("s3 traffic:"))
        .unwrap_or_else(|| panic!("{text}"));
    let numbers: Vec<u64> = line.split(' ').filter_map(|w| w.parse().ok()).collect();
    (numbers[0], numbers[1])
}

#[test]
fn streams_in_s3_upload_in_parts_read_ranges_and_rewrap_without_moving_bodies() {
    let dir = tempfile::tempdir().unwrap();
    let uri = local_key(dir.path());
    let bucket = unique("envelope-s3").replace('_', "-");
    runtime().block_on(async {
        client()
            .create_bucket()
            .bucket(&bucket)
            .send()
            .await
            .unwrap()
    });

    // A 20 MB file: three multipart parts (about 8 MiB each, whole segments).
    let big = pseudo_random(20_000_000, 1);
    let path = dir.path().join("big");
    std::fs::write(&path, &big).unwrap();
    let object = format!("s3://{bucket}/backups/big.ev");
    ok(run(&[
        "encrypt",
        "--key",
        &uri,
        "-i",
        path.to_str().unwrap(),
        "-o",
        &object,
        "--threads",
        "2",
        "--aad",
        "backups/big.ev",
    ]));
    let (body, etag, _) = get(&bucket, "backups/big.ev");
    assert!(etag.ends_with("-3\""), "a 3-part upload: {etag}");
    let info = inspect(&object);
    assert_eq!(
        (
            info["format_version"].as_u64(),
            info["plaintext_len"].as_u64()
        ),
        (Some(4), Some(20_000_000))
    );
    assert_eq!(
        body.len() as u64,
        20_000_000 + info["overhead"].as_u64().unwrap()
    );
    // The object's body is a whole stream: the same bytes decrypt as a file.
    let local = dir.path().join("local.ev");
    std::fs::write(&local, &body).unwrap();
    let out = ok(run(&[
        "decrypt",
        "--key",
        &uri,
        "-i",
        local.to_str().unwrap(),
        "--aad",
        "backups/big.ev",
    ]));
    assert_eq!(out.stdout, big);
    // Whole and ranged reads from S3.
    let out = ok(run(&[
        "decrypt",
        "--key",
        &uri,
        "-i",
        &object,
        "--aad",
        "backups/big.ev",
    ]));
    assert_eq!(out.stdout, big);
    for (range, start, end) in [
        ("12345678:12349774", 12_345_678, 12_349_774),
        ("19999990:", 19_999_990, 20_000_000),
    ] {
        let out = ok(run(&[
            "decrypt",
            "--key",
            &uri,
            "-i",
            &object,
            "--aad",
            "backups/big.ev",
            "--range",
            range,
        ]));
        assert_eq!(out.stdout, big[start..end], "{range}");
    }
    // Wrong AAD: refused.
    let out = run(&["decrypt", "--key", &uri, "-i", &object, "--aad", "other"]);
    assert_eq!(out.status.code(), Some(1));

    // Twenty more stream objects, then a rotation.
    let small = pseudo_random(1_100_000, 2);
    let small_path = dir.path().join("small");
    std::fs::write(&small_path, &small).unwrap();
    for i in 0..20 {
        let url = format!("s3://{bucket}/backups/s{i:02}.ev");
        ok(run(&[
            "encrypt",
            "--key",
            &uri,
            "-i",
            small_path.to_str().unwrap(),
            "-o",
            &url,
            "--aad",
            &format!("backups/s{i:02}.ev"),
        ]));
    }
    let prefix = format!("s3://{bucket}/backups/");
    let census = ok(run(&["census", "--s3", &prefix, "--json"]));
    assert!(String::from_utf8_lossy(&census.stdout).contains("\"key_version\":\"1\""));
    ok(run(&["keys", "rotate", &uri]));
    let bodies_before: Vec<Vec<u8>> = (0..20)
        .map(|i| get(&bucket, &format!("backups/s{i:02}.ev")).0)
        .collect();
    let rewrap = ok(run(&["rewrap", "--key", &uri, "--s3", &prefix]));
    let (down, up) = traffic(&rewrap);
    let header = inspect(&object)["header_len"].as_u64().unwrap();
    assert_eq!(up, 0, "a rewrap uploads no byte");
    assert!(
        down <= 21 * header,
        "{down} bytes downloaded: each header once"
    );
    for (i, before) in bodies_before.iter().enumerate() {
        let (body, _, slot) = get(&bucket, &format!("backups/s{i:02}.ev"));
        assert_eq!(&body, before, "object {i}: the body did not change");
        assert!(
            slot.is_some(),
            "object {i}: the new slot is in the metadata"
        );
    }
    assert_eq!(inspect(&object)["key_version"], "2");
    // Version 1 can be disabled now, and everything still decrypts.
    ok(run(&[
        "retire",
        "--key",
        &uri,
        "--version",
        "1",
        "--action",
        "disable",
        "--s3",
        &prefix,
    ]));
    let out = ok(run(&[
        "decrypt",
        "--key",
        &uri,
        "-i",
        &format!("s3://{bucket}/backups/s07.ev"),
        "--aad",
        "backups/s07.ev",
    ]));
    assert_eq!(out.stdout, small);
    // A second rewrap after another rotation replaces the metadata slot again.
    ok(run(&["keys", "rotate", &uri]));
    ok(run(&["rewrap", "--key", &uri, "--s3", &prefix]));
    assert_eq!(inspect(&object)["key_version"], "3");
    let out = ok(run(&[
        "decrypt",
        "--key",
        &uri,
        "-i",
        &object,
        "--aad",
        "backups/big.ev",
        "--range",
        "0:1000",
    ]));
    assert_eq!(out.stdout, big[..1000]);

    // Re-encryption of one DEK: a new object body, the same plaintext.
    let fingerprint = inspect(&object)["dek_fingerprint"]
        .as_str()
        .unwrap()
        .to_owned();
    ok(run(&[
        "reencrypt",
        "--key",
        &uri,
        "--s3",
        &prefix,
        "--aad",
        "{key}",
        "--dek",
        &fingerprint,
    ]));
    assert_ne!(inspect(&object)["dek_fingerprint"], fingerprint.as_str());
    let out = ok(run(&[
        "decrypt",
        "--key",
        &uri,
        "-i",
        &object,
        "--aad",
        "backups/big.ev",
    ]));
    assert_eq!(out.stdout, big);

    // The evidence pack counts the prefix like a census does.
    let pack = tempfile::tempdir().unwrap();
    let out = run(&[
        "evidence",
        "--out",
        pack.path().to_str().unwrap(),
        "--key",
        &uri,
        "--s3",
        &prefix,
    ]);
    assert!(matches!(out.status.code(), Some(0 | 7)), "{out:?}");
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(pack.path().join("evidence.json")).unwrap()).unwrap();
    let stores = json["stores"].as_array().unwrap();
    assert_eq!(stores.len(), 1, "{stores:?}");
    assert_eq!(stores[0]["kind"], "s3");
    assert!(
        stores[0]["census"]["scanned"].as_u64() > Some(0),
        "{stores:?}"
    );
}

#[test]
fn a_missing_object_and_a_missing_bucket_are_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let uri = local_key(dir.path());
    let out = run(&[
        "decrypt",
        "--key",
        &uri,
        "-i",
        "s3://no-such-bucket-envelope/x.ev",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("s3://no-such-bucket-envelope/x.ev") && stderr.lines().count() == 1,
        "{stderr}"
    );
}
