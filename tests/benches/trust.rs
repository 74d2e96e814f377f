//! docker trust benchmark: `tufa sign` of a new tag on an existing repository vs the notary
//! CLI's `addhash ... -p`, and `tufa inspect` vs `docker trust inspect` on a repository with
//! 1,000 signed tags. Prints figures (medians of several runs); checks nothing.
//!
//! `scripts/bench.sh` runs it after building the release binaries.

use std::time::{Duration, Instant};

use tufa_tests::stack::{ManifestKind, Stack};
use tufa_tests::{Agent, SoftHsm, User};

// Loopback round trips vary by a few milliseconds from run to run: enough runs for a steady median.
const RUNS: usize = 21;
const TAGS: usize = 1000;

fn main() {
    let stack = Stack::start();
    let hsm = SoftHsm::new("bench-trust", "bench-pin-1");
    let agent = Agent::start(&hsm);
    let cwd = tempfile::tempdir().expect("tempdir");
    let cwd = cwd.path();
    let user = User::new(&agent, &stack, cwd);
    let tufa = |args: &[&str]| -> String { user.tufa_ok(args) };

    // A tufa repository with a signer, and a notary-CLI repository, each already published.
    let repo = format!("{}/bench/app", stack.registry_addr());
    agent.tufa_ok(cwd, &["key", "generate", "bench"]);
    tufa(&["signer", "add", "--key", "bench.pub", "bench", &repo]);
    let notary_gun = "example.com/bench/notary";
    stack.notary_ok(&["init", notary_gun]);
    stack.notary_ok(&["key", "rotate", notary_gun, "snapshot", "-r"]);
    stack.notary_ok(&["publish", notary_gun]);

    let mut sign = Vec::new();
    let mut addhash = Vec::new();
    for i in 0..RUNS {
        let tag = format!("s{i}");
        let image = stack.push_image("bench/app", &tag, ManifestKind::DockerSchema2);
        sign.push(timed(|| {
            tufa(&["sign", &format!("{repo}:{tag}")]);
        }));
        let hex = image.digest.trim_start_matches("sha256:").to_owned();
        let size = image.size.to_string();
        addhash.push(timed(|| {
            stack.notary_ok(&["addhash", notary_gun, &tag, &size, "--sha256", &hex, "-p"]);
        }));
    }

    // The check before a pull: tufa verify vs docker's DCT resolution (it then fails at the
    // daemon, which is not timed separately).
    let mut verify = Vec::new();
    let mut pull = Vec::new();
    for _ in 0..RUNS {
        verify.push(timed(|| {
            tufa(&["verify", &format!("{repo}:s0")]);
        }));
        pull.push(timed(|| {
            let out = stack
                .docker_command(cwd)
                .env("DOCKER_CONTENT_TRUST", "1")
                .args(["pull", &format!("{repo}:s0")])
                .output()
                .expect("docker pull");
            assert!(String::from_utf8_lossy(&out.stdout).contains("Pull (1 of 1)"));
        }));
    }

    // 1,000 released tags in `targets` of a tufa repository, staged and published at once.
    let big = format!("{}/bench/many", stack.registry_addr());
    let big_gun = big.as_str();
    let server = stack.notary_url();
    let (ca, trust) = (stack.ca_file(), stack.docker_config().join("trust"));
    let notary_args = |rest: &[&str]| tufa_tests::notary_args(&server, &ca, &trust, rest);
    let run = |args: Vec<String>| {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        tufa(&a);
    };
    run(notary_args(&["init", big_gun, "--server-managed-snapshot"]));
    for i in 0..TAGS {
        let hex = format!("{i:064x}");
        run(notary_args(&[
            "addhash",
            big_gun,
            &format!("t{i}"),
            "100",
            "--sha256",
            &hex,
        ]));
    }
    run(notary_args(&["publish", big_gun]));
    // Both clients read once to fill their caches, then are timed warm.
    tufa(&["inspect", big_gun]);
    let docker = |args: &[&str]| stack.docker(cwd, args).ok();
    docker(&["trust", "inspect", big_gun]);
    let mut ours = Vec::new();
    let mut theirs = Vec::new();
    for _ in 0..RUNS {
        ours.push(timed(|| {
            tufa(&["inspect", big_gun]);
        }));
        theirs.push(timed(|| {
            docker(&["trust", "inspect", big_gun]);
        }));
    }
    let same = tufa(&["inspect", big_gun]) == docker(&["trust", "inspect", big_gun]);

    println!("docker trust benchmark ({RUNS} runs each, medians; same notary-server and registry)");
    report(
        "sign a new tag",
        "tufa sign",
        &sign,
        "notary addhash -p",
        &addhash,
    );
    report(
        "verify a signed tag",
        "tufa verify",
        &verify,
        "DCT docker pull",
        &pull,
    );
    report(
        &format!("inspect {TAGS} signed tags"),
        "tufa inspect",
        &ours,
        "docker trust inspect",
        &theirs,
    );
    println!("  tufa inspect output identical to docker's: {same}");
}

fn timed(f: impl FnOnce()) -> Duration {
    let t = Instant::now();
    f();
    t.elapsed()
}

fn median(v: &[Duration]) -> Duration {
    let mut s = v.to_vec();
    s.sort();
    s[s.len() / 2]
}

fn report(what: &str, a: &str, av: &[Duration], b: &str, bv: &[Duration]) {
    let (ma, mb) = (median(av), median(bv));
    let ratio = ma.as_secs_f64() / mb.as_secs_f64();
    println!("  {what}:");
    println!("    {a:<22} {:>8.1} ms", ma.as_secs_f64() * 1e3);
    println!("    {b:<22} {:>8.1} ms", mb.as_secs_f64() * 1e3);
    println!(
        "    ratio {ratio:.2}x (target <= 0.6x: {})",
        if ratio <= 0.6 { "met" } else { "NOT met" }
    );
}
