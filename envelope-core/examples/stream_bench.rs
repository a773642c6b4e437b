//! One measurement per process, for `scripts/bench-streams.sh` (which runs each several
//! times, interleaved, and takes medians): the raw AEAD floors and the streaming form's
//! writer and reader over memory (no I/O), in MB/s.
//!
//! ```text
//! cargo run --release -p envelope-core --example stream_bench -- MODE THREADS MIB
//! MODE: floor-aws-lc-gcm | floor-rustcrypto-gcm | floor-xchacha
//!       | floor-aws-lc-gcm-out-of-place | writer | reader | seal-run
//! THREADS: the writer's or reader's threads, or the threads a floor is split over
//! CALL_MIB (environment, default 8): the size of each `write` or `read` call
//! ```
//!
//! `floor-aws-lc-gcm-out-of-place` seals each 64 KiB message from the data into a separate
//! buffer (AWS-LC's scatter seal, as the writer does): not a floor, the cost of leaving
//! the input untouched.

use std::io::{Cursor, Read, Write};
use std::time::Instant;

use envelope_core::stream::{DEFAULT_SEGMENT_SIZE, EncryptingWriter, SeekableDecryptingReader};
use envelope_core::{Envelope, LocalKeyring, LocalKms};

const CHUNK: usize = DEFAULT_SEGMENT_SIZE as usize;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (mode, threads, mib) = match args.as_slice() {
        [_, mode, threads, mib] => (
            mode.as_str(),
            threads.parse::<usize>().expect("threads"),
            mib.parse::<usize>().expect("MiB"),
        ),
        _ => {
            eprintln!("usage: stream_bench MODE THREADS MIB");
            std::process::exit(2);
        }
    };
    let len = mib << 20;
    let mut data = vec![0x5au8; len];
    let seconds = match mode {
        "floor-aws-lc-gcm" => on_threads(threads, &mut data, floor_aws_lc),
        "floor-rustcrypto-gcm" => on_threads(threads, &mut data, floor_rustcrypto),
        "floor-xchacha" => on_threads(threads, &mut data, floor_xchacha),
        "floor-aws-lc-gcm-out-of-place" => on_threads(threads, &mut data, out_of_place_aws_lc),
        "writer" | "reader" => streams(mode, &data, threads),
        "seal-run" => seal_run_in_place(len, threads),
        other => {
            eprintln!("unknown mode {other}");
            std::process::exit(2);
        }
    };
    println!("{mode} {threads} {:.1}", len as f64 / seconds / 1e6);
}

/// A floor on `threads` threads: `data` split into as many contiguous parts, each sealed
/// by its own thread; the seconds from the first spawn to the last join (what the
/// machine's cores give to the AEAD alone, the ceiling of any parallel speed-up).
fn on_threads(threads: usize, data: &mut [u8], floor: fn(&mut [u8]) -> f64) -> f64 {
    if threads <= 1 {
        return floor(data);
    }
    let per = data.len().div_ceil(threads).next_multiple_of(CHUNK);
    let start = Instant::now();
    std::thread::scope(|scope| {
        for part in data.chunks_mut(per) {
            scope.spawn(move || floor(part));
        }
    });
    start.elapsed().as_secs_f64()
}

/// aws-lc-rs AES-256-GCM over 64 KiB messages, in place: the fastest AEAD here.
fn floor_aws_lc(data: &mut [u8]) -> f64 {
    use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
    let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &[7; 32]).expect("key"));
    let start = Instant::now();
    for (i, chunk) in data.chunks_mut(CHUNK).enumerate() {
        let mut nonce = [0u8; 12];
        nonce[4..].copy_from_slice(&(i as u64).to_be_bytes());
        let tag = key
            .seal_in_place_separate_tag(Nonce::assume_unique_for_key(nonce), Aad::empty(), chunk)
            .expect("seal");
        let _ = std::hint::black_box(tag);
    }
    start.elapsed().as_secs_f64()
}

/// aws-lc-rs AES-256-GCM over 64 KiB messages, each sealed out of place into one reused
/// buffer (the scatter seal `EncryptingWriter` uses on a caller's data).
fn out_of_place_aws_lc(data: &mut [u8]) -> f64 {
    use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
    let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &[7; 32]).expect("key"));
    let mut out = vec![0u8; CHUNK + 16];
    let start = Instant::now();
    for (i, chunk) in data.chunks(CHUNK).enumerate() {
        let mut nonce = [0u8; 12];
        nonce[4..].copy_from_slice(&(i as u64).to_be_bytes());
        let out = &mut out[..chunk.len() + 16];
        key.seal_in_place_scatter(
            Nonce::assume_unique_for_key(nonce),
            Aad::empty(),
            &mut [],
            chunk,
            out,
        )
        .expect("seal");
        std::hint::black_box(&out);
    }
    start.elapsed().as_secs_f64()
}

