//! `faultline k8s job`: the manifest read back into k8s-openapi's types (so
//! it is what Kubernetes would read), the fields that make it run a suite's
//! shards, and bad input refused with exit 3. No cluster here: the pod's
//! script runs for real in a container in `tests/fleet_image.rs`.

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Container, PodSpec};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const EXE: &str = env!("CARGO_BIN_EXE_faultline");
const MANIFEST: &str = env!("CARGO_MANIFEST_DIR");

fn faultline(args: &[&str]) -> Output {
    Command::new(EXE)
        .args(args)
        .output()
        .expect("faultline runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn smoke() -> PathBuf {
    Path::new(MANIFEST).join("suites/smoke.yaml")
}

/// The manifest's three objects: the suite's ConfigMap, the shards' Job,
/// the merge's Job.
fn objects(yaml: &str) -> (ConfigMap, Job, Job) {
    let mut docs = serde_yaml_ng::Deserializer::from_str(yaml);
    let suite = ConfigMap::deserialize(docs.next().expect("a ConfigMap")).expect("a ConfigMap");
    let shards = Job::deserialize(docs.next().expect("a Job")).expect("the shards' Job");
    let merge = Job::deserialize(docs.next().expect("a Job")).expect("the merge's Job");
    assert!(docs.next().is_none(), "three objects:\n{yaml}");
    (suite, shards, merge)
}

fn manifest(args: &[&str]) -> (String, ConfigMap, Job, Job) {
    let mut all = vec!["k8s", "job"];
    all.extend_from_slice(args);
    let out = faultline(&all);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let yaml = String::from_utf8(out.stdout).unwrap();
    let (suite, shards, merge) = objects(&yaml);
    (yaml, suite, shards, merge)
}

fn pod(job: &Job) -> &PodSpec {
    job.spec.as_ref().unwrap().template.spec.as_ref().unwrap()
}

fn only_container(job: &Job) -> &Container {
    let spec = pod(job);
    assert_eq!(spec.containers.len(), 1);
    &spec.containers[0]
}

/// The container's `sh -c` script.
fn script(c: &Container) -> &str {
    let command = c.command.as_ref().unwrap();
    assert_eq!(&command[..2], ["sh", "-c"]);
    &command[2]
}

fn env(c: &Container, name: &str) -> String {
    c.env
        .as_ref()
        .unwrap()
        .iter()
        .find(|e| e.name == name)
        .and_then(|e| e.value.clone())
        .unwrap_or_else(|| panic!("no {name} in {:?}", c.env))
}

#[test]
fn the_shards_are_an_indexed_job_with_the_capabilities_namespaces_need() {
    let smoke = smoke();
    let (yaml, suite, shards, merge) = manifest(&[
        smoke.to_str().unwrap(),
        "--shards",
        "3",
        "--parallelism",
        "2",
        "--image",
        "registry.example.com/faultline:nightly",
        "--results-claim",
        "nightly-results",
    ]);
    assert!(
        yaml.starts_with("# faultline k8s job: 3 shards, 2 at once"),
        "{yaml}"
    );
    assert!(
        yaml.contains("kubectl wait --for=condition=Complete job/faultline-smoke "),
        "{yaml}"
    );

    // The suite travels in the ConfigMap, as written.
    assert_eq!(
        suite.metadata.name.as_deref(),
        Some("faultline-smoke-suite")
    );
    assert_eq!(
        suite.data.as_ref().unwrap()["suite.yaml"],
        std::fs::read_to_string(&smoke).unwrap()
    );

    let spec = shards.spec.as_ref().unwrap();
    assert_eq!(shards.metadata.name.as_deref(), Some("faultline-smoke"));
    assert_eq!(spec.completion_mode.as_deref(), Some("Indexed"));
    assert_eq!(spec.completions, Some(3));
    assert_eq!(spec.parallelism, Some(2));
    assert_eq!(spec.backoff_limit_per_index, Some(1));
    assert_eq!(spec.suspend, None, "the shards start at once");
    let rules = &spec.pod_failure_policy.as_ref().unwrap().rules;
    assert_eq!(rules.len(), 1);
    assert_eq!(rules[0].action, "Ignore");
    assert_eq!(
        rules[0].on_pod_conditions.as_ref().unwrap()[0].type_,
        "DisruptionTarget"
    );

    let pod = pod(&shards);
    assert_eq!(pod.restart_policy.as_deref(), Some("Never"));
    let c = only_container(&shards);
    assert_eq!(
        c.image.as_deref(),
        Some("registry.example.com/faultline:nightly")
    );
    let shard_script = script(c);
    assert!(
        shard_script.contains("shard=$((JOB_COMPLETION_INDEX + 1))"),
        "{shard_script}"
    );
    assert!(
        shard_script.contains(
            r#"faultline suite /etc/faultline/suite.yaml --shard "$shard/3" --jobs 1 --results-dir "$out""#
        ),
        "{shard_script}"
    );
    assert_eq!(env(c, "FAULTLINE_RESULTS"), "/results/faultline-smoke");

    // Namespaces and iptables, not the whole machine: smoke has no disk faults.
    let security = c.security_context.as_ref().unwrap();
    assert_eq!(security.privileged, None);
    assert_eq!(
        security.capabilities.as_ref().unwrap().add.as_deref(),
        Some(&["NET_ADMIN".to_string(), "SYS_ADMIN".to_string()][..])
    );
    assert_eq!(
        security.app_armor_profile.as_ref().unwrap().type_,
        "Unconfined"
    );

    // The results claim at /results, the suite at /etc/faultline.
    let volumes = pod.volumes.as_ref().unwrap();
    let claim = volumes.iter().find(|v| v.name == "results").unwrap();
    assert_eq!(
        claim.persistent_volume_claim.as_ref().unwrap().claim_name,
        "nightly-results"
    );
    let map = volumes.iter().find(|v| v.name == "suite").unwrap();
    assert_eq!(
        map.config_map.as_ref().unwrap().name,
        "faultline-smoke-suite"
    );
    let mounts: Vec<(&str, &str)> = c
        .volume_mounts
        .as_ref()
        .unwrap()
        .iter()
        .map(|m| (m.name.as_str(), m.mount_path.as_str()))
        .collect();
    assert_eq!(
        mounts,
        [("results", "/results"), ("suite", "/etc/faultline")]
    );

    // The merge waits, suspended, and reads every shard's folder once.
    let merge_spec = merge.spec.as_ref().unwrap();
    assert_eq!(
        merge.metadata.name.as_deref(),
        Some("faultline-smoke-merge")
    );
    assert_eq!(merge_spec.suspend, Some(true));
    assert_eq!(merge_spec.backoff_limit, Some(0));
    assert_eq!(merge_spec.completion_mode, None);
    let m = only_container(&merge);
    assert_eq!(m.security_context, None, "merging needs no privilege");
    assert_eq!(env(m, "FAULTLINE_RESULTS"), "/results/faultline-smoke");
    let merge_script = script(m);
    assert!(
        merge_script.contains(
            r#"faultline results merge "$out" "$FAULTLINE_RESULTS/shard-1" "$FAULTLINE_RESULTS/shard-2" "$FAULTLINE_RESULTS/shard-3""#
        ),
        "{merge_script}"
    );
    let claim = pod_claim(&merge);
    assert_eq!(claim, "nightly-results");
}

fn pod_claim(job: &Job) -> String {
    pod(job).volumes.as_ref().unwrap()[0]
        .persistent_volume_claim
        .as_ref()
        .unwrap()
        .claim_name
        .clone()
}

#[test]
fn disk_faults_make_the_pod_privileged_for_dev_fuse() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("power.yaml");
    std::fs::write(
        &path,
        "defaults: {db: raft, workload: register, time_limit: 5s}\n\
         tests:\n\
         \x20 - {name: partitions, nemesis: partition-ring}\n\
         \x20 - {name: power, nemesis: lose-unfsynced}\n",
    )
    .unwrap();
    let (_, _, shards, merge) = manifest(&[
        path.to_str().unwrap(),
        "--shards",
        "2",
        "--image",
        "faultline:x",
        "--jobs",
        "2",
    ]);
    assert_eq!(shards.metadata.name.as_deref(), Some("faultline-power"));
    assert_eq!(pod_claim(&shards), "faultline-results", "the default claim");
    let c = only_container(&shards);
    let security = c.security_context.as_ref().unwrap();
    assert_eq!(security.privileged, Some(true));
    assert_eq!(security.capabilities, None);
    assert!(script(c).contains("--jobs 2"));
    let requests = c.resources.as_ref().unwrap().requests.as_ref().unwrap();
    assert_eq!(requests["cpu"].0, "2", "a CPU per test at once");
    assert_eq!(
        shards.spec.as_ref().unwrap().parallelism,
        Some(2),
        "all shards at once by default"
    );
    assert_eq!(only_container(&merge).security_context, None);
}

