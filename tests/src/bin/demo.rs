//! The demo behind `./scripts/demo.sh`: Docker Content Trust with every key in a SoftHSM token.
//!
//! It starts the same services the end-to-end tests use ([`SoftHsm`], [`Agent`], [`Stack`]), then
//! runs the real `tufa` and `docker` binaries as a user would, printing each command line before
//! its output and checking what came out. Every process and temporary directory it makes is gone
//! when it exits: on success, on a failed step (exit 1, the step named), and on Ctrl-C (exit 130).

use std::fmt::Display;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use sha2::{Digest as _, Sha256};
use tufa_tests::stack::{ManifestKind, Stack};
use tufa_tests::{Agent, AgentOptions, SoftHsm, SOFTHSM_MODULE};

/// The token's label.
const TOKEN: &str = "tufa-demo";
/// The signer, and the name of its key in the token.
const SIGNER: &str = "alice";
/// The image's repository in the registry.
const REPO: &str = "demo/hello";
/// The image's tag.
const TAG: &str = "v1";
/// How to get the docker CLI when it is missing.
const DOCKER_HINT: &str =
    "to include this step, run scripts/install-deps.sh (it installs docker.io) or put any docker CLI on PATH";

/// The step under way, for the failure message.
static STEP: Mutex<String> = Mutex::new(String::new());
/// Set by the first Ctrl-C (or SIGTERM): the demo stops after the command under way.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// A failed step's reason.
type Step<T = ()> = Result<T, String>;

fn main() -> ExitCode {
    let started = Instant::now();
    if let Err(e) = watch_for_interrupts() {
        eprintln!("error: cannot watch for Ctrl-C: {e}");
        return ExitCode::FAILURE;
    }
    // A harness panic (a service that does not start, say) is a failed step like any other: the
    // hook prints its message, unwinding drops (and so stops) everything, then main reports.
    std::panic::set_hook(Box::new(|info| {
        if !INTERRUPTED.load(Ordering::SeqCst) {
            let msg = info
                .payload()
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| info.payload().downcast_ref::<&str>().copied())
                .unwrap_or("a panic without a message");
            eprintln!("error: {msg}");
        }
    }));
    let outcome = std::panic::catch_unwind(run);
    let step = STEP.lock().map(|s| s.clone()).unwrap_or_default();
    let secs = started.elapsed().as_secs_f64();
    if INTERRUPTED.load(Ordering::SeqCst) {
        eprintln!("\nThe demo was INTERRUPTED during \"{step}\" after {secs:.1} s.");
        eprintln!("Every process it started has been stopped and its temporary files removed.");
        return ExitCode::from(130);
    }
    match outcome {
        Ok(Ok(())) => {
            println!("\nThe demo finished in {secs:.1} s.");
            ExitCode::SUCCESS
        }
        Ok(Err(e)) => {
            eprintln!("error: {e}");
            fail(&step, secs)
        }
        // The hook printed the message.
        Err(_) => fail(&step, secs),
    }
}

fn fail(step: &str, secs: f64) -> ExitCode {
    eprintln!("\nThe demo FAILED at \"{step}\" after {secs:.1} s.");
    eprintln!("Every process it started has been stopped and its temporary files removed.");
    ExitCode::FAILURE
}

