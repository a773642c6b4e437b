//! Cooperative workers: several processes share one PostgreSQL job with `--join`, claiming
//! key ranges with leases in `envelope_jobs`; a process killed mid-run loses its range to
//! the others once its lease runs out, and they resume it from its checkpoint.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::*;

const ROWS: i64 = 300_000;

/// Fills `table (id bigint primary key, v bytea, writes int)`; a trigger counts every
/// write of `v`, so that "each row rewrapped exactly once" is what the database saw.
async fn fill(client: &tokio_postgres::Client, keyring: &Keyring, table: &str) {
    client
        .batch_execute(&format!(
            "CREATE TABLE {table} (id bigint PRIMARY KEY, v bytea, writes integer NOT NULL DEFAULT 0);
             CREATE FUNCTION {table}_count() RETURNS trigger LANGUAGE plpgsql AS $$
               BEGIN NEW.writes := OLD.writes + 1; RETURN NEW; END $$;
             CREATE TRIGGER {table}_count BEFORE UPDATE OF v ON {table}
               FOR EACH ROW EXECUTE FUNCTION {table}_count();"
        ))
        .await
        .unwrap();
    // A new DEK every 10,000 values: 30 DEKs.
    let env = keyring.envelope(10_000);
    let aad = column_aad(table, "v");
    let mut start = 1;
    while start <= ROWS {
        let end = (start + 9_999).min(ROWS);
        let ids: Vec<i64> = (start..=end).collect();
        let mut values = Vec::with_capacity(ids.len());
        for id in &ids {
            values.push(env.encrypt(&plaintext(*id), &aad).await.unwrap());
        }
        client
            .execute(
                &format!(
                    "INSERT INTO {table} (id, v) SELECT * FROM unnest($1::bigint[], $2::bytea[])"
                ),
                &[&ids, &values],
            )
            .await
            .unwrap();
        start = end + 1;
    }
}

fn join(keyring: &Keyring, table: &str, job: &str) -> Child {
    command(&[
        "rewrap",
        "--key",
        &keyring.uri,
        "--db",
        &pg_url(),
        "--table",
        table,
        "--column",
        "v",
        "--join",
        job,
        "--parts",
        "12",
        "--lease",
        "3",
        "--batch-size",
        "500",
        "--json",
    ])
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap()
}

