//! Claims a 10.a.b.0/24 subnet for a local cluster so that clusters made at
//! the same time (parallel tests, other users) never collide.
//!
//! The first candidate comes from a hash of the cluster name; a claim is a
//! file created with O_EXCL in `<clusters dir>/.subnets/`, so two processes
//! can never hold the same one. Subnets already routed on this machine (a
//! Docker network, a VPN) are skipped.

use super::{ClusterError, Subnet, clusters_dir, file_err};
use std::path::PathBuf;

/// Second octets used: 10.100.x.x to 10.249.x.x (away from common defaults).
const FIRST_A: u32 = 100;
const RANGE: u32 = 150 * 256;
/// How many candidates to try before giving up.
const MAX_TRIES: u32 = 512;

pub(super) fn claim(name: &str) -> Result<(PathBuf, Subnet), ClusterError> {
    let dir = clusters_dir().join(".subnets");
    std::fs::create_dir_all(&dir).map_err(|e| file_err(&dir, e))?;
    let routes = std::process::Command::new("ip")
        .args(["-4", "route", "show", "table", "all"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let start = fnv1a(name.as_bytes()) % RANGE;
    for i in 0..MAX_TRIES {
        let n = (start + i) % RANGE;
        let subnet = Subnet {
            a: (FIRST_A + n / 256) as u8,
            b: (n % 256) as u8,
        };
        let prefix = format!("10.{}.{}.", subnet.a, subnet.b);
        if routes.contains(&prefix) {
            continue;
        }
        let path = dir.join(format!("10.{}.{}", subnet.a, subnet.b));
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Ok(_) => {
                let _ = std::fs::write(&path, name);
                return Ok((path, subnet));
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(file_err(&path, e)),
        }
    }
    Err(ClusterError::Setup(format!(
        "no free 10.x.y.0/24 subnet after {MAX_TRIES} tries (see {})",
        dir.display()
    )))
}

fn fnv1a(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5u32, |h, &b| {
        (h ^ b as u32).wrapping_mul(0x0100_0193)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_spreads_similar_names() {
        assert_ne!(fnv1a(b"t1") % RANGE, fnv1a(b"t2") % RANGE);
        assert_eq!(fnv1a(b""), 0x811c_9dc5);
    }

    #[test]
    fn subnet_tag_fits_an_interface_name() {
        let s = Subnet { a: 249, b: 255 };
        assert_eq!(s.tag(), "flf9ff");
        assert!(s.tag().len() + 4 <= 15);
        assert_eq!(s.node_addr(5).to_string(), "10.249.255.15");
    }
}
