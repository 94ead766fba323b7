//! `faultline image build`: the image that runs suites in a container (a
//! Kubernetes pod, `docker run`), assembled from this machine's files as the
//! Docker backend's node image is (`cluster::image`), with what a
//! controller needs on top of what a host needs: util-linux's namespace
//! and mount tools for local clusters, and fuse3 for disk faults.
//!
//! It holds the bundled systems (raft, paxos, 2PC, ...) and the systems
//! under test that are single executables this machine has (redis, etcd);
//! not ZooKeeper's JVM nor PostgreSQL, whose installations are trees of
//! files: a suite of those needs an image of its own.

use crate::cluster::docker;
use crate::cluster::image::{self, Recipe};
use anyhow::Context;

/// The suite runner's image.
pub const RUNNER_IMAGE: Recipe = Recipe {
    repo: "faultline",
    version: "r1",
    programs: &[docker::PROGRAMS, CONTROLLER_PROGRAMS],
    dirs: docker::DIRS,
    cmd: r#"["faultline", "--help"]"#,
};

/// What the controller of a local cluster runs besides a host's programs:
/// `cluster::netns` makes namespaces with ip, unshare, nsenter and mount,
/// reaches hosts with nsenter, and heals with findmnt and umount;
/// `disk::host` mounts the lazy file system (fusermount3 when not root).
const CONTROLLER_PROGRAMS: &[&str] = &[
    "/usr/bin/nsenter",
    "/usr/bin/unshare",
    "/usr/bin/mount",
    "/usr/bin/umount",
    "/usr/bin/findmnt",
    "/usr/bin/mountpoint",
    "/usr/bin/flock",
    // `cluster::netns` pins `unshare` to a CPU when the kernel refuses to
    // bind a namespace made on another one (in containers, Linux 6.18).
    "/usr/bin/taskset",
    "/usr/bin/fusermount3",
    "/usr/bin/awk",
    "/usr/bin/cut",
    "/usr/bin/seq",
    "/usr/bin/true",
    "/usr/bin/false",
    "/usr/bin/printf",
    "/usr/bin/nproc",
];

#[derive(clap::Args, Debug, Clone)]
pub struct ImageBuildArgs {
    /// Also tag the image TAG (e.g. registry.example.com/faultline:nightly),
    /// to push it where a cluster pulls from; printed instead of the built tag.
    #[arg(long, value_name = "TAG")]
    pub tag: Option<String>,
}

/// Builds the runner image for this executable (unless this machine has it)
/// and prints its tag.
pub fn build_command(args: &ImageBuildArgs) -> anyhow::Result<u8> {
    if let Some(tag) = &args.tag {
        check_tag(tag).map_err(anyhow::Error::msg)?;
    }
    let binary = std::env::current_exe().context("cannot find this executable")?;
    let built = image::ensure(&RUNNER_IMAGE, &binary).context("building the image")?;
    let tag = match &args.tag {
        Some(tag) => {
            image::tag(&built, tag)?;
            tag.clone()
        }
        None => built,
    };
    println!("{tag}");
    Ok(0)
}

/// A tag Docker may accept: no whitespace or control characters, nothing a
/// command line reads as an option. Docker says what else is wrong.
fn check_tag(tag: &str) -> Result<(), String> {
    let bad = tag.is_empty()
        || tag.len() > 255
        || tag.starts_with('-')
        || tag.chars().any(|c| c.is_whitespace() || c.is_control());
    if bad {
        return Err(format!(
            "--tag \"{}\": expected an image name such as registry.example.com/faultline:nightly",
            crate::history::text::excerpt(tag)
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_that_are_options_or_hold_spaces_are_refused() {
        assert!(check_tag("registry.example.com/faultline:nightly").is_ok());
        for bad in ["", "-q", "a b", "a\nb"] {
            assert!(check_tag(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_runner_has_what_a_host_has_and_the_namespace_tools() {
        let programs: Vec<&str> = RUNNER_IMAGE
            .programs
            .iter()
            .flat_map(|l| l.iter().copied())
            .collect();
        for p in [
            "/sbin/ip",
            "/usr/sbin/iptables",
            "/usr/bin/nsenter",
            "/usr/bin/unshare",
        ] {
            assert!(programs.contains(&p), "{p}");
        }
    }
}
