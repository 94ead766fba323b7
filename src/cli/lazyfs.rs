//! `faultline lazyfs`: the disk-fault helper run on a host (mount a lazy
//! file system over a node's data directory) and its control command (make
//! it lose what was not fsync'd, slow, full, corrupt or read wrong). The file system itself is `disk/`.

use clap::{Args, Subcommand};
use std::path::PathBuf;

#[derive(Subcommand)]
pub enum LazyfsCmd {
    /// Mount BACKING on MOUNT, passing everything through but keeping un-fsynced writes undoable;
    /// runs until SIGTERM, then unmounts.
    Mount(MountArgs),
    /// Tell the helper on SOCKET to clear (lose every un-fsynced write), tear (lose them but a
    /// prefix of each file's last one), make everything durable as it is (`checkpoint`), slow every fsync by MS milliseconds (`slow 0`: fast
    /// again), make writes that allocate fail with ENOSPC (`full on`, `full off`), flip BITS
    /// bits of durable data drawn from SEED (`corrupt BITS SEED`; the node must be down), make
    /// reads of BITS such bits return them flipped (`corrupt-read BITS SEED`, `corrupt-read
    /// off`), or say what it holds (`status`); prints its JSON answer.
    Ctl {
        /// The helper's control socket.
        socket: PathBuf,
        /// clear | torn | checkpoint | status | slow MS | full on|off | corrupt BITS SEED |
        /// corrupt-read BITS SEED|off
        #[arg(required = true, num_args = 1..)]
        command: Vec<String>,
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
            let cmd = crate::disk::Command::parse(&command.join(" "))
                .map_err(|e| anyhow::anyhow!("lazyfs ctl: {e}"))?;
            let answer = crate::disk::ctl(&socket, cmd)?;
            sayln!("{answer}");
            Ok(())
        }
    }
}
