//! The login and the session pool, within the token's limits.
//!
//! PKCS#11 logs in per token and process, so one login serves every session. An "anchor"
//! session holds the login; operations run on a pool of sessions, each used by one blocking
//! worker at a time (a `Session` is `Send` but not `Sync`), never more than the token allows
//! (`ulMaxSessionCount`): a worker waits for a free session rather than open one too many.
//!
//! Operations run side by side under a shared lock ([`Sessions::run`]); two things take it
//! alone, when no call into the module may be in flight:
//! - re-initializing the module after the token went away, so a re-created token or a
//!   restarted TPM is found again (a module may only see those after `C_Initialize`);
//! - freeing the objects the module keeps loaded on the token: a TPM holds only a few, and
//!   tpm2-pkcs11 keeps every key it used loaded until logout, so a call that fails as if out of
//!   object memory is retried once after a logout and a fresh login.
//!
//! The token is identified by its label, and from the first connection on by its serial too:
//! a token that comes back with the same label and another serial is refused (no PIN, no keys
//! go to it).

use std::collections::HashMap;
use std::sync::{Condvar, Mutex, MutexGuard, RwLock};
use std::time::Duration;

use cryptoki::error::{Error as CkError, RvError};
use cryptoki::object::ObjectHandle;
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use secrecy::{ExposeSecret as _, SecretString};

use super::token::{
    may_be_out_of_objects, Capabilities, PinFlags, Token, TokenIdentity, FINAL_TRY_FIX,
    PIN_BLOCKED_FIX,
};
use crate::backend::TokenLocation;
use crate::error::{AgentError, Retries};
use crate::keys::KeyId;
use crate::pin::{Login, LoginError, PinGate, PinOrigin, RefusalRecord};

/// How long a worker waits for one of the token's sessions before giving up.
const SESSION_WAIT: Duration = Duration::from_secs(60);

/// A token's connection and sessions, and its PIN gate.
pub struct Sessions {
    token: Token,
    state: Mutex<State>,
    // A session went back to the pool, or the connection was dropped.
    returned: Condvar,
    // Shared by every operation; taken alone to re-initialize or to free loaded objects.
    running: RwLock<()>,
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
    // What the token reported of itself when the agent first saw it (its serial above all).
    identity: Option<TokenIdentity>,
    // The token went away: re-initialize the module before looking for it again.
    stale: bool,
}

struct Connection {
    slot: Slot,
    anchor: Session,
    logged_in: Option<PinOrigin>,
    idle: Vec<Session>,
    // Sessions open besides the anchor, leased or idle.
    open: usize,
    handles: HashMap<KeyId, ObjectHandle>,
    caps: Capabilities,
}

/// A session taken from the pool for one operation.
pub struct Lease {
    /// The session.
    pub session: Session,
    generation: u64,
}

/// Why an operation failed, as [`Sessions::run`] needs to know.
pub enum Failure {
    /// The token may be out of room for loaded objects: worth one retry after freeing them.
    OutOfObjects(AgentError),
    /// What the module shows may be stale (a key the agent knew is gone: the token may have
    /// been swapped under the open sessions): worth one retry after re-initializing it.
    Stale(AgentError),
    /// Anything else.
    Other(AgentError),
}

impl From<AgentError> for Failure {
    fn from(e: AgentError) -> Self {
        Self::Other(e)
    }
}

impl Sessions {
    /// Connects to the token once, so a missing token stops the agent at start-up.
    pub fn open(token: Token) -> Result<Self, AgentError> {
        let mut link = Link::default();
        link.connect(&token)?;
        let serial = link.identity.clone().unwrap_or_default().serial;
        let record = token.config.state_dir.as_deref().map(|dir| {
            RefusalRecord::new(
                dir,
                &format!(
                    "pkcs11|{}|{}|{serial}",
                    token.config.module, token.config.token
                ),
                token.describe(),
            )
        });
        let gate = PinGate::remembering(
            token.config.pin.clone(),
            record,
            token.describe(),
            token.config.token.clone(),
        );
        Ok(Self {
            token,
            state: Mutex::new(State { link, gate }),
            returned: Condvar::new(),
            running: RwLock::new(()),
        })
    }

