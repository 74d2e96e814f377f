//! tufad against hostile conditions (issue 11, the agent's items): an audit log that cannot be
//! written, neighbours that hold connections or flood, core dumps and ptrace, and symlinks in
//! place of the socket directory or the log. Real kernels limits, real other uids: the file size
//! limit (`prlimit --fsize`) makes the log's writes fail for real, with the same short write a
//! full disk gives, and needs no mount (so no root); the neighbours run as other uids through
//! `setpriv`, which needs root, as `other_uids_are_refused_whatever_the_file_modes` does.

use std::io::{BufRead as _, BufReader};
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use sha2::{Digest as _, Sha256};
use tonic::Code;
use tufa_client::agent::{AgentClient, AgentKey, SignContext};
use tufa_tests::{require, Agent, AgentOptions, SoftHsm, PIN};

/// A uid the tests allow, and one they do not.
const ALLOWED_UID: u32 = 65533;
const STRANGER_UID: u32 = 65534;

fn ctx() -> SignContext {
    tufa_tests::signing("targets")
}

/// Fails (never skips) when the test cannot act as other uids.
fn require_root() {
    require("setpriv", "apt-get install util-linux");
    require("prlimit", "apt-get install util-linux");
    let uid = std::fs::metadata("/proc/self").expect("/proc").uid();
    assert_eq!(
        uid, 0,
        "this test runs neighbours as other uids (setpriv) and makes files they own: run it as root"
    );
}

fn as_uid(uid: u32) -> Command {
    let mut cmd = Command::new("setpriv");
    cmd.arg(format!("--reuid={uid}"))
        .arg(format!("--regid={uid}"))
        .arg("--clear-groups")
        .current_dir("/");
    cmd
}

/// Sets a resource limit of a running process (`prlimit --pid PID --fsize=N`).
fn prlimit(pid: u32, limit: &str) {
    let out = Command::new("prlimit")
        .arg("--pid")
        .arg(pid.to_string())
        .arg(limit)
        .output()
        .expect("run prlimit");
    assert!(out.status.success(), "prlimit {limit}: {out:?}");
}

/// The agent's CPU time so far (user + system), in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    // Fields after the command name, which is in parentheses: state is field 3, utime 14.
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

async fn new_key(client: &AgentClient, name: &str) -> AgentKey {
    client.generate_named(name).await.unwrap()
}

