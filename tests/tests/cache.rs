//! One trust directory shared by many processes at once, as on a CI runner: parallel `tufa sign`
//! with one agent and one `$DOCKER_CONFIG/trust`, the notary CLI alongside, a stuck lock holder,
//! a real rollback served in the middle of it all, and the cache layout shared with the docker
//! and notary CLIs.

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use sha2::{Digest as _, Sha256};
use tufa_tests::hostile::{HostileServer, Tamper};
use tufa_tests::stack::{ManifestKind, Stack};
use tufa_tests::{notary_args, Run, User, World};

/// How many rounds of parallel signs a stress test runs: a few in the suite, more with
/// `TUFA_STRESS_ROUNDS=N` for a verification run.
fn rounds(default: usize) -> usize {
    std::env::var("TUFA_STRESS_ROUNDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(default)
}

/// How many `tufa sign` run at once in a round.
const AT_ONCE: usize = 8;

/// Starts `cmd` with its output captured.
fn spawn(cmd: &mut Command) -> Child {
    cmd.stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn")
}

/// Waits for every child; returns what each did.
fn wait_all(children: Vec<(String, Child)>) -> Vec<Run> {
    children
        .into_iter()
        .map(|(what, child)| Run::new(what, child.wait_with_output().expect("wait")))
        .collect()
}

/// The repository `tufa/app` on the stack's registry, with signer `alice` (her key and the
/// repository's in the agent); returns its name.
fn repository(w: &World) -> String {
    let me = w.user();
    let repo = format!("{}/tufa/app", w.stack.registry_addr());
    me.generate_key("alice");
    me.add_signer("alice", &repo);
    repo
}

/// Pushes `AT_ONCE` new tags `<round>-t<i>` and returns them.
fn push_tags(stack: &Stack, round: &str) -> Vec<String> {
    let tags: Vec<String> = (0..AT_ONCE).map(|i| format!("{round}-t{i}")).collect();
    for tag in &tags {
        stack.push_image("tufa/app", tag, ManifestKind::DockerSchema2);
    }
    tags
}

/// `tufa sign REPO:TAG` for every tag at once, each a process of its own.
fn sign_at_once(me: &User, repo: &str, tags: &[String]) -> Vec<(String, Child)> {
    tags.iter()
        .map(|tag| {
            let image = format!("{repo}:{tag}");
            let child = spawn(me.tufa_command().args(["sign", &image]));
            (format!("tufa sign {image}"), child)
        })
        .collect()
}

/// The failures among `runs`, described with the round.
fn failures(round: &str, runs: &[Run]) -> Vec<String> {
    runs.iter()
        .filter(|r| !r.success())
        .map(|r| format!("round {round}: {r:?}"))
        .collect()
}

/// docker's trust directory, the one `tufa sign` uses.
fn docker_trust(stack: &Stack) -> PathBuf {
    stack.docker_config().join("trust")
}

/// The cached metadata directory of `repo` in `trust` (Notary's layout).
fn metadata_dir(trust: &Path, repo: &str) -> PathBuf {
    trust.join("tuf").join(repo).join("metadata")
}

/// The cache of `repo` holds one server state: the timestamp records the cached snapshot, and
/// the snapshot records every cached targets file.
fn assert_one_state(trust: &Path, repo: &str) {
    let dir = metadata_dir(trust, repo);
    let read = |name: &str| {
        std::fs::read(dir.join(name))
            .unwrap_or_else(|e| panic!("{}: {e}", dir.join(name).display()))
    };
    let json = |bytes: &[u8]| -> serde_json::Value { serde_json::from_slice(bytes).unwrap() };
    let sha =
        |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(Sha256::digest(bytes));
    let timestamp = json(&read("timestamp.json"));
    let snapshot = read("snapshot.json");
    assert_eq!(
        timestamp["signed"]["meta"]["snapshot"]["hashes"]["sha256"],
        sha(&snapshot),
        "the cached timestamp does not record the cached snapshot of {repo}"
    );
    let snapshot = json(&snapshot);
    let meta = snapshot["signed"]["meta"].as_object().unwrap();
    let mut checked = 0;
    for (role, entry) in meta {
        let Ok(bytes) = std::fs::read(dir.join(format!("{role}.json"))) else {
            continue;
        };
        assert_eq!(
            entry["hashes"]["sha256"],
            sha(&bytes),
            "the cached snapshot of {repo} does not record the cached {role}.json"
        );
        checked += 1;
    }
    assert!(
        checked >= 3,
        "only {checked} cached files to check in {}",
        dir.display()
    );
}

#[test]
fn parallel_signers_sharing_a_trust_dir_all_succeed() {
    let w = World::new("cache-stress");
    let me = w.user();
    let repo = repository(&w);
    let rounds = rounds(3);
    let mut failed = Vec::new();
    let mut tags = Vec::new();
    for round in 0..rounds {
        let round = format!("r{round}");
        let these = push_tags(&w.stack, &round);
        failed.extend(failures(
            &round,
            &wait_all(sign_at_once(&me, &repo, &these)),
        ));
        assert_one_state(&docker_trust(&w.stack), &repo);
        tags.extend(these);
    }
    assert!(
        failed.is_empty(),
        "{} of {} signs failed:\n{}",
        failed.len(),
        AT_ONCE * rounds,
        failed.join("\n")
    );
    // Every tag is signed, and docker reads what tufa cached the same way tufa does.
    let listed = me.inspect_same(&[&repo]);
    for tag in &tags {
        assert!(
            listed.contains(&format!("\"{tag}\"")),
            "{tag} missing:\n{listed}"
        );
    }
}

/// The real notary CLI in docker's trust directory (which it shares with `tufa sign`): it
/// reads and writes the same cache, taking no lock.
fn real_notary(stack: &Stack, args: &[&str]) -> Command {
    let mut cmd = stack.notary_command();
    cmd.arg("-d").arg(docker_trust(stack)).args(args);
    cmd
}

/// How many publishes of the notary CLI (Go's HTTP client) notary-server refused as older
/// than what it had: version conflicts.
fn races_lost(server_log: &str) -> usize {
    server_log
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|l| {
            l["msg"] == "400 POST old version error"
                && l["http.request.useragent"]
                    .as_str()
                    .is_some_and(|a| a.starts_with("Go-http-client"))
        })
        .count()
}

