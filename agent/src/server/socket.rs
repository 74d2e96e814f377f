//! The socket: its directory and modes, stale and live sockets, the inode-guarded removal, and
//! the peer-credential check every call passes.
//!
//! The socket sits in a directory only the agent's user can enter (0700) and is itself 0600, but
//! file modes are not the guard: every connection is checked at accept ([`super::connection`])
//! and every call again, by the caller's uid from the socket's peer credentials, against the
//! agent's own uid and the configured allow-list.

use std::io;
use std::os::unix::fs::{
    DirBuilderExt as _, FileTypeExt as _, MetadataExt as _, PermissionsExt as _,
};
use std::path::{Path, PathBuf};

use tokio::net::UnixListener;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Status};

use super::connection::{self, Admission, ConnInfo, Connection};
use crate::audit::Peer;

/// Why the agent cannot listen where it was told to.
#[derive(Debug, thiserror::Error)]
pub enum SocketError {
    /// Another agent answers on the socket.
    #[error("an agent is already listening on {0}: stop it first, or choose another --socket")]
    AlreadyRunning(PathBuf),
    /// The socket path or its directory is unsafe or unusable.
    #[error("socket {path}: {message}")]
    Unusable {
        /// The socket path.
        path: PathBuf,
        /// What is wrong and what to do.
        message: String,
    },
}

/// A bound socket: the listener, and the file to remove when the agent stops.
pub struct Socket {
    listener: UnixListener,
    file: SocketFile,
}

/// The socket's file, as bound: removed only if it is still the one the agent made.
pub struct SocketFile {
    path: PathBuf,
    inode: Option<u64>,
}

/// Makes the socket's directory, replaces a stale socket (never a live one) and binds.
///
/// Alone, the agent uses a private directory (0700) and a 0600 socket. With other uids allowed
/// (`shared`), they must be able to reach the socket: the directory may be entered (0711) but
/// written by no one else, the socket is 0666, and the peer check is what keeps strangers out.
/// The directory is checked without following a symlink, and so is the one above it: no one
/// else may be able to swap either. Call it before opening devices, so a second agent stops
/// before it touches a token.
pub fn bind(path: &Path, shared: bool) -> Result<Socket, SocketError> {
    let err = |message: String| SocketError::Unusable {
        path: path.to_owned(),
        message,
    };
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .ok_or_else(|| err("give the socket a path inside a directory".into()))?;
    let uid = rustix::process::getuid().as_raw();
    let parent = dir
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    // The directory above: followed (it may be /var/run -> /run), but only root or the agent's
    // user may change it, or, if others may write it, only with the sticky bit (/tmp).
    if let Ok(above) = std::fs::metadata(parent) {
        if above.uid() != uid && above.uid() != 0 {
            return Err(err(format!(
                "directory {} belongs to uid {}, who could replace {}: put the socket under a directory of root or of the agent's uid {uid}",
                parent.display(),
                above.uid(),
                dir.display()
            )));
        }
        if above.mode() & 0o022 != 0 && above.mode() & 0o1000 == 0 {
            return Err(err(format!(
                "directory {} has mode {:o} without the sticky bit, so others could replace {}: `chmod go-w {}` (or +t), or choose another --socket",
                parent.display(),
                above.mode() & 0o7777,
                dir.display(),
                parent.display()
            )));
        }
    }
    if std::fs::symlink_metadata(dir).is_err() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(if shared { 0o711 } else { 0o700 })
            .create(dir)
            .map_err(|e| err(format!("cannot create directory {}: {e}", dir.display())))?;
    }
    let meta =
        std::fs::symlink_metadata(dir).map_err(|e| err(format!("{}: {e}", dir.display())))?;
    if meta.file_type().is_symlink() {
        return Err(err(format!(
            "{} is a symbolic link: give the real directory (a link could be pointed elsewhere later)",
            dir.display()
        )));
    }
    if !meta.is_dir() {
        return Err(err(format!(
            "{} is not a directory: choose another --socket",
            dir.display()
        )));
    }
    if meta.uid() != uid {
        return Err(err(format!(
            "directory {} belongs to uid {}, not to the agent's uid {uid}: choose a directory of your own",
            dir.display(),
            meta.uid()
        )));
    }
    let (forbidden, wanted) = if shared {
        (0o022, "711")
    } else {
        (0o077, "700")
    };
    if meta.mode() & forbidden != 0 {
        return Err(err(format!(
            "directory {} has mode {:o}; the socket needs a directory only its owner can change: `chmod {wanted} {}` or choose another --socket",
            dir.display(),
            meta.mode() & 0o777,
            dir.display()
        )));
    }
    if let Ok(existing) = std::fs::symlink_metadata(path) {
        if !existing.file_type().is_socket() {
            return Err(err(
                "exists and is not a socket: remove it or choose another --socket".into(),
            ));
        }
        match std::os::unix::net::UnixStream::connect(path) {
            Ok(_) => return Err(SocketError::AlreadyRunning(path.to_owned())),
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                tracing::info!(socket = %path.display(), "removing a stale socket");
                std::fs::remove_file(path)
                    .map_err(|e| err(format!("cannot remove the stale socket: {e}")))?;
            }
            Err(e) => {
                return Err(err(format!(
                    "cannot tell whether an agent is listening: {e}"
                )))
            }
        }
    }
    let listener = UnixListener::bind(path).map_err(|e| err(format!("cannot listen: {e}")))?;
    let mode = if shared { 0o666 } else { 0o600 };
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| err(format!("cannot set mode {mode:o}: {e}")))?;
    let inode = std::fs::metadata(path).map(|m| m.ino()).ok();
    Ok(Socket {
        listener,
        file: SocketFile {
            path: path.to_owned(),
            inode,
        },
    })
}