fn log_lines(path: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(
        text.is_empty() || text.ends_with('\n'),
        "a cut line: {text:?}"
    );
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

/// Appends `bytes` of filler lines to the log, as another writer could: the file gets big enough
/// that a file size limit just above it leaves SoftHSM's own (small) files alone.
fn fill_log(path: &Path, bytes: usize) {
    use std::io::Write as _;
    let mut f = std::fs::OpenOptions::new().append(true).open(path).unwrap();
    let line = format!("{{\"op\":\"filler\",\"pad\":\"{}\"}}\n", "x".repeat(100));
    for _ in 0..bytes / line.len() {
        f.write_all(line.as_bytes()).unwrap();
    }
}

// Item 9: the audit log fails closed.

#[tokio::test]
async fn a_key_operation_whose_audit_line_cannot_be_written_fails_and_no_line_is_cut() {
    require_root();
    let hsm = SoftHsm::new("audit-full", PIN);
    let agent = Agent::start(&hsm);
    let client = agent.client().await;
    let key = new_key(&client, "full").await;
    client.sign(&key, b"audited", &ctx()).await.unwrap();
    fill_log(&agent.audit_log, 64 * 1024);
    let before = std::fs::read(&agent.audit_log).unwrap();

    // Room for less than one line: the write is cut short by the kernel, as on a full disk.
    prlimit(
        agent.pid(),
        &format!("--fsize={}:unlimited", before.len() + 64),
    );
    let log_named = agent.audit_log.display().to_string();
    let refused = |e: &tufa_client::agent::AgentClientError| {
        assert_eq!(e.code(), Some(Code::ResourceExhausted), "{e}");
        let m = e.to_string();
        assert!(
            m.contains(&log_named) && m.contains("audit log") && m.contains("free space"),
            "{m}"
        );
    };
    let e = client.sign(&key, b"unaudited", &ctx()).await.unwrap_err();
    refused(&e);
    assert!(e.to_string().contains("no signature"), "{e}");
    // A new key would be unaudited: it is removed again.
    let e = client.generate_named("ghost").await.unwrap_err();
    refused(&e);
    // A deletion is refused before it is done.
    refused(&client.delete("full").await.unwrap_err());
    assert_eq!(
        std::fs::read(&agent.audit_log).unwrap(),
        before,
        "the log changed (a cut line?)"
    );
    let names: Vec<_> = client
        .list_keys()
        .await
        .unwrap()
        .into_iter()
        .map(|k| k.name)
        .collect();
    assert_eq!(names, ["full"], "{}", agent.log());

    // With room again, signing goes on and the log is whole lines.
    prlimit(agent.pid(), "--fsize=unlimited:unlimited");
    client.sign(&key, b"audited again", &ctx()).await.unwrap();
    let lines = log_lines(&agent.audit_log);
    let last = lines.last().unwrap();
    assert_eq!(last["op"], "sign");
    assert_eq!(
        last["sha256"],
        hex::encode(Sha256::digest(b"audited again"))
    );
    assert!(!lines
        .iter()
        .any(|l| l["sha256"] == hex::encode(Sha256::digest(b"unaudited"))));
}

#[tokio::test]
async fn sighup_reopens_the_audit_log_so_it_can_be_rotated() {
    let hsm = SoftHsm::new("audit-rotate", PIN);
    let agent = Agent::start(&hsm);
    let client = agent.client().await;
    let key = new_key(&client, "rot").await;
    client.sign(&key, b"before", &ctx()).await.unwrap();
    let rotated = agent.dir().join("audit.log.1");
    std::fs::rename(&agent.audit_log, &rotated).unwrap();
    let hup = Command::new("kill")
        .args(["-HUP", &agent.pid().to_string()])
        .status()
        .unwrap();
    assert!(hup.success());
    // The agent makes the new file when it reopens.
    for _ in 0..250 {
        if agent.audit_log.exists() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        agent.audit_log.exists(),
        "no new log after SIGHUP:\n{}",
        agent.log()
    );
    client.sign(&key, b"after", &ctx()).await.unwrap();
    let sha = |d: &[u8]| hex::encode(Sha256::digest(d));
    let old = log_lines(&rotated);
    let new = log_lines(&agent.audit_log);
    assert_eq!(old.last().unwrap()["sha256"], sha(b"before"));
    assert_eq!(new.len(), 1, "{new:?}");
    assert_eq!(new[0]["sha256"], sha(b"after"));
    assert_eq!(
        std::fs::metadata(&agent.audit_log).unwrap().mode() & 0o777,
        0o600
    );
}

#[tokio::test]
async fn client_text_cannot_make_a_huge_audit_line() {
    let hsm = SoftHsm::new("audit-caps", PIN);
    let agent = Agent::start(&hsm);
    let client = agent.client().await;
    let key = new_key(&client, "caps").await;
    let long = SignContext {
        gun: "g".repeat(30_000),
        role: "r".repeat(30_000),
    };
    client.sign(&key, b"long context", &long).await.unwrap();
    // A key reference the client chose ends up in the error message of the result.
    let e = client.attest(&"k".repeat(1000)).await.unwrap_err();
    assert_eq!(e.code(), Some(Code::NotFound), "{e}");
    let e = client.attest(&"k".repeat(60_000)).await.unwrap_err();
    assert_eq!(e.code(), Some(Code::InvalidArgument), "{e}");
    assert!(e.to_string().contains("60000 bytes"), "{e}");
    // A 4 MiB GUN is no request the agent takes.
    let huge = SignContext {
        gun: "G".repeat(4 * 1024 * 1024 - 4096),
        role: "targets".into(),
    };
    let e = client.sign(&key, b"huge", &huge).await.unwrap_err();
    assert!(e.to_string().contains("too large"), "{e}");

    let text = std::fs::read_to_string(&agent.audit_log).unwrap();
    for line in text.lines() {
        assert!(line.len() <= 4096, "a {}-byte audit line", line.len());
    }
    let lines = log_lines(&agent.audit_log);
    let signed = lines
        .iter()
        .find(|l| l["result"] == "ok" && l["op"] == "sign")
        .unwrap();
    let gun = signed["gun"].as_str().unwrap();
    assert!(
        gun.starts_with("ggg") && gun.contains("29745 more bytes"),
        "{gun}"
    );
    assert!(signed["role"].as_str().unwrap().starts_with("rrr"));
    let missing = lines.iter().find(|l| l["op"] == "attest").unwrap();
    assert!(
        missing["result"].as_str().unwrap().contains("more bytes"),
        "{missing}"
    );
}

// Item 10: a neighbour cannot freeze the agent.

/// A neighbour process as `uid` (see `tests/src/bin/neighbour.rs`), with its stdout piped.
fn neighbour(uid: u32, args: &[&str]) -> Child {
    as_uid(uid)
        .arg(env!("CARGO_BIN_EXE_neighbour"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn the neighbour")
}

/// Waits for the neighbour's `holding N` line; returns N and the rest of its output.
fn holding(child: &mut Child) -> (usize, impl FnOnce() -> serde_json::Value) {
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    let n = line
        .strip_prefix("holding ")
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("neighbour said {line:?}"));
    (n, move || {
        let mut rest = String::new();
        out.read_line(&mut rest).unwrap();
        serde_json::from_str(&rest).unwrap_or_else(|e| panic!("{e}: {rest:?}"))
    })
}

/// An agent other uids can reach (`allowed_uids` set makes the socket 0666).
fn shared_agent(hsm: &SoftHsm, extra: &str) -> Agent {
    let agent = Agent::start_with(
        hsm,
        AgentOptions {
            pin_file: true,
            config: Some(format!("allowed_uids = [{ALLOWED_UID}]\n{extra}")),
            ..Default::default()
        },
    );
    std::fs::set_permissions(agent.dir(), std::fs::Permissions::from_mode(0o711)).unwrap();
    agent
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stranger_holding_hundreds_of_connections_and_a_flood_of_streams_leave_the_owner_signing()
{
    require_root();
    let hsm = SoftHsm::new("neighbours", PIN);
    let agent = shared_agent(&hsm, "");
    let client = agent.client().await;
    let key = new_key(&client, "owner").await;
    // As in the report: few file descriptors, and a stranger with more connections than that.
    prlimit(agent.pid(), "--nofile=64:64");
    let socket = agent.socket.to_str().unwrap();
    let mut stranger = neighbour(STRANGER_UID, &["hold", socket, "300", "4000"]);
    let (held, stranger_report) = holding(&mut stranger);

    // While the stranger holds its connections, the agent does nothing: no spinning.
    let t0 = cpu_ticks(agent.pid());
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let idle = cpu_ticks(agent.pid()) - t0;
    assert!(
        idle < 30,
        "the agent used {idle} ticks of CPU in 1.5 s with a stranger's {held} connections open"
    );

    // An allowed uid floods streams; the owner keeps signing, and no call fails or times out.
    let flooder = neighbour(ALLOWED_UID, &["flood", socket, "owner", "4", "64", "2000"]);
    for i in 0..20 {
        let data = format!("owner {i}");
        let sig = tokio::time::timeout(
            Duration::from_secs(15),
            client.sign(&key, data.as_bytes(), &ctx()),
        )
        .await
        .unwrap_or_else(|_| panic!("owner call {i} timed out"));
        sig.unwrap_or_else(|e| panic!("owner call {i} failed: {e}"));
    }
    let flood = flooder.wait_with_output().unwrap();
    let flood: serde_json::Value = serde_json::from_slice(&flood.stdout).unwrap();
    assert!(flood["ok"].as_u64().unwrap() > 0, "{flood}");
    assert_eq!(flood["failed"], 0, "{flood}");

    let report = stranger_report();
    assert!(stranger.wait().unwrap().success());
    // Every stranger's connection was accepted and closed at once, before any HTTP/2.
    assert_eq!(report["connected"], 300, "{report}");
    assert_eq!(report["open"], 0, "{report}");
    assert!(
        report["closed_ms"]
            .as_array()
            .unwrap()
            .iter()
            .all(|ms| ms.as_u64().unwrap() < 2000),
        "{report}"
    );
    assert!(
        agent.log().contains(&format!("uid {STRANGER_UID}")),
        "{}",
        agent.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_per_uid_are_capped_and_running_out_of_descriptors_does_not_spin() {
    require_root();
    let hsm = SoftHsm::new("fd-limit", PIN);
    let agent = shared_agent(&hsm, "[limits]\nconnections_per_uid = 4\n");
    let client = agent.client().await;
    let key = new_key(&client, "owner").await;
    let socket = agent.socket.to_str().unwrap();

    // An allowed uid keeps 4 connections; the agent closes the 6 others at once.
    let mut neighbour_ = neighbour(ALLOWED_UID, &["hold", socket, "10", "3000"]);
    let (_, report) = holding(&mut neighbour_);
    let report = report();
    assert!(neighbour_.wait().unwrap().success());
    assert_eq!(report["open"], 4, "{report}");
    assert_eq!(report["closed_ms"].as_array().unwrap().len(), 6, "{report}");
    client.sign(&key, b"owner", &ctx()).await.unwrap();
    drop(agent);

    // Descriptors run out: the agent waits for one to be free instead of spinning, and serves
    // its owner again once the neighbour lets go.
    let agent = shared_agent(&hsm, "[limits]\nconnections_per_uid = 500\n");
    let client = agent.client().await;
    let fds = std::fs::read_dir(format!("/proc/{}/fd", agent.pid()))
        .unwrap()
        .count();
    prlimit(agent.pid(), &format!("--nofile={0}:{0}", fds + 20));
    let mut hog = neighbour(
        ALLOWED_UID,
        &["hold", agent.socket.to_str().unwrap(), "300", "2500"],
    );
    let (held, report) = holding(&mut hog);
    let t0 = cpu_ticks(agent.pid());
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let busy = cpu_ticks(agent.pid()) - t0;
    assert!(
        busy < 30,
        "the agent used {busy} ticks of CPU in 1.5 s out of descriptors ({held} connections held)"
    );
    let report = report();
    assert!(hog.wait().unwrap().success());
    assert!(report["open"].as_u64().unwrap() >= 15, "{report}");
    assert!(agent.log().contains("file descriptors"), "{}", agent.log());
    tokio::time::timeout(Duration::from_secs(15), client.status())
        .await
        .expect("the owner is served again")
        .unwrap();
    let again = AgentClient::connect(&agent.socket).await.unwrap();
    again.status().await.unwrap();
}

#[tokio::test]
async fn silent_connections_are_closed_and_live_ones_kept() {
    let hsm = SoftHsm::new("idle", PIN);
    let agent = Agent::start_with(
        &hsm,
        AgentOptions {
            pin_file: true,
            config: Some("[limits]\nidle_timeout_seconds = 2\n".into()),
            ..Default::default()
        },
    );
    let client = agent.client().await;
    client.status().await.unwrap();
    // Three connections that never speak HTTP/2.
    let mut silent = Vec::new();
    for _ in 0..3 {
        silent.push(
            tokio::net::UnixStream::connect(&agent.socket)
                .await
                .unwrap(),
        );
    }
    let mut closed = 0;
    for mut s in silent {
        use tokio::io::AsyncReadExt as _;
        let mut buf = [0u8; 1024];
        let read_to_end = async { while s.read(&mut buf).await.map(|n| n > 0).unwrap_or(false) {} };
        if tokio::time::timeout(Duration::from_secs(20), read_to_end)
            .await
            .is_ok()
        {
            closed += 1;
        }
    }
    assert_eq!(closed, 3, "silent connections left open");
    // The client's connection answered the agent's pings meanwhile and is still the same.
    client.status().await.unwrap();
}

// Item 12: no core dumps, no ptrace or /proc reads by the same uid.

#[test]
fn the_agent_is_not_dumpable() {
    require_root();
    let hsm = SoftHsm::new("dumpable", PIN);
    let work = tempfile::tempdir().unwrap();
    std::fs::set_permissions(work.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let chown = Command::new("chown")
        .arg("-R")
        .arg(format!("{STRANGER_UID}:{STRANGER_UID}"))
        .arg(hsm.dir())
        .arg(work.path())
        .status()
        .unwrap();
    assert!(chown.success());
    let socket = work.path().join("run/agent.sock");
    let mut child = as_uid(STRANGER_UID)
        .arg(tufa_tests::bin("tufad"))
        .env("SOFTHSM2_CONF", hsm.conf())
        .env("TUFA_TEST_MARKER", "env-of-the-agent")
        .arg("--socket")
        .arg(&socket)
        .args(["--pkcs11-module", tufa_tests::SOFTHSM_MODULE])
        .args(["--pkcs11-token", &hsm.label, "--pkcs11-pin-file"])
        .arg(hsm.pin_file())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    for _ in 0..500 {
        if socket.exists() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let status = std::fs::metadata(format!("/proc/{pid}/status"));
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap_or_default();
    // The same uid tries to read the agent's environment (it would hold a pin_env PIN).
    let environ = as_uid(STRANGER_UID)
        .arg("cat")
        .arg(format!("/proc/{pid}/environ"))
        .output()
        .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    // A process that is not dumpable has its /proc files owned by root.
    assert_eq!(status.unwrap().uid(), 0, "the agent is dumpable");
    let core = limits
        .lines()
        .find(|l| l.starts_with("Max core file size"))
        .unwrap();
    assert_eq!(
        core.split_whitespace().collect::<Vec<_>>()[4..6],
        ["0", "0"],
        "{core}"
    );
    assert!(
        !environ.status.success()
            && !String::from_utf8_lossy(&environ.stdout).contains("env-of-the-agent"),
        "the same uid read the agent's environment: {environ:?}"
    );
}

// Item 13: symlinks in place of the socket directory or the audit log.

/// Runs `tufad` with these paths; returns its stderr, failing if it started.
fn refused_at_start(hsm: &SoftHsm, socket: &Path, audit_log: &Path) -> String {
    let mut child = Command::new(tufa_tests::bin("tufad"))
        .env("SOFTHSM2_CONF", hsm.conf())
        .arg("--socket")
        .arg(socket)
        .arg("--audit-log")
        .arg(audit_log)
        .args(["--pkcs11-module", tufa_tests::SOFTHSM_MODULE])
        .args(["--pkcs11-token", &hsm.label])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    for _ in 0..250 {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    if child.try_wait().unwrap().is_none() {
        let _ = child.kill();
        let _ = child.wait();
        panic!(
            "tufad started with socket {} and log {}",
            socket.display(),
            audit_log.display()
        );
    }
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success());
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn lchown(path: &Path, uid: u32) {
    let ok = Command::new("chown")
        .arg("-h")
        .arg(format!("{uid}:{uid}"))
        .arg(path)
        .status()
        .unwrap();
    assert!(ok.success());
}

#[test]
fn symlinks_in_place_of_the_socket_directory_or_the_log_are_refused() {
    require_root();
    let hsm = SoftHsm::new("symlinks", PIN);
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let good_log = w.join("audit.log");

    // The socket directory is a stranger's link to a private directory of the agent's user.
    let private = w.join("private");
    std::fs::create_dir(&private).unwrap();
    std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o700)).unwrap();
    let link = w.join("run");
    std::os::unix::fs::symlink(&private, &link).unwrap();
    lchown(&link, STRANGER_UID);
    let err = refused_at_start(&hsm, &link.join("agent.sock"), &good_log);
    assert!(
        err.contains("symbolic link") && err.contains(&link.display().to_string()),
        "{err}"
    );
    assert!(!private.join("agent.sock").exists());

    // The socket directory sits in a directory others can write (they could swap it).
    let open = w.join("open");
    std::fs::create_dir(&open).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
    let err = refused_at_start(&hsm, &open.join("run/agent.sock"), &good_log);
    assert!(
        err.contains(&open.display().to_string()) && err.contains("777"),
        "{err}"
    );

    // The log is a stranger's link to a file of the agent's user.
    let victim = w.join("victim");
    std::fs::write(&victim, "precious\n").unwrap();
    std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o644)).unwrap();
    let log_link = w.join("link.log");
    std::os::unix::fs::symlink(&victim, &log_link).unwrap();
    lchown(&log_link, STRANGER_UID);
    let err = refused_at_start(&hsm, &w.join("s1/agent.sock"), &log_link);
    assert!(
        err.contains("symbolic link") && err.contains(&log_link.display().to_string()),
        "{err}"
    );
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
    assert_eq!(std::fs::metadata(&victim).unwrap().mode() & 0o777, 0o644);

    // The log's directory is writable by others.
    let shared = w.join("shared-logs");
    std::fs::create_dir(&shared).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o777)).unwrap();
    let err = refused_at_start(&hsm, &w.join("s2/agent.sock"), &shared.join("audit.log"));
    assert!(err.contains(&shared.display().to_string()), "{err}");
}