    /// The token.
    pub fn token(&self) -> &Token {
        &self.token
    }

    fn lock_state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves nothing half-done that matters here.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Where the token is, with its serial (and model, manufacturer) once seen.
    pub fn location(&self) -> TokenLocation {
        let identity = self.lock_state().link.identity.clone().unwrap_or_default();
        self.token.location(&identity)
    }

    /// What the token can do, connecting if needed.
    pub fn capabilities(&self) -> Result<Capabilities, AgentError> {
        self.refresh_if_stale();
        let mut st = self.lock_state();
        Ok(st.link.connect(&self.token)?.caps.clone())
    }

    /// Runs one operation beside others. After the token went away the module is
    /// re-initialized first; an operation that fails as if the token were out of object memory
    /// runs once more, alone, after the token's loaded objects were freed.
    pub fn run<T>(&self, mut op: impl FnMut() -> Result<T, Failure>) -> Result<T, AgentError> {
        self.refresh_if_stale();
        let first = {
            let _shared = self.running.read().unwrap_or_else(|p| p.into_inner());
            op()
        };
        match first {
            Ok(v) => Ok(v),
            Err(Failure::Other(e)) => Err(e),
            Err(Failure::Stale(e)) => {
                let _alone = self.running.write().unwrap_or_else(|p| p.into_inner());
                tracing::info!(token = %self.token.config.token, error = %e, "re-initializing the PKCS#11 module to look at the token afresh");
                {
                    let mut st = self.lock_state();
                    st.link.conn = None;
                    st.link.stale = false;
                    self.token.reinitialize()?;
                }
                self.returned.notify_all();
                match op() {
                    Ok(v) => Ok(v),
                    Err(Failure::Other(e) | Failure::Stale(e) | Failure::OutOfObjects(e)) => Err(e),
                }
            }
            Err(Failure::OutOfObjects(e)) => {
                let _alone = self.running.write().unwrap_or_else(|p| p.into_inner());
                tracing::info!(token = %self.token.config.token, error = %e, "freeing the token's loaded objects and trying again");
                self.free_objects();
                match op() {
                    Ok(v) => Ok(v),
                    Err(Failure::Other(e) | Failure::Stale(e)) => Err(e),
                    // Twice in a row: the module may have lost the token (a TPM that restarted
                    // answers every call so); the next call starts it afresh.
                    Err(Failure::OutOfObjects(e)) => Err(match self.drop_connection(e) {
                        AgentError::Device {
                            device,
                            operation,
                            detail,
                        } => AgentError::Device {
                            device,
                            operation,
                            detail: format!(
                                "{detail} (again after the agent logged out to free the objects \
                                 the token had loaded; check the module's log)"
                            ),
                        },
                        other => other,
                    }),
                }
            }
        }
    }

    /// Drops the connection, so the next call re-initializes the module and reconnects.
    fn drop_connection(&self, e: AgentError) -> AgentError {
        let mut st = self.lock_state();
        st.link.conn = None;
        st.link.stale = true;
        drop(st);
        self.returned.notify_all();
        e
    }

    fn refresh_if_stale(&self) {
        if !self.lock_state().link.stale {
            return;
        }
        let _alone = self.running.write().unwrap_or_else(|p| p.into_inner());
        let mut st = self.lock_state();
        if st.link.stale && st.link.conn.is_none() {
            tracing::info!(token = %self.token.config.token, "re-initializing the PKCS#11 module to find the token again");
            match self.token.reinitialize() {
                Ok(()) => st.link.stale = false,
                Err(e) => {
                    tracing::warn!(token = %self.token.config.token, error = %e, "re-initializing failed")
                }
            }
        }
    }

