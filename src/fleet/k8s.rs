//! `faultline k8s job`: a suite's shards as a Kubernetes Indexed Job, and
//! the Job that merges their results. The manifest is built from
//! k8s-openapi's typed objects, so it is well-formed by construction:
//!
//! - a ConfigMap `NAME-suite` holding the suite file, mounted in every pod;
//! - the Indexed Job `NAME` (`completions: N`, `parallelism: P`): pod i
//!   runs `faultline suite --shard $((JOB_COMPLETION_INDEX+1))/N` into its
//!   own folder, `shard-M`, under `NAME/` on the results claim;
//! - the Job `NAME-merge`, created suspended, that runs `faultline results
//!   merge` over the N shard folders into `NAME/merged` once it is resumed
//!   (after the shards' Job completed: Kubernetes has no ordering of Jobs).
//!
//! A shard's pod succeeds when its suite wrote suite.json, whatever the
//! verdict: a bug found is a result, not a reason to run the shard again
//! (fresh seeds could miss it). The merge says the verdict. A pod that died
//! before writing it (evicted, out of memory, the harness failed) is tried
//! once more, on its own (`backoffLimitPerIndex`); a disruption (a node
//! drained) does not count against that.
//!
//! Each pod makes local clusters of network namespaces inside its own, so
//! it needs NET_ADMIN (addresses, iptables) and SYS_ADMIN (`ip netns add`
//! and the hosts' namespaces mount, `unshare`, `nsenter`), and an AppArmor
//! profile that lets it mount (the runtime's default forbids mount(2)).
//! Disk faults also need /dev/fuse, and then the pod is privileged: a
//! hostPath volume would put the device node in the container, but the
//! container runtime's device cgroup still refuses to open it (the Pod API
//! has no field to allow a device; only a device plugin or privileged can).

use crate::suite::{Hosts, Suite};
use anyhow::{Context, bail};
use k8s_openapi::api::batch::v1::{
    Job, JobSpec, PodFailurePolicy, PodFailurePolicyOnPodConditionsPattern, PodFailurePolicyRule,
};
use k8s_openapi::api::core::v1::{
    AppArmorProfile, Capabilities, ConfigMap, ConfigMapVolumeSource, Container, EnvVar,
    PersistentVolumeClaimVolumeSource, PodSpec, PodTemplateSpec, ResourceRequirements,
    SecurityContext, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Where pods mount the results claim.
pub const RESULTS_MOUNT: &str = "/results";
/// Where pods mount the suite's ConfigMap, and the file's name there.
pub const SUITE_MOUNT: &str = "/etc/faultline";
pub const SUITE_FILE: &str = "suite.yaml";
/// The environment variable that names the Job's results folder in a pod.
pub const RESULTS_ENV: &str = "FAULTLINE_RESULTS";
/// The most shards: a bound on the merge's command line and on the pods.
const SHARDS_MAX: u32 = 1000;
/// Job names: a DNS label, short enough that `NAME-merge` and an indexed
/// pod's hostname (`NAME-<index>`) stay within 63 characters.
const NAME_CHARS_MAX: usize = 50;

#[derive(clap::Args, Debug, Clone)]
pub struct K8sJobArgs {
    /// The suite file; its text goes into the manifest (a ConfigMap).
    #[arg(value_name = "SUITE_YAML")]
    pub suite: PathBuf,
    /// How many shards, one pod each: pod i runs `suite --shard i+1/N`.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=SHARDS_MAX as i64))]
    pub shards: u32,
    /// The image the pods run (`faultline image build --tag`, pushed where
    /// the cluster pulls from).
    #[arg(long, value_name = "IMAGE")]
    pub image: String,
    /// How many shards run at once (1 to N; default N).
    #[arg(long, value_name = "P")]
    pub parallelism: Option<u32>,
    /// The PersistentVolumeClaim that holds the results (ReadWriteMany when
    /// pods may run on several nodes).
    #[arg(long, value_name = "PVC_NAME", default_value = "faultline-results")]
    pub results_claim: String,
    /// The Job's name and its results folder on the claim (default:
    /// faultline-<suite name>).
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// How many tests each shard runs at once (`suite --jobs`); each pod
    /// requests one CPU and 1 GiB per test at once.
    #[arg(long, value_name = "K", default_value = "1", value_parser = clap::value_parser!(u32).range(1..=64))]
    pub jobs: u32,
    /// Write the manifest to FILE instead of standard output.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Option<PathBuf>,
}

/// What the manifest is made from, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub name: String,
    pub suite_text: String,
    pub shards: u32,
    pub parallelism: u32,
    pub jobs: u32,
    pub image: String,
    pub claim: String,
    /// Whether any test of the suite has disk faults (FUSE).
    pub disk_faults: bool,
}

