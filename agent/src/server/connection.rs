//! Accepting connections: who may connect is checked at accept, before any HTTP/2, so a
//! stranger's connection costs the agent one accept and one close; each uid may hold a few
//! connections at most; running out of file descriptors makes the loop wait, never spin; and a
//! connection from which nothing arrives for the idle timeout is closed.
//!
//! So that a person who reached the wrong agent reads why, a few refused connections at a time
//! ([`COURTESIES`], for at most [`COURTESY_TIME`]) are served anyway, with every call refused
//! by the peer check ([`ConnInfo::refusal`]); all others are closed unanswered.

use std::collections::HashMap;
use std::future::Future as _;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio::time::Sleep;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::server::{Connected, UdsConnectInfo};
use tonic::Code;

/// The first pause after a failed accept; it doubles up to [`MAX_ACCEPT_PAUSE`].
const ACCEPT_PAUSE: Duration = Duration::from_millis(20);
/// The longest pause between accepts while they fail (descriptors run out).
const MAX_ACCEPT_PAUSE: Duration = Duration::from_secs(1);
/// How often the same kind of refusal is logged at most (a flood must not flood the log).
const WARN_EVERY: Duration = Duration::from_secs(10);
/// Refused connections answered at once, each for at most [`COURTESY_TIME`]; beyond that (a
/// flood) they are closed at accept, unanswered.
pub const COURTESIES: usize = 8;
/// How long a refused connection is kept for its client to read the refusal.
pub const COURTESY_TIME: Duration = Duration::from_secs(1);

/// Who may connect, and how much each may hold.
#[derive(Clone, Debug)]
pub struct Admission {
    /// The agent's own uid and the configured others.
    pub allowed: Vec<u32>,
    /// Open connections per uid.
    pub per_uid: usize,
    /// How long a connection may stay silent.
    pub idle: Duration,
}

/// Accepts on `listener` until the returned stream is dropped; yields only admitted
/// connections.
pub fn accept(
    listener: UnixListener,
    admission: Admission,
) -> ReceiverStream<io::Result<Connection>> {
    let (tx, rx) = mpsc::channel(1);
    tokio::spawn(accept_loop(listener, admission, tx));
    ReceiverStream::new(rx)
}

async fn accept_loop(
    listener: UnixListener,
    admission: Admission,
    tx: mpsc::Sender<io::Result<Connection>>,
) {
    let open = Arc::new(Mutex::new(HashMap::new()));
    let courtesies = Arc::new(Semaphore::new(COURTESIES));
    let (mut refused, mut capped) = (Throttle::default(), Throttle::default());
    let mut pause = ACCEPT_PAUSE;
    let mut starved = false;
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            () = tx.closed() => return,
        };
        let stream = match accepted {
            Ok((stream, _)) => {
                if starved {
                    tracing::info!("accepting connections again");
                    starved = false;
                }
                pause = ACCEPT_PAUSE;
                stream
            }
            Err(e) => {
                if is_scarce(&e) && !starved {
                    tracing::warn!(error = %e, "out of file descriptors: new connections wait until some close (raise the agent's limit, e.g. LimitNOFILE=, if this lasts)");
                    starved = true;
                } else if !is_scarce(&e) {
                    tracing::debug!(error = %e, "accept failed");
                }
                // The pending connection keeps the socket readable: without a pause this loop
                // would spin.
                tokio::select! {
                    () = tokio::time::sleep(pause) => {}
                    () = tx.closed() => return,
                }
                pause = (pause * 2).min(MAX_ACCEPT_PAUSE);
                continue;
            }
        };
        // Dropping a stream closes it, before it has read a byte.
        let Ok(cred) = stream.peer_cred() else {
            tracing::debug!("closed a connection whose peer credentials cannot be read");
            continue;
        };
        let uid = cred.uid();
        let connection = if !admission.allowed.contains(&uid) {
            if let Some(more) = refused.due() {
                tracing::warn!(pid = ?cred.pid(), refused_since_last = more, "refused a connection from uid {uid}: only the agent's own user and the uids in allowed_uids may connect");
            }
            let why = format!("uid {uid} may not use this agent: only its own user and the uids in allowed_uids may");
            let Some(c) = Connection::refused(stream, Code::PermissionDenied, why, &courtesies)
            else {
                continue;
            };
            c
        } else if let Some(slot) = Slot::take(&open, uid, admission.per_uid) {
            Connection::new(stream, slot, admission.idle)
        } else {
            if let Some(more) = capped.due() {
                tracing::warn!(refused_since_last = more, "uid {uid} already holds {} connections (limits.connections_per_uid): closed a new one", admission.per_uid);
            }
            let why = format!("uid {uid} already holds {} connections to this agent (limits.connections_per_uid): close some first", admission.per_uid);
            let Some(c) = Connection::refused(stream, Code::ResourceExhausted, why, &courtesies)
            else {
                continue;
            };
            c
        };
        if tx.send(Ok(connection)).await.is_err() {
            return;
        }
    }
}

