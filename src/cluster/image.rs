//! Container images assembled from this machine's own files, for an engine
//! that may have no registry: the Docker backend's node image
//! (`cluster::docker`) and the image that runs whole suites on a fleet
//! (`fleet::image`, `faultline image build`). One [`Recipe`] each; the
//! building is here, once.
//!
//! An image holds the faultline executable (at /opt/faultline/bin/faultline,
//! where deployment puts it, so the upload is skipped, and on the PATH as
//! /usr/bin/faultline), the recipe's programs and directories that this
//! machine has, the shared libraries they and the executable load (from
//! `ldd`), and a minimal /etc; then `tar | docker import`. It is tagged by
//! the recipe, the executable's checksum and which of the recipe's tools
//! this machine has, and built only when that tag is missing.

use super::{ClusterError, file_err};
use crate::control::process::run_local;
use crate::control::{RemoteError, shell_quote};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

const DOCKER_TIMEOUT: Duration = Duration::from_secs(120);
/// Where an image holds the executable (`system::Layout`'s place for it).
pub const FAULTLINE_IN_IMAGE: &str = "/opt/faultline/bin/faultline";

/// What goes into an image besides the executable.
#[derive(Debug)]
pub struct Recipe {
    /// The image's repository name (`faultline-node`).
    pub repo: &'static str,
    /// Bump when the image's contents change for the same executable.
    pub version: &'static str,
    /// Programs copied in when this machine has them (absolute paths), in
    /// lists that recipes share.
    pub programs: &'static [&'static [&'static str]],
    /// Directories copied whole (loadable modules and data files).
    pub dirs: &'static [&'static str],
    /// The image's default command, as a Dockerfile's JSON `CMD` array.
    pub cmd: &'static str,
}

impl Recipe {
    fn programs(&self) -> impl Iterator<Item = &'static str> {
        self.programs.iter().flat_map(|list| list.iter().copied())
    }

    /// Which of the recipe's programs and directories this machine has,
    /// folded into a short number for the image tag: installing a tool later
    /// (faketime, say) makes a new image instead of reusing one built
    /// without it.
    fn tools_present(&self) -> u16 {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        for p in self.programs().chain(self.dirs.iter().copied()) {
            (p, Path::new(p).exists()).hash(&mut h);
        }
        h.finish() as u16
    }
}

/// The image of `recipe` for `binary`, built if this machine does not have
/// it yet; its tag.
pub fn ensure(recipe: &Recipe, binary: &Path) -> Result<String, ClusterError> {
    let b = binary.to_string_lossy();
    let sum = run_local("sha256sum", &[&b], None, DOCKER_TIMEOUT)?;
    let tag = format!(
        "{}:{}-{}-{:04x}",
        recipe.repo,
        recipe.version,
        sum.get(..16).unwrap_or("unknown"),
        recipe.tools_present()
    );
    if docker(&["image", "inspect", "--format", "{{.Id}}", &tag]).is_ok() {
        return Ok(tag);
    }
    let rootfs = std::env::temp_dir().join(format!(
        "{}-{}-{}",
        recipe.repo,
        std::process::id(),
        sum.get(..8).unwrap_or("x")
    ));
    let sum = sum.split_whitespace().next().unwrap_or_default();
    let built = build_rootfs(recipe, &rootfs, binary, sum).and_then(|()| {
        let script = format!(
            "tar -C {} -cf - . | docker import --change {} - {tag}",
            shell_quote(&rootfs.to_string_lossy()),
            shell_quote(&format!("CMD {}", recipe.cmd))
        );
        run_local("sh", &["-c", &script], None, DOCKER_TIMEOUT).map_err(ClusterError::from)
    });
    let _ = std::fs::remove_dir_all(&rootfs);
    built.map(|_| tag)
}

/// Gives the image `source` the name `target` too (`docker tag`).
pub fn tag(source: &str, target: &str) -> Result<(), ClusterError> {
    docker(&["tag", source, target]).map(drop)
}

/// Runs `docker ARGS`; an engine that cannot be reached says how to get one.
pub(super) fn docker(args: &[&str]) -> Result<String, ClusterError> {
    match run_local("docker", args, None, DOCKER_TIMEOUT) {
        Ok(out) => Ok(out),
        Err(RemoteError::Other { detail, .. }) if detail.contains("cannot start") => {
            Err(ClusterError::Setup(format!(
                "cannot run docker ({detail}); install docker.io and start the engine"
            )))
        }
        // `docker rm -f` of containers that are already gone is success.
        Err(RemoteError::Failed { stderr, .. })
            if args.first() == Some(&"rm")
                && stderr.lines().all(|l| l.contains("No such container")) =>
        {
            Ok(String::new())
        }
        Err(e) => Err(e.into()),
    }
}

