//! `faultline image build`, and a shard of a suite run inside that image the
//! way a pod of `faultline k8s job` runs it: the manifest's own script,
//! environment, mounts and capabilities, with `docker run` standing in for
//! the kubelet (no Kubernetes here). Then the merge's script over its
//! folder. Needs a running Docker engine (CI has one).
//!
//! What local clusters need in a container, found here: NET_ADMIN alone
//! cannot make a network namespace (`ip netns add` bind-mounts it, which
//! takes SYS_ADMIN), nor SYS_ADMIN alone (veths, addresses); NET_ADMIN and
//! SYS_ADMIN run a whole suite; disk faults also need the device /dev/fuse.

mod common;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Container};
use serde::Deserialize;
use std::path::PathBuf;
use std::process::{Command, Output};

const EXE: &str = env!("CARGO_BIN_EXE_faultline");

/// One short test of the bundled Raft under power losses (lazyfs): valid.
const POWER_SUITE: &str = "name: power\n\
    defaults: {db: raft, workload: register, nodes: 3, time_limit: 6s, recovery: 1s, rate: 50}\n\
    tests:\n\
    \x20 - {name: raft-power, seed: 1, nemesis: {duration: 2s, interval: 1s, faults: [{disk: {targets: all, mode: lose-unfsynced}}]}}\n";

/// One short test of the bundled Raft under partitions: valid.
const SUITE: &str = "name: tiny\n\
    defaults: {db: raft, workload: register, nodes: 3, time_limit: 6s, recovery: 1s, rate: 50}\n\
    tests:\n\
    \x20 - {name: raft-partition, seed: 1, nemesis: {duration: 2s, interval: 1s, faults: [{partition: {shape: halves}}]}}\n";

