//! The README's commands, run for real, so that what it promises stays true.
//!
//! Every command in a ```sh block of README.md is run here by one of the
//! tests below (blocks are assigned to tests in [`BLOCKS`]), or by a CI step
//! named in [`ELSEWHERE`]; `every_sh_command_is_run_somewhere` fails on a new
//! command that nobody runs. A command runs through `bash -c` (globs expand),
//! in a working folder laid out so the README's relative paths work:
//! `../shared/corpus` is the reference corpora, `suites/` the repository's,
//! and every ```yaml block whose first line is `# NAME.yaml` is written there
//! as NAME.yaml. `faultline` is the binary under test (first on the PATH) and
//! `cargo run --release --` is replaced by it. The exit code must be 0, or N
//! when the command's comment says `# exit N: ...`, or any verdict (0, 1 or 2,
//! never 3) when it says `caught in n of N seeds` (a bug a run catches only
//! sometimes). Commands that never end (`faultline serve`, `faultline node`)
//! are started in a private network namespace, checked to answer, and stopped.
//!
//! Usage synopses live in ```text blocks; `synopses_name_only_flags_that_exist`
//! checks that every `--flag` one names is in that subcommand's `--help`, with
//! the default the help shows.
//!
//! Runs as root (network namespaces, iptables); the working folders are kept
//! under cargo's target tmp dir (`readme/<test>/`) for inspection, never in
//! the checkout.

mod common;

use std::collections::BTreeSet;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const EXE: &str = env!("CARGO_BIN_EXE_faultline");
const MANIFEST: &str = env!("CARGO_MANIFEST_DIR");

/// The longest any README command may take (the longest are runs of 30 s
/// plus setup, recovery and checking, or a suite of four 10 s runs).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(300);
/// How long a server gets to answer its first request.
const SERVER_READY: Duration = Duration::from_secs(30);

/// Which test runs each ```sh block, by the start of the block's first command.
const BLOCKS: &[(&str, &str)] = &[
    (
        "cargo run --release -- run --db raft --workload register",
        "setup_and_reports",
    ),
    ("faultline report results/", "setup_and_reports"),
    ("faultline run my-test.yaml", "test_files_and_suites"),
    (
        "faultline suite suites/smoke.yaml --jobs 2",
        "suites_on_a_fleet",
    ),
    ("faultline image build", "suites_on_a_fleet"),
    (
        "faultline check ../shared/corpus/porcupine-etcd",
        "checking_histories",
    ),
    (
        "faultline check --workload list-append",
        "checking_histories",
    ),
    ("faultline gen-history", "checking_histories"),
    (
        "cargo run --release -- bench controller",
        "checking_histories",
    ),
    ("cargo run --release -- bench check", "checking_histories"),
    ("faultline cluster up --backend netns", "hosts_and_faults"),
    ("faultline cluster up --name demo", "hosts_and_faults"),
    ("faultline clock bump", "hosts_and_faults"),
    (
        "faultline cluster up --backend docker --nodes 3 --disk-faults",
        "disk_faults_by_hand",
    ),
    ("faultline node --list-bugs", "bundled_nodes"),
    ("cargo run --release -- bench node", "bundled_nodes"),
    (
        "faultline run --db raft --nemesis partition-halves --bug stale-read",
        "bugs",
    ),
    ("faultline run threepc-busy.yaml", "bugs"),
    (
        "faultline run examples/redis-register/test.yaml",
        "custom_system",
    ),
];

/// README commands that no test here runs: (command, file that runs it, what
/// that file holds to run it). Checked: the file holds it.
const ELSEWHERE: &[(&str, &str, &str)] = &[
    // The CI entry point itself: CI runs this script.
    (
        "bash .ci/run",
        ".ci/run",
        "cargo nextest run --no-fail-fast",
    ),
    // The fast tier, run first so that it fails first.
    (
        "cargo nextest run --profile fast",
        ".ci/run",
        "cargo nextest run --profile fast",
    ),
    // Its last step, `== install`, into a folder of the target dir.
    (
        "cargo install --path .",
        ".ci/run",
        "cargo install --locked --path .",
    ),
];

/// Clusters the README makes by name: removed after the hosts test, even when it fails.
const README_CLUSTERS: &[&str] = &["demo", "lab", "dock", "disks", "nofuse"];

