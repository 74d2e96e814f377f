//! `tufad`: the agent binary. All logic lives in the library; this parses flags and signals.

use std::io::IsTerminal as _;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::Parser;
use tokio::signal::unix::{signal, Signal, SignalKind};
use tufa_agent::audit::AuditLog;
use tufa_agent::config::{Config, Overrides};
use tufa_agent::server;
use tufa_agent::signer::NotarySignerListener;

/// Keeps TUF signing keys in PKCS#11 tokens and YubiKeys and signs over a private socket.
#[derive(Debug, Parser)]
#[command(name = "tufad", version)]
struct Args {
    /// TOML configuration file (see the README for every key).
    #[arg(long, short = 'c')]
    config: Option<PathBuf>,
    /// Unix socket to listen on [default: $XDG_RUNTIME_DIR/tufa/agent.sock].
    #[arg(long, env = tufa_proto::AGENT_SOCKET_ENV)]
    socket: Option<PathBuf>,
    /// PKCS#11 module (e.g. /usr/lib/softhsm/libsofthsm2.so).
    #[arg(long)]
    pkcs11_module: Option<PathBuf>,
    /// Label of the PKCS#11 token.
    #[arg(long)]
    pkcs11_token: Option<String>,
    /// File whose first line is the token's user PIN.
    #[arg(long)]
    pkcs11_pin_file: Option<PathBuf>,
    /// A YubiKey to use, by serial (repeat for several).
    #[arg(long = "yubikey", value_name = "SERIAL")]
    yubikeys: Vec<u32>,
    /// File whose first line is the PIV PIN of the --yubikey devices.
    #[arg(long)]
    yubikey_pin_file: Option<PathBuf>,
    /// Append a JSON line per key operation and signature to this file.
    #[arg(long)]
    audit_log: Option<PathBuf>,
    /// How long a PIN given by `tufa agent unlock` is kept, in seconds.
    #[arg(long)]
    pin_cache_ttl: Option<u64>,
}

fn main() -> anyhow::Result<()> {
    // Before anything secret is read.
    server::protect_process().context("cannot turn off core dumps and ptrace for the agent")?;
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("TUFA_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"))
                // The yubikey crate traces every APDU, PIN and imported key included: never
                // below warnings, whatever TUFA_LOG asks.
                .add_directive("yubikey=warn".parse().expect("a valid directive")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let args = Args::parse();
    let config = Config::load(
        args.config.as_deref(),
        Overrides {
            socket: args.socket,
            audit_log: args.audit_log,
            pkcs11_module: args.pkcs11_module,
            pkcs11_token: args.pkcs11_token,
            pkcs11_pin_file: args.pkcs11_pin_file,
            pin_cache_ttl_seconds: args.pin_cache_ttl,
            yubikeys: args.yubikeys,
            yubikey_pin_file: args.yubikey_pin_file,
        },
    )?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        // A write past the file size limit (RLIMIT_FSIZE) must fail with EFBIG, which the audit
        // log reports, not kill the agent (SIGXFSZ's default); the handler stays installed.
        let xfsz = signal(SignalKind::from_raw(rustix::process::Signal::XFSZ.as_raw()))
            .context("cannot handle SIGXFSZ")?;
        drop(xfsz);
        // The socket first: a second agent on a live socket stops before touching a token.
        let socket = server::bind(&config.socket, !config.allowed_uids.is_empty())?;
        let agent = match server::open(&config).await {
            Ok(a) => a,
            Err(e) => {
                socket.remove();
                return Err(e.into());
            }
        };
        // The notary-signer listener, if configured: checked (an unattended device, TLS files,
        // the address) before anything is served, so a bad setting stops the agent at start.
        let signer = match &config.notary_signer {
            Some(settings) => {
                match NotarySignerListener::prepare(&config, settings, &agent).await {
                    Ok(s) => Some(s),
                    Err(e) => {
                        socket.remove();
                        return Err(e.into());
                    }
                }
            }
            None => None,
        };
        let hup = signal(SignalKind::hangup()).context("cannot handle SIGHUP")?;
        tokio::spawn(reopen_on_sighup(hup, agent.audit_log()));
        // One signal stops both listeners; a listener that fails stops the other too.
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let stop = std::sync::Arc::new(stop);
        let on_signal = std::sync::Arc::clone(&stop);
        tokio::spawn(async move {
            shutdown_signal().await;
            let _ = on_signal.send(true);
        });
        let until = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|s| *s).await;
        };
        let unix = async {
            let r = server::serve(&config, socket, agent, until(stopped.clone())).await;
            let _ = stop.send(true);
            r
        };
        let tcp = async {
            let Some(signer) = signer else { return Ok(()) };
            let r = signer.serve(until(stopped.clone())).await;
            let _ = stop.send(true);
            r
        };
        let (unix, tcp) = tokio::join!(unix, tcp);
        unix?;
        tcp?;
        Ok(())
    })
}

/// SIGHUP reopens the audit log, so logrotate can move it away (README, "Audit log").
async fn reopen_on_sighup(mut hup: Signal, audit: AuditLog) {
    while hup.recv().await.is_some() {
        let audit = audit.clone();
        match tokio::task::spawn_blocking(move || audit.reopen()).await {
            Ok(Ok(())) => tracing::info!("SIGHUP: reopened the audit log"),
            Ok(Err(e)) => {
                tracing::error!(error = %e, "SIGHUP: cannot reopen the audit log; still writing to the file it had")
            }
            Err(e) => tracing::error!(error = %e, "SIGHUP: the reopen failed"),
        }
    }
}

/// Resolves on SIGTERM or SIGINT.
async fn shutdown_signal() {
    let mut term = signal(SignalKind::terminate()).expect("cannot listen for SIGTERM");
    let mut int = signal(SignalKind::interrupt()).expect("cannot listen for SIGINT");
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: finishing calls in flight"),
        _ = int.recv() => tracing::info!("SIGINT: finishing calls in flight"),
    }
}