fn text(o: &Output) -> String {
    format!(
        "{}\n--- stderr:\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Removes the named container, should the test end before it does.
struct Gone(String);

impl Drop for Gone {
    fn drop(&mut self) {
        let _ = Command::new("docker").args(["rm", "-f", &self.0]).output();
    }
}

/// `docker run` of `image` with `args` before it and `command` after, at
/// most 5 minutes.
fn docker_run(name: &str, args: &[String], image: &str, command: &[&str]) -> Output {
    let _gone = Gone(name.to_string());
    let out = Command::new("timeout")
        .args(["300", "docker", "run", "--rm", "--name", name])
        .args(args)
        .arg(image)
        .args(command)
        .output()
        .expect("docker runs");
    println!("docker run {name}: {}\n{}", out.status, text(&out));
    out
}

fn build_image() -> String {
    let out = Command::new(EXE).args(["image", "build"]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let tag = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(tag.starts_with("faultline:r"), "{tag}");
    tag
}

#[test]
fn network_namespaces_in_a_container_take_sys_admin() {
    common::docker_ok();
    let image = build_image();
    let name = common::unique("fl-caps-");
    let probe = [
        "sh",
        "-c",
        "ip netns add probe && ip -n probe link set lo up",
    ];
    let caps = |list: &[&str]| -> Vec<String> {
        list.iter()
            .flat_map(|c| ["--cap-add".to_string(), c.to_string()])
            .collect()
    };
    let net_admin = docker_run(&name, &caps(&["NET_ADMIN"]), &image, &probe);
    assert!(!net_admin.status.success(), "NET_ADMIN alone made a netns");
    let both = docker_run(&name, &caps(&["NET_ADMIN", "SYS_ADMIN"]), &image, &probe);
    assert!(both.status.success(), "{}", text(&both));
}

/// A suite's manifest and the folders that stand in for its volumes: the
/// results claim, and the ConfigMap's files.
struct Pods {
    image: String,
    _dir: tempfile::TempDir,
    claim: PathBuf,
    config: PathBuf,
    shards: Job,
    merge: Job,
}

impl Pods {
    /// `faultline k8s job` of `suite` in one shard, for `image`.
    fn of(suite: &str, image: &str) -> Pods {
        let dir = tempfile::tempdir().unwrap();
        let suite_path = dir.path().join("suite.yaml");
        std::fs::write(&suite_path, suite).unwrap();
        let out = Command::new(EXE)
            .args(["k8s", "job", suite_path.to_str().unwrap()])
            .args(["--shards", "1", "--image", image])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out));
        let yaml = String::from_utf8(out.stdout).unwrap();
        let mut docs = serde_yaml_ng::Deserializer::from_str(&yaml);
        let map = ConfigMap::deserialize(docs.next().unwrap()).unwrap();
        let shards = Job::deserialize(docs.next().unwrap()).unwrap();
        let merge = Job::deserialize(docs.next().unwrap()).unwrap();
        let claim = dir.path().join("claim");
        let config = dir.path().join("config");
        std::fs::create_dir_all(&claim).unwrap();
        std::fs::create_dir_all(&config).unwrap();
        for (file, content) in map.data.as_ref().unwrap() {
            std::fs::write(config.join(file), content).unwrap();
        }
        Pods {
            image: image.to_string(),
            _dir: dir,
            claim,
            config,
            shards,
            merge,
        }
    }

    fn container(job: &Job) -> &Container {
        &job.spec
            .as_ref()
            .unwrap()
            .template
            .spec
            .as_ref()
            .unwrap()
            .containers[0]
    }

    /// Runs the container of `job` as its pod would: `args` (docker flags
    /// for its privileges), its environment, its volumes, its command.
    fn run(&self, job: &Job, mut args: Vec<String>, prefix: &str) -> Output {
        let c = Self::container(job);
        for e in c.env.as_ref().unwrap() {
            let value = e.value.as_deref().unwrap();
            args.extend(["-e".to_string(), format!("{}={value}", e.name)]);
        }
        for m in c.volume_mounts.as_ref().unwrap() {
            let source = if m.name == "results" {
                &self.claim
            } else {
                &self.config
            };
            let ro = if m.read_only == Some(true) { ":ro" } else { "" };
            args.extend([
                "-v".to_string(),
                format!("{}:{}{ro}", source.display(), m.mount_path),
            ]);
        }
        let command: Vec<&str> = c
            .command
            .as_ref()
            .unwrap()
            .iter()
            .map(String::as_str)
            .collect();
        docker_run(&common::unique(prefix), &args, &self.image, &command)
    }

    /// Runs shard 1 (index 0) with `privileges`; its suite.json.
    fn run_shard(&self, privileges: Vec<String>, results: &str) -> serde_json::Value {
        let mut args = privileges;
        // Kubernetes sets the index of an Indexed Job's pod.
        args.extend(["-e".to_string(), "JOB_COMPLETION_INDEX=0".to_string()]);
        let ran = self.run(&self.shards, args, "fl-shard-");
        assert_eq!(ran.status.code(), Some(0), "{}", text(&ran));
        let folder = self.claim.join(results).join("shard-1");
        assert!(folder.join("junit.xml").is_file(), "{}", text(&ran));
        let json = std::fs::read_to_string(folder.join("suite.json")).unwrap();
        serde_json::from_str(&json).unwrap()
    }

    /// The history of the suite's only run.
    fn history(&self, results: &str, suite_json: &serde_json::Value) -> String {
        let runs = suite_json["runs"].as_array().unwrap();
        assert_eq!(runs.len(), 1, "{suite_json:#}");
        let run = runs[0]["folder"].as_str().unwrap();
        let path = self.claim.join(results).join("shard-1").join(run);
        std::fs::read_to_string(path.join("history.jsonl")).unwrap()
    }
}

/// `--cap-add` for each capability the shard's securityContext adds.
fn capabilities(job: &Job) -> Vec<String> {
    let security = Pods::container(job).security_context.clone().unwrap();
    assert_eq!(security.privileged, None, "no disk faults in this suite");
    security
        .capabilities
        .unwrap()
        .add
        .unwrap()
        .into_iter()
        .flat_map(|c| ["--cap-add".to_string(), c])
        .collect()
}

#[test]
fn a_shard_runs_in_the_image_as_its_pod_would_and_merges() {
    common::docker_ok();
    let pods = Pods::of(SUITE, &build_image());
    let suite_json = pods.run_shard(capabilities(&pods.shards), "faultline-tiny");
    assert_eq!(suite_json["outcome"], "valid", "{suite_json:#}");
    assert_eq!(suite_json["runs"][0]["name"], "raft-partition");
    assert!(
        pods.history("faultline-tiny", &suite_json)
            .contains("start-partition"),
        "a partition was made inside the container"
    );

    assert_eq!(Pods::container(&pods.merge).security_context, None);
    let merged = pods.run(&pods.merge, vec![], "fl-merge-");
    assert_eq!(merged.status.code(), Some(0), "{}", text(&merged));
    assert!(
        String::from_utf8_lossy(&merged.stdout).contains("faultline results merge: exit 0"),
        "{}",
        text(&merged)
    );
    let merged = pods.claim.join("faultline-tiny/merged");
    let junit = std::fs::read_to_string(merged.join("junit.xml")).unwrap();
    assert!(junit.contains("raft-partition"), "{junit}");
    assert!(merged.join("index.html").is_file());
}

/// Disk faults: the manifest makes the pod privileged, for /dev/fuse. This
/// Docker engine (itself in a sandbox) cannot start a privileged container
/// ("unable to apply caps"), so the shard gets what privileged gives it
/// here: NET_ADMIN, SYS_ADMIN and the device /dev/fuse.
#[test]
fn a_shard_with_disk_faults_runs_with_dev_fuse() {
    common::docker_ok();
    let pods = Pods::of(POWER_SUITE, &build_image());
    let security = Pods::container(&pods.shards)
        .security_context
        .clone()
        .unwrap();
    assert_eq!(security.privileged, Some(true));
    let privileges = [
        "--cap-add",
        "NET_ADMIN",
        "--cap-add",
        "SYS_ADMIN",
        "--device",
        "/dev/fuse",
    ];
    let suite_json = pods.run_shard(privileges.map(String::from).to_vec(), "faultline-power");
    assert_eq!(suite_json["outcome"], "valid", "{suite_json:#}");
    let history = pods.history("faultline-power", &suite_json);
    assert!(
        history.contains(r#""f":"start-disk","value":{"elapsed_ms""#)
            && history.contains(r#""mechanism":"lazyfs""#),
        "a power loss on the lazy file system, inside the container:\n{history}"
    );
}
