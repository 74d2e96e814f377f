//! YubiKey benchmark, against simulated cards through the real pcscd: the agent's overhead per
//! signature (an agent Sign minus the card's own time, measured with the `yubikey` crate
//! in-process on the same card), and signatures per second with two cards vs one: once as the
//! simulator is (it signs in microseconds, so every process competes for the same two cores),
//! and once with a real card's signing time modelled by the simulator's touch delay. Prints
//! figures; checks nothing.
//!
//! Run with `scripts/bench.sh`, or:
//! `cargo build --release --workspace --bins && cargo bench -p tufa-tests --bench yubikey`.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tufa_client::agent::{AgentKey, SignContext};
use tufa_proto::{v1, Sha256Digest};
use tufa_tests::piv::CardSpec;
use tufa_tests::yubikey::{fresh_serial, open, SimYubiKey, PIN};
use tufa_tests::Agent;
use yubikey::piv::{AlgorithmId, RetiredSlotId, SlotId};

const SAMPLES: usize = 300;
const WARMUP: usize = 30;
const WINDOW: Duration = Duration::from_secs(4);
const CLIENTS: usize = 4;
/// A YubiKey 5's time for one ECDSA P-256 signature, roughly: modelled as a "touch".
const CARD_TIME: Duration = Duration::from_millis(25);

fn main() {
    let dev = SimYubiKey::with(vec![
        CardSpec {
            serial: fresh_serial(),
            touch_delay: CARD_TIME,
            ..CardSpec::default()
        },
        CardSpec {
            serial: fresh_serial(),
            touch_delay: CARD_TIME,
            ..CardSpec::default()
        },
    ]);
    let digest = Sha256Digest::of(b"benchmark payload");
    let card = in_process(dev.serial(1), digest.as_bytes());

    let mut agent = Agent::start(&dev);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let keys: Vec<AgentKey> = rt.block_on(async {
        let client = agent.client().await;
        let mut keys = Vec::new();
        for (i, touch) in [
            (0, v1::TouchPolicy::Never),
            (1, v1::TouchPolicy::Never),
            (0, v1::TouchPolicy::Always),
            (1, v1::TouchPolicy::Always),
        ] {
            let mut key = client
                .generate(v1::GenerateKeyRequest {
                    name: format!("bench-{}-{i}", keys.len()),
                    device: dev.serial(i).to_string(),
                    touch_policy: touch as i32,
                    ..Default::default()
                })
                .await
                .expect("generate");
            // The card "touches" itself; no prompt per signature on the benchmark's stderr.
            key.touch = v1::TouchPolicy::Never;
            keys.push(key);
        }
        keys
    });
    let agent_times = rt.block_on(over_socket(&agent, &keys[0], &digest));
    let one = rt.block_on(throughput(&agent, &keys[..1], &digest));
    let two = rt.block_on(throughput(&agent, &keys[..2], &digest));
    let one_real = rt.block_on(throughput(&agent, &keys[2..3], &digest));
    let two_real = rt.block_on(throughput(&agent, &keys[2..4], &digest));
    agent.stop();

    let (cm, am) = (percentile(&card, 50.0), percentile(&agent_times, 50.0));
    let overhead = am.saturating_sub(cm);
    println!(
        "tufad Sign on a simulated YubiKey ({SAMPLES} sequential signatures, ECDSA P-256, pcscd + vpcd)"
    );
    println!(
        "  card alone (yubikey crate in-process) median {:>8.2} ms   p99 {:>8.2} ms",
        ms(cm),
        ms(percentile(&card, 99.0))
    );
    println!(
        "  through the agent (gRPC, UDS)         median {:>8.2} ms   p99 {:>8.2} ms",
        ms(am),
        ms(percentile(&agent_times, 99.0))
    );
    println!(
        "  agent overhead (card time subtracted) median {:>8.2} ms   ({:.1}% of the card's time)",
        ms(overhead),
        overhead.as_secs_f64() / cm.as_secs_f64() * 100.0
    );
    println!(
        "tufad Sign throughput ({}s per run, {CLIENTS} clients, one connection each)",
        WINDOW.as_secs()
    );
    println!("  simulator as is (card time {:.2} ms)", ms(cm));
    println!("    1 card   {one:>8.1} signatures/s");
    println!(
        "    2 cards  {two:>8.1} signatures/s   {:.2}x one card",
        two / one
    );
    println!(
        "  card time modelled as {} ms per signature",
        CARD_TIME.as_millis()
    );
    println!("    1 card   {one_real:>8.1} signatures/s");
    println!(
        "    2 cards  {two_real:>8.1} signatures/s   {:.2}x one card",
        two_real / one_real
    );
}

/// The card's own time per signature: the crate signing in-process, PIN verified once.
fn in_process(serial: u32, digest: &[u8; 32]) -> Vec<Duration> {
    let mut yk = open(serial);
    let slot = SlotId::Retired(RetiredSlotId::R20);
    yk.verify_pin(PIN.as_bytes()).expect("PIN");
    let mgm = yubikey::MgmKey::get_default(&yk).expect("default key");
    yk.authenticate(&mgm).expect("management key");
    yubikey::piv::generate(
        &mut yk,
        slot,
        AlgorithmId::EccP256,
        yubikey::PinPolicy::Never,
        yubikey::TouchPolicy::Never,
    )
    .expect("generate");
    let mut times = Vec::with_capacity(SAMPLES);
    for i in 0..WARMUP + SAMPLES {
        let t = Instant::now();
        yubikey::piv::sign_data(&mut yk, digest, AlgorithmId::EccP256, slot).expect("sign");
        if i >= WARMUP {
            times.push(t.elapsed());
        }
    }
    times
}

async fn over_socket(agent: &Agent, key: &AgentKey, digest: &Sha256Digest) -> Vec<Duration> {
    let client = agent.client().await;
    let ctx = SignContext::default();
    let mut times = Vec::with_capacity(SAMPLES);
    for i in 0..WARMUP + SAMPLES {
        let t = Instant::now();
        client.sign_digest(key, *digest, &ctx).await.expect("sign");
        if i >= WARMUP {
            times.push(t.elapsed());
        }
    }
    times
}

/// Signatures per second with `CLIENTS` clients spread over `keys` (one key per card).
async fn throughput(agent: &Agent, keys: &[AgentKey], digest: &Sha256Digest) -> f64 {
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for c in 0..CLIENTS {
        let client = agent.client().await;
        let key = keys[c % keys.len()].clone();
        let (stop, count, digest) = (Arc::clone(&stop), Arc::clone(&count), *digest);
        tasks.push(tokio::spawn(async move {
            let ctx = SignContext::default();
            while !stop.load(Ordering::Relaxed) {
                client.sign_digest(&key, digest, &ctx).await.expect("sign");
                count.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    let start = Instant::now();
    tokio::time::sleep(WINDOW).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.expect("client");
    }
    count.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64()
}

fn percentile(samples: &[Duration], p: f64) -> Duration {
    let mut s = samples.to_vec();
    s.sort();
    s[((s.len() - 1) as f64 * p / 100.0).round() as usize]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