    /// Logs out (the module unloads what it loaded for the login) and drops the pool; the next
    /// lease logs in again. The caller holds the lock alone.
    fn free_objects(&self) {
        let mut st = self.lock_state();
        if let Some(conn) = st.link.conn.as_mut() {
            if conn.logged_in.take().is_some() {
                let _ = conn.anchor.logout();
            }
            conn.open -= conn.idle.len();
            conn.idle.clear();
            conn.handles.clear();
        }
    }

    /// Checks, while no login is held, that the token in the slot is still the one the agent
    /// knows (a module may swap the token under open sessions, as SoftHSM does when its token
    /// directory changes); a token with another serial is refused and the connection dropped.
    pub fn check_serial(&self) -> Result<(), AgentError> {
        let mut st = self.lock_state();
        st.link.check_serial(&self.token)
    }

    /// Runs `f` with the token's PIN gate and login, under the lock.
    pub fn gated<R>(&self, f: impl FnOnce(&mut PinGate, &mut dyn Login) -> R) -> R {
        self.refresh_if_stale();
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

    /// Takes a session from the pool, or opens one within the token's limit, or waits for one;
    /// `login` logs in first if needed.
    pub fn lease(&self, login: bool) -> Result<Lease, AgentError> {
        let mut st = self.lock_state();
        let deadline = std::time::Instant::now() + SESSION_WAIT;
        loop {
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
            let limit = self.pool_limit(link.connect(&self.token)?);
            let conn = link.connect(&self.token)?;
            if let Some(session) = conn.idle.pop() {
                return Ok(Lease {
                    session,
                    generation,
                });
            }
            if conn.open < limit {
                let slot = conn.slot;
                match self.token.open_session(slot) {
                    Ok(session) => {
                        conn.open += 1;
                        return Ok(Lease {
                            session,
                            generation,
                        });
                    }
                    // The token counts otherwise than it said: wait for one of ours.
                    Err(CkError::Pkcs11(RvError::SessionCount, _)) if conn.open > 0 => {}
                    Err(e) => return Err(link.fail(&self.token, "opening a session", e)),
                }
            }
            let now = std::time::Instant::now();
            if now >= deadline {
                return Err(AgentError::Device {
                    device: self.token.describe(),
                    operation: "waiting for a free session".into(),
                    detail: format!(
                        "all {limit} sessions the agent may open on it stayed busy for {}s",
                        SESSION_WAIT.as_secs()
                    ),
                });
            }
            st = self
                .returned
                .wait_timeout(st, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    /// Sessions the pool may hold: the configured number, within the token's limit less the
    /// anchor.
    fn pool_limit(&self, conn: &mut Connection) -> usize {
        self.token
            .config
            .sessions
            .min(conn.caps.max_sessions.saturating_sub(1))
            .max(1)
    }

    /// Puts a session back, unless it belongs to an old connection.
    pub fn release(&self, lease: Lease) {
        let mut st = self.lock_state();
        if st.link.generation == lease.generation {
            if let Some(conn) = st.link.conn.as_mut() {
                conn.idle.push(lease.session);
            }
        }
        drop(st);
        self.returned.notify_one();
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
        if matches!(err, AgentError::Unavailable { .. }) {
            self.returned.notify_all();
        } else {
            self.release(lease);
        }
        err
    }

    /// Like [`Sessions::settle`], for an operation that loads objects on the token: an error
    /// that may mean the token is out of object memory is worth a retry.
    pub fn settle_loading(&self, lease: Lease, operation: &str, e: CkError) -> Failure {
        let retry = may_be_out_of_objects(&e);
        let err = self.settle(lease, operation, e);
        if retry {
            Failure::OutOfObjects(err)
        } else {
            Failure::Other(err)
        }
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

    /// The private key handle found for a key on this connection, with the connection's
    /// generation (a handle is only good on the connection it was found on).
    pub fn cached_handle(&self, id: &KeyId) -> Option<(ObjectHandle, u64)> {
        let st = self.lock_state();
        st.link
            .conn
            .as_ref()
            .and_then(|c| c.handles.get(id).copied())
            .map(|h| (h, st.link.generation))
    }

    /// Remembers a key's private key handle for the connection of `generation`.
    pub fn remember_handle(&self, id: &KeyId, handle: ObjectHandle, generation: u64) {
        let mut st = self.lock_state();
        if st.link.generation != generation {
            return;
        }
        if let Some(c) = st.link.conn.as_mut() {
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

impl Lease {
    /// The connection this session belongs to.
    pub fn generation(&self) -> u64 {
        self.generation
    }
}

impl Link {
    fn connect(&mut self, token: &Token) -> Result<&mut Connection, AgentError> {
        if self.conn.is_none() {
            let known = self.identity.as_ref().map(|i| i.serial.clone());
            let found = token.find_slot(known.as_deref());
            let (slot, identity) = found.inspect_err(|e| {
                if !matches!(e, AgentError::AmbiguousToken { .. }) {
                    self.stale = true;
                }
            })?;
            let anchor = token
                .open_session(slot)
                .map_err(|e| token.classify("opening a session", e))?;
            let caps = token.capabilities(slot);
            self.generation += 1;
            let serial = identity.serial.clone();
            if self.identity.is_none() {
                self.identity = Some(identity);
            }
            tracing::info!(
                token = %token.config.token,
                serial = %serial,
                generate = caps.generate.is_ok(),
                sign = caps.sign.is_ok(),
                "connected to PKCS#11 token"
            );
            self.conn = Some(Connection {
                slot,
                anchor,
                logged_in: None,
                idle: Vec::new(),
                open: 0,
                handles: HashMap::new(),
                caps,
            });
        }
        self.conn
            .as_mut()
            .ok_or_else(|| AgentError::Internal("connection vanished".into()))
    }

    fn check_serial(&mut self, token: &Token) -> Result<(), AgentError> {
        let Some(conn) = self.conn.as_ref() else {
            return Ok(());
        };
        // Not while logged in: some modules' C_GetTokenInfo talks to the card and drops its
        // PIN (ykcs11 re-selects the PIV applet to read the retry counter). A token swapped
        // under a login shows as a lost login, and the next login checks the serial.
        if conn.logged_in.is_some() {
            return Ok(());
        }
        let found = match token.serial(conn.slot) {
            Ok(s) => s,
            // A token whose info cannot be read is as good as gone: look for it afresh.
            Err(e) => {
                self.conn = None;
                self.stale = true;
                return Err(AgentError::Unavailable {
                    device: token.describe(),
                    cause: crate::error::Unavailable::TokenGone {
                        operation: "reading the token's serial".into(),
                        error: e.to_string(),
                    },
                });
            }
        };
        self.refuse_other(token, found)
    }

    /// Refuses (and disconnects from) a token whose serial is not the one first seen.
    fn refuse_other(&mut self, token: &Token, found: String) -> Result<(), AgentError> {
        match self.identity.as_ref().map(|i| &i.serial) {
            Some(known) if *known != found => {
                tracing::error!(token = %token.config.token, expected = %known, found = %found, "the token in the slot has another serial; refusing it");
                let expected = known.clone();
                self.conn = None;
                self.stale = true;
                Err(AgentError::Unavailable {
                    device: token.describe(),
                    cause: crate::error::Unavailable::Replaced { expected, found },
                })
            }
            _ => Ok(()),
        }
    }

    /// Maps an error and, when the token is gone, drops the connection so the next call
    /// reconnects (after re-initializing the module); a lost login is forgotten.
    fn fail(&mut self, token: &Token, operation: &str, e: CkError) -> AgentError {
        let err = token.classify(operation, e);
        match &err {
            AgentError::Unavailable { .. } => {
                self.conn = None;
                self.stale = true;
            }
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

impl TokenLogin<'_> {
    /// Refuses a login that could block the token, or that cannot succeed, before any try.
    fn check_flags(&mut self) -> Result<(), LoginError> {
        let token = self.token;
        let mut flags = self.read_flags()?;
        if matches!(flags, PinFlags::FinalTry | PinFlags::Locked) && self.idle_module() {
            // A module may report the count it saw when it connected (ykcs11 does), so a
            // counter reset by hand since shows only to a fresh module: look again, with
            // nothing else in the module.
            self.link.conn = None;
            token.reinitialize()?;
            flags = self.read_flags()?;
        }
        match flags {
            PinFlags::Fine | PinFlags::Low => Ok(()),
            PinFlags::FinalTry => {
                tracing::warn!(token = %token.config.token, "the token's PIN is at its final try; not logging in");
                Err(LoginError::Failed(AgentError::LastPinTry {
                    device: token.describe(),
                    fix: FINAL_TRY_FIX
                        .replace("MODULE", &token.config.module)
                        .replace("LABEL", &token.config.token),
                }))
            }
            PinFlags::Locked => Err(LoginError::Failed(AgentError::PinBlocked {
                device: token.describe(),
                fix: PIN_BLOCKED_FIX.into(),
            })),
        }
    }

    /// The token's PIN flags, after checking it is the token the agent knows.
    fn read_flags(&mut self) -> Result<PinFlags, LoginError> {
        let token = self.token;
        let slot = self.link.connect(token)?.slot;
        let (flags, serial) = match token.pin_flags(slot) {
            Ok(f) => f,
            Err(e) => {
                return Err(self
                    .link
                    .fail(token, "reading the token's PIN flags", e)
                    .into())
            }
        };
        // The PIN goes only to the token the agent knows.
        self.link.refuse_other(token, serial)?;
        Ok(flags)
    }

    /// Whether no session is out of the pool: with the state locked, then, nothing but this
    /// login is in the module, and it may be re-initialized.
    fn idle_module(&self) -> bool {
        self.link
            .conn
            .as_ref()
            .is_none_or(|c| c.open == c.idle.len())
    }

    fn retries(&self) -> Retries {
        let Some(conn) = self.link.conn.as_ref() else {
            return Retries::Unknown;
        };
        match self.token.pin_flags(conn.slot) {
            Ok((PinFlags::FinalTry, _)) => Retries::FinalTry,
            Ok((PinFlags::Low, _)) => Retries::Low,
            _ => Retries::Unknown,
        }
    }
}

impl Login for TokenLogin<'_> {
    fn login(&self) -> Option<PinOrigin> {
        self.link.conn.as_ref().and_then(|c| c.logged_in)
    }

    fn log_in(&mut self, pin: &SecretString, origin: PinOrigin) -> Result<(), LoginError> {
        let token = self.token;
        if pin.expose_secret().trim().is_empty() {
            return Err(LoginError::Refused(AgentError::InvalidArgument(
                "the PIN is empty: no login was tried".into(),
            )));
        }
        self.check_flags()?;
        let conn = self.link.connect(token)?;
        match conn.anchor.login(UserType::User, Some(pin)) {
            // Login is per token and process: another session's login counts.
            Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => {
                conn.logged_in = Some(origin);
                Ok(())
            }
            Err(CkError::Pkcs11(RvError::PinIncorrect, _)) => {
                let retries = self.retries();
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
            // The module lost the token (a TPM that restarted answers so); the next call
            // re-initializes it.
            Err(e @ CkError::Pkcs11(RvError::GeneralError | RvError::FunctionFailed, _)) => {
                let err = token.classify("logging in", e);
                self.link.conn = None;
                self.link.stale = true;
                Err(err.into())
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
            conn.open -= conn.idle.len();
            conn.idle.clear();
            conn.handles.clear();
        }
    }
}