/// The demo, step by step. Returning (or unwinding) drops the agent, the stack and the token, which
/// kills what still runs and removes their directories.
fn run() -> Step {
    let docker = tufa_tests::on_path("docker");

    step(
        1,
        "Creating a SoftHSM token: a PKCS#11 token kept in files, standing in for an HSM",
    );
    let pin = random_pin();
    let hsm = SoftHsm::new(TOKEN, &pin);
    say(format_args!(
        "Token '{TOKEN}' in {}, with a random user PIN in {} (never printed).",
        hsm.dir().display(),
        hsm.pin_file().display()
    ));

    step(2, "Starting the agent, tufad, on a private socket");
    let opts = AgentOptions {
        pin_file: true,
        ..Default::default()
    };
    let agent = Agent::start_with(&hsm, opts.clone());
    show_command("tufad", &agent.command(&hsm, &opts), " &");
    say(format_args!(
        "The agent (pid {}) holds the token's PIN and signs on request; the private keys never \
         leave the token. Its log is {}/agent.log.",
        agent.pid(),
        agent.dir().display()
    ));
    let work = tempfile::Builder::new()
        .prefix("tufa-demo-")
        .tempdir()
        .map_err(|e| format!("a temporary directory: {e}"))?;
    let tufa = Tufa {
        socket: agent.socket.clone(),
        cwd: work.path().to_owned(),
        docker_config: None,
        notary_url: None,
        home: None,
    };
    say("The client, tufa, finds the agent through TUFA_AGENT_SOCK:");
    say(format_args!(
        "  export TUFA_AGENT_SOCK={}",
        agent.socket.display()
    ));
    tufa.ok(&["agent", "status"])?;

    step(
        3,
        "Starting Docker Content Trust's servers on loopback: notary-signer, notary-server, a registry",
    );
    let stack = Stack::start();
    let registry = stack.registry_addr();
    say(format_args!(
        "notary-server  {}  (TLS, certificate from a throwaway CA; it keeps the signed TUF metadata)",
        stack.notary_url()
    ));
    say(
        "notary-signer  (mTLS, reached only by notary-server; it holds the server's timestamp key)",
    );
    say(format_args!(
        "registry       http://{registry}  (plain HTTP; it stores the image)"
    ));
    say(format_args!(
        "Their configs and logs are in {}.",
        stack.dir().display()
    ));
    say("tufa uses docker's own settings to find the notary server and its CA:");
    say(format_args!(
        "  export DOCKER_CONFIG={}   # the CA is in tls/127.0.0.1:PORT/ca.crt, trust data goes to trust/",
        stack.docker_config().display()
    ));
    say(format_args!(
        "  export DOCKER_CONTENT_TRUST_SERVER={}",
        stack.notary_url()
    ));
    let tufa = Tufa {
        docker_config: Some(stack.docker_config()),
        notary_url: Some(stack.notary_url()),
        home: Some(stack.dir().join("home")),
        ..tufa
    };

    step(
        4,
        "Pushing a tiny image to the registry with plain HTTP calls",
    );
    let image = format!("{registry}/{REPO}");
    let tagged = format!("{image}:{TAG}");
    say(format_args!(
        "POST + PUT /v2/{REPO}/blobs/uploads/  a one-file layer and the image config"
    ));
    say(format_args!(
        "PUT /v2/{REPO}/manifests/{TAG}  a docker schema2 manifest naming both"
    ));
    let pushed = stack.push_image(REPO, TAG, ManifestKind::DockerSchema2);
    say(format_args!(
        "The registry now serves {tagged}: manifest {}, {} bytes.",
        pushed.digest, pushed.size
    ));
    say("Nothing is signed yet: this digest is what the signature will vouch for.");

    step(5, "Making the signer's key inside the token");
    tufa.ok(&["key", "generate", SIGNER])?;
    let pub_file = format!("{SIGNER}.pub");
    show(&format!("cat {pub_file}"));
    let pem = std::fs::read_to_string(work.path().join(&pub_file))
        .map_err(|e| format!("tufa key generate wrote no {pub_file}: {e}"))?;
    print!("{pem}");
    say("Only the public key is in the file, in the format `docker trust key generate` writes.");

    step(6, "Adding the signer to the image's repository");
    say("The repository has no trust data yet, so tufa first creates it, as docker does: a root key");
    say("and a repository (targets) key, both made in the token; the server holds the timestamp key.");
    tufa.ok(&["signer", "add", "--key", &pub_file, SIGNER, &image])?;
    tufa.ok(&["key", "list"])?;
    say("All three keys live in the token; tufa only ever saw their public halves.");

    step(7, "Signing the image");
    say("tufa asks the registry for the tag's digest and size, then signs them into the signer's role.");
    let out = tufa.ok(&["sign", &tagged])?;
    expect(
        out.contains(&format!("Successfully signed {tagged}")),
        "tufa sign did not report success",
    )?;

    step(
        8,
        "Inspecting the trust data, as `docker trust inspect --pretty` shows it",
    );
    let out = tufa.ok(&["inspect", "--pretty", &image])?;
    let hex = pushed.digest.trim_start_matches("sha256:");
    expect(
        out.contains(hex) && out.contains(SIGNER),
        format_args!("inspect does not list {TAG} at {hex} signed by {SIGNER}"),
    )?;
    say("The root key ID differs from the one `tufa key list` shows: like docker, inspect names the");
    say("root key by the certificate that wraps it in the trust data.");

    step(
        9,
        "Verifying the tag: the check DOCKER_CONTENT_TRUST=1 makes before a pull",
    );
    let out = tufa.ok(&["verify", &tagged])?;
    let verified = out.trim().to_owned();
    let expected = format!("{image}@{}", pushed.digest);
    expect(
        verified == expected,
        format_args!("tufa verify printed {verified:?}, not {expected:?}"),
    )?;
    say("Checked: the verified digest is the one the registry serves.");

    step(
        10,
        "Asking docker, which knows nothing about tufa, to resolve the same tag",
    );
    if docker {
        say("There is no docker daemon here: `DOCKER_CONTENT_TRUST=1 docker pull` checks the trust data,");
        say("prints the digest it would pull (\"Pull (1 of 1): ...\"), then fails to reach the daemon.");
        let out = docker_pull(&stack, work.path(), &tagged)?;
        let resolved = out
            .lines()
            .find_map(|l| l.strip_prefix("Pull (1 of 1): "))
            .ok_or("docker did not resolve the tag through its trust data")?;
        // docker prints NAME:TAG@DIGEST, tufa NAME@DIGEST: the digests must agree.
        let digest = resolved.rsplit_once('@').map(|(_, d)| d);
        expect(
            digest == Some(pushed.digest.as_str()),
            format_args!("docker resolved {resolved}, tufa verified {verified}"),
        )?;
        say("Checked: docker resolves the digest tufa verified.");
    } else {
        say(format_args!(
            "SKIPPED: the docker CLI is not installed; {DOCKER_HINT}."
        ));
        say("tufa does not need docker; it is here only as an independent second opinion.");
    }

    step(11, "Revoking the signature");
    let out = tufa.ok(&["revoke", &tagged])?;
    expect(
        out.contains(&format!("Successfully deleted signature for {tagged}")),
        "tufa revoke did not report success",
    )?;

    step(12, "Verifying again: the tag is no longer trusted");
    let out = tufa.run(&["verify", &tagged])?;
    let refusal = format!("No valid trust data for {TAG}");
    expect(
        !out.status.success() && String::from_utf8_lossy(&out.stderr).contains(&refusal),
        format_args!("tufa verify did not refuse with docker's \"{refusal}\""),
    )?;
    say(format_args!(
        "Refused, with docker's own message (exit status {}).",
        out.status.code().unwrap_or(-1)
    ));
    if docker {
        let out = docker_pull(&stack, work.path(), &tagged)?;
        expect(
            out.contains(&refusal) && !out.contains("Pull (1 of 1)"),
            format_args!("docker did not refuse with \"{refusal}\""),
        )?;
        say("docker refuses the same way.");
    }

    step(
        13,
        "Reading the agent's audit log: one JSON line per key operation",
    );
    let audit = std::fs::read_to_string(&agent.audit_log)
        .map_err(|e| format!("{}: {e}", agent.audit_log.display()))?;
    show(&format!("cat {}", agent.audit_log.display()));
    for line in audit.lines() {
        println!("{}", shorten_hex(line));
    }
    let signs = agent
        .audit_lines()
        .iter()
        .filter(|l| l["op"] == "sign" && l["result"] == "ok")
        .count();
    expect(signs > 0, "the audit log has no successful signature")?;
    expect(
        !audit.contains(&pin) && !agent.log().contains(&pin),
        "the PIN appears in the audit log or the agent log",
    )?;
    say(format_args!(
        "{signs} signatures, each with its key, repository and role; the PIN appears in neither \
         the audit log nor the agent's log."
    ));

    step(14, "Stopping everything");
    stop(agent, stack)?;
    Ok(())
}

