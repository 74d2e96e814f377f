//! The login and the session pool.
//!
//! PKCS#11 logs in per token and process, so one login serves every session. An "anchor"
//! session holds the login; signatures run on a small pool of sessions, each used by one
//! blocking worker at a time (a `Session` is `Send` but not `Sync`). A token that goes away
//! drops the connection (anchor, pool and handle cache) and the next call reconnects.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use cryptoki::error::{Error as CkError, RvError};
use cryptoki::object::ObjectHandle;
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use secrecy::SecretString;

use super::token::{Token, PIN_BLOCKED_FIX};
use crate::backend::TokenLocation;
use crate::error::AgentError;
use crate::keys::KeyId;
use crate::pin::{Login, LoginError, PinGate, PinOrigin};

/// A token's connection and sessions, and its PIN gate.
pub struct Sessions {
    token: Token,
    state: Mutex<State>,
}

struct State {
    link: Link,
    gate: PinGate,
}

#[derive(Default)]
struct Link {
    conn: Option<Connection>,
    // Bumped on every reconnect, so sessions of an old connection are not put back.
    generation: u64,
}

struct Connection {
    slot: Slot,
    serial: String,
    anchor: Session,
    logged_in: Option<PinOrigin>,
    idle: Vec<Session>,
    handles: HashMap<KeyId, ObjectHandle>,
}

/// A session taken from the pool for one operation.
pub struct Lease {
    /// The session.
    pub session: Session,
    generation: u64,
}

impl Sessions {
    /// Connects to the token once, so a missing token stops the agent at start-up.
    pub fn open(token: Token) -> Result<Self, AgentError> {
        let gate = PinGate::new(
            token.config.pin.clone(),
            token.describe(),
            token.config.token.clone(),
        );
        let sessions = Self {
            token,
            state: Mutex::new(State {
                link: Link::default(),
                gate,
            }),
        };
        sessions.lock_state().link.connect(&sessions.token)?;
        Ok(sessions)
    }

    /// The token.
    pub fn token(&self) -> &Token {
        &self.token
    }

    fn lock_state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves nothing half-done that matters here.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Where the token is, with its serial while connected.
    pub fn location(&self) -> TokenLocation {
        let serial = self
            .lock_state()
            .link
            .conn
            .as_ref()
            .map(|c| c.serial.clone())
            .unwrap_or_default();
        self.token.location(serial)
    }

    /// Runs `f` with the token's PIN gate and login, under the lock.
    pub fn gated<R>(&self, f: impl FnOnce(&mut PinGate, &mut dyn Login) -> R) -> R {
        let mut st = self.lock_state();
        let State { link, gate } = &mut *st;
        f(
            gate,
            &mut TokenLogin {
                token: &self.token,
                link,
            },
        )
    }

    /// Takes a session from the pool, or opens one; `login` logs in first if needed.
    pub fn lease(&self, login: bool) -> Result<Lease, AgentError> {
        let mut st = self.lock_state();
        let State { link, gate } = &mut *st;
        if login {
            gate.ensure(
                &mut TokenLogin {
                    token: &self.token,
                    link,
                },
                false,
            )?;
        }
        let generation = link.generation;
        let conn = link.connect(&self.token)?;
        let session = match conn.idle.pop() {
            Some(s) => s,
            None => {
                let slot = conn.slot;
                self.token
                    .open_session(slot)
                    .map_err(|e| link.fail(&self.token, "opening a session", e))?
            }
        };
        Ok(Lease {
            session,
            generation,
        })
    }

    /// Puts a session back, unless the pool is full or it belongs to an old connection.
    pub fn release(&self, lease: Lease) {
        let mut st = self.lock_state();
        if st.link.generation != lease.generation {
            return;
        }
        if let Some(conn) = st.link.conn.as_mut() {
            if conn.idle.len() < self.token.config.sessions {
                conn.idle.push(lease.session);
            }
        }
    }

    /// Maps a failed operation's error; the session goes back to the pool unless the token is
    /// gone.
    pub fn settle(&self, lease: Lease, operation: &str, e: CkError) -> AgentError {
        let mut st = self.lock_state();
        let err = if st.link.generation == lease.generation {
            st.link.fail(&self.token, operation, e)
        } else {
            self.token.classify(operation, e)
        };
        drop(st);
        if !matches!(err, AgentError::Unavailable { .. }) {
            self.release(lease);
        }
        err
    }

