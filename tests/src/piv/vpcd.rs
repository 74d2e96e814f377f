//! The link to vsmartcard's vpcd reader driver inside pcscd: the card connects to the reader's
//! TCP port on loopback; every message either way is a big-endian u16 length and its bytes.
//! One-byte messages from vpcd are control messages (power off, power on, reset, get ATR).

use std::io::{self, Read as _, Write as _};
use std::net::{Shutdown, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use super::card::PivCard;

const POWER_OFF: u8 = 0x00;
const POWER_ON: u8 = 0x01;
const RESET: u8 = 0x02;
const GET_ATR: u8 = 0x04;

/// A card connected to one vpcd reader, served by its own thread.
pub(crate) struct Link {
    stream: TcpStream,
    thread: Option<JoinHandle<()>>,
}

impl Link {
    /// Connects to vpcd on `127.0.0.1:port` and serves `card` until [`Link::close`].
    pub fn connect(port: u16, card: Arc<Mutex<PivCard>>) -> io::Result<Link> {
        let stream = TcpStream::connect(("127.0.0.1", port))?;
        stream.set_nodelay(true)?;
        let reader = stream.try_clone()?;
        let thread = std::thread::Builder::new()
            .name(format!("piv-card-{port}"))
            .spawn(move || serve(reader, &card))?;
        Ok(Link {
            stream,
            thread: Some(thread),
        })
    }

    /// Closes the connection, which vpcd (and so pcscd) sees as the card's removal.
    pub fn close(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        let _ = self.stream.shutdown(Shutdown::Both);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Answers vpcd until the connection closes.
fn serve(mut stream: TcpStream, card: &Mutex<PivCard>) {
    while let Ok(message) = receive(&mut stream) {
        let reply = {
            let mut card = card.lock().unwrap_or_else(|e| e.into_inner());
            match message.as_slice() {
                [POWER_OFF] | [POWER_ON] | [RESET] => {
                    card.reset_volatile();
                    continue;
                }
                [GET_ATR] => card.atr().to_vec(),
                [_] => continue,
                apdu => card.process(apdu),
            }
        };
        if send(&mut stream, &reply).is_err() {
            return;
        }
    }
}

/// One framed message. vpcd 0.8 sends the length and the payload in two writes without
/// TCP_NODELAY, so the card acknowledges at once (TCP_QUICKACK, which is not sticky, before
/// every read); otherwise each message waits ~40 ms for a delayed ACK.
fn receive(stream: &mut TcpStream) -> io::Result<Vec<u8>> {
    let mut len = [0u8; 2];
    read_quickly(stream, &mut len)?;
    let mut message = vec![0u8; usize::from(u16::from_be_bytes(len))];
    read_quickly(stream, &mut message)?;
    Ok(message)
}

fn read_quickly(stream: &mut TcpStream, mut buf: &mut [u8]) -> io::Result<()> {
    while !buf.is_empty() {
        rustix::net::sockopt::set_tcp_quickack(&*stream, true)?;
        match stream.read(buf)? {
            0 => return Err(io::ErrorKind::UnexpectedEof.into()),
            n => buf = &mut buf[n..],
        }
    }
    Ok(())
}

/// Length and payload in one write.
fn send(stream: &mut TcpStream, payload: &[u8]) -> io::Result<()> {
    let len = u16::try_from(payload.len()).map_err(|_| io::ErrorKind::InvalidInput)?;
    let mut frame = Vec::with_capacity(payload.len() + 2);
    frame.extend_from_slice(&len.to_be_bytes());
    frame.extend_from_slice(payload);
    stream.write_all(&frame)
}