impl Socket {
    /// The stream of admitted connections (peer checked, capped per uid, with an idle
    /// deadline), and the file to remove once they are served.
    pub fn incoming(
        self,
        admission: Admission,
    ) -> (ReceiverStream<io::Result<Connection>>, SocketFile) {
        (connection::accept(self.listener, admission), self.file)
    }

    /// Stops listening and removes the socket (the agent could not start).
    pub fn remove(self) {
        drop(self.listener);
        self.file.remove();
    }
}

impl SocketFile {
    /// Removes the socket, but only if it is still ours (nobody replaced it meanwhile).
    pub fn remove(self) {
        if std::fs::metadata(&self.path).map(|m| m.ino()).ok() == self.inode {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Who may call: the agent's own uid and the configured others.
#[derive(Clone, Debug)]
pub struct PeerCheck {
    allowed: Vec<u32>,
}

impl PeerCheck {
    /// The agent's own uid and `others`.
    pub fn new(others: &[u32]) -> Self {
        let mut allowed = others.to_vec();
        allowed.push(rustix::process::getuid().as_raw());
        Self { allowed }
    }

    /// The uids allowed.
    pub fn allowed(&self) -> &[u32] {
        &self.allowed
    }

    /// Lets a call through if the caller's uid is allowed (a tonic interceptor; connections of
    /// others are closed at accept already, this is the second guard).
    pub fn check(&self, req: Request<()>) -> Result<Request<()>, Status> {
        if let Some(r) = req
            .extensions()
            .get::<ConnInfo>()
            .and_then(|i| i.refusal.as_ref())
        {
            return Err(Status::new(r.code, &*r.message));
        }
        match peer_cred(&req) {
            Some(c) if self.allowed.contains(&c.uid()) => Ok(req),
            Some(c) => {
                tracing::warn!(uid = c.uid(), pid = ?c.pid(), "refused a caller");
                Err(Status::permission_denied(format!(
                    "uid {} may not use this agent: only its own user and the uids in allowed_uids may",
                    c.uid()
                )))
            }
            None => Err(Status::permission_denied(
                "the caller's credentials cannot be read from the socket",
            )),
        }
    }
}

/// Who called, for the audit log.
pub fn peer<T>(req: &Request<T>) -> Peer {
    let cred = peer_cred(req);
    Peer {
        uid: cred.map(|c| c.uid()),
        pid: cred.and_then(|c| c.pid()),
    }
}

fn peer_cred<T>(req: &Request<T>) -> Option<tokio::net::unix::UCred> {
    req.extensions()
        .get::<ConnInfo>()
        .and_then(|i| i.uds.peer_cred)
}