/// A local keyring in a temporary directory (removed on drop) and an envelope over it;
/// the KMS calls happen before any clock starts.
struct Bench {
    dir: std::path::PathBuf,
    envelope: Envelope,
    rt: tokio::runtime::Runtime,
}

impl Bench {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("stream-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let keyring = LocalKeyring::create(dir.join("keyring.json"), "bench").expect("keyring");
        let envelope = Envelope::builder(LocalKms::new(keyring), "bench")
            .build()
            .expect("envelope");
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        Bench { dir, envelope, rt }
    }

    fn sealer(&self) -> envelope_core::stream::StreamSealer {
        self.rt
            .block_on(self.envelope.stream_sealer(b"", DEFAULT_SEGMENT_SIZE))
            .expect("sealer")
    }
}

impl Drop for Bench {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The streaming form without an adapter: `StreamSealer::seal_run` sealing, in place, a
/// buffer the caller already holds laid out as on the wire (a multipart upload's parts),
/// `CALL_MIB` of plaintext per call. What the form itself costs over the raw AEAD: the
/// nonces, the associated data and the per-segment bookkeeping.
fn seal_run_in_place(len: usize, threads: usize) -> f64 {
    let bench = Bench::new();
    let sealer = bench.sealer();
    let sealed_len = CHUNK + 16;
    let segments = len / CHUNK;
    let mut wire = vec![0x5au8; segments * sealed_len];
    let per_call = (call_bytes() / CHUNK).max(1);
    let start = Instant::now();
    for (k, run) in wire.chunks_mut(per_call * sealed_len).enumerate() {
        let count = run.len() / sealed_len;
        let first = (k * per_call) as u64;
        sealer
            .seal_run(first, run, count, None, threads)
            .expect("seal");
    }
    start.elapsed().as_secs_f64()
}

/// The size of each `write` or `read` call of the writer and reader modes.
fn call_bytes() -> usize {
    let mib = std::env::var("CALL_MIB")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(8);
    mib.max(1) << 20
}

/// RustCrypto `aes-gcm` over 64 KiB messages.
fn floor_rustcrypto(data: &mut [u8]) -> f64 {
    use aes_gcm::aead::{AeadInPlace, KeyInit};
    let key = aes_gcm::Aes256Gcm::new_from_slice(&[7; 32]).expect("key");
    let start = Instant::now();
    for (i, chunk) in data.chunks_mut(CHUNK).enumerate() {
        let mut nonce = [0u8; 12];
        nonce[4..].copy_from_slice(&(i as u64).to_be_bytes());
        let tag = key
            .encrypt_in_place_detached(&nonce.into(), b"", chunk)
            .expect("seal");
        let _ = std::hint::black_box(tag);
    }
    start.elapsed().as_secs_f64()
}

/// RustCrypto XChaCha20-Poly1305 over 64 KiB messages.
fn floor_xchacha(data: &mut [u8]) -> f64 {
    use chacha20poly1305::aead::{AeadInPlace, KeyInit};
    let key = chacha20poly1305::XChaCha20Poly1305::new_from_slice(&[7; 32]).expect("key");
    let start = Instant::now();
    for (i, chunk) in data.chunks_mut(CHUNK).enumerate() {
        let mut nonce = [0u8; 24];
        nonce[16..].copy_from_slice(&(i as u64).to_be_bytes());
        let tag = key
            .encrypt_in_place_detached(&nonce.into(), b"", chunk)
            .expect("seal");
        let _ = std::hint::black_box(tag);
    }
    start.elapsed().as_secs_f64()
}

/// The streaming form through the library: `EncryptingWriter` from memory into a sink,
/// or `SeekableDecryptingReader` from memory into a sink; the KMS call happens before
/// the clock starts.
fn streams(mode: &str, data: &[u8], threads: usize) -> f64 {
    let bench = Bench::new();
    let sealer = bench.sealer();
    if mode == "writer" {
        let mut writer = EncryptingWriter::new(std::io::sink(), sealer, threads).expect("writer");
        let start = Instant::now();
        for chunk in data.chunks(call_bytes()) {
            writer.write_all(chunk).expect("write");
        }
        writer.finish().expect("finish");
        start.elapsed().as_secs_f64()
    } else {
        let mut writer = EncryptingWriter::new(Vec::new(), sealer, threads).expect("writer");
        writer.write_all(data).expect("write");
        let sealed = writer.finish().expect("finish");
        let opener = bench
            .rt
            .block_on(bench.envelope.stream_opener(&sealed, b""))
            .expect("opener");
        let start = Instant::now();
        let mut reader =
            SeekableDecryptingReader::new(Cursor::new(&sealed), opener, threads).expect("reader");
        let mut buf = vec![0u8; call_bytes()];
        let mut total = 0;
        loop {
            let n = reader.read(&mut buf).expect("read");
            if n == 0 {
                break;
            }
            total += n;
        }
        assert_eq!(total, data.len());
        start.elapsed().as_secs_f64()
    }
}
