//! A neighbour of the agent, for the hardening tests: run as another uid (through `setpriv`), it
//! holds connections to the agent's socket or floods it with signatures, and prints what it saw
//! as one JSON line on stdout.
//!
//! - `neighbour hold SOCKET COUNT HOLD_MS`: opens up to COUNT connections that never speak
//!   (it stops at the first connect that takes over 500 ms: the agent is not accepting), prints
//!   `holding N`, keeps them for HOLD_MS, then prints `{"connected", "connect_timeouts",
//!   "closed_ms", "open"}`: when the agent closed each connection it closed, in ms after it was
//!   opened, and how many were still open at the end.
//! - `neighbour flood SOCKET KEY CONNS STREAMS MS`: CONNS connections, each with STREAMS
//!   concurrent loops of Sign with KEY, for MS; prints `{"ok", "failed", "first_error"}`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::AsyncReadExt as _;
use tokio::net::UnixStream;
use tufa_client::agent::{AgentClient, SignContext};

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize| -> &str {
        args.get(i)
            .map(String::as_str)
            .unwrap_or_else(|| panic!("usage: see the doc comment of tests/src/bin/neighbour.rs"))
    };
    let num = |i: usize| -> u64 { arg(i).parse().expect("a number") };
    match arg(0) {
        "hold" => hold(PathBuf::from(arg(1)), num(2), num(3)).await,
        "flood" => flood(PathBuf::from(arg(1)), arg(2), num(3), num(4), num(5)).await,
        other => panic!("unknown mode {other}"),
    }
}

async fn hold(socket: PathBuf, count: u64, hold_ms: u64) {
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut watchers = Vec::new();
    let mut connect_timeouts = 0;
    for _ in 0..count {
        let connect = UnixStream::connect(&socket);
        let stream = match tokio::time::timeout(Duration::from_millis(500), connect).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => panic!("connect {}: {e}", socket.display()),
            Err(_) => {
                connect_timeouts += 1;
                break;
            }
        };
        watchers.push(tokio::spawn(watch(stream, stopped.clone())));
    }
    println!("holding {}", watchers.len());
    tokio::time::sleep(Duration::from_millis(hold_ms)).await;
    let _ = stop.send(true);
    let connected = watchers.len();
    let mut closed_ms = Vec::new();
    let mut open = 0;
    for w in watchers {
        match w.await.expect("watcher") {
            Some(ms) => closed_ms.push(ms),
            None => open += 1,
        }
    }
    println!(
        "{}",
        serde_json::json!({
            "connected": connected,
            "connect_timeouts": connect_timeouts,
            "closed_ms": closed_ms,
            "open": open,
        })
    );
}

/// Reads (and drops) what the agent sends; returns when the agent closed the connection (ms
/// after it was opened), or `None` if it was still open when the hold ended.
async fn watch(
    mut stream: UnixStream,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> Option<u64> {
    let opened = Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        tokio::select! {
            _ = stop.wait_for(|s| *s) => return None,
            r = stream.read(&mut buf) => match r {
                Ok(0) | Err(_) => return Some(opened.elapsed().as_millis() as u64),
                Ok(_) => {}
            },
        }
    }
}

async fn flood(socket: PathBuf, key: &str, conns: u64, streams: u64, ms: u64) {
    let first = AgentClient::connect(&socket).await.expect("connect");
    let key = Arc::new(first.key(key).await.expect("the key"));
    let until = Instant::now() + Duration::from_millis(ms);
    let mut tasks = Vec::new();
    for c in 0..conns {
        let client = AgentClient::connect(&socket).await.expect("connect");
        for s in 0..streams {
            let (client, key) = (client.clone(), Arc::clone(&key));
            tasks.push(tokio::spawn(async move {
                let ctx = SignContext {
                    gun: "example.com/flood".into(),
                    role: "targets".into(),
                };
                let (mut ok, mut failed, mut first_error) = (0u64, 0u64, None);
                let mut i = 0u64;
                while Instant::now() < until {
                    let data = format!("flood {c}/{s}/{i}");
                    match client.sign(&key, data.as_bytes(), &ctx).await {
                        Ok(_) => ok += 1,
                        Err(e) => {
                            failed += 1;
                            first_error.get_or_insert(e.to_string());
                        }
                    }
                    i += 1;
                }
                (ok, failed, first_error)
            }));
        }
    }
    let (mut ok, mut failed, mut first_error) = (0, 0, None);
    for t in tasks {
        let (o, f, e) = t.await.expect("flood task");
        ok += o;
        failed += f;
        first_error = first_error.or(e);
    }
    println!(
        "{}",
        serde_json::json!({"ok": ok, "failed": failed, "first_error": first_error})
    );
}