/// The objects to apply, in order.
#[derive(Debug, Clone)]
pub struct Manifest {
    pub suite: ConfigMap,
    pub shards: Job,
    pub merge: Job,
}

/// Reads and resolves the suite, checks the arguments, and writes the manifest.
pub fn job_command(args: &K8sJobArgs) -> anyhow::Result<u8> {
    let plan = plan(args)?;
    let text = manifest(&plan).to_yaml(&plan, args.output.as_deref());
    match &args.output {
        Some(path) => crate::atomic_file::write(path, text.as_bytes())
            .with_context(|| format!("cannot write {}", path.display()))?,
        None => print!("{text}"),
    }
    Ok(0)
}

/// The checked plan of `args`: the whole suite resolved (a mistake in it
/// fails here, with file:line:column, not in N pods).
pub fn plan(args: &K8sJobArgs) -> anyhow::Result<Plan> {
    let (suite, text) = Suite::load(&args.suite)?;
    let tests = suite.resolve(&args.suite, &text)?;
    let shown = args.suite.display();
    for test in &tests {
        let (hosts, why) = match &test.hosts {
            Hosts::Local => continue,
            Hosts::Docker => ("docker", "a pod has no Docker engine"),
            Hosts::Inventory(_) => (
                "from an inventory",
                "a pod has neither the inventory nor its keys",
            ),
        };
        bail!(
            "{shown}: test {}: hosts {hosts}: {why}; shards on Kubernetes make local (network-namespace) clusters",
            test.name
        );
    }
    let shards = args.shards;
    if shards as usize > tests.len() {
        bail!(
            "--shards {shards}: {shown} has {} tests, so some shards would run none",
            tests.len()
        );
    }
    let parallelism = args.parallelism.unwrap_or(shards);
    if parallelism == 0 || parallelism > shards {
        bail!("--parallelism {parallelism}: expected 1 to the number of shards, {shards}");
    }
    let name = match &args.name {
        Some(name) => name.clone(),
        None => default_name(suite.name.as_deref(), &args.suite),
    };
    check_label("--name", &name, NAME_CHARS_MAX)?;
    check_subdomain("--results-claim", &args.results_claim)?;
    if args.image.is_empty()
        || args
            .image
            .chars()
            .any(|c| c.is_whitespace() || c.is_control())
    {
        bail!(
            "--image \"{}\": expected an image name such as registry.example.com/faultline:nightly",
            crate::history::text::excerpt(&args.image)
        );
    }
    Ok(Plan {
        name,
        suite_text: text,
        shards,
        parallelism,
        jobs: args.jobs,
        image: args.image.clone(),
        claim: args.results_claim.clone(),
        disk_faults: tests.iter().any(|t| t.nemesis.has_disk_faults()),
    })
}

/// `faultline-<suite>`: the suite's name, else its file's, as a DNS label.
fn default_name(suite_name: Option<&str>, path: &std::path::Path) -> String {
    let raw = suite_name.map(str::to_string).unwrap_or_else(|| {
        path.file_stem()
            .map_or("suite".into(), |s| s.to_string_lossy().into_owned())
    });
    let mut label = String::from("faultline-");
    for c in raw.chars().flat_map(char::to_lowercase) {
        let c = if c.is_ascii_alphanumeric() { c } else { '-' };
        if !(c == '-' && label.ends_with('-')) {
            label.push(c);
        }
    }
    label.truncate(NAME_CHARS_MAX);
    label.trim_end_matches('-').to_string()
}

/// A DNS label (RFC 1123) of at most `max` characters, as Kubernetes names are.
fn check_label(flag: &str, name: &str, max: usize) -> anyhow::Result<()> {
    let ok = !name.is_empty()
        && name.len() <= max
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if !ok {
        bail!(
            "{flag} \"{}\": expected lower-case letters, digits and '-', at most {max} characters, starting and ending with a letter or digit",
            crate::history::text::excerpt(name)
        );
    }
    Ok(())
}

/// A DNS subdomain (RFC 1123): labels joined by dots, at most 253 characters.
fn check_subdomain(flag: &str, name: &str) -> anyhow::Result<()> {
    let ok = name.len() <= 253
        && name
            .split('.')
            .all(|label| check_label(flag, label, 63).is_ok());
    if !ok {
        bail!(
            "{flag} \"{}\": expected a Kubernetes object name (lower-case letters, digits, '-' and '.')",
            crate::history::text::excerpt(name)
        );
    }
    Ok(())
}

