//! `faultline lazyfs`: the disk-fault helper run on a host (mount a lazy
//! file system over a node's data directory) and its control command (make
//! it lose what was not fsync'd). The file system itself is `disk/`.

use clap::{Args, Subcommand};
use std::path::PathBuf;

#[derive(Subcommand)]
pub enum LazyfsCmd {
    /// Mount BACKING on MOUNT, passing everything through but keeping un-fsynced writes undoable;
    /// runs until SIGTERM, then unmounts.
    Mount(MountArgs),
    /// Tell the helper on SOCKET to clear (lose every un-fsynced write), tear (lose them but a
    /// prefix of each file's last one) or say what it holds; prints its JSON answer.
    Ctl {
        /// The helper's control socket.
        socket: PathBuf,
        /// clear, torn or status.
        #[arg(value_parser = ["clear", "torn", "status"])]
        command: String,
    },
}

#[derive(Args)]
pub struct MountArgs {
    /// The directory that holds the data.
    #[arg(long)]
    pub backing: PathBuf,
    /// Where the nodes see it (created if missing).
    #[arg(long)]
    pub mount: PathBuf,
    /// The control socket to create.
    #[arg(long)]
    pub socket: PathBuf,
    /// Written with the helper's pid once it is mounted and listening.
    #[arg(long)]
    pub pidfile: Option<PathBuf>,
}

pub fn run(cmd: LazyfsCmd) -> anyhow::Result<()> {
    match cmd {
        LazyfsCmd::Mount(a) => {
            crate::disk::serve(&a.backing, &a.mount, &a.socket, a.pidfile.as_deref())
        }
        LazyfsCmd::Ctl { socket, command } => {
            let cmd = crate::disk::Command::parse(&command)
                .ok_or_else(|| anyhow::anyhow!("unknown lazyfs command {command:?}"))?;
            let answer = crate::disk::ctl(&socket, cmd)?;
            sayln!("{answer}");
            Ok(())
        }
    }
}