/// Stops the agent with SIGTERM (it must exit 0 and remove its socket), then the servers (their
/// ports must refuse connections).
fn stop(mut agent: Agent, mut stack: Stack) -> Step {
    show(&format!("kill -TERM {}", agent.pid()));
    let status = agent.stop();
    expect(
        status.success(),
        format_args!("the agent exited with {status}"),
    )?;
    expect(
        !agent.socket.exists(),
        "the agent stopped but left its socket behind",
    )?;
    say("The agent finished its calls, removed its socket and exited 0.");
    let notary = stack.notary_url().trim_start_matches("https://").to_owned();
    let registry = stack.registry_addr();
    for service in ["registry", "notary-server", "notary-signer"] {
        stack.stop(service);
    }
    for addr in [&notary, &registry] {
        expect(
            TcpStream::connect(addr).is_err(),
            format_args!("{addr} still accepts connections"),
        )?;
    }
    say(format_args!(
        "notary-signer, notary-server and the registry are stopped: {notary} and {registry} refuse \
         connections."
    ));
    drop(stack);
    say("Their temporary directories, and the token's, are removed.");
    Ok(())
}

/// `tufa` with docker's environment, run in the demo's working directory.
struct Tufa {
    socket: PathBuf,
    cwd: PathBuf,
    docker_config: Option<PathBuf>,
    notary_url: Option<String>,
    home: Option<PathBuf>,
}