    /// Runs `f` on a leased session; a lost token drops the connection and the session.
    pub fn with_session<T>(
        &self,
        login: bool,
        operation: &str,
        f: impl FnOnce(&Session) -> Result<T, CkError>,
    ) -> Result<T, AgentError> {
        let lease = self.lease(login)?;
        match f(&lease.session) {
            Ok(v) => {
                self.release(lease);
                Ok(v)
            }
            Err(e) => Err(self.settle(lease, operation, e)),
        }
    }

    /// The private key handle found for a key on this connection.
    pub fn cached_handle(&self, id: &KeyId) -> Option<ObjectHandle> {
        self.lock_state()
            .link
            .conn
            .as_ref()
            .and_then(|c| c.handles.get(id).copied())
    }

    /// Remembers a key's private key handle for this connection.
    pub fn remember_handle(&self, id: &KeyId, handle: ObjectHandle) {
        if let Some(c) = self.lock_state().link.conn.as_mut() {
            c.handles.insert(*id, handle);
        }
    }

    /// Forgets a key's handle (the key was deleted, or the handle went stale).
    pub fn forget_handle(&self, id: &KeyId) {
        if let Some(c) = self.lock_state().link.conn.as_mut() {
            c.handles.remove(id);
        }
    }
}

impl Link {
    fn connect(&mut self, token: &Token) -> Result<&mut Connection, AgentError> {
        if self.conn.is_none() {
            let (slot, serial) = token.find_slot()?;
            let anchor = token
                .open_session(slot)
                .map_err(|e| token.classify("opening a session", e))?;
            self.generation += 1;
            self.conn = Some(Connection {
                slot,
                serial,
                anchor,
                logged_in: None,
                idle: Vec::new(),
                handles: HashMap::new(),
            });
            tracing::info!(token = %token.config.token, "connected to PKCS#11 token");
        }
        self.conn
            .as_mut()
            .ok_or_else(|| AgentError::Internal("connection vanished".into()))
    }

    /// Maps an error and, when the token is gone, drops the connection so the next call
    /// reconnects; a lost login is forgotten.
    fn fail(&mut self, token: &Token, operation: &str, e: CkError) -> AgentError {
        let err = token.classify(operation, e);
        match &err {
            AgentError::Unavailable { .. } => self.conn = None,
            AgentError::Locked { .. } => {
                if let Some(c) = self.conn.as_mut() {
                    c.logged_in = None;
                }
            }
            _ => {}
        }
        err
    }
}

/// The token's login, as the PIN gate sees it.
struct TokenLogin<'a> {
    token: &'a Token,
    link: &'a mut Link,
}

impl Login for TokenLogin<'_> {
    fn login(&self) -> Option<PinOrigin> {
        self.link.conn.as_ref().and_then(|c| c.logged_in)
    }

    fn log_in(&mut self, pin: &SecretString, origin: PinOrigin) -> Result<(), LoginError> {
        let token = self.token;
        let conn = self.link.connect(token)?;
        match conn.anchor.login(UserType::User, Some(pin)) {
            // Login is per token and process: another session's login counts.
            Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => {
                conn.logged_in = Some(origin);
                Ok(())
            }
            Err(CkError::Pkcs11(RvError::PinIncorrect, _)) => {
                let retries = token.retries(conn.slot);
                tracing::warn!(token = %token.config.token, "token refused the PIN");
                Err(LoginError::Refused(AgentError::WrongPin {
                    device: token.describe(),
                    retries,
                }))
            }
            Err(CkError::Pkcs11(RvError::PinLocked, _)) => {
                Err(LoginError::Refused(AgentError::PinBlocked {
                    device: token.describe(),
                    fix: PIN_BLOCKED_FIX.into(),
                }))
            }
            Err(CkError::Pkcs11(RvError::PinLenRange, _)) => {
                Err(LoginError::Refused(AgentError::InvalidArgument(format!(
                    "the PIN has a length {} does not accept",
                    token.describe()
                ))))
            }
            Err(e) => Err(self.link.fail(token, "logging in", e).into()),
        }
    }

    fn log_out(&mut self) {
        if let Some(conn) = self.link.conn.as_mut() {
            if conn.logged_in.take().is_some() {
                let _ = conn.anchor.logout();
            }
            // Sessions and handles of the ended login are not reused.
            conn.idle.clear();
            conn.handles.clear();
        }
    }
}