/// Assembles the image's root filesystem in `root` (see the module doc);
/// `sum` is the executable's sha256, recorded as `db::install` does.
fn build_rootfs(
    recipe: &Recipe,
    root: &Path,
    binary: &Path,
    sum: &str,
) -> Result<(), ClusterError> {
    let _ = std::fs::remove_dir_all(root);
    for dir in [
        "usr/bin",
        "usr/sbin",
        "usr/lib",
        "usr/lib64",
        "etc",
        "tmp",
        "root",
        "run",
        "proc",
        "sys",
        "dev",
        "opt/faultline/bin",
        "var/tmp",
        "var/lib",
    ] {
        mkdir(&root.join(dir))?;
    }
    // Debian's merged /usr: /bin, /sbin, /lib and /lib64 point into /usr;
    // /var/run is /run (where `ip netns` keeps its files).
    for (link, target) in [
        ("bin", "usr/bin"),
        ("sbin", "usr/sbin"),
        ("lib", "usr/lib"),
        ("lib64", "usr/lib64"),
        ("var/run", "../run"),
    ] {
        symlink(target, &root.join(link))?;
    }
    let mut files: BTreeSet<PathBuf> = recipe
        .programs()
        .map(PathBuf::from)
        .filter(|p| p.exists())
        .collect();
    for dir in recipe.dirs {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            files.insert(entry.path());
        }
    }
    let mut libs = BTreeSet::new();
    for f in files.iter().chain(std::iter::once(&binary.to_path_buf())) {
        libs.extend(shared_libs(f));
    }
    for f in files.iter().chain(&libs) {
        copy_in(root, f)?;
    }
    let target = root.join("opt/faultline/bin/faultline");
    std::fs::copy(binary, &target).map_err(|e| file_err(&target, e))?;
    // On the PATH, for the commands an image is run with.
    symlink(FAULTLINE_IN_IMAGE, &root.join("usr/bin/faultline"))?;
    write(
        &root.join("opt/faultline/bin/faultline.sha256"),
        &format!("{sum}\n"),
    )?;
    write(
        &root.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
    )?;
    write(&root.join("etc/group"), "root:x:0:\nnogroup:x:65534:\n")?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(root.join("tmp"), std::fs::Permissions::from_mode(0o1777))
        .map_err(|e| file_err(&root.join("tmp"), e))
}

/// The shared libraries `file` loads, as `ldd` resolves them here (nothing
/// for static files and non-ELF files).
fn shared_libs(file: &Path) -> Vec<PathBuf> {
    let Ok(out) = std::process::Command::new("ldd").arg(file).output() else {
        return Vec::new();
    };
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| {
            line.split_whitespace()
                .find(|w| w.starts_with('/'))
                .map(PathBuf::from)
        })
        .filter(|p| p.exists())
        .collect()
}

/// Copies the file behind `path` to the same canonical path under `root`,
/// and recreates `path`'s own name as a symlink when it differs (so both
/// /usr/bin/sh and /usr/bin/dash exist, and /lib64/ld-linux... resolves).
fn copy_in(root: &Path, path: &Path) -> Result<(), ClusterError> {
    let canonical = std::fs::canonicalize(path).map_err(|e| file_err(path, e))?;
    let dest = root.join(canonical.strip_prefix("/").unwrap_or(&canonical));
    if let Some(parent) = dest.parent() {
        mkdir(parent)?;
    }
    if !dest.exists() {
        std::fs::copy(&canonical, &dest).map_err(|e| file_err(&dest, e))?;
    }
    let parent = path
        .parent()
        .and_then(|p| std::fs::canonicalize(p).ok())
        .unwrap_or_else(|| PathBuf::from("/"));
    let named = parent.join(path.file_name().unwrap_or_default());
    if named != canonical {
        let link = root.join(named.strip_prefix("/").unwrap_or(&named));
        if let Some(parent) = link.parent() {
            mkdir(parent)?;
        }
        if std::fs::symlink_metadata(&link).is_err() {
            symlink(&canonical.to_string_lossy(), &link)?;
        }
    }
    Ok(())
}

fn mkdir(path: &Path) -> Result<(), ClusterError> {
    std::fs::create_dir_all(path).map_err(|e| file_err(path, e))
}

fn symlink(target: &str, link: &Path) -> Result<(), ClusterError> {
    std::os::unix::fs::symlink(target, link).map_err(|e| file_err(link, e))
}

fn write(path: &Path, text: &str) -> Result<(), ClusterError> {
    std::fs::write(path, text).map_err(|e| file_err(path, e))
}
