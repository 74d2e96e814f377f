//! Notary benchmark: `tufa notary` against the notary CLI, on one stack (notary-server and
//! notary-signer over TLS) and one repository of each kind. Prints figures and whether issue 3's
//! targets are met: tufa at most half of notary's wall time, and less memory.
//!
//! - `list` of a repository with 10,000 targets, from a cold cache (nothing cached, so the root is
//!   trusted on first use and every file downloaded) and from a warm one (only timestamp.json
//!   changes hands).
//! - Publishing 1,000 targets in one change: 1,000 `addhash` then one `publish`, for each tool,
//!   on a fresh repository each run; timed as a whole, and the `publish` alone.
//!
//! Every command runs as a child process; wall time is the median of the runs, peak memory the
//! largest max RSS `/usr/bin/time -f %M` reports over them.
//!
//! Run with `scripts/bench.sh` (builds the release binaries first), or:
//! `cargo build --release --workspace --bins && cargo bench -p tufa-tests --bench notary`.
//! `TUFA_BENCH_RUNS` changes the number of runs (default 5).

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use sha2::{Digest as _, Sha256};
use tempfile::TempDir;
use tufa_client::repo::{Change, Changelist};
use tufa_client::tuf::{Gun, RoleName};
use tufa_tests::stack::Stack;
use tufa_tests::{bin, require, Agent, SoftHsm};

/// Targets in the repository both tools list.
const LIST_TARGETS: usize = 10_000;
/// Targets staged and published in one change.
const PUBLISH_TARGETS: usize = 1_000;
/// Runs of each measurement, unless `TUFA_BENCH_RUNS` says otherwise.
const DEFAULT_RUNS: usize = 5;
/// GNU time, for the children's peak memory (Debian's `time` package).
const TIME: &str = "/usr/bin/time";

fn main() {
    assert!(
        Path::new(TIME).exists(),
        "{TIME} is missing: run scripts/install-deps.sh (apt-get install time)"
    );
    require("notary", "apt-get install notary");
    let runs = std::env::var("TUFA_BENCH_RUNS")
        .ok()
        .and_then(|r| r.parse().ok())
        .filter(|&r| r > 0)
        .unwrap_or(DEFAULT_RUNS);
    let bench = Bench::start();

    eprintln!("setting up a repository with {LIST_TARGETS} targets ...");
    let list_gun = "bench.example/list";
    bench.make_list_repo(list_gun);
    let list = bench.measure_list(list_gun, runs);

    eprintln!("publishing {PUBLISH_TARGETS} targets, {runs} runs per tool ...");
    let publish = bench.measure_publish(runs);

    report(runs, &list, &publish);
}

/// One child process: its wall time and its peak resident memory.
#[derive(Clone, Copy, Debug)]
struct Sample {
    wall: Duration,
    rss_kib: u64,
}

/// Figures of one tool for one task.
#[derive(Clone, Debug, Default)]
struct Figures {
    walls: Vec<Duration>,
    rss_kib: Vec<u64>,
}

impl Figures {
    fn push(&mut self, s: Sample) {
        self.walls.push(s.wall);
        self.rss_kib.push(s.rss_kib);
    }

    fn median(&self) -> Duration {
        let mut w = self.walls.clone();
        w.sort();
        w[w.len() / 2]
    }

    fn peak_mib(&self) -> f64 {
        self.rss_kib.iter().copied().max().unwrap_or(0) as f64 / 1024.0
    }
}

/// tufa's and notary's figures for one task.
#[derive(Debug, Default)]
struct Pair {
    tufa: Figures,
    notary: Figures,
}

struct ListFigures {
    warm: Pair,
    cold: Pair,
}

struct PublishFigures {
    /// `addhash` × N then `publish`.
    whole: Pair,
    /// `publish` alone.
    publish: Pair,
}

/// The stack, an agent on a SoftHSM token, and a working directory for tufa.
struct Bench {
    stack: Stack,
    agent: Agent,
    _hsm: SoftHsm,
    cwd: TempDir,
}

impl Bench {
    fn start() -> Self {
        let stack = Stack::start();
        let hsm = SoftHsm::new("notary-bench", "bench-pin-1");
        let agent = Agent::start(&hsm);
        let cwd = tempfile::Builder::new()
            .prefix("tufa-nbench-")
            .tempdir()
            .expect("tempdir");
        Self {
            stack,
            agent,
            _hsm: hsm,
            cwd,
        }
    }

    fn tufa_trust_dir(&self) -> PathBuf {
        self.cwd.path().join("tufa-trust")
    }