/// Out of descriptors or memory: waiting helps, retrying at once does not.
pub(crate) fn is_scarce(e: &io::Error) -> bool {
    use rustix::io::Errno;
    e.raw_os_error().is_some_and(|n| {
        [Errno::MFILE, Errno::NFILE, Errno::NOBUFS, Errno::NOMEM]
            .iter()
            .any(|x| x.raw_os_error() == n)
    })
}

/// Lets a warning through at most once per [`WARN_EVERY`], counting the ones held back.
#[derive(Default)]
pub(crate) struct Throttle {
    last: Option<Instant>,
    held_back: u64,
}

impl Throttle {
    /// `Some(held back since the last one)` when a warning is due.
    pub(crate) fn due(&mut self) -> Option<u64> {
        if self.last.is_some_and(|t| t.elapsed() < WARN_EVERY) {
            self.held_back += 1;
            return None;
        }
        self.last = Some(Instant::now());
        Some(std::mem::take(&mut self.held_back))
    }
}

/// One of a uid's connections; gives its place back when the connection closes.
struct Slot {
    uid: u32,
    open: Arc<Mutex<HashMap<u32, usize>>>,
}

impl Slot {
    fn take(open: &Arc<Mutex<HashMap<u32, usize>>>, uid: u32, max: usize) -> Option<Self> {
        let mut counts = open.lock().unwrap_or_else(|p| p.into_inner());
        let n = counts.entry(uid).or_default();
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(Self {
            uid,
            open: Arc::clone(open),
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut counts = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = counts.get_mut(&self.uid) {
            *n -= 1;
            if *n == 0 {
                counts.remove(&self.uid);
            }
        }
    }
}

/// An admitted connection: the stream, its idle deadline, and its uid's slot; or a refused
/// one, answered for a moment.
pub struct Connection {
    stream: UnixStream,
    idle: Duration,
    // Moved forward by every read; hyper's keepalive pings make live clients answer in time.
    deadline: Pin<Box<Sleep>>,
    // A refused connection's end, however busy it is.
    expires: Option<Pin<Box<Sleep>>>,
    refusal: Option<Refusal>,
    _slot: Option<Slot>,
    _courtesy: Option<OwnedSemaphorePermit>,
}

/// What every call on a refused connection gets.
#[derive(Clone, Debug)]
pub struct Refusal {
    /// The gRPC code.
    pub code: Code,
    /// Why, in words.
    pub message: Arc<str>,
}

/// What the server knows of a connection: its peer, and whether it was refused.
#[derive(Clone, Debug)]
pub struct ConnInfo {
    /// The socket's peer address and credentials.
    pub uds: UdsConnectInfo,
    /// Set on a connection the agent will not serve: every call gets it.
    pub refusal: Option<Refusal>,
}

impl Connection {
    fn new(stream: UnixStream, slot: Slot, idle: Duration) -> Self {
        Self {
            stream,
            idle,
            deadline: Box::pin(tokio::time::sleep(idle)),
            expires: None,
            refusal: None,
            _slot: Some(slot),
            _courtesy: None,
        }
    }

    /// A refused connection, answered for [`COURTESY_TIME`] if one of the [`COURTESIES`] is
    /// free; `None`: close it now.
    fn refused(
        stream: UnixStream,
        code: Code,
        why: String,
        courtesies: &Arc<Semaphore>,
    ) -> Option<Self> {
        let courtesy = Arc::clone(courtesies).try_acquire_owned().ok()?;
        Some(Self {
            stream,
            idle: COURTESY_TIME,
            deadline: Box::pin(tokio::time::sleep(COURTESY_TIME)),
            expires: Some(Box::pin(tokio::time::sleep(COURTESY_TIME))),
            refusal: Some(Refusal {
                code,
                message: why.into(),
            }),
            _slot: None,
            _courtesy: Some(courtesy),
        })
    }
}

impl Connected for Connection {
    type ConnectInfo = ConnInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        ConnInfo {
            uds: self.stream.connect_info(),
            refusal: self.refusal.clone(),
        }
    }
}

impl AsyncRead for Connection {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if let Some(end) = &mut this.expires {
            if end.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "a refused connection's time is up",
                )));
            }
        }
        let before = buf.filled().len();
        match Pin::new(&mut this.stream).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    let next = tokio::time::Instant::now() + this.idle;
                    this.deadline.as_mut().reset(next);
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending => match this.deadline.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "nothing arrived for the idle timeout",
                ))),
                Poll::Pending => Poll::Pending,
            },
            other => other,
        }
    }
}

impl AsyncWrite for Connection {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_uid_gets_its_slots_back_when_connections_close() {
        let open = Arc::new(Mutex::new(HashMap::new()));
        let a = Slot::take(&open, 7, 2).unwrap();
        let _b = Slot::take(&open, 7, 2).unwrap();
        assert!(Slot::take(&open, 7, 2).is_none());
        assert!(Slot::take(&open, 8, 2).is_some());
        drop(a);
        assert!(Slot::take(&open, 7, 2).is_some());
    }

    #[test]
    fn warnings_are_throttled() {
        let mut t = Throttle::default();
        assert_eq!(t.due(), Some(0));
        assert_eq!(t.due(), None);
        assert_eq!(t.due(), None);
        t.last = Some(Instant::now() - WARN_EVERY);
        assert_eq!(t.due(), Some(2));
    }
}
