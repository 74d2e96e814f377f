//! Agent benchmark: one Sign over the socket vs an in-process cryptoki sign on the same SoftHSM
//! token, and throughput with 1, 4 and 16 concurrent clients. Prints figures; checks nothing.
//!
//! Run with `scripts/bench.sh` (builds the release binaries first), or:
//! `cargo build --release --workspace --bins && cargo bench -p tufa-tests --bench agent`.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, ObjectClass};
use cryptoki::session::UserType;
use secrecy::SecretString;
use sha2::{Digest as _, Sha256};
use tufa_proto::v1;
use tufa_tests::{Agent, SoftHsm, SOFTHSM_MODULE};

const LATENCY_SAMPLES: usize = 3000;
const WARMUP: usize = 300;
const THROUGHPUT_WINDOW: Duration = Duration::from_secs(4);

fn main() {
    let hsm = SoftHsm::new("bench", "bench-pin-1");
    let mut agent = Agent::start(&hsm);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let key = rt.block_on(async {
        let client = agent.client().await;
        client
            .generate(v1::GenerateKeyRequest {
                name: "bench".into(),
                ..Default::default()
            })
            .await
            .expect("generate")
    });
    let digest: Vec<u8> = Sha256::digest(b"benchmark payload").to_vec();

    let inproc = in_process(&hsm, &key.id.to_string(), &digest);
    let socket = rt.block_on(over_socket(&agent, &key.id.to_string(), &digest));
    let bare = rt.block_on(bare_round_trip(&agent, &key.id.to_string()));
    let mut rates = Vec::new();
    for clients in [1usize, 4, 16] {
        rates.push((
            clients,
            rt.block_on(throughput(&agent, &key.id.to_string(), &digest, clients)),
        ));
    }
    agent.stop();

    let (im, ip) = (percentile(&inproc, 50.0), percentile(&inproc, 99.0));
    let (sm, sp) = (percentile(&socket, 50.0), percentile(&socket, 99.0));
    let (bm, bp) = (percentile(&bare, 50.0), percentile(&bare, 99.0));
    let overhead = (sm.as_secs_f64() - im.as_secs_f64()) / im.as_secs_f64() * 100.0;
    println!("tufad Sign latency ({LATENCY_SAMPLES} sequential signatures, ECDSA P-256, SoftHSM2)");
    println!(
        "  in-process cryptoki CKM_ECDSA   median {:>8.1} us   p99 {:>8.1} us",
        us(im),
        us(ip)
    );
    println!(
        "  over the socket (gRPC, UDS)     median {:>8.1} us   p99 {:>8.1} us",
        us(sm),
        us(sp)
    );
    println!(
        "  gRPC round trip, no device work median {:>8.1} us   p99 {:>8.1} us",
        us(bm),
        us(bp)
    );
    println!(
        "  socket overhead                 {overhead:>6.1}% of the in-process median (target <= 25%: {})",
        verdict(overhead <= 25.0)
    );
    let floor = (bm.as_secs_f64() / im.as_secs_f64()) * 100.0;
    println!(
        "  (the bare round trip alone is {floor:.0}% of the in-process median: the floor for any signature)"
    );
    println!(
        "tufad Sign throughput ({}s per run, one connection per client)",
        THROUGHPUT_WINDOW.as_secs()
    );
    let one = rates[0].1;
    for (clients, rate) in &rates {
        println!(
            "  {clients:>2} client(s)   {rate:>8.0} signatures/s   {:>4.2}x one client",
            rate / one
        );
    }
    let best = rates[1..]
        .iter()
        .map(|(_, r)| r / one)
        .fold(f64::MAX, f64::min);
    println!(
        "  4+ clients vs one: {best:.2}x at worst (target >= 1.7x: {})",
        verdict(best >= 1.7)
    );
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "NOT met"
    }
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn percentile(samples: &[Duration], p: f64) -> Duration {
    let mut s = samples.to_vec();
    s.sort();
    let idx = ((p / 100.0) * (s.len() - 1) as f64).round() as usize;
    s[idx]
}

