//! A fake HTTP server for unit tests of the notary and registry clients.

use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One request as the fake server saw it.
#[derive(Debug, Clone)]
pub(crate) struct Seen {
    /// The request line, e.g. `GET /v2/a/manifests/v1 HTTP/1.1`.
    pub line: String,
    /// The `Authorization` header.
    pub authorization: Option<String>,
    /// The `Accept` header.
    pub accept: Option<String>,
    /// The body as text.
    pub body: String,
}

/// Status, extra headers, body. `Content-Length` is the body's unless a header sets it; the
/// answer to a HEAD has no body. A [`TRICKLE`] header (not sent) sends the whole answer one byte
/// every that many milliseconds.
pub(crate) type Answer = (u16, Vec<(&'static str, String)>, String);

/// The pseudo-header that makes the server trickle its answer (milliseconds per byte).
pub(crate) const TRICKLE: &str = "x-test-trickle-ms";

/// The requests a fake server has seen.
pub(crate) type SeenLog = Arc<Mutex<Vec<Seen>>>;

/// A plain-HTTP server on loopback that answers with `handler` (given its base URL and the
/// request) and records every request.
pub(crate) async fn fake_server(
    handler: impl Fn(&str, &Seen) -> Answer + Send + Sync + 'static,
) -> (String, SeenLog) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (handler, log, base2) = (Arc::new(handler), seen.clone(), base.clone());
    tokio::spawn(async move {
        loop {
            let (mut conn, _) = listener.accept().await.unwrap();
            let (handler, log, base) = (handler.clone(), log.clone(), base2.clone());
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let head_end = loop {
                    let mut chunk = [0u8; 4096];
                    let n = conn.read(&mut chunk).await.unwrap();
                    buf.extend_from_slice(&chunk[..n]);
                    if buf.first() == Some(&0x16) {
                        // A TLS handshake: hang up, as a plain-HTTP server would fail it.
                        return;
                    }
                    if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        break i + 4;
                    }
                    if n == 0 {
                        // A client that gave up (e.g. a TLS hello it cannot finish).
                        return;
                    }
                };
                let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
                let header = |name: &str| {
                    head.lines().find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
                    })
                };
                let len: usize = header("content-length").map_or(0, |v| v.parse().unwrap());
                while buf.len() < head_end + len {
                    let mut chunk = [0u8; 4096];
                    let n = conn.read(&mut chunk).await.unwrap();
                    buf.extend_from_slice(&chunk[..n]);
                }
                let req = Seen {
                    line: head.lines().next().unwrap().to_owned(),
                    authorization: header("authorization"),
                    accept: header("accept"),
                    body: String::from_utf8_lossy(&buf[head_end..]).to_string(),
                };
                let (status, mut headers, body) = handler(&base, &req);
                let trickle = headers
                    .iter()
                    .position(|(k, _)| *k == TRICKLE)
                    .map(|i| headers.remove(i).1.parse::<u64>().unwrap());
                let is_head = req.line.starts_with("HEAD ");
                log.lock().unwrap().push(req);
                let mut out = format!("HTTP/1.1 {status} X\r\nConnection: close\r\n");
                if !headers
                    .iter()
                    .any(|(k, _)| k.eq_ignore_ascii_case("content-length"))
                {
                    out.push_str(&format!("Content-Length: {}\r\n", body.len()));
                }
                for (k, v) in headers {
                    out.push_str(&format!("{k}: {v}\r\n"));
                }
                out.push_str("\r\n");
                if !is_head {
                    out.push_str(&body);
                }
                match trickle {
                    // A client that gave up closes the connection: stop there.
                    Some(ms) => {
                        for byte in out.as_bytes() {
                            tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
                            if conn.write_all(&[*byte]).await.is_err() {
                                return;
                            }
                        }
                    }
                    None => conn.write_all(out.as_bytes()).await.unwrap(),
                }
            });
        }
    });
    (base, seen)
}