#[test]
fn parallel_signers_with_notary_publishing_alongside() {
    let w = World::new("cache-notary");
    let me = w.user();
    let repo = repository(&w);
    // A signer whose key the notary CLI holds (docker writes it to the shared trust dir).
    me.docker_ok(&["trust", "key", "generate", "nelly"]);
    me.add_signer("nelly", &repo);
    let rounds = rounds(2);
    let mut failed = Vec::new();
    let mut notary_runs = 0;
    let mut notary_ok = Vec::new();
    let mut notary_lost = 0;
    for round in 0..rounds {
        let round = format!("n{round}");
        let tags = push_tags(&w.stack, &round);
        let mut children = sign_at_once(&me, &repo, &tags);
        // Alongside: the real notary CLI publishing into its own role, and `tufa notary`
        // publishing into targets, both in the same trust directory.
        let target = format!("notary-{round}");
        let digest = hex::encode(Sha256::digest(target.as_bytes()));
        let notary = spawn(&mut real_notary(
            &w.stack,
            &[
                "addhash",
                &repo,
                &target,
                "5",
                "--sha256",
                &digest,
                "-r",
                "targets/nelly",
                "-p",
            ],
        ));
        let tufa_target = format!("tufa-notary-{round}");
        let args = notary_args(
            &w.stack.notary_url(),
            &w.stack.ca_file(),
            &docker_trust(&w.stack),
            &[
                "addhash",
                &repo,
                &tufa_target,
                "5",
                "--sha256",
                &digest,
                "-p",
            ],
        );
        children.push((
            format!("tufa notary addhash {tufa_target}"),
            spawn(me.agent.tufa_command(w.cwd()).args(&args)),
        ));
        let listing = spawn(&mut real_notary(&w.stack, &["list", &repo]));
        failed.extend(failures(&round, &wait_all(children)));
        let notary = Run::new("notary addhash -p", notary.wait_with_output().unwrap());
        let listing = Run::new("notary list", listing.wait_with_output().unwrap());
        notary_runs += 1;
        // notary does not retry a version conflict (tufa does): it may lose a race, but it
        // never fails on what tufa left in the cache.
        if notary.success() {
            notary_ok.push(target);
        } else {
            notary_lost += 1;
            assert!(
                notary.stdout().contains("trust server rejected operation")
                    && races_lost(&w.stack.server_log()) >= notary_lost,
                "{notary:?}\n{}",
                w.stack.server_log()
            );
        }
        assert!(listing.success(), "{listing:?}");
        assert_one_state(&docker_trust(&w.stack), &repo);
    }
    assert!(
        failed.is_empty(),
        "{} of {} tufa runs failed:\n{}",
        failed.len(),
        (AT_ONCE + 1) * rounds,
        failed.join("\n")
    );
    // The notary CLI and tufa read one another's cache: both list every target.
    let listed = w.stack.notary_ok(&[
        "-d",
        docker_trust(&w.stack).to_str().unwrap(),
        "list",
        &repo,
    ]);
    for target in &notary_ok {
        assert!(listed.contains(target), "{target} missing:\n{listed}");
    }
    eprintln!(
        "notary addhash -p published {} of {notary_runs}",
        notary_ok.len()
    );
    me.inspect_same(&[&repo]);
}