/// The baseline: the same token, one logged-in session, CKM_ECDSA on the digest.
fn in_process(hsm: &SoftHsm, key_id: &str, digest: &[u8]) -> Vec<Duration> {
    // SoftHSM reads its configuration when the module is initialised.
    std::env::set_var("SOFTHSM2_CONF", hsm.conf());
    let ctx = Pkcs11::new(SOFTHSM_MODULE).expect("load SoftHSM");
    ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))
        .expect("C_Initialize");
    let slot = ctx
        .get_slots_with_token()
        .expect("slots")
        .into_iter()
        .find(|s| {
            ctx.get_token_info(*s)
                .map(|i| i.label() == hsm.label)
                .unwrap_or(false)
        })
        .expect("bench token");
    let session = ctx.open_rw_session(slot).expect("session");
    session
        .login(UserType::User, Some(&SecretString::from(hsm.pin.clone())))
        .expect("login");
    let id = hex::decode(key_id).expect("hex key id");
    let key = session
        .find_objects(&[
            Attribute::Class(ObjectClass::PRIVATE_KEY),
            Attribute::Id(id),
        ])
        .expect("find")[0];
    let mut out = Vec::with_capacity(LATENCY_SAMPLES);
    for i in 0..WARMUP + LATENCY_SAMPLES {
        let t = Instant::now();
        let sig = session.sign(&Mechanism::Ecdsa, key, digest).expect("sign");
        let d = t.elapsed();
        assert_eq!(sig.len(), 64);
        if i >= WARMUP {
            out.push(d);
        }
    }
    out
}

fn request(key_id: &str, digest: &[u8]) -> v1::SignRequest {
    v1::SignRequest {
        key: key_id.to_owned(),
        payload: Some(v1::sign_request::Payload::Sha256Digest(digest.to_vec())),
        context: Some(v1::SignContext {
            gun: "bench/repo".into(),
            role: "targets".into(),
        }),
    }
}

async fn raw_client(agent: &Agent) -> v1::agent_client::AgentClient<tonic::transport::Channel> {
    let path = agent.socket.clone();
    let channel = tonic::transport::Endpoint::try_from("http://[::]:50051")
        .expect("endpoint")
        .connect_with_connector(tower::service_fn(move |_| {
            let path = path.clone();
            async move {
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(
                    tokio::net::UnixStream::connect(path).await?,
                ))
            }
        }))
        .await
        .expect("connect");
    v1::agent_client::AgentClient::new(channel)
}

async fn over_socket(agent: &Agent, key_id: &str, digest: &[u8]) -> Vec<Duration> {
    let mut client = raw_client(agent).await;
    let mut out = Vec::with_capacity(LATENCY_SAMPLES);
    for i in 0..WARMUP + LATENCY_SAMPLES {
        let req = request(key_id, digest);
        let t = Instant::now();
        let reply = client.sign(req).await.expect("sign").into_inner();
        let d = t.elapsed();
        assert_eq!(reply.signature.len(), 64);
        if i >= WARMUP {
            out.push(d);
        }
    }
    out
}

/// A request the agent refuses before any device work: the cost of the socket and gRPC alone.
async fn bare_round_trip(agent: &Agent, key_id: &str) -> Vec<Duration> {
    let mut client = raw_client(agent).await;
    let mut out = Vec::with_capacity(LATENCY_SAMPLES);
    for i in 0..WARMUP + LATENCY_SAMPLES {
        let mut req = request(key_id, &[]);
        req.payload = Some(v1::sign_request::Payload::Data(Vec::new()));
        let t = Instant::now();
        let e = client
            .sign(req)
            .await
            .expect_err("empty payload is refused");
        let d = t.elapsed();
        assert_eq!(e.code(), tonic::Code::InvalidArgument);
        if i >= WARMUP {
            out.push(d);
        }
    }
    out
}

async fn throughput(agent: &Agent, key_id: &str, digest: &[u8], clients: usize) -> f64 {
    let count = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let mut client = raw_client(agent).await;
        let (count, stop) = (Arc::clone(&count), Arc::clone(&stop));
        let req = request(key_id, digest);
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                client.sign(req.clone()).await.expect("sign");
                count.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    // A short warm-up, then count over the window.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let start_count = count.load(Ordering::Relaxed);
    let t = Instant::now();
    tokio::time::sleep(THROUGHPUT_WINDOW).await;
    let done = count.load(Ordering::Relaxed) - start_count;
    let rate = done as f64 / t.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await.expect("client task");
    }
    rate
}