    /// `tufa notary --server … --tls-ca … --trust-dir … ARGS` against this stack and agent.
    fn tufa(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(bin("tufa"));
        cmd.current_dir(self.cwd.path())
            .env("TUFA_AGENT_SOCK", &self.agent.socket)
            .env("DOCKER_CONFIG", self.cwd.path().join("docker-config"))
            .env_remove("DOCKER_CONTENT_TRUST_SERVER")
            .env_remove("TUFA_TRUST_DIR")
            .arg("notary")
            .arg("--server")
            .arg(self.stack.notary_url())
            .arg("--tls-ca")
            .arg(self.stack.ca_file())
            .arg("--trust-dir")
            .arg(self.tufa_trust_dir())
            .args(args)
            .stdin(Stdio::null());
        cmd
    }

    /// The notary CLI against the same server, with its own trust dir and key passphrases.
    fn notary(&self, args: &[&str]) -> Command {
        let mut cmd = self.stack.notary_command();
        cmd.args(args);
        cmd
    }

    /// A repository with [`LIST_TARGETS`] targets, made by tufa and published in one change.
    fn make_list_repo(&self, gun: &str) {
        run_ok(self.tufa(&["init", gun]));
        let parsed: Gun = gun.parse().expect("GUN");
        // Staged in one write: the benchmark measures listing, not how this repository was made.
        Changelist::new(&self.tufa_trust_dir(), &parsed)
            .add_all((0..LIST_TARGETS).map(|i| Change::AddTarget {
                role: RoleName::TARGETS,
                name: target_name(i),
                length: 1000 + i as u64,
                sha256: target_digest(i).parse().expect("hex digest"),
                sha512: None,
                custom: None,
            }))
            .expect("stage the targets");
        run_ok(self.tufa(&["publish", gun]));
        // Both tools must show the same thing, or the comparison means nothing.
        let ours = run_ok(self.tufa(&["list", gun]));
        let theirs = run_ok(self.notary(&["list", gun]));
        assert_eq!(ours, theirs, "tufa and notary list {gun} differently");
        assert_eq!(ours.lines().count(), LIST_TARGETS + 2, "{gun}: wrong count");
    }

    fn measure_list(&self, gun: &str, runs: usize) -> ListFigures {
        let scratch = self.cwd.path().join("time.out");
        let tufa_cache = self.tufa_trust_dir().join("tuf").join(gun).join("metadata");
        let notary_cache = self
            .stack
            .notary_trust_dir()
            .join("tuf")
            .join(gun)
            .join("metadata");
        let mut figures = ListFigures {
            warm: Pair::default(),
            cold: Pair::default(),
        };
        // Interleaved, so a slow moment of the machine hits both tools alike.
        for _ in 0..runs {
            remove_dir(&tufa_cache);
            figures
                .cold
                .tufa
                .push(measure(&self.tufa(&["list", gun]), &scratch));
            remove_dir(&notary_cache);
            figures
                .cold
                .notary
                .push(measure(&self.notary(&["list", gun]), &scratch));
        }
        // The last cold run left both caches full.
        for _ in 0..runs {
            figures
                .warm
                .tufa
                .push(measure(&self.tufa(&["list", gun]), &scratch));
            figures
                .warm
                .notary
                .push(measure(&self.notary(&["list", gun]), &scratch));
        }
        figures
    }

    fn measure_publish(&self, runs: usize) -> PublishFigures {
        let scratch = self.cwd.path().join("time.out");
        let mut figures = PublishFigures {
            whole: Pair::default(),
            publish: Pair::default(),
        };
        for run in 0..runs {
            let gun = format!("bench.example/publish-tufa-{run}");
            run_ok(self.tufa(&["init", &gun, "-p"]));
            let (whole, publish) = self.publish_sequence(&scratch, |args| self.tufa(args), &gun);
            figures.whole.tufa.push(whole);
            figures.publish.tufa.push(publish);
            if run == 0 {
                self.check_published(&gun);
            }

            let gun = format!("bench.example/publish-notary-{run}");
            run_ok(self.notary(&["init", &gun, "-p"]));
            let (whole, publish) = self.publish_sequence(&scratch, |args| self.notary(args), &gun);
            figures.whole.notary.push(whole);
            figures.publish.notary.push(publish);
            if run == 0 {
                self.check_published(&gun);
            }
        }
        figures
    }

    /// `addhash` × [`PUBLISH_TARGETS`] then `publish`: the whole sequence, and the publish alone.
    fn publish_sequence(
        &self,
        scratch: &Path,
        tool: impl Fn(&[&str]) -> Command,
        gun: &str,
    ) -> (Sample, Sample) {
        let start = Instant::now();
        for i in 0..PUBLISH_TARGETS {
            let (name, size, digest) = (target_name(i), (1000 + i).to_string(), target_digest(i));
            let args = ["addhash", gun, &name, &size, "--sha256", &digest];
            let mut cmd = tool(&args);
            cmd.stdout(Stdio::null());
            check(&args, cmd.output().expect("run addhash"));
        }
        let publish = measure(&tool(&["publish", gun]), scratch);
        let whole = Sample {
            wall: start.elapsed(),
            rss_kib: publish.rss_kib,
        };
        (whole, publish)
    }