/// The pod's script, run by sh for each index Kubernetes gives: each shard
/// M of N gets `--shard M/N` and its own folder, a stale suite.json is
/// removed first, and the pod fails when the suite wrote none. `faultline`
/// is a stand-in here that records its arguments (and writes suite.json
/// unless told not to): only the script is under test; the real suite in
/// the real image runs this same script in `tests/fleet_image.rs`.
#[test]
fn each_index_runs_its_own_shard_into_its_own_folder() {
    let (_, _, shards, _) = manifest(&[
        smoke().to_str().unwrap(),
        "--shards",
        "4",
        "--image",
        "faultline:x",
        "--name",
        "nightly-1",
    ]);
    let c = only_container(&shards);
    let script = script(c);
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let stand_in = bin.join("faultline");
    std::fs::write(
        &stand_in,
        "#!/bin/sh\n\
         out=\"$(eval echo \\${$#})\"\n\
         echo \"$@\" > \"$out/args\"\n\
         [ -n \"$NO_SUITE_JSON\" ] || echo '{}' > \"$out/suite.json\"\n\
         exit \"${EXIT:-1}\"\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&stand_in, std::fs::Permissions::from_mode(0o755)).unwrap();
    let results = dir.path().join("results");
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let run = |index: u32, extra: &[(&str, &str)]| {
        Command::new("sh")
            .args(["-c", script])
            .env("PATH", &path)
            .env("JOB_COMPLETION_INDEX", index.to_string())
            .env("FAULTLINE_RESULTS", &results)
            .envs(extra.iter().copied())
            .output()
            .unwrap()
    };
    for index in 0..4 {
        // Exit 1 (a bug found) is a finished shard: the pod succeeds.
        let out = run(index, &[]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let m = index + 1;
        let folder = results.join(format!("shard-{m}"));
        let args = std::fs::read_to_string(folder.join("args")).unwrap();
        assert_eq!(
            args.trim(),
            format!(
                "suite /etc/faultline/suite.yaml --shard {m}/4 --jobs 1 --results-dir {}",
                folder.display()
            )
        );
        assert!(
            String::from_utf8_lossy(&out.stdout).contains(&format!("shard {m} of 4: exit 1")),
            "the exit code is logged"
        );
    }
    // A try that wrote no suite.json fails, even over the last try's one.
    let out = run(1, &[("NO_SUITE_JSON", "1"), ("EXIT", "0")]);
    assert_eq!(out.status.code(), Some(3));
    assert!(!results.join("shard-2/suite.json").exists());
}

fn refused(args: &[&str], says: &str) {
    let mut all = vec!["k8s", "job"];
    all.extend_from_slice(args);
    let out = faultline(&all);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(3), "{args:?}: {err}");
    assert!(out.stdout.is_empty(), "{args:?}: nothing printed");
    assert!(err.contains(says), "{args:?}: {err}");
}

#[test]
fn bad_input_exits_3_and_writes_nothing() {
    let smoke = smoke();
    let s = smoke.to_str().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.yaml");
    let o = out.to_str().unwrap();
    // (flags after the suite, what the error says)
    let cases: &[(&[&str], &str)] = &[
        (&["--shards", "0", "--image", "i"], "--shards"),
        (
            &["--shards", "2", "--parallelism", "3", "--image", "i"],
            "--parallelism 3: expected 1 to the number of shards, 2",
        ),
        (
            &["--shards", "2", "--parallelism", "0", "--image", "i"],
            "--parallelism 0",
        ),
        (
            &["--shards", "5", "--image", "i"],
            "has 4 tests, so some shards would run none",
        ),
        (
            &["--shards", "2", "--image", "i", "--name", "Night_Ly"],
            "--name \"Night_Ly\"",
        ),
        (&["--shards", "2", "--image", "a b"], "--image \"a b\""),
        (
            &[
                "--shards",
                "2",
                "--image",
                "i",
                "--results-claim",
                "Bad_Claim",
            ],
            "--results-claim \"Bad_Claim\"",
        ),
    ];
    for (flags, says) in cases {
        let mut args = vec![s];
        args.extend_from_slice(flags);
        args.extend(["-o", o]);
        refused(&args, says);
    }
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, "tests:\n  - {db: raft, workload: regster}\n").unwrap();
    refused(
        &[bad.to_str().unwrap(), "--shards", "1", "--image", "i"],
        "bad.yaml:2:",
    );
    let docker = dir.path().join("docker.yaml");
    std::fs::write(&docker, "tests:\n  - {name: d, db: raft, hosts: docker}\n").unwrap();
    refused(
        &[docker.to_str().unwrap(), "--shards", "1", "--image", "i"],
        "test d: hosts docker: a pod has no Docker engine",
    );
    assert!(!out.exists(), "no manifest written");

    // And a good one written with -o is the one printed, its name in the
    // kubectl steps.
    let printed = faultline(&["k8s", "job", s, "--shards", "2", "--image", "i"]);
    let written = faultline(&["k8s", "job", s, "--shards", "2", "--image", "i", "-o", o]);
    assert_eq!(written.status.code(), Some(0), "{}", stderr(&written));
    assert!(written.stdout.is_empty());
    let file = std::fs::read_to_string(&out).unwrap();
    assert!(
        file.contains(&format!("#   kubectl apply -f {o}\n")),
        "{file}"
    );
    assert_eq!(
        file.replace(o, "THIS_FILE"),
        String::from_utf8(printed.stdout).unwrap()
    );
}
