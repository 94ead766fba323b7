//! Hosts that are Docker containers: `docker exec -i CONTAINER sh -c ...`,
//! with files streamed through `cat` like the other local backends (one
//! `docker exec` per copy, and the target is replaced atomically).
//! What is not here: building images and starting containers (`cluster::docker`).

use super::Packages;
use super::process::CommandRemote;

/// The host `name` living in the running container `container`.
pub fn host(name: &str, container: &str) -> CommandRemote {
    let prefix = ["docker", "exec", "-i", container]
        .map(String::from)
        .to_vec();
    CommandRemote::new(name, prefix).with_packages(Packages::Image)
}