    /// The published repository lists every target (checked with the notary CLI).
    fn check_published(&self, gun: &str) {
        let listed = run_ok(self.notary(&["list", gun]));
        assert_eq!(
            listed.lines().count(),
            PUBLISH_TARGETS + 2,
            "{gun}: not every target was published"
        );
    }
}

/// Runs `cmd` under GNU time with its output discarded; panics if it fails.
fn measure(cmd: &Command, scratch: &Path) -> Sample {
    let mut timed = Command::new(TIME);
    timed
        .args(["-f", "%M", "-o"])
        .arg(scratch)
        .arg(cmd.get_program())
        .args(cmd.get_args());
    for (key, value) in cmd.get_envs() {
        match value {
            Some(v) => timed.env(key, v),
            None => timed.env_remove(key),
        };
    }
    if let Some(dir) = cmd.get_current_dir() {
        timed.current_dir(dir);
    }
    timed.stdin(Stdio::null()).stdout(Stdio::null());
    let start = Instant::now();
    let out = timed.output().expect("run /usr/bin/time");
    let wall = start.elapsed();
    let args: Vec<_> = cmd.get_args().map(|a| a.to_string_lossy()).collect();
    check(&args, out);
    let text = std::fs::read_to_string(scratch).expect("time's output");
    let rss_kib = text
        .lines()
        .last()
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or_else(|| panic!("no max RSS in {text:?}"));
    Sample { wall, rss_kib }
}

/// Runs `cmd` for setup and returns its stdout; panics if it fails.
fn run_ok(mut cmd: Command) -> String {
    let out = cmd.output().expect("run");
    let args: Vec<_> = cmd.get_args().map(|a| a.to_string_lossy()).collect();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    check(&args, out);
    stdout
}

fn check<S: std::fmt::Debug>(args: &[S], out: Output) {
    assert!(
        out.status.success(),
        "{args:?} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn remove_dir(dir: &Path) {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => panic!("remove {}: {e}", dir.display()),
    }
}

fn target_name(i: usize) -> String {
    format!("release-{i:05}")
}

fn target_digest(i: usize) -> String {
    hex::encode(Sha256::digest(format!("target {i}").as_bytes()))
}

fn report(runs: usize, list: &ListFigures, publish: &PublishFigures) {
    println!(
        "notary list, {LIST_TARGETS} targets, one notary-server over TLS (median wall of {runs} runs, peak RSS the largest)"
    );
    println!(
        "{:<36}  {:>12}  {:>12}  {:>13}",
        "", "tufa", "notary", "tufa / notary"
    );
    row("list, warm cache", &list.warm);
    rss_row(&list.warm);
    row("list, cold cache", &list.cold);
    rss_row(&list.cold);
    println!("publish {PUBLISH_TARGETS} targets in one change (a fresh repository each run)");
    row(
        &format!("addhash x{PUBLISH_TARGETS} + publish"),
        &publish.whole,
    );
    row("publish alone", &publish.publish);
    rss_row(&publish.publish);
    println!("targets: tufa at most half of notary's wall time, and less memory");
    for (what, pair, wall_judged) in [
        ("list, warm cache", &list.warm, true),
        ("list, cold cache", &list.cold, true),
        ("publish, whole sequence", &publish.whole, true),
        ("publish alone", &publish.publish, false),
    ] {
        let w = ratio_wall(pair);
        let m = ratio_rss(pair);
        let wall_note = if wall_judged {
            format!("(target <= 0.50x: {})", verdict(w <= 0.5))
        } else {
            "(for information)".into()
        };
        println!(
            "  {what:<24} wall {w:>5.2}x {wall_note:<26} memory {m:>5.2}x (target < 1.00x: {})",
            verdict(m < 1.0)
        );
    }
}

fn row(task: &str, pair: &Pair) {
    let (t, n) = (pair.tufa.median(), pair.notary.median());
    println!(
        "  {task:<26}{:<8}  {:>9.1} ms  {:>9.1} ms  {:>12.2}x",
        "wall",
        ms(t),
        ms(n),
        ratio_wall(pair)
    );
}

fn rss_row(pair: &Pair) {
    println!(
        "  {:<26}{:<8}  {:>8.1} MiB  {:>8.1} MiB  {:>12.2}x",
        "",
        "peak RSS",
        pair.tufa.peak_mib(),
        pair.notary.peak_mib(),
        ratio_rss(pair)
    );
}

fn ratio_wall(pair: &Pair) -> f64 {
    pair.tufa.median().as_secs_f64() / pair.notary.median().as_secs_f64()
}

fn ratio_rss(pair: &Pair) -> f64 {
    pair.tufa.peak_mib() / pair.notary.peak_mib()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "NOT met"
    }
}
