//! Large files through the `envelope` binary in the streaming form: round trips through
//! files and pipes, ranges, the file jobs reading headers only, rewrap writing one slot,
//! SIGKILL during encrypt and rewrap, and a 2 GiB round trip under a 256 MiB address-space
//! limit.

#![allow(clippy::unwrap_used)]

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

fn inspect(path: &Path) -> serde_json::Value {
    let out = envelope(&["inspect", "--json", path.to_str().unwrap()]);
    serde_json::from_slice(&ok(&out).stdout).unwrap()
}

/// Runs the binary with `input` on stdin; its output.
fn piped(args: &[&str], input: &[u8]) -> std::process::Output {
    let mut child = command(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    out
}

#[test]
fn files_and_pipes_round_trip_and_ranges_read_their_segments() {
    let dir = tempfile::tempdir().unwrap();
    let uri = local_key(dir.path());
    let plain = pseudo_random(3 * 65536 * 7 + 1234, 1);
    let (p, c, d) = (
        dir.path().join("p"),
        dir.path().join("c"),
        dir.path().join("d"),
    );
    std::fs::write(&p, &plain).unwrap();
    for threads in ["1", "2"] {
        ok(&envelope(&[
            "encrypt",
            "--key",
            &uri,
            "-i",
            p.to_str().unwrap(),
            "-o",
            c.to_str().unwrap(),
            "--threads",
            threads,
            "--aad",
            "backup",
        ]));
        let info = inspect(&c);
        assert_eq!(info["format_version"], 4);
        assert_eq!(info["plaintext_len"], plain.len());
        assert_eq!(info["segment_size"], 65536);
        ok(&envelope(&[
            "decrypt",
            "--key",
            &uri,
            "-i",
            c.to_str().unwrap(),
            "-o",
            d.to_str().unwrap(),
            "--threads",
            threads,
            "--aad",
            "backup",
        ]));
        assert_eq!(std::fs::read(&d).unwrap(), plain);
    }
    // Pipes both ways (the sequential reader), and a file read from stdin.
    let sealed = piped(&["encrypt", "--key", &uri, "--form", "stream"], &plain);
    let opened = piped(&["decrypt", "--key", &uri], &ok(&sealed).stdout);
    assert_eq!(ok(&opened).stdout, plain);
    // Ranges: from a file (random access) and from a pipe.
    let ct = std::fs::read(&c).unwrap();
    for (range, start, end) in [
        ("0:10", 0, 10),
        ("65530:65542", 65530, 65542),
        ("1000000:", 1_000_000, plain.len()),
        (":5", 0, 5),
    ] {
        let from_file = envelope(&[
            "decrypt",
            "--key",
            &uri,
            "-i",
            c.to_str().unwrap(),
            "--aad",
            "backup",
            "--range",
            range,
        ]);
        assert_eq!(ok(&from_file).stdout, plain[start..end], "{range}");
        let from_pipe = piped(
            &[
                "decrypt", "--key", &uri, "--aad", "backup", "--range", range,
            ],
            &ct,
        );
        assert_eq!(ok(&from_pipe).stdout, plain[start..end], "{range}");
    }
    // Wrong AAD: nothing written under the output name, one clear line.
    let _ = std::fs::remove_file(&d);
    let out = envelope(&[
        "decrypt",
        "--key",
        &uri,
        "-i",
        c.to_str().unwrap(),
        "-o",
        d.to_str().unwrap(),
        "--aad",
        "other",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("decryption failed"));
    assert!(!d.exists(), "no output file after a failed decryption");
    // Small inputs keep the value form; --form stream forces a stream; --text refuses one.
    let small = dir.path().join("small");
    std::fs::write(&small, b"eleven byte").unwrap();
    let small_ct = dir.path().join("small.ev");
    ok(&envelope(&[
        "encrypt",
        "--key",
        &uri,
        "-i",
        small.to_str().unwrap(),
        "-o",
        small_ct.to_str().unwrap(),
    ]));
    assert_eq!(inspect(&small_ct)["format_version"], 1);
    ok(&envelope(&[
        "encrypt",
        "--key",
        &uri,
        "-i",
        small.to_str().unwrap(),
        "-o",
        small_ct.to_str().unwrap(),
        "--form",
        "stream",
    ]));
    assert_eq!(inspect(&small_ct)["format_version"], 4);
    let out = envelope(&[
        "encrypt",
        "--key",
        &uri,
        "--form",
        "stream",
        "--text",
        "-i",
        small.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn a_cut_stream_says_so_and_what_was_authentic() {
    let dir = tempfile::tempdir().unwrap();
    let uri = local_key(dir.path());
    let plain = pseudo_random(5 * 65536, 2);
    let sealed = piped(&["encrypt", "--key", &uri, "--form", "stream"], &plain);
    let ct = ok(&sealed).stdout.clone();
    let header = inspect_bytes(&ct);
    let cut = &ct[..header + 3 * (65536 + 16)];
    let out = piped(&["decrypt", "--key", &uri], cut);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("truncated stream"), "{stderr}");
    assert!(
        plain.starts_with(&out.stdout),
        "only authentic plaintext was written"
    );
    assert!(
        stderr.contains(&format!(
            "the {} bytes written before it are authentic",
            out.stdout.len()
        )),
        "{stderr}"
    );
}

/// The header length of a stream held in memory.
fn inspect_bytes(ct: &[u8]) -> usize {
    envelope::stream::header_len(ct).unwrap()
}

#[test]
fn jobs_read_stream_headers_and_rewrap_writes_one_slot() {
    let dir = tempfile::tempdir().unwrap();
    let uri = local_key(dir.path());
    let files = dir.path().join("files");
    std::fs::create_dir(&files).unwrap();
    let mut plains = Vec::new();
    for i in 0..6 {
        let plain = pseudo_random(1_200_000 + i * 70_001, 10 + i as u64);
        let p = dir.path().join(format!("p{i}"));
        std::fs::write(&p, &plain).unwrap();
        let c = files.join(format!("f{i}.ev"));
        ok(&envelope(&[
            "encrypt",
            "--key",
            &uri,
            "-i",
            p.to_str().unwrap(),
            "-o",
            c.to_str().unwrap(),
            "--aad",
            &format!("f{i}.ev"),
        ]));
        plains.push(plain);
    }
    ok(&envelope(&["keys", "rotate", &uri]));
    let before: Vec<Vec<u8>> = (0..6)
        .map(|i| std::fs::read(files.join(format!("f{i}.ev"))).unwrap())
        .collect();
    let census = json_of(
        &envelope(&["census", "--dir", files.to_str().unwrap(), "--json"]),
        0,
    );
    assert!(
        census.to_string().contains("\"key_version\":\"1\""),
        "{census}"
    );
    let out = envelope(&["rewrap", "--key", &uri, "--dir", files.to_str().unwrap()]);
    ok(&out);
    for (i, old) in before.iter().enumerate() {
        let path = files.join(format!("f{i}.ev"));
        let new = std::fs::read(&path).unwrap();
        assert_eq!(new.len(), old.len());
        let differ: Vec<usize> = (0..new.len()).filter(|&k| new[k] != old[k]).collect();
        let (first, last) = (differ[0], differ[differ.len() - 1]);
        let slot_len = (inspect(&path)["header_len"].as_u64().unwrap() as usize
            - envelope::stream::STABLE_LEN)
            / 2;
        assert!(
            first >= envelope::stream::STABLE_LEN && last - first < slot_len,
            "file {i}: bytes {first}..={last} changed"
        );
        assert_eq!(inspect(&path)["key_version"], "2");
        // Version 1 can go now, and every file still reads.
    }
    ok(&envelope(&[
        "retire",
        "--key",
        &uri,
        "--version",
        "1",
        "--action",
        "disable",
        "--dir",
        files.to_str().unwrap(),
    ]));
    for (i, plain) in plains.iter().enumerate() {
        let path = files.join(format!("f{i}.ev"));
        let out = envelope(&[
            "decrypt",
            "--key",
            &uri,
            "-i",
            path.to_str().unwrap(),
            "--aad",
            &format!("f{i}.ev"),
        ]);
        assert_eq!(&ok(&out).stdout, plain);
    }
    // Re-encryption of one DEK's streams: a new DEK, the same plaintext.
    let fingerprint = inspect(&files.join("f0.ev"))["dek_fingerprint"]
        .as_str()
        .unwrap()
        .to_owned();
    ok(&envelope(&[
        "reencrypt",
        "--key",
        &uri,
        "--dir",
        files.to_str().unwrap(),
        "--aad",
        "{path}",
        "--dek",
        &fingerprint,
    ]));
    let after = inspect(&files.join("f0.ev"));
    assert_ne!(after["dek_fingerprint"], fingerprint.as_str());
    assert_eq!(after["format_version"], 4);
    let out = envelope(&[
        "decrypt",
        "--key",
        &uri,
        "-i",
        files.join("f0.ev").to_str().unwrap(),
        "--aad",
        "f0.ev",
    ]);
    assert_eq!(ok(&out).stdout, plains[0]);
}

#[test]
fn sigkill_during_encrypt_leaves_no_file_and_during_rewrap_every_file_decrypts() {
    let dir = tempfile::tempdir().unwrap();
    let uri = local_key(dir.path());
    // Encrypt from a pipe that stalls after 12 MiB; kill -9 the process then.
    let out_path = dir.path().join("out.ev");
    let mut child = command(&[
        "encrypt",
        "--key",
        &uri,
        "--form",
        "stream",
        "-o",
        out_path.to_str().unwrap(),
    ])
    .stdin(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(&pseudo_random(12 << 20, 3)).unwrap();
    // Wait until the process has written sealed segments (its temporary output grows).
    let partial = || {
        std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(Result::ok)
            .find(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with(".envelope-tmp-")
            })
            .and_then(|e| e.metadata().ok())
            .map_or(0, |m| m.len())
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while partial() < 1 << 20 {
        assert!(
            std::time::Instant::now() < deadline,
            "the encryption never wrote its temporary output"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    let status = child.wait().unwrap();
    drop(stdin);
    assert_eq!(
        status.code(),
        None,
        "killed in the middle of its output, not exited"
    );
    assert!(
        !out_path.exists(),
        "a killed encryption left a file under the final name"
    );
    // Rewrap killed at many instants: every file decrypts after each kill.
    let files = dir.path().join("files");
    std::fs::create_dir(&files).unwrap();
    let plain = pseudo_random(1 << 20, 4);
    let p = dir.path().join("p");
    std::fs::write(&p, &plain).unwrap();
    for i in 0..40 {
        let c = files.join(format!("f{i:02}.ev"));
        ok(&envelope(&[
            "encrypt",
            "--key",
            &uri,
            "-i",
            p.to_str().unwrap(),
            "-o",
            c.to_str().unwrap(),
            "--form",
            "stream",
        ]));
    }
    let mut killed_mid_job = 0;
    for round in 0..8u64 {
        ok(&envelope(&["keys", "rotate", &uri]));
        let mut child = command(&[
            "rewrap",
            "--key",
            &uri,
            "--dir",
            files.to_str().unwrap(),
            "--batch-size",
            "1",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
        std::thread::sleep(Duration::from_millis(5 + round * 7));
        child.kill().unwrap();
        let status = child.wait().unwrap();
        if status.code().is_none() {
            killed_mid_job += 1;
        }
        for i in 0..40 {
            let c = files.join(format!("f{i:02}.ev"));
            let out = envelope(&[
                "decrypt",
                "--key",
                &uri,
                "-i",
                c.to_str().unwrap(),
                "--range",
                "1048000:",
            ]);
            assert_eq!(
                ok(&out).stdout,
                plain[1_048_000..],
                "round {round}, file {i}"
            );
        }
    }
    assert!(killed_mid_job > 0, "no kill landed while a rewrap ran");
}

#[test]
fn two_gib_round_trip_under_a_256_mib_address_space_limit() {
    // A 2 GiB plaintext through `encrypt | decrypt`, each process limited to 256 MiB of
    // address space: neither can hold the file, so both must stream.
    let dir = tempfile::tempdir().unwrap();
    let uri = local_key(dir.path());
    let bin = env!("CARGO_BIN_EXE_envelope");
    let script = format!(
        "set -o pipefail; head -c 2147483648 /dev/zero \
         | prlimit --as=268435456 {bin} encrypt --key '{uri}' --form stream --threads 2 \
         | prlimit --as=268435456 {bin} decrypt --key '{uri}' --threads 2 \
         | sha256sum"
    );
    let out = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The plaintext's own digest, by the same tool.
    let want = Command::new("bash")
        .arg("-c")
        .arg("head -c 2147483648 /dev/zero | sha256sum")
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&want.stdout)
    );
}

#[test]
fn a_fifo_output_is_written_never_replaced() {
    use std::os::unix::fs::FileTypeExt;
    let dir = tempfile::tempdir().unwrap();
    let uri = local_key(dir.path());
    let plain = pseudo_random(2 << 20, 5);
    let p = dir.path().join("p");
    std::fs::write(&p, &plain).unwrap();
    let fifo = dir.path().join("fifo");
    for (form, args) in [
        ("stream", vec!["encrypt", "--form", "stream"]),
        ("value", vec!["encrypt", "--form", "value"]),
    ] {
        assert!(
            Command::new("mkfifo")
                .arg(&fifo)
                .status()
                .unwrap()
                .success()
        );
        let reader = {
            let fifo = fifo.clone();
            std::thread::spawn(move || std::fs::read(fifo).unwrap())
        };
        let mut all = args.clone();
        all.extend([
            "--key",
            &uri,
            "-i",
            p.to_str().unwrap(),
            "-o",
            fifo.to_str().unwrap(),
        ]);
        ok(&envelope(&all));
        let sealed = reader.join().unwrap();
        assert!(
            std::fs::metadata(&fifo).unwrap().file_type().is_fifo(),
            "{form}: the FIFO is still a FIFO"
        );
        let opened = piped(&["decrypt", "--key", &uri], &sealed);
        assert_eq!(ok(&opened).stdout, plain, "{form}");
        std::fs::remove_file(&fifo).unwrap();
    }
}