/// The unfinished parts a process holds (its owner string names its pid).
async fn parts_held_by(client: &tokio_postgres::Client, job: &str, pid: u32) -> Vec<(i32, i64)> {
    client
        .query(
            "SELECT part, scanned FROM envelope_jobs WHERE job_id = $1 AND NOT finished \
             AND owner LIKE '%/' || $2 || '/%' ORDER BY part",
            &[&job, &pid.to_string()],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn three_processes_share_a_job_and_finish_the_range_of_one_killed() {
    let client = db().await;
    let keyring = Keyring::new();
    let table = unique("coop");
    fill(&client, &keyring, &table).await;
    let before: HashMap<i64, Vec<u8>> = client
        .query(&format!("SELECT id, v FROM {table}"), &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    keyring.rotate();
    let job = unique("nightly");

    let mut survivors = vec![join(&keyring, &table, &job), join(&keyring, &table, &job)];
    let mut victim = join(&keyring, &table, &job);
    let victim_pid = victim.id();
    // Kill the third process once it has committed pages of a range it holds.
    let deadline = Instant::now() + Duration::from_secs(300);
    let held = loop {
        let held = parts_held_by(&client, &job, victim_pid).await;
        if held.iter().any(|&(_, scanned)| scanned > 0) {
            victim.kill().unwrap();
            victim.wait().unwrap();
            break parts_held_by(&client, &job, victim_pid).await;
        }
        assert!(
            Instant::now() < deadline,
            "the third process committed nothing in 300 s"
        );
        assert!(
            victim.try_wait().unwrap().is_none(),
            "the third process ended before it could be killed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(
        !held.is_empty(),
        "the killed process held no unfinished range"
    );

    eprintln!("killed pid {victim_pid} holding (part, scanned) {held:?}");
    let mut totals = Vec::new();
    let mut this_runs = 0;
    for child in survivors.drain(..) {
        let out = child.wait_with_output().unwrap();
        let summary = &json_of(&out, 0)[0];
        assert_eq!(summary["job_id"], job.as_str(), "{summary}");
        assert_eq!(summary["status"], "finished", "{summary}");
        totals.push(summary["total"].clone());
        this_runs += summary["this_run"]["scanned"].as_u64().unwrap();
    }
    // Each summary's total sums every worker of the job, the killed one's commits included.
    for total in &totals {
        assert_eq!(total["scanned"], ROWS, "{total}");
        assert_eq!(total["changed"], ROWS, "{total}");
        assert_eq!(total["failed"], 0, "{total}");
    }
    eprintln!("the two survivors scanned {this_runs} of {ROWS} rows in this run");
    assert!(
        this_runs < ROWS as u64,
        "the killed process committed nothing"
    );

    // The killed process's ranges were finished by the others, from its checkpoint.
    for (part, _) in &held {
        let row = client
            .query_one(
                "SELECT finished, owner FROM envelope_jobs WHERE job_id = $1 AND part = $2",
                &[&job, part],
            )
            .await
            .unwrap();
        assert!(row.get::<_, bool>(0), "part {part} unfinished");
        let owner: String = row.get(1);
        assert!(
            !owner.contains(&format!("/{victim_pid}/")),
            "part {part} still owned by the killed process"
        );
    }

    // Every row written exactly once (the trigger's count), its body and stable header
    // unchanged, now under version 2.
    let rows = client
        .query(&format!("SELECT id, v, writes FROM {table}"), &[])
        .await
        .unwrap();
    assert_eq!(rows.len() as i64, ROWS);
    for row in &rows {
        let id: i64 = row.get(0);
        let now: Vec<u8> = row.get(1);
        let writes: i32 = row.get(2);
        assert_eq!(writes, 1, "row {id} written {writes} times");
        assert_eq!(
            stable_and_body(&now),
            stable_and_body(&before[&id]),
            "row {id}: stable header or body changed"
        );
        assert_eq!(header(&now).key_version, "2", "row {id}");
    }
}

/// A job id names one job: joining it with another command is refused, joining a finished
/// job changes nothing and reports its totals, and `--join` needs PostgreSQL.
#[tokio::test(flavor = "multi_thread")]
async fn a_joined_job_is_one_job() {
    let client = db().await;
    let keyring = Keyring::new();
    let env = keyring.envelope(100);
    let table = unique("coop_small");
    fill_table(&client, &env, &table, 1_000).await;
    keyring.rotate();
    let job = unique("weekly");
    let url = pg_url();
    let run = |verb: &str, key: &str, extra: &[&str]| {
        let mut args = vec![
            verb, "--key", key, "--db", &url, "--table", &table, "--column", "ssn", "--join", &job,
            "--json",
        ];
        args.extend_from_slice(extra);
        envelope(&args)
    };
    let first = json_of(&run("rewrap", &keyring.uri, &[]), 0);
    assert_eq!(first[0]["total"]["changed"], 900, "{first}");

    // The same job again: nothing left to claim, the job's totals reported.
    let again = json_of(&run("rewrap", &keyring.uri, &[]), 0);
    assert_eq!(again[0]["total"]["changed"], 900, "{again}");
    assert_eq!(again[0]["this_run"]["scanned"], 0, "{again}");

    // Another command under the same job id is refused, naming both.
    let other = Keyring::new();
    let refused = run("rewrap", &other.uri, &[]);
    assert_eq!(refused.status.code(), Some(1), "{refused:?}");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains(&format!("job {job:?} is a rewrap")),
        "{stderr}"
    );
    let refused = run(
        "reencrypt",
        &keyring.uri,
        &["--all", "--aad", "envelope:{table}.{column}"],
    );
    assert_eq!(refused.status.code(), Some(1), "{refused:?}");

    // No PostgreSQL, no ledger to share.
    let dir = tempfile::tempdir().unwrap();
    let out = envelope(&[
        "rewrap",
        "--key",
        &keyring.uri,
        "--dir",
        &dir.path().display().to_string(),
        "--join",
        &job,
    ]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("--join shares a PostgreSQL job"));
}
