//! `faultline report` and `faultline serve`: arguments and what they print.

use super::serve::{DEFAULT_BIND, Server};
use super::{Layout, index, write_report};
use crate::checker::Verdict;
use crate::outcome::Outcome;
use std::path::PathBuf;

#[derive(clap::Args, Debug, Clone)]
pub struct ReportArgs {
    /// Run folders (results/<test>/<timestamp>) whose report.html to write
    /// again from the stored files; with --index, results roots whose
    /// index.html to write.
    #[arg(required = true, value_name = "RESULTS_DIR")]
    pub dirs: Vec<PathBuf>,
    /// Write the results index (index.html) of these results roots instead.
    #[arg(long)]
    pub index: bool,
    /// Draw Elle cycles with our own ring layout even when Graphviz is installed.
    #[arg(long)]
    pub no_graphviz: bool,
}

/// Writes the reports; exit code 0, or a harness error's when one could not
/// be written. The runs' verdicts are printed, never changed.
pub fn report(args: &ReportArgs) -> anyhow::Result<u8> {
    let mut outcome = Outcome::Valid;
    for dir in &args.dirs {
        if args.index {
            match index::write_index(dir) {
                Ok(path) => println!("{}", path.display()),
                Err(e) => {
                    eprintln!("error: {e}");
                    outcome = Outcome::HarnessError;
                }
            }
            continue;
        }
        let layout = if args.no_graphviz {
            Layout::Ring
        } else {
            Layout::Auto
        };
        match write_report(dir, layout) {
            Ok(w) => {
                let verdict = w.verdict.map_or("not checked", Verdict::as_str);
                println!(
                    "{}  ({verdict}, {:.1} KiB)",
                    w.path.display(),
                    w.bytes as f64 / 1024.0
                );
                for n in &w.notes {
                    println!("  note: {n}");
                }
            }
            Err(e) => {
                eprintln!("error: {e}");
                outcome = Outcome::HarnessError;
            }
        }
    }
    Ok(outcome.exit_code())
}

#[derive(clap::Args, Debug, Clone)]
pub struct ServeArgs {
    /// The results folder to serve, read-only.
    #[arg(default_value = "results", value_name = "DIR")]
    pub dir: PathBuf,
    /// Address to listen on. The default answers this machine only; reach it
    /// from elsewhere through an SSH tunnel rather than binding wider.
    #[arg(long, default_value = DEFAULT_BIND, value_name = "ADDR:PORT")]
    pub bind: String,
}

pub fn serve(args: &ServeArgs) -> anyhow::Result<u8> {
    let server = Server::bind(&args.bind, &args.dir)?;
    let addr = server.local_addr()?;
    if !addr.ip().is_loopback() {
        eprintln!(
            "warning: listening on {addr}, which other machines may reach; the results (histories, logs) are readable by anyone who can connect"
        );
    }
    println!(
        "serving {} read-only at http://{addr}/  (Ctrl-C to stop)",
        args.dir.display()
    );
    server.run()?;
    Ok(0)
}