/// One command of a ```sh block, continuation lines joined.
#[derive(Debug, Clone)]
struct Cmd {
    text: String,
    /// Its first line in README.md (1-based).
    line: usize,
}

#[derive(Debug)]
struct Block {
    lang: String,
    /// The fence's line in README.md (1-based).
    line: usize,
    lines: Vec<String>,
}

fn readme() -> String {
    std::fs::read_to_string(Path::new(MANIFEST).join("README.md")).expect("README.md")
}

fn blocks(text: &str) -> Vec<Block> {
    let mut out = Vec::new();
    let mut open: Option<Block> = None;
    for (i, line) in text.lines().enumerate() {
        match (&mut open, line.strip_prefix("```")) {
            (None, Some(lang)) => {
                open = Some(Block {
                    lang: lang.trim().to_string(),
                    line: i + 1,
                    lines: Vec::new(),
                })
            }
            (Some(_), Some(_)) => out.extend(open.take()),
            (Some(b), None) => b.lines.push(line.to_string()),
            (None, None) => {}
        }
    }
    assert!(open.is_none(), "README.md: a ``` block is never closed");
    out
}

/// The block's lines with `\` continuations joined, each with its line number.
fn joined(b: &Block) -> Vec<Cmd> {
    let mut out: Vec<Cmd> = Vec::new();
    let mut pending: Option<Cmd> = None;
    for (i, line) in b.lines.iter().enumerate() {
        let (part, more) = match line.trim_end().strip_suffix('\\') {
            Some(p) => (p, true),
            None => (line.as_str(), false),
        };
        let cmd = match pending.take() {
            Some(mut c) => {
                c.text.push(' ');
                c.text.push_str(part.trim());
                c
            }
            None => Cmd {
                text: part.trim().to_string(),
                line: b.line + 1 + i,
            },
        };
        if more {
            pending = Some(cmd);
        } else {
            out.push(cmd);
        }
    }
    out.extend(pending);
    out
}

/// The commands of a ```sh block: comment and blank lines dropped.
fn commands(b: &Block) -> Vec<Cmd> {
    joined(b)
        .into_iter()
        .filter(|c| !c.text.is_empty() && !c.text.starts_with('#'))
        .collect()
}

fn sh_blocks(text: &str) -> Vec<Block> {
    blocks(text)
        .into_iter()
        .filter(|b| b.lang == "sh")
        .collect()
}

/// The test that runs this block, from [`BLOCKS`].
fn group_of(b: &Block) -> Option<&'static str> {
    let first = commands(b).into_iter().next()?;
    BLOCKS
        .iter()
        .find(|(start, _)| first.text.starts_with(start))
        .map(|(_, group)| *group)
}

fn elsewhere(cmd: &str) -> bool {
    ELSEWHERE.iter().any(|(c, _, _)| *c == cmd)
}

/// What the command's comment says its exit code will be.
#[derive(Debug, PartialEq)]
enum Expect {
    Exit(i32),
    /// A run of a bundled bug, caught in some seeds only: any verdict.
    AnyVerdict,
}

fn expected(cmd: &str) -> Expect {
    let comment = cmd.split_once(" #").map_or("", |(_, c)| c);
    if let Some(rest) = comment.trim().strip_prefix("exit ") {
        let n = rest.split(':').next().unwrap_or("").trim();
        return Expect::Exit(
            n.parse()
                .unwrap_or_else(|_| panic!("bad `# exit N:` in {cmd}")),
        );
    }
    if comment.contains("caught in ") {
        return Expect::AnyVerdict;
    }
    Expect::Exit(0)
}

/// Where a test runs its commands: `<base>/work`, with `<base>/bin/faultline`
/// and `<base>/shared/corpus` beside it.
struct Workdir {
    base: PathBuf,
    work: PathBuf,
    env: Vec<(String, String)>,
    corpus: bool,
}

