//! notary-server's signer benchmark: the same publish through notary-server backed by tufad's
//! notary-signer listener (server keys on a SoftHSM token) and backed by the real
//! notary-signer (memory store), on one machine in one run. Prints figures and whether issue
//! 12's target is met: tufad's median publish within 1.2x of notary-signer's.
//!
//! - Publish: `notary addhash GUN NAME LEN --sha256 H -p`, one new target per run, on a
//!   repository whose snapshot and timestamp the server signs (`key rotate snapshot -r`), so
//!   every publish is two GetKeyInfo and two Sign calls to the signer. The two stacks take
//!   turns, so both see the same machine load.
//! - Sign: the signer-side latency of one `Sign` of a 278-byte timestamp (gRPC over mutual
//!   TLS, one warm connection), as notary-server makes it.
//!
//! Run with `scripts/bench.sh` (builds the release binaries first), or:
//! `cargo build --release --workspace --bins && cargo bench -p tufa-tests --bench notary_signer`.
//! `TUFA_BENCH_RUNS` changes the number of publishes per stack (default 21); 500 Signs each.

use std::process::Command;
use std::time::{Duration, Instant};

use tufa_proto::notary;
use tufa_tests::stack::Stack;

/// Publishes per stack, unless `TUFA_BENCH_RUNS` says otherwise.
const DEFAULT_RUNS: usize = 21;
/// Signs per signer.
const SIGNS: usize = 500;
/// The target: tufad's median publish at most this times notary-signer's.
const TARGET: f64 = 1.2;

fn main() {
    let runs = std::env::var("TUFA_BENCH_RUNS")
        .ok()
        .and_then(|r| r.parse().ok())
        .filter(|&r| r > 0)
        .unwrap_or(DEFAULT_RUNS);
    let stacks = [
        ("notary-signer", Stack::start()),
        ("tufad", Stack::start_with_tufad_signer()),
    ];
    let gun = "bench.example/signer";
    for (_, s) in &stacks {
        std::fs::write(s.dir().join("seed"), b"seed").unwrap();
        s.notary_ok(&["init", gun, "-p"]);
        s.notary_ok(&["key", "rotate", gun, "snapshot", "-r"]);
        s.notary_ok(&["add", gun, "seed", "seed", "-p"]);
    }

    eprintln!("publishing one new target, {runs} runs per signer, taking turns ...");
    let mut walls = [Vec::new(), Vec::new()];
    for run in 0..runs {
        for (i, (_, s)) in stacks.iter().enumerate() {
            walls[i].push(publish_one(s, gun, run));
        }
    }

    eprintln!("signing, {SIGNS} Signs per signer ...");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let signs = stacks
        .iter()
        .map(|(_, s)| rt.block_on(sign_latencies(s)))
        .collect::<Vec<_>>();

    println!("\nnotary-server's signer: publish one new target (notary addhash -p), {runs} runs");
    println!(
        "{:<14} {:>14} {:>14} {:>16} {:>16}",
        "signer", "publish median", "publish min", "Sign median", "Sign p90"
    );
    for (i, (name, _)) in stacks.iter().enumerate() {
        println!(
            "{:<14} {:>11.1} ms {:>11.1} ms {:>13.3} ms {:>13.3} ms",
            name,
            ms(median(&walls[i])),
            ms(*walls[i].iter().min().unwrap()),
            ms(median(&signs[i])),
            ms(percentile(&signs[i], 90)),
        );
    }
    let ratio = ms(median(&walls[1])) / ms(median(&walls[0]));
    let met = if ratio <= TARGET { "met" } else { "NOT met" };
    println!("\ntufad / notary-signer, median publish: {ratio:.2}x (target <= {TARGET}x: {met})");
    println!(
        "tufad / notary-signer, median Sign:    {:.2}x",
        ms(median(&signs[1])) / ms(median(&signs[0]))
    );
}

/// One `notary addhash ... -p` of a new target; its wall time.
fn publish_one(stack: &Stack, gun: &str, run: usize) -> Duration {
    let name = format!("t{run}");
    let hash = format!("{run:064x}");
    let mut cmd: Command = stack.notary_command();
    cmd.args(["addhash", gun, &name, "1", "--sha256", &hash, "-p"]);
    let start = Instant::now();
    let out = cmd.output().expect("run notary");
    let wall = start.elapsed();
    assert!(
        out.status.success(),
        "notary addhash failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        stack.server_log()
    );
    wall
}

/// [`SIGNS`] Sign calls of a timestamp-sized content on one warm mTLS connection, with a key
/// the signer made for the benchmark; each call's latency.
async fn sign_latencies(stack: &Stack) -> Vec<Duration> {
    let channel = stack.signer_channel("notary-server").await;
    let mut km = notary::key_management_client::KeyManagementClient::new(channel.clone());
    let mut signer = notary::signer_client::SignerClient::new(channel);
    let key = km
        .create_key(notary::CreateKeyRequest {
            algorithm: "ecdsa".into(),
            gun: "bench.example/sign".into(),
            role: "timestamp".into(),
        })
        .await
        .expect("CreateKey")
        .into_inner();
    let id = key.key_info.and_then(|i| i.key_id).expect("a key ID");
    let content = format!(
        "{{\"_type\":\"Timestamp\",\"expires\":\"2030-01-01T00:00:00Z\",\"meta\":{{\"snapshot\":{{\"hashes\":{{\"sha256\":\"{}\"}},\"length\":1234,\"version\":1}}}},\"version\":1}}",
        "A".repeat(44)
    )
    .into_bytes();
    let request = || notary::SignatureRequest {
        key_id: Some(id.clone()),
        content: content.clone(),
    };
    for _ in 0..20 {
        signer.sign(request()).await.expect("Sign");
    }
    let mut out = Vec::with_capacity(SIGNS);
    for _ in 0..SIGNS {
        let start = Instant::now();
        signer.sign(request()).await.expect("Sign");
        out.push(start.elapsed());
    }
    out
}

fn median(d: &[Duration]) -> Duration {
    percentile(d, 50)
}

fn percentile(d: &[Duration], p: usize) -> Duration {
    let mut v = d.to_vec();
    v.sort();
    v[(v.len() - 1) * p / 100]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