#[test]
fn a_real_rollback_during_the_stress_is_still_caught() {
    let w = World::new("cache-rollback");
    let me = w.user();
    let repo = repository(&w);
    let trust = docker_trust(&w.stack);
    let proxy = HostileServer::proxy(&w.stack);
    let reader = || {
        let args = notary_args(&proxy.url(), &proxy.ca_file(), &trust, &["list", &repo]);
        spawn(me.agent.tufa_command(w.cwd()).args(&args))
    };
    // The timestamp as it is now, to be replayed once the cache has moved past it.
    let old = proxy.fetch(&repo, "timestamp.json").unwrap();
    let mut failed = Vec::new();
    for round in 0..rounds(2) {
        let round = format!("b{round}");
        let tags = push_tags(&w.stack, &round);
        failed.extend(failures(&round, &wait_all(sign_at_once(&me, &repo, &tags))));
    }
    // In the middle of another round, a reader through the proxy is served the old timestamp.
    proxy.tamper(vec![Tamper::replace("timestamp", old)]);
    let tags = push_tags(&w.stack, "b-last");
    let signers = sign_at_once(&me, &repo, &tags);
    let lied_to = reader();
    failed.extend(failures("b-last", &wait_all(signers)));
    let lied_to = Run::new(
        "tufa notary list (old timestamp)",
        lied_to.wait_with_output().unwrap(),
    );
    assert!(
        failed.is_empty(),
        "{} signs failed:\n{}",
        failed.len(),
        failed.join("\n")
    );
    let err = lied_to.fails_saying("rollback");
    assert!(err.contains("timestamp.json of"), "{err}");
    assert!(
        proxy
            .served()
            .iter()
            .any(|s| s.tampered && s.file == "timestamp.json"),
        "the old timestamp was never served"
    );
    // The refusal wrote nothing: the cache is still one, current state, and honest reads work.
    assert_one_state(&trust, &repo);
    proxy.tamper(Vec::new());
    let honest = Run::new("tufa notary list", reader().wait_with_output().unwrap()).ok();
    for tag in &tags {
        assert!(honest.contains(tag.as_str()), "{tag} missing:\n{honest}");
    }
}

/// Sends `signal` (e.g. `STOP`, `KILL`) to `pid`.
fn signal(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .args([&format!("-{signal}"), &pid.to_string()])
        .status()
        .expect("kill");
    assert!(status.success(), "kill -{signal} {pid}");
}

/// A `tufa sign` stopped (SIGSTOP) while it holds the repository's cache lock; returns it.
fn stopped_holding_the_lock(me: &User, repo: &str, lock: &Path, stack: &Stack) -> Child {
    for attempt in 0..50 {
        let tag = format!("held-{attempt}");
        stack.push_image("tufa/app", &tag, ManifestKind::DockerSchema2);
        let mut child = spawn(me.tufa_command().args(["sign", &format!("{repo}:{tag}")]));
        let pid = child.id().to_string();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline && child.try_wait().unwrap().is_none() {
            if std::fs::read_to_string(lock).is_ok_and(|t| t.trim() == pid) {
                signal(child.id(), "STOP");
                // The holder removes the file before it lets go: still there with its pid, it
                // is stopped holding the lock.
                if std::fs::read_to_string(lock).is_ok_and(|t| t.trim() == pid) {
                    return child;
                }
                signal(child.id(), "CONT");
            }
            std::thread::yield_now();
        }
        child.wait().unwrap();
    }
    panic!("never caught a tufa sign holding the lock");
}

/// Lines of `child`'s stderr, as they come.
fn stderr_lines(child: &mut Child) -> mpsc::Receiver<String> {
    let (send, receive) = mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if send.send(line).is_err() {
                break;
            }
        }
    });
    receive
}