fn workdir(test: &str) -> Workdir {
    let base = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("readme")
        .join(test);
    let _ = std::fs::remove_dir_all(&base);
    let work = base.join("work");
    std::fs::create_dir_all(&work).unwrap();
    std::fs::create_dir_all(base.join("bin")).unwrap();
    std::os::unix::fs::symlink(EXE, base.join("bin/faultline")).unwrap();
    std::os::unix::fs::symlink(Path::new(MANIFEST).join("suites"), work.join("suites")).unwrap();
    std::os::unix::fs::symlink(Path::new(MANIFEST).join("examples"), work.join("examples"))
        .unwrap();
    let corpus = common::corpus("").map(|root| {
        let root = root.canonicalize().expect("the corpus folder");
        std::fs::create_dir_all(base.join("shared")).unwrap();
        std::os::unix::fs::symlink(&root, base.join("shared/corpus")).unwrap();
    });
    for b in blocks(&readme()) {
        let Some(first) = b.lines.first() else {
            continue;
        };
        if b.lang != "yaml" {
            continue;
        }
        if let Some(name) = first
            .strip_prefix("# ")
            .filter(|n| n.ends_with(".yaml") && !n.contains('/') && !n.contains(' ') && n.len() > 5)
        {
            std::fs::write(work.join(name), b.lines.join("\n") + "\n").unwrap();
        }
    }
    let path = format!(
        "{}:{}",
        base.join("bin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    Workdir {
        base,
        work,
        env: vec![("PATH".into(), path)],
        corpus: corpus.is_some(),
    }
}

/// The command as run: `cargo run --release --` is the binary under test.
fn runnable(cmd: &str) -> String {
    match cmd.strip_prefix("cargo run --release -- ") {
        Some(rest) => format!("faultline {rest}"),
        None => cmd.to_string(),
    }
}

fn needs_corpus(cmd: &str) -> bool {
    cmd.contains("shared/corpus") || cmd.contains("bench check")
}

fn is_server(cmd: &str) -> bool {
    cmd.starts_with("faultline serve")
        || (cmd.starts_with("faultline node ") && !cmd.contains("--list-bugs"))
}

fn needs_docker(cmd: &str) -> bool {
    cmd.contains("--backend docker")
        || cmd.starts_with("faultline image build")
        || cmd.starts_with("docker ")
}

fn docker_running() -> bool {
    Command::new("docker")
        .args(["info", "--format", "{{.ServerVersion}}"])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// What a finished command left.
struct Ran {
    code: i32,
    output: String,
}

/// Runs `cmd` in `w` to its end (at most [`COMMAND_TIMEOUT`]), printing its output.
fn run(w: &Workdir, cmd: &Cmd) -> Ran {
    let text = runnable(&cmd.text);
    let n = cmd.line;
    let out_path = w.base.join(format!("line{n}.out"));
    let out = std::fs::File::create(&out_path).unwrap();
    println!("\n$ {}    (README.md:{n})", cmd.text);
    let started = Instant::now();
    let mut child = Command::new("bash")
        .arg("-c")
        .arg(&text)
        .current_dir(&w.work)
        .envs(w.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .process_group(0)
        .spawn()
        .expect("bash runs");
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if started.elapsed() > COMMAND_TIMEOUT {
            stop(&mut child);
            panic!(
                "README.md:{n}: `{}` did not end within {COMMAND_TIMEOUT:?}:\n{}",
                cmd.text,
                std::fs::read_to_string(&out_path).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let output = String::from_utf8_lossy(&std::fs::read(&out_path).unwrap()).into_owned();
    // Progress lines redraw with \r; the last state of each is enough here.
    for line in output.lines() {
        println!("  {}", line.rsplit('\r').next().unwrap_or(line));
    }
    let code = status.code().unwrap_or(-1);
    println!(
        "  -> exit {code} in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ran { code, output }
}

/// SIGTERM to the command's process group, SIGKILL after 10 s.
fn stop(child: &mut Child) {
    let pgid = child.id() as i32;
    unsafe { libc::kill(-pgid, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if child.try_wait().unwrap().is_some() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    unsafe { libc::kill(-pgid, libc::SIGKILL) };
    let _ = child.wait();
}

/// The value of `--flag VALUE` in a command.
fn flag_value<'a>(cmd: &'a str, flag: &str) -> Option<&'a str> {
    let mut words = cmd.split_whitespace();
    words.find(|w| *w == flag)?;
    words.next()
}

/// A network namespace with only `lo`, removed on drop: servers listen on
/// their README ports there, whatever else this machine runs.
struct Netns(String);

impl Netns {
    fn new(line: usize) -> Netns {
        let name = format!("fl-readme-{}-{line}", std::process::id() % 100_000);
        let ok = Command::new("ip").args(["netns", "add", &name]).status();
        assert!(ok.is_ok_and(|s| s.success()), "ip netns add {name} (root?)");
        let ns = Netns(name);
        assert!(ns.sh("ip link set lo up").0, "lo up in {}", ns.0);
        ns
    }

    /// Runs a shell script in the namespace: (success, stdout).
    fn sh(&self, script: &str) -> (bool, String) {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.0, "bash", "-c", script])
            .output()
            .expect("ip netns exec");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// Starts a command that never ends, checks that it answers, and stops it.
fn serve(w: &Workdir, cmd: &Cmd) {
    let text = runnable(&cmd.text);
    let n = cmd.line;
    println!(
        "\n$ {}    (README.md:{n}; started, asked, stopped)",
        cmd.text
    );
    let ns = Netns::new(n);
    let out_path = w.base.join(format!("line{n}.out"));
    let out = std::fs::File::create(&out_path).unwrap();
    let mut child = Command::new("ip")
        .args(["netns", "exec", &ns.0, "bash", "-c", &text])
        .current_dir(&w.work)
        .envs(w.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .process_group(0)
        .spawn()
        .expect("bash runs");
    // What to ask, and what the answer starts with.
    let (addr, request, answer) = if text.starts_with("faultline serve") {
        (
            flag_value(&text, "--bind")
                .unwrap_or("127.0.0.1:8080")
                .to_string(),
            "GET / HTTP/1.0\\r\\n\\r\\n",
            "HTTP/1.",
        )
    } else {
        (
            flag_value(&text, "--listen").expect("--listen").to_string(),
            "{\"id\":1,\"op\":\"status\"}\\n",
            "{\"id\":1",
        )
    };
    let (host, port) = addr.rsplit_once(':').unwrap();
    let ask = format!(
        "exec 3<>/dev/tcp/{host}/{port} && printf '{request}' >&3 && timeout 5 head -n 1 <&3"
    );
    let started = Instant::now();
    let said = loop {
        let (ok, said) = ns.sh(&ask);
        if ok && !said.is_empty() {
            break said;
        }
        let exited = child.try_wait().unwrap();
        if exited.is_some() || started.elapsed() > SERVER_READY {
            stop(&mut child);
            panic!(
                "README.md:{n}: `{}` never answered on {addr} ({exited:?}):\n{}",
                cmd.text,
                std::fs::read_to_string(&out_path).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    stop(&mut child);
    println!("  answered on {addr}: {}", said.trim());
    assert!(
        said.starts_with(answer) && (!answer.starts_with("HTTP") || said.contains(" 200 ")),
        "README.md:{n}: `{}` answered {said:?}, expected {answer}...",
        cmd.text
    );
}

/// Runs every command of the blocks assigned to `group`, in README order,
/// in one working folder; with `part` (k, n), only commands k, k+n, ...
/// Returns the output of each command run, by its text.
fn run_group(w: &Workdir, group: &str, part: Option<(usize, usize)>) -> Vec<(String, Ran)> {
    let text = readme();
    let mut ran = Vec::new();
    let mut index = 0;
    let docker = docker_running();
    for b in sh_blocks(&text) {
        if group_of(&b) != Some(group) {
            continue;
        }
        for cmd in commands(&b) {
            if elsewhere(&cmd.text) {
                continue;
            }
            let mine = part.is_none_or(|(k, n)| index % n == k);
            index += 1;
            if !mine {
                continue;
            }
            if needs_corpus(&cmd.text) && !w.corpus {
                println!("\nSKIPPED (no reference corpora): {}", cmd.text);
                continue;
            }
            if needs_docker(&cmd.text) && !docker {
                assert!(!common::ci(), "CI must have a running Docker engine");
                println!("\nSKIPPED (no running Docker engine): {}", cmd.text);
                continue;
            }
            if is_server(&cmd.text) {
                serve(w, &cmd);
                continue;
            }
            let r = run(w, &cmd);
            match expected(&cmd.text) {
                Expect::Exit(want) => assert_eq!(
                    r.code, want,
                    "README.md:{}: `{}` exited {} (the README says {want}):\n{}",
                    cmd.line, cmd.text, r.code, r.output
                ),
                Expect::AnyVerdict => {
                    assert!(
                        (0..=2).contains(&r.code),
                        "README.md:{}: `{}` exited {}: the harness failed:\n{}",
                        cmd.line,
                        cmd.text,
                        r.code,
                        r.output
                    );
                    println!(
                        "  {}",
                        if r.code == 1 {
                            "caught"
                        } else {
                            "not caught this time"
                        }
                    );
                }
            }
            ran.push((cmd.text.clone(), r));
        }
    }
    assert!(
        !ran.is_empty() || !w.corpus,
        "no README command ran for {group}"
    );
    ran
}

// ---------------------------------------------------------------------------
// What the README says, checked without running anything long.

#[test]
fn every_sh_command_is_run_somewhere() {
    let text = readme();
    let groups: BTreeSet<&str> = BLOCKS.iter().map(|(_, g)| *g).collect();
    for b in sh_blocks(&text) {
        let cmds = commands(&b);
        assert!(
            !cmds.is_empty(),
            "README.md:{}: an empty ```sh block",
            b.line
        );
        if cmds.iter().all(|c| elsewhere(&c.text)) {
            continue;
        }
        let claims: Vec<_> = BLOCKS
            .iter()
            .filter(|(start, _)| cmds[0].text.starts_with(start))
            .collect();
        assert_eq!(
            claims.len(),
            1,
            "README.md:{}: the ```sh block starting `{}` must be run by exactly one test \
             (add it to BLOCKS in tests/readme.rs, or the command to ELSEWHERE with the CI \
             step that runs it); claimed by {claims:?}",
            b.line,
            cmds[0].text
        );
        for c in &cmds {
            // Placeholders and alternatives belong in ```text synopses.
            for bad in ["[--", "...", "|", "<"] {
                assert!(
                    !runnable(&c.text).split(" #").next().unwrap().contains(bad),
                    "README.md:{}: `{}` holds `{bad}`: a synopsis, not a command (put it in a ```text block)",
                    c.line,
                    c.text
                );
            }
        }
    }
    for (start, group) in BLOCKS {
        let n = sh_blocks(&text)
            .iter()
            .filter(|b| {
                commands(b)
                    .first()
                    .is_some_and(|c| c.text.starts_with(start))
            })
            .count();
        assert_eq!(
            n, 1,
            "BLOCKS entry `{start}` ({group}) matches {n} README blocks"
        );
    }
    assert_eq!(
        groups,
        [
            "setup_and_reports",
            "test_files_and_suites",
            "suites_on_a_fleet",
            "checking_histories",
            "hosts_and_faults",
            "disk_faults_by_hand",
            "bundled_nodes",
            "bugs",
            "custom_system",
        ]
        .into_iter()
        .collect(),
        "every group in BLOCKS has a test below"
    );
    let all: Vec<String> = sh_blocks(&text)
        .iter()
        .flat_map(commands)
        .map(|c| c.text)
        .collect();
    for (cmd, file, holds) in ELSEWHERE {
        assert!(
            all.iter().any(|c| c == cmd),
            "ELSEWHERE: `{cmd}` is not in the README"
        );
        let body = std::fs::read_to_string(Path::new(MANIFEST).join(file)).unwrap();
        assert!(
            body.contains(holds),
            "{file} should run `{cmd}` (it should hold `{holds}`)"
        );
    }
}

/// The subcommand a synopsis is about: `bench check`, `cluster up`, `run`.
fn subcommand(synopsis: &str) -> Vec<&str> {
    let words: Vec<&str> = synopsis.split_whitespace().skip(1).collect();
    match words.first() {
        Some(
            w @ (&"bench" | &"cluster" | &"clock" | &"results" | &"lazyfs" | &"k8s" | &"image"),
        ) => {
            vec![w, words[1]]
        }
        Some(w) => vec![w],
        None => vec![],
    }
}

/// The text of `--flag`'s entry in a --help page (up to the next option).
fn help_entry<'a>(help: &'a str, flag: &str) -> Option<&'a str> {
    let lines: Vec<&str> = help.lines().collect();
    let start = lines.iter().position(|l| {
        let t = l.trim_start();
        t.starts_with(&format!("{flag} "))
            || t == flag
            || t.starts_with(&format!("{flag},"))
            || t.contains(&format!(", {flag} "))
            || t.ends_with(&format!(", {flag}"))
    })?;
    let end = lines[start + 1..]
        .iter()
        .position(|l| l.trim_start().starts_with('-'))
        .map_or(lines.len(), |i| start + 1 + i);
    let from = help.find(lines[start]).unwrap();
    let to = if end < lines.len() {
        help.find(lines[end]).unwrap_or(help.len())
    } else {
        help.len()
    };
    Some(&help[from..to.max(from)])
}

#[test]
fn synopses_name_only_flags_that_exist() {
    let text = readme();
    let mut checked = 0;
    for b in blocks(&text).iter().filter(|b| b.lang == "text") {
        for syn in joined(b) {
            if !syn.text.starts_with("faultline ") {
                continue;
            }
            let sub = subcommand(&syn.text);
            let out = Command::new(EXE).args(&sub).arg("--help").output().unwrap();
            assert!(
                out.status.success(),
                "README.md:{}: `faultline {} --help` failed",
                syn.line,
                sub.join(" ")
            );
            let help = String::from_utf8_lossy(&out.stdout);
            let words: Vec<&str> = syn
                .text
                .split(" #")
                .next()
                .unwrap()
                .split_whitespace()
                .collect();
            for (i, word) in words.iter().enumerate() {
                let flag: String = word
                    .trim_start_matches('[')
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
                    .collect();
                if !flag.starts_with("--") || flag.len() < 3 {
                    continue;
                }
                let entry = help_entry(&help, &flag).unwrap_or_else(|| {
                    panic!(
                        "README.md:{}: `faultline {}` has no {flag} (see its --help)",
                        syn.line,
                        sub.join(" ")
                    )
                });
                checked += 1;
                // `[--flag VALUE]`: a literal value (not a placeholder or
                // alternatives) is the default, and the help must agree.
                let Some(value) = words.get(i + 1).and_then(|v| v.strip_suffix(']')) else {
                    continue;
                };
                let literal = !value.is_empty()
                    && !value.contains(['|', '.', '<', '['])
                    && !value.chars().any(|c| c.is_ascii_uppercase());
                let shown = entry
                    .split("[default: ")
                    .nth(1)
                    .and_then(|d| d.split(']').next());
                if let (true, Some(shown)) = (literal, shown) {
                    assert_eq!(
                        value, shown,
                        "README.md:{}: {flag} defaults to {shown}, not {value}",
                        syn.line
                    );
                }
            }
        }
    }
    assert!(checked > 50, "only {checked} flags found in the synopses");
}

/// The preset names the README's run synopsis lists are exactly the built-in ones.
#[test]
fn the_run_synopsis_lists_every_preset() {
    let text = readme();
    let syn = blocks(&text)
        .iter()
        .filter(|b| b.lang == "text")
        .flat_map(joined)
        .find(|c| c.text.starts_with("faultline run [--db"))
        .expect("the run synopsis");
    let alternatives = |flag: &str| -> BTreeSet<String> {
        let after = syn.text.split(&format!("[{flag} ")).nth(1).unwrap();
        let list: String = after
            .split(']')
            .next()
            .unwrap()
            .split_whitespace()
            .collect();
        list.split('|')
            .filter(|n| !n.ends_with(".yaml"))
            .map(String::from)
            .collect()
    };
    for (flag, kind) in [
        ("--nemesis", "presets: "),
        ("--workload", "expected one of "),
    ] {
        let out = Command::new(EXE)
            .args(["run", flag, "no-such-preset"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(3));
        let err = String::from_utf8_lossy(&out.stderr);
        let known: BTreeSet<String> = err
            .split(kind)
            .nth(1)
            .unwrap_or_else(|| panic!("{err}"))
            .split(" or a path")
            .next()
            .unwrap()
            .trim()
            .split(", ")
            .map(String::from)
            .collect();
        assert_eq!(
            alternatives(flag),
            known,
            "{flag} in the README's run synopsis"
        );
    }
}

#[test]
fn comments_give_exit_codes() {
    assert_eq!(
        expected("faultline check x   # exit 1: bad"),
        Expect::Exit(1)
    );
    assert_eq!(
        expected("faultline run y   # lost adds; caught in 2 of 3 seeds"),
        Expect::AnyVerdict
    );
    assert_eq!(expected("faultline serve   # http://x"), Expect::Exit(0));
    let b = Block {
        lang: "sh".into(),
        line: 10,
        lines: vec![
            "# note".into(),
            "a \\".into(),
            "  b # c".into(),
            "".into(),
            "d".into(),
        ],
    };
    let cmds = commands(&b);
    assert_eq!(cmds.len(), 2);
    assert_eq!((cmds[0].text.as_str(), cmds[0].line), ("a b # c", 12));
    assert_eq!((cmds[1].text.as_str(), cmds[1].line), ("d", 15));
}

// ---------------------------------------------------------------------------
// The README's commands, run.

/// "Set up and run", then "Reports": the main run, and reports of its folder.
#[test]
fn setup_and_reports() {
    let w = workdir("setup_and_reports");
    let ran = run_group(&w, "setup_and_reports", None);
    let (_, main) = &ran[0];
    for said in [
        "if this run is killed: faultline cluster down --name run",
        "test: raft",
        "nodes         valid",
        "availability: ",
    ] {
        assert!(
            main.output.contains(said),
            "the main run did not say {said:?}"
        );
    }
    let last = std::fs::read_to_string(
        w.work
            .join("results/raft-register-partition-ring/latest/history.jsonl"),
    )
    .unwrap();
    let end: serde_json::Value = serde_json::from_str(last.lines().last().unwrap()).unwrap();
    assert_eq!(
        (
            end["process"].as_str(),
            end["type"].as_str(),
            end["f"].as_str()
        ),
        (Some("nemesis"), Some("info"), Some("end-of-history")),
        "history.jsonl ends with the end record"
    );
}

/// "Running tests": a test file, its replay, the smoke suite.
#[test]
fn test_files_and_suites() {
    let w = workdir("test_files_and_suites");
    run_group(&w, "test_files_and_suites", None);
    let seeds: Vec<String> = std::fs::read_dir(w.work.join("results/my-test"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().is_some_and(|n| n != "latest"))
        .map(|p| p.join("test.yaml"))
        .map(|p| {
            let t = std::fs::read_to_string(p).unwrap();
            t.lines()
                .find(|l| l.starts_with("seed:"))
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(
        seeds,
        ["seed: 7", "seed: 7"],
        "the flag overrode the file; the replay kept it"
    );
}

/// "Suites for nightly CI": the smoke suite in two shards, two tests at
/// once, merged: every test once, in suite order, however often a shard is
/// given. "Suites on Kubernetes": the image, and the manifest of its shards.
#[test]
fn suites_on_a_fleet() {
    let w = workdir("suites_on_a_fleet");
    run_group(&w, "suites_on_a_fleet", None);
    let names = |xml: &str| -> Vec<String> {
        xml.split("<testcase name=\"")
            .skip(1)
            .map(|s| s.split('"').next().unwrap().to_string())
            .collect()
    };
    let merged = std::fs::read_to_string(w.work.join("merged/junit.xml")).unwrap();
    let shard1 = std::fs::read_to_string(w.work.join("shard1/junit.xml")).unwrap();
    let shard2 = std::fs::read_to_string(w.work.join("shard2/junit.xml")).unwrap();
    let (one, two) = (names(&shard1), names(&shard2));
    assert_eq!((one.len(), two.len()), (2, 2), "{shard1}\n{shard2}");
    assert_eq!(
        names(&merged),
        [&one[0], &two[0], &one[1], &two[1]].map(|n| n.to_string()),
        "{merged}"
    );
    let index = std::fs::read_to_string(w.work.join("merged/index.html")).unwrap();
    assert!(index.contains(r#"id="totals">4 runs"#), "{index}");
    assert!(w.work.join("merged/summary.md").is_file());

    // "Suites on Kubernetes": the manifest is two Jobs Kubernetes reads, and
    // the kubectl steps the README gives are the ones it says, names and all.
    let manifest = std::fs::read_to_string(w.work.join("smoke-k8s.yaml")).unwrap();
    let mut docs = serde_yaml_ng::Deserializer::from_str(&manifest);
    use serde::Deserialize;
    let jobs: Vec<String> = docs
        .by_ref()
        .skip(1)
        .map(|d| {
            let job = k8s_openapi::api::batch::v1::Job::deserialize(d).unwrap();
            job.metadata.name.unwrap()
        })
        .collect();
    assert_eq!(jobs, ["faultline-smoke", "faultline-smoke-merge"]);
    let said: Vec<String> = manifest
        .lines()
        .filter_map(|l| l.strip_prefix("#   "))
        .map(String::from)
        .collect();
    let text = readme();
    let readme_steps: Vec<String> = blocks(&text)
        .into_iter()
        .filter(|b| b.lang == "text" && b.lines.first().is_some_and(|l| l.starts_with("kubectl")))
        .flat_map(|b| b.lines)
        .collect();
    assert_eq!(
        readme_steps, said,
        "the README's kubectl steps are the manifest's"
    );
}

/// "Checking a history" and "Transactional histories": the corpora, Elle,
/// generated histories, and the checkers' and controller's benchmarks.
#[test]
fn checking_histories() {
    let w = workdir("checking_histories");
    run_group(&w, "checking_histories", None);
}

/// Removes the README's named clusters, even when the test failed.
struct ClustersDown<'a>(&'a Workdir);

impl Drop for ClustersDown<'_> {
    fn drop(&mut self) {
        for name in README_CLUSTERS {
            let _ = Command::new(EXE)
                .args(["cluster", "down", "--name", name])
                .envs(self.0.env.iter().map(|(k, v)| (k, v)))
                .output();
        }
    }
}

/// "Hosts" and "Faults": clusters of every backend, deploy, logs, a nemesis,
/// heal, the clock helpers. Cluster state goes to a private folder, so
/// `cluster down` and `heal` without a name see only this test's clusters
/// (never another test's deliberate orphans).
#[test]
fn hosts_and_faults() {
    let mut w = workdir("hosts_and_faults");
    let state = w.base.join("clusters");
    w.env
        .push(("FAULTLINE_CLUSTERS_DIR".into(), state.display().to_string()));
    let _down = ClustersDown(&w);
    let ran = run_group(&w, "hosts_and_faults", None);
    assert!(
        w.work.join("logs/n1/node.log").is_file(),
        "cluster logs wrote logs/n1/node.log"
    );
    let nemesis = ran
        .iter()
        .find(|(c, _)| c.starts_with("faultline nemesis"))
        .unwrap();
    assert!(
        nemesis.1.output.contains("start-"),
        "the nemesis started a fault in 15 s"
    );
    let left: Vec<_> = std::fs::read_dir(&state)
        .map(|d| {
            d.map(|e| e.unwrap().file_name())
                .filter(|n| !n.to_string_lossy().starts_with('.'))
                .collect()
        })
        .unwrap_or_default();
    assert!(left.is_empty(), "clusters left: {left:?}");
}

/// "Disk faults" by hand: a Docker cluster made for them, deploy on the lazy
/// file system, its helper asked, power losses from `faultline nemesis`;
/// and a Docker cluster made without them, refused at deploy with what to do.
#[test]
fn disk_faults_by_hand() {
    let mut w = workdir("disk_faults_by_hand");
    let state = w.base.join("clusters");
    w.env
        .push(("FAULTLINE_CLUSTERS_DIR".into(), state.display().to_string()));
    let _down = ClustersDown(&w);
    let ran = run_group(&w, "disk_faults_by_hand", None);
    let output = |start: &str| {
        &ran.iter()
            .find(|(c, _)| c.starts_with(start))
            .unwrap_or_else(|| panic!("no `{start}` ran"))
            .1
            .output
    };
    assert!(
        output("docker exec fl-disks-n1").contains("\"held_bytes\""),
        "the helper answered its status"
    );
    let nemesis = output("faultline nemesis");
    assert!(
        nemesis.contains("start-disk") && nemesis.contains("\"mechanism\":\"lazyfs\""),
        "a power loss on the lazy file system in 15 s:\n{nemesis}"
    );
    let refused = output("faultline cluster deploy --name nofuse");
    for what in ["n1", "/dev/fuse", "--disk-faults"] {
        assert!(refused.contains(what), "{what}:\n{refused}");
    }
}

/// "Bundled nodes": the bug list, a node answering, the node benchmark.
#[test]
fn bundled_nodes() {
    let w = workdir("bundled_nodes");
    run_group(&w, "bundled_nodes", None);
}

/// "Your own system": the example runs from the repository's root.
#[test]
fn custom_system() {
    let w = workdir("custom_system");
    run_group(&w, "custom_system", None);
}

/// The runs that show the bundled bugs, in two halves run in parallel.
#[test]
fn bugs_1() {
    let w = workdir("bugs_1");
    run_group(&w, "bugs", Some((0, 2)));
}

#[test]
fn bugs_2() {
    let w = workdir("bugs_2");
    run_group(&w, "bugs", Some((1, 2)));
}
