//! `faultline image build`, and a shard of a suite run inside that image the
//! way a pod of `faultline k8s job` runs it: the manifest's own script,
//! environment, mounts and capabilities, with `docker run` standing in for
//! the kubelet (no Kubernetes here). Then the merge's script over its
//! folder. Needs a running Docker engine (CI has one).
//!
//! What local clusters need in a container, found here: NET_ADMIN alone
//! cannot make a network namespace (`ip netns add` bind-mounts it, which
//! takes SYS_ADMIN); NET_ADMIN and SYS_ADMIN run a whole suite.

mod common;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Container};
use serde::Deserialize;
use std::path::Path;
use std::process::{Command, Output};

const EXE: &str = env!("CARGO_BIN_EXE_faultline");

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

#[test]
fn a_shard_runs_in_the_image_as_its_pod_would_and_merges() {
    common::docker_ok();
    let image = build_image();
    let dir = tempfile::tempdir().unwrap();
    let suite_path = dir.path().join("tiny.yaml");
    std::fs::write(&suite_path, SUITE).unwrap();
    let out = Command::new(EXE)
        .args(["k8s", "job", suite_path.to_str().unwrap()])
        .args(["--shards", "1", "--image", &image])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let yaml = String::from_utf8(out.stdout).unwrap();
    let mut docs = serde_yaml_ng::Deserializer::from_str(&yaml);
    let map = ConfigMap::deserialize(docs.next().unwrap()).unwrap();
    let shards = Job::deserialize(docs.next().unwrap()).unwrap();
    let merge = Job::deserialize(docs.next().unwrap()).unwrap();

    // The volumes: the results claim a folder here, the ConfigMap's files another.
    let claim = dir.path().join("claim");
    let config = dir.path().join("config");
    std::fs::create_dir_all(&claim).unwrap();
    std::fs::create_dir_all(&config).unwrap();
    for (file, content) in map.data.as_ref().unwrap() {
        std::fs::write(config.join(file), content).unwrap();
    }
    let volumes = |c: &Container| -> Vec<String> {
        c.volume_mounts
            .as_ref()
            .unwrap()
            .iter()
            .flat_map(|m| {
                let source = if m.name == "results" { &claim } else { &config };
                let ro = if m.read_only == Some(true) { ":ro" } else { "" };
                [
                    "-v".to_string(),
                    format!("{}:{}{ro}", source.display(), m.mount_path),
                ]
            })
            .collect()
    };
    let env = |c: &Container| -> Vec<String> {
        c.env
            .as_ref()
            .unwrap()
            .iter()
            .flat_map(|e| {
                [
                    "-e".to_string(),
                    format!("{}={}", e.name, e.value.as_deref().unwrap()),
                ]
            })
            .collect()
    };
    // The container as its pod runs it: `extra` docker flags, its
    // environment and volumes, its command.
    let run_pod = |c: &Container, mut args: Vec<String>, prefix: &str| -> Output {
        args.extend(env(c));
        args.extend(volumes(c));
        let command: Vec<&str> = c
            .command
            .as_ref()
            .unwrap()
            .iter()
            .map(String::as_str)
            .collect();
        docker_run(&common::unique(prefix), &args, &image, &command)
    };
    let container = |job: &Job| -> Container {
        job.spec
            .as_ref()
            .unwrap()
            .template
            .spec
            .as_ref()
            .unwrap()
            .containers[0]
            .clone()
    };

    let shard = container(&shards);
    let security = shard.security_context.clone().unwrap();
    assert_eq!(security.privileged, None, "no disk faults in this suite");
    let mut args: Vec<String> = security
        .capabilities
        .unwrap()
        .add
        .unwrap()
        .into_iter()
        .flat_map(|c| ["--cap-add".to_string(), c])
        .collect();
    // Kubernetes sets the index of an Indexed Job's pod.
    args.extend(["-e".to_string(), "JOB_COMPLETION_INDEX=0".to_string()]);
    let ran = run_pod(&shard, args, "fl-shard-");
    assert_eq!(ran.status.code(), Some(0), "{}", text(&ran));

    let folder = claim.join("faultline-tiny/shard-1");
    assert!(folder.join("junit.xml").is_file(), "{}", text(&ran));
    let suite_json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(folder.join("suite.json")).unwrap()).unwrap();
    assert_eq!(suite_json["outcome"], "valid", "{suite_json:#}");
    let runs = suite_json["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 1, "{suite_json:#}");
    assert_eq!(runs[0]["name"], "raft-partition");
    let run_dir = folder.join(runs[0]["folder"].as_str().unwrap());
    let history = std::fs::read_to_string(run_dir.join("history.jsonl")).unwrap();
    assert!(
        history.contains("start-partition"),
        "a partition was made inside the container"
    );

    let merger = container(&merge);
    assert_eq!(merger.security_context, None);
    let merged = run_pod(&merger, vec![], "fl-merge-");
    assert_eq!(merged.status.code(), Some(0), "{}", text(&merged));
    assert!(
        String::from_utf8_lossy(&merged.stdout).contains("faultline results merge: exit 0"),
        "{}",
        text(&merged)
    );
    let junit = std::fs::read_to_string(claim.join("faultline-tiny/merged/junit.xml")).unwrap();
    assert!(junit.contains("raft-partition"), "{junit}");
    assert!(Path::new(&claim.join("faultline-tiny/merged/index.html")).is_file());
}