#[test]
fn a_stuck_lock_holder_is_named_then_the_others_go_on_once_it_is_killed() {
    let w = World::new("cache-stuck");
    let me = w.user();
    let repo = repository(&w);
    let lock = docker_trust(&w.stack)
        .join("tuf")
        .join(&repo)
        .join(".tufa.lock");
    let mut holder = stopped_holding_the_lock(&me, &repo, &lock, &w.stack);
    let pid = holder.id();

    let tags = push_tags(&w.stack, "s");
    let mut waiters: Vec<(String, Child, mpsc::Receiver<String>, Vec<String>)> = tags[..3]
        .iter()
        .map(|tag| {
            let image = format!("{repo}:{tag}");
            let mut child = spawn(me.tufa_command().args(["sign", &image]));
            let lines = stderr_lines(&mut child);
            (image, child, lines, Vec::new())
        })
        .collect();
    // Each says whom it waits for, and keeps waiting.
    let expected = format!("waiting for the trust cache of {repo}: process {pid} holds its lock");
    for (image, child, lines, seen) in &mut waiters {
        loop {
            let line = lines
                .recv_timeout(Duration::from_secs(30))
                .unwrap_or_else(|_| panic!("{image}: no word of the wait; said {seen:?}"));
            seen.push(line.clone());
            if line.contains(&expected) {
                break;
            }
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "{image} did not wait: {seen:?}"
        );
    }
    // Once the holder is gone, they go on and sign.
    signal(pid, "KILL");
    holder.wait().unwrap();
    for (image, child, lines, mut seen) in waiters {
        let out = child.wait_with_output().unwrap();
        seen.extend(lines.iter());
        assert!(out.status.success(), "{image}: {}", seen.join("\n"));
        assert!(
            String::from_utf8_lossy(&out.stdout).contains(&format!("Successfully signed {image}")),
            "{image}"
        );
    }
    assert_one_state(&docker_trust(&w.stack), &repo);
    let listed = me.inspect_same(&[&repo]);
    for tag in &tags[..3] {
        assert!(
            listed.contains(&format!("\"{tag}\"")),
            "{tag} missing:\n{listed}"
        );
    }
}

/// Every file under `dir` (relative) with its bytes.
fn files_under(dir: &Path) -> std::collections::BTreeMap<PathBuf, Vec<u8>> {
    tufa_testkit::tree(dir)
        .into_iter()
        .map(|(path, bytes)| (path.strip_prefix(dir).unwrap().to_owned(), bytes))
        .collect()
}

/// The metadata files readers asked the proxy for since the last call, each once (not
/// `root.json`, which every reader asks for).
fn fetched_besides_root(proxy: &HostileServer) -> Vec<String> {
    let files: std::collections::BTreeSet<String> = proxy
        .served()
        .into_iter()
        .map(|s| s.file)
        // Metadata files only: the proxy also logs the paths it passes through (`/v2/`).
        .filter(|f| f != "root.json" && !f.starts_with('/'))
        .collect();
    files.into_iter().collect()
}

