//! Suites on a fleet of machines one does not log in to: the container image
//! that runs them (`image.rs`, `faultline image build`) and the Kubernetes
//! manifest that runs a suite's shards as pods of an Indexed Job and merges
//! their results (`k8s.rs`, `faultline k8s job`).
//!
//! What a shard does is `faultline suite --shard M/N` (`runner::suite`);
//! what the merge does is `faultline results merge` (`runner::merge`). Here
//! is only how they are packaged and scheduled. Each pod makes local
//! (network-namespace) clusters inside its own network namespace, so it
//! needs the capabilities that takes, and nothing of the Kubernetes node.

pub mod image;
pub mod k8s;
