//! Crash durability of the redb backend: every write acknowledged before a `kill -9`
//! is in the file after it is reopened.
//!
//! This test binary plays both parts. Run normally, it is the parent: it re-executes
//! itself with `BERTH_STORE_CRASH_CHILD=<file>`, and the child writes keys in a loop,
//! printing `ACK <n>` after each write returns. The parent reads acknowledgements, kills
//! the child with SIGKILL mid-stream, reads what the child printed before dying, then
//! reopens the file and checks every acknowledged key. Nothing waits on time: the parent
//! acts on what the child prints.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use berth_store::{RedbStore, Store};

const CHILD_ENV: &str = "BERTH_STORE_CRASH_CHILD";
const ROUND_ENV: &str = "BERTH_STORE_CRASH_ROUND";
/// Acknowledgements the parent waits for before killing the child.
const ACKS_BEFORE_KILL: usize = 300;
const ROUNDS: u32 = 3;

fn key(round: u32, n: u64) -> String {
    format!("crash/{round}/{n:08}")
}

fn value(round: u32, n: u64) -> Vec<u8> {
    format!("value {round}/{n} {}", "x".repeat((n % 64) as usize)).into_bytes()
}

fn main() {
    if let Some(path) = std::env::var_os(CHILD_ENV) {
        let round: u32 = std::env::var(ROUND_ENV)
            .expect("round")
            .parse()
            .expect("round number");
        child(Path::new(&path), round);
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("state.redb");
    let mut acked: Vec<(u32, u64)> = Vec::new();
    for round in 0..ROUNDS {
        acked.extend(run_and_kill_child(&path, round));
        verify(&path, &acked);
    }
    println!(
        "test crash_durability ... ok ({} acknowledged writes checked)",
        acked.len()
    );
}

/// The child: writes until killed, acknowledging each write on stdout.
fn child(path: &Path, round: u32) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let store = RedbStore::open(path).expect("child: open store");
        let mut stdout = std::io::stdout();
        for n in 0..1_000_000u64 {
            if n % 10 == 9 {
                // Some writes are two-key batches; both keys are acknowledged.
                store
                    .batch(vec![
                        berth_store::Op::Put {
                            key: key(round, n),
                            value: value(round, n),
                            expect: None,
                        },
                        berth_store::Op::Delete {
                            key: format!("crash/scratch/{round}"),
                            expect: None,
                        },
                    ])
                    .await
                    .expect("child: batch");
            } else {
                store
                    .put(&key(round, n), value(round, n))
                    .await
                    .expect("child: put");
            }
            // A failed write means the parent is gone: stop.
            if writeln!(stdout, "ACK {n}")
                .and_then(|_| stdout.flush())
                .is_err()
            {
                return;
            }
        }
    });
}

/// Runs one child on `path`, kills it after [`ACKS_BEFORE_KILL`] acknowledgements and
/// returns every write it acknowledged.
fn run_and_kill_child(path: &PathBuf, round: u32) -> Vec<(u32, u64)> {
    let mut child = Command::new(std::env::current_exe().expect("current exe"))
        .env(CHILD_ENV, path)
        .env(ROUND_ENV, round.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn child");
    let stdout = child.stdout.take().expect("child stdout");

    // Lines arrive through a channel so a hung child fails the test instead of hanging it.
    let (lines_tx, lines) = mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });

    let parse = |line: &str| -> u64 {
        line.strip_prefix("ACK ")
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("unexpected line from child: {line:?}"))
    };
    let mut acked = Vec::new();
    while acked.len() < ACKS_BEFORE_KILL {
        match lines.recv_timeout(Duration::from_secs(120)) {
            Ok(line) => acked.push((round, parse(&line))),
            Err(error) => {
                let _ = child.kill();
                panic!(
                    "round {round}: child stopped acknowledging after {} writes: {error}",
                    acked.len()
                );
            }
        }
    }
    child.kill().expect("kill child"); // SIGKILL
    let status = child.wait().expect("wait for child");
    assert_eq!(
        status.signal(),
        Some(9),
        "round {round}: child should die by SIGKILL mid-stream, got {status:?}"
    );
    // Everything the child printed before it died was acknowledged too.
    reader.join().expect("reader thread");
    acked.extend(lines.try_iter().map(|line| (round, parse(&line))));
    let numbers: Vec<u64> = acked.iter().map(|&(_, n)| n).collect();
    assert!(
        numbers.iter().copied().eq(0..numbers.len() as u64),
        "round {round}: acknowledgements out of order"
    );
    acked
}

fn verify(path: &Path, acked: &[(u32, u64)]) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let store = RedbStore::open(path).expect("reopen after kill -9");
        for &(round, n) in acked {
            let entry = store
                .get(&key(round, n))
                .await
                .expect("get")
                .unwrap_or_else(|| panic!("acknowledged key {} lost", key(round, n)));
            assert_eq!(entry.value, value(round, n), "key {}", key(round, n));
        }
        let revision = store.revision().await.expect("revision");
        assert!(
            revision >= acked.len() as u64,
            "revision {revision} is behind {} acknowledged writes",
            acked.len()
        );
        // The recovered store takes writes, at the next revision.
        let next = store.put("crash/after", b"ok".to_vec()).await.expect("put");
        assert_eq!(next, revision + 1);
    });
}