#[test]
fn the_cache_is_shared_with_docker_and_notary_both_ways() {
    let w = World::new("cache-shared");
    let me = w.user();
    let repo = repository(&w);
    w.stack
        .push_image("tufa/app", "v1", ManifestKind::DockerSchema2);
    me.sign(&format!("{repo}:v1"));
    // A sign caches what it read, not what it posted (that would mix two server states): the
    // next read caches the signed state.
    me.tufa_ok(&["inspect", &repo]);
    let trust = docker_trust(&w.stack);
    let ours = files_under(&metadata_dir(&trust, &repo));
    assert!(
        ours.contains_key(Path::new("targets/alice.json")),
        "{:?}",
        ours.keys()
    );

    // The notary CLI, given the same server state, caches the very same files, byte for byte.
    let theirs_dir = w.cwd().join("notary-trust");
    let dir = theirs_dir.to_str().unwrap();
    w.stack.notary_ok(&["-d", dir, "list", &repo]);
    assert_eq!(files_under(&metadata_dir(&theirs_dir, &repo)), ours);

    // Through a proxy that logs what is fetched: the notary and docker CLIs reading what tufa
    // cached fetch only the timestamp (snapshot, targets and delegations come from the cache).
    let proxy = HostileServer::proxy(&w.stack);
    let port = proxy.url().rsplit(':').next().unwrap().to_owned();
    let tls = w
        .stack
        .docker_config()
        .join(format!("tls/127.0.0.1:{port}"));
    std::fs::create_dir_all(&tls).unwrap();
    std::fs::copy(proxy.ca_file(), tls.join("ca.crt")).unwrap();
    let ca = proxy.ca_file();
    let notary_via_proxy = |trust: &Path| {
        Run::of(
            "notary list (proxy)",
            w.stack.notary_command().args([
                "-d",
                trust.to_str().unwrap(),
                "-s",
                &proxy.url(),
                "--tlscacert",
                ca.to_str().unwrap(),
                "list",
                &repo,
            ]),
        )
        .ok()
    };
    proxy.served();
    let listed = notary_via_proxy(&trust);
    assert!(listed.contains("v1"), "{listed}");
    assert_eq!(fetched_besides_root(&proxy), ["timestamp.json"]);
    let docker = Run::of(
        "docker trust inspect (proxy)",
        w.stack
            .docker_command(w.cwd())
            .env("DOCKER_CONTENT_TRUST_SERVER", proxy.url())
            .args(["trust", "inspect", &repo]),
    )
    .ok();
    assert!(docker.contains("\"v1\""), "{docker}");
    assert_eq!(fetched_besides_root(&proxy), ["timestamp.json"]);
    // And they left it as tufa wrote it (same server state, same bytes).
    assert_eq!(files_under(&metadata_dir(&trust, &repo)), ours);

    // The other way: tufa reading what the notary CLI cached fetches only the timestamp too.
    let tufa_via_proxy = |trust: &Path| {
        let args = notary_args(&proxy.url(), &ca, trust, &["list", &repo]);
        me.agent.tufa_ok(w.cwd(), &args)
    };
    let listed = tufa_via_proxy(&theirs_dir);
    assert!(listed.contains("v1"), "{listed}");
    assert_eq!(fetched_besides_root(&proxy), ["timestamp.json"]);

    // ... and what docker cached, after a new tag changed every file but the root.
    w.stack
        .push_image("tufa/app", "v2", ManifestKind::DockerSchema2);
    me.sign(&format!("{repo}:v2"));
    std::fs::remove_dir_all(trust.join("tuf")).unwrap();
    me.docker_ok(&["trust", "inspect", &repo]);
    let docker_wrote = files_under(&metadata_dir(&trust, &repo));
    proxy.served();
    let listed = tufa_via_proxy(&trust);
    assert!(listed.contains("v2"), "{listed}");
    assert_eq!(fetched_besides_root(&proxy), ["timestamp.json"]);
    assert_eq!(files_under(&metadata_dir(&trust, &repo)), docker_wrote);
}

/// Issue 11 item 8: GUN `X/metadata/targets` beside `X`, whose delegation
/// `targets/metadata/root` sits where the other's root.json would in Notary's layout.
#[test]
fn guns_whose_notary_paths_meet_keep_their_own_cache() {
    let w = World::new("cache-guns");
    let me = w.user();
    let x = "example.com/x";
    let y = "example.com/x/metadata/targets";
    me.generate_key("meta");
    me.notary_ok(&["init", x, "-p"]);
    me.delegate(x, "targets/metadata", "meta.pub");
    me.delegate(x, "targets/metadata/root", "meta.pub");
    let digest = hex::encode(Sha256::digest(b"t1"));
    me.notary_ok(&[
        "addhash",
        x,
        "t1",
        "2",
        "--sha256",
        &digest,
        "--roles",
        "targets/metadata/root",
        "-p",
    ]);
    me.notary_ok(&["init", y, "-p"]);
    me.publish_target(y, "y1", 2, &digest);
    // Read each a few times, in turn: each keeps its own files.
    for _ in 0..2 {
        let listed = me.notary_ok(&["list", x]);
        assert!(listed.contains("t1"), "{listed}");
        let listed = me.notary_ok(&["list", y]);
        assert!(listed.contains("y1"), "{listed}");
    }
    let trust = w.cwd().join("tufa-trust");
    // X keeps Notary's path (its delegation too); Y, which would meet it, lives apart.
    let x_files = files_under(&metadata_dir(&trust, x));
    assert!(x_files.contains_key(Path::new("targets/metadata/root.json")));
    let y_dir = tufa_client::tuf::TrustCache::new(&trust).metadata_dir(&y.parse().unwrap());
    assert!(
        y_dir.starts_with(trust.join("tufa/tuf")),
        "{}",
        y_dir.display()
    );
    let y_root = std::fs::read(y_dir.join("root.json")).unwrap();
    let y_root: serde_json::Value = serde_json::from_slice(&y_root).unwrap();
    assert_eq!(y_root["signed"]["_type"], "Root");
}
