//! Servers a test runs as child processes on free loopback ports: started, waited for, logged
//! and killed on drop; started again on new ports when another process took one meanwhile.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// How long a service may take to become ready before the test fails.
pub const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// How many times a set of services starts on fresh ports when one was taken meanwhile.
const START_ATTEMPTS: u32 = 3;

/// Child processes, each writing stdout and stderr to `<logs>/<name>.log`; killed on drop.
pub struct Services {
    logs: PathBuf,
    running: Vec<Service>,
}

struct Service {
    name: &'static str,
    child: Child,
    log: PathBuf,
}

/// Why services did not start.
#[derive(Debug)]
pub struct StartFailure {
    /// A service could not bind its port (another process took it after it was found free).
    pub port_taken: bool,
    /// What happened, with the logs.
    pub message: String,
}

impl Services {
    /// No services yet; their logs go to `logs` (which must exist).
    pub fn new(logs: &Path) -> Self {
        Self {
            logs: logs.to_owned(),
            running: Vec::new(),
        }
    }

    /// Spawns `cmd` as service `name`, stdin closed, output to its log.
    pub fn spawn(&mut self, name: &'static str, cmd: &mut Command) {
        let log = self.logs.join(format!("{name}.log"));
        let file = std::fs::File::create(&log).expect("service log");
        let child = cmd
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("log fd"))
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {name}: {e}"));
        self.running.push(Service { name, child, log });
    }

    /// Polls `ready` every 10 ms; fails with the logs if a service exits or time runs out.
    /// `wait_until("all services", || true)` checks that every service still runs: one that
    /// lost its port dies, while a readiness check may have been answered by whoever holds it.
    pub fn wait_until(
        &mut self,
        what: &str,
        mut ready: impl FnMut() -> bool,
    ) -> Result<(), StartFailure> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let is_ready = ready();
            for s in &mut self.running {
                if let Ok(Some(status)) = s.child.try_wait() {
                    let log = std::fs::read_to_string(&s.log).unwrap_or_default();
                    return Err(StartFailure {
                        port_taken: log.contains("address already in use"),
                        message: format!("{} exited with {status} while starting:\n{log}", s.name),
                    });
                }
            }
            if is_ready {
                return Ok(());
            }
            if Instant::now() > deadline {
                let logs: String = self
                    .running
                    .iter()
                    .map(|s| format!("--- {} log:\n{}\n", s.name, self.log_of(s.name)))
                    .collect();
                return Err(StartFailure {
                    port_taken: false,
                    message: format!(
                        "{what} was not ready after {} s:\n{logs}",
                        READY_TIMEOUT.as_secs()
                    ),
                });
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Kills service `name` and waits until it is gone; its port stays unused.
    pub fn stop(&mut self, name: &str) {
        let s = self
            .running
            .iter_mut()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("no service {name} was started"));
        let _ = s.child.kill();
        let _ = s.child.wait();
    }

    /// The log of service `name` so far.
    pub fn log_of(&self, name: &str) -> String {
        std::fs::read_to_string(self.logs.join(format!("{name}.log"))).unwrap_or_default()
    }
}

impl Drop for Services {
    fn drop(&mut self) {
        for s in &mut self.running {
            let _ = s.child.kill();
            let _ = s.child.wait();
        }
    }
}

/// Runs `try_start` until it succeeds, again (on the new ports it picks) when a port it found
/// free was taken by another process before its service bound it; panics on any other failure.
pub fn start<T>(mut try_start: impl FnMut() -> Result<T, StartFailure>) -> T {
    let mut attempt = 1;
    loop {
        match try_start() {
            Ok(started) => return started,
            Err(e) if e.port_taken && attempt < START_ATTEMPTS => attempt += 1,
            Err(e) => panic!("{}", e.message),
        }
    }
}

/// `N` distinct free loopback ports: all bound at once so they differ, then released.
pub fn free_ports<const N: usize>() -> [u16; N] {
    let listeners: Vec<TcpListener> = (0..N)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0"))
        .collect();
    std::array::from_fn(|i| listeners[i].local_addr().expect("local_addr").port())
}

/// notary-server's config: TLS on `127.0.0.1:port` with `cert` and `key`, memory storage, and
/// `trust_service` (`{"type": "local"}` for ed25519 keys made in-process, or a remote signer).
pub fn notary_server_config(port: u16, cert: &Path, key: &Path, trust_service: Value) -> Value {
    json!({
        "server": {
            "http_addr": format!("127.0.0.1:{port}"),
            "tls_cert_file": cert,
            "tls_key_file": key,
        },
        "trust_service": trust_service,
        "storage": { "backend": "memory" },
        "logging": { "level": "info" },
    })
}