impl Tufa {
    /// Shows and runs `tufa ARGS`, printing its output; the exit status is the caller's to judge.
    fn run(&self, args: &[&str]) -> Step<Output> {
        let mut cmd = Command::new(tufa_tests::bin("tufa"));
        cmd.current_dir(&self.cwd)
            .env("TUFA_AGENT_SOCK", &self.socket)
            .env_remove("TUFA_TRUST_DIR")
            .env_remove("DOCKER_CONTENT_TRUST_SERVER")
            .args(args);
        // Never the user's ~/.docker: the CA, the trust cache and credentials stay in the demo.
        match &self.docker_config {
            Some(dir) => cmd.env("DOCKER_CONFIG", dir),
            None => cmd.env("DOCKER_CONFIG", self.cwd.join("docker-config")),
        };
        if let Some(url) = &self.notary_url {
            cmd.env("DOCKER_CONTENT_TRUST_SERVER", url);
        }
        if let Some(home) = &self.home {
            cmd.env("HOME", home);
        }
        show(&format!("tufa {}", quote(args)));
        execute(&mut cmd, "tufa")
    }

    /// [`Tufa::run`], failing the step unless tufa exits 0; returns stdout.
    fn ok(&self, args: &[&str]) -> Step<String> {
        let out = self.run(args)?;
        if !out.status.success() {
            return Err(format!("`tufa {}` failed ({})", quote(args), out.status));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

/// Shows and runs `DOCKER_CONTENT_TRUST=1 docker pull IMAGE` and returns stdout and stderr.
fn docker_pull(stack: &Stack, cwd: &Path, image: &str) -> Step<String> {
    show(&format!("DOCKER_CONTENT_TRUST=1 docker pull {image}"));
    let mut cmd = stack.docker_command(cwd);
    cmd.env("DOCKER_CONTENT_TRUST", "1").args(["pull", image]);
    let out = execute(&mut cmd, "docker")?;
    Ok(format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    ))
}

/// Runs `cmd` with no input, prints its stdout then its stderr, and stops the demo if Ctrl-C came
/// meanwhile.
fn execute(cmd: &mut Command, name: &str) -> Step<Output> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {name}: {e}"))?;
    print!("{}", String::from_utf8_lossy(&out.stdout));
    eprint!("{}", String::from_utf8_lossy(&out.stderr));
    if INTERRUPTED.load(Ordering::SeqCst) {
        return Err("interrupted".to_owned());
    }
    Ok(out)
}

/// Starts step `n`: prints its title and remembers it for the failure message.
fn step(n: u32, title: &str) {
    if let Ok(mut s) = STEP.lock() {
        *s = format!("Step {n}: {title}");
    }
    println!("\n==> Step {n}: {title}");
}

fn say(text: impl Display) {
    println!("{text}");
}

/// Prints a command line as a user would type it.
fn show(line: &str) {
    println!("$ {line}");
}

/// Prints `cmd` (a program started by the harness) as a command line named `name`.
fn show_command(name: &str, cmd: &Command, suffix: &str) {
    let args: Vec<String> = cmd
        .get_args()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    show(&format!("{name} {}{suffix}", quote(&args)));
}

fn expect(ok: bool, why: impl Display) -> Step {
    if ok {
        Ok(())
    } else {
        Err(why.to_string())
    }
}

/// Arguments joined for display, single-quoted where a shell would need it.
fn quote(args: &[&str]) -> String {
    args.iter()
        .map(|a| {
            if !a.is_empty()
                && a.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./:@=+,".contains(c))
            {
                (*a).to_owned()
            } else {
                format!("'{}'", a.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// `line` with every run of 64 hex digits cut to its first 12, so audit lines fit a terminal.
fn shorten_hex(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut run = String::new();
    for c in line.chars().chain(std::iter::once('\0')) {
        if c.is_ascii_hexdigit() {
            run.push(c);
            continue;
        }
        if run.len() == 64 {
            out.push_str(&run[..12]);
            out.push('…');
        } else {
            out.push_str(&run);
        }
        run.clear();
        if c != '\0' {
            out.push(c);
        }
    }
    out
}

/// A PIN nobody typed: 12 hex digits from the clock and the pid (it guards a throwaway token).
fn random_pin() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let seed = format!("{nanos} {} {SOFTHSM_MODULE}", std::process::id());
    hex::encode(Sha256::digest(seed.as_bytes()))[..12].to_owned()
}

/// The first SIGINT or SIGTERM sets [`INTERRUPTED`]: the command under way (which got the
/// terminal's Ctrl-C too) ends, the step fails, and unwinding stops everything. A second one
/// exits at once.
fn watch_for_interrupts() -> std::io::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (mut int, mut term) = rt.block_on(async {
        Ok::<_, std::io::Error>((
            signal(SignalKind::interrupt())?,
            signal(SignalKind::terminate())?,
        ))
    })?;
    std::thread::spawn(move || {
        rt.block_on(async move {
            loop {
                tokio::select! {
                    _ = int.recv() => {}
                    _ = term.recv() => {}
                }
                if INTERRUPTED.swap(true, Ordering::SeqCst) {
                    std::process::exit(130);
                }
                eprintln!(
                    "\nInterrupted: stopping everything after the command under way \
                     (interrupt again to quit at once, leaving processes behind)."
                );
            }
        });
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_hex_is_shortened_and_the_rest_kept() {
        let id = "ab".repeat(32);
        assert_eq!(
            shorten_hex(&format!(r#"{{"key_id":"{id}","op":"sign"}}"#)),
            r#"{"key_id":"abababababab…","op":"sign"}"#
        );
        assert_eq!(shorten_hex("deadbeef face"), "deadbeef face");
    }

    #[test]
    fn quoting_only_where_a_shell_needs_it() {
        assert_eq!(
            quote(&["sign", "127.0.0.1:5000/demo/hello:v1", "a b", ""]),
            "sign 127.0.0.1:5000/demo/hello:v1 'a b' ''"
        );
    }
}