/// The shell script of a shard's pod. `$((JOB_COMPLETION_INDEX + 1))` is
/// the shard (Kubernetes numbers an Indexed Job's pods from 0).
fn shard_script(plan: &Plan) -> String {
    format!(
        r#"shard=$((JOB_COMPLETION_INDEX + 1))
out="${RESULTS_ENV}/shard-$shard"
mkdir -p "$out" && rm -f "$out/suite.json" || exit 3
faultline suite {SUITE_MOUNT}/{SUITE_FILE} --shard "$shard/{shards}" --jobs {jobs} --results-dir "$out"
echo "faultline suite, shard $shard of {shards}: exit $?"
# Done when it wrote suite.json, whatever the verdict (the merge says it).
[ -f "$out/suite.json" ] || exit 3
"#,
        shards = plan.shards,
        jobs = plan.jobs,
    )
}

/// The shell script of the merge's pod.
fn merge_script(plan: &Plan) -> String {
    let folders: Vec<String> = (1..=plan.shards)
        .map(|m| format!("\"${RESULTS_ENV}/shard-{m}\""))
        .collect();
    format!(
        r#"out="${RESULTS_ENV}/merged"
rm -rf "$out"
faultline results merge "$out" {}
echo "faultline results merge: exit $? (0 valid, 1 invalid, 2 unknown, 3 harness error)"
[ -f "$out/suite.json" ]
"#,
        folders.join(" ")
    )
}

/// The objects of `plan`.
pub fn manifest(plan: &Plan) -> Manifest {
    let labels = BTreeMap::from([
        (
            "app.kubernetes.io/name".to_string(),
            "faultline".to_string(),
        ),
        ("app.kubernetes.io/instance".to_string(), plan.name.clone()),
    ]);
    let meta = |name: String| ObjectMeta {
        name: Some(name),
        labels: Some(labels.clone()),
        ..Default::default()
    };
    let suite_map = format!("{}-suite", plan.name);
    let results_volume = Volume {
        name: "results".into(),
        persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
            claim_name: plan.claim.clone(),
            read_only: None,
        }),
        ..Default::default()
    };
    let results_mount = VolumeMount {
        name: "results".into(),
        mount_path: RESULTS_MOUNT.into(),
        ..Default::default()
    };
    let env = vec![EnvVar {
        name: RESULTS_ENV.into(),
        value: Some(format!("{RESULTS_MOUNT}/{}", plan.name)),
        value_from: None,
    }];
    let container = |name: &str, script: String| Container {
        name: name.into(),
        image: Some(plan.image.clone()),
        command: Some(vec!["sh".into(), "-c".into(), script]),
        env: Some(env.clone()),
        volume_mounts: Some(vec![results_mount.clone()]),
        ..Default::default()
    };

    let suite = ConfigMap {
        metadata: meta(suite_map.clone()),
        data: Some(BTreeMap::from([(
            SUITE_FILE.to_string(),
            plan.suite_text.clone(),
        )])),
        ..Default::default()
    };

    let mut shard = container("shard", shard_script(plan));
    shard
        .volume_mounts
        .get_or_insert_with(Vec::new)
        .push(VolumeMount {
            name: "suite".into(),
            mount_path: SUITE_MOUNT.into(),
            read_only: Some(true),
            ..Default::default()
        });
    shard.security_context = Some(security_context(plan.disk_faults));
    // Fault tests are timing-sensitive: a CPU per test at once, so the
    // scheduler does not pack every shard on one node.
    let per_test = |unit: &str| Quantity(format!("{}{unit}", plan.jobs));
    shard.resources = Some(ResourceRequirements {
        requests: Some(BTreeMap::from([
            ("cpu".to_string(), per_test("")),
            ("memory".to_string(), per_test("Gi")),
        ])),
        ..Default::default()
    });
    let shards = Job {
        metadata: meta(plan.name.clone()),
        spec: Some(JobSpec {
            completion_mode: Some("Indexed".into()),
            completions: Some(plan.shards as i32),
            parallelism: Some(plan.parallelism as i32),
            backoff_limit_per_index: Some(1),
            pod_failure_policy: Some(PodFailurePolicy {
                rules: vec![PodFailurePolicyRule {
                    action: "Ignore".into(),
                    on_pod_conditions: Some(vec![PodFailurePolicyOnPodConditionsPattern {
                        type_: "DisruptionTarget".into(),
                        status: "True".into(),
                    }]),
                    on_exit_codes: None,
                }],
            }),
            template: pod(
                meta(String::new()),
                shard,
                vec![
                    results_volume.clone(),
                    Volume {
                        name: "suite".into(),
                        config_map: Some(ConfigMapVolumeSource {
                            name: suite_map,
                            ..Default::default()
                        }),
                        ..Default::default()
                    },
                ],
            ),
            ..Default::default()
        }),
        ..Default::default()
    };

    let merge = Job {
        metadata: meta(format!("{}-merge", plan.name)),
        spec: Some(JobSpec {
            suspend: Some(true),
            backoff_limit: Some(0),
            template: pod(
                meta(String::new()),
                container("merge", merge_script(plan)),
                vec![results_volume],
            ),
            ..Default::default()
        }),
        ..Default::default()
    };
    Manifest {
        suite,
        shards,
        merge,
    }
}

/// A pod template of one container that is never restarted in place (a
/// retry is a fresh pod, with no namespaces left from the last try).
fn pod(mut metadata: ObjectMeta, container: Container, volumes: Vec<Volume>) -> PodTemplateSpec {
    metadata.name = None;
    PodTemplateSpec {
        metadata: Some(metadata),
        spec: Some(PodSpec {
            restart_policy: Some("Never".into()),
            // Time for a suite stopped by SIGTERM to heal and remove its clusters.
            termination_grace_period_seconds: Some(60),
            containers: vec![container],
            volumes: Some(volumes),
            ..Default::default()
        }),
    }
}

/// What a shard's container may do (see the module doc).
fn security_context(disk_faults: bool) -> SecurityContext {
    if disk_faults {
        return SecurityContext {
            privileged: Some(true),
            ..Default::default()
        };
    }
    SecurityContext {
        capabilities: Some(Capabilities {
            add: Some(vec!["NET_ADMIN".into(), "SYS_ADMIN".into()]),
            drop: None,
        }),
        app_armor_profile: Some(AppArmorProfile {
            type_: "Unconfined".into(),
            localhost_profile: None,
        }),
        ..Default::default()
    }
}

impl Manifest {
    /// The objects as one YAML stream, after a comment that says how to run
    /// it (`file`: where the stream is written, when known).
    pub fn to_yaml(&self, plan: &Plan, file: Option<&std::path::Path>) -> String {
        let name = &plan.name;
        // A comment line: no control character may end it.
        let file = file.map_or("THIS_FILE".into(), |f| {
            crate::history::text::escape(&f.display().to_string()).into_owned()
        });
        let mut text = format!(
            "# faultline k8s job: {shards} shards, {parallelism} at once, results on claim {claim} under {name}/.\n\
             #   kubectl apply -f {file}\n\
             #   kubectl wait --for=condition=Complete job/{name} --timeout=24h\n\
             #   kubectl patch job/{name}-merge --type=merge -p '{{\"spec\":{{\"suspend\":false}}}}'\n\
             #   kubectl wait --for=condition=Complete job/{name}-merge --timeout=1h\n\
             #   kubectl logs job/{name}-merge\n",
            shards = plan.shards,
            parallelism = plan.parallelism,
            claim = plan.claim,
        );
        // Serializing plain data to YAML cannot fail.
        let docs = [
            serde_yaml_ng::to_string(&self.suite),
            serde_yaml_ng::to_string(&self.shards),
            serde_yaml_ng::to_string(&self.merge),
        ];
        for doc in docs {
            text.push_str("---\n");
            text.push_str(&doc.unwrap_or_default());
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn default_names_are_dns_labels() {
        assert_eq!(
            default_name(Some("smoke"), Path::new("x.yaml")),
            "faultline-smoke"
        );
        assert_eq!(
            default_name(None, Path::new("suites/My Nightly_2.yaml")),
            "faultline-my-nightly-2"
        );
        let long = default_name(Some(&"a".repeat(80)), Path::new("x"));
        assert_eq!(long.len(), NAME_CHARS_MAX);
        assert!(check_label("--name", &long, NAME_CHARS_MAX).is_ok());
        for bad in ["", "-a", "a-", "A", "a_b", "a.b"] {
            assert!(check_label("--name", bad, NAME_CHARS_MAX).is_err(), "{bad}");
        }
        assert!(check_subdomain("--results-claim", "results.nightly-1").is_ok());
        assert!(check_subdomain("--results-claim", "a..b").is_err());
    }
}
