//! `faultline results merge OUT DIR...`: the results folders of a suite's
//! shards (or of several machines) made one: one junit.xml, one summary
//! (summary.md, summary.json), one index.html over every run, suite.json,
//! and the worst of their outcomes as the exit code.
//!
//! Each DIR is a folder `faultline suite` wrote (its suite.json says which
//! runs it holds). A run counts once however often it is given: runs are
//! known by their folder's `<test>/<timestamp>` (`suite_runs`), and the
//! merged runs are in suite order. Runs stay where they are (the index
//! links to them) or, with `--copy`, are copied into OUT.
//!
//! Everything is written into a fresh folder beside OUT and renamed onto
//! it at the end: a bad input or a failed write leaves OUT as it was.

use super::suite::{self, Row, table};
use super::suite_runs::{self, RunRecord, SuiteRuns};
use crate::outcome::Outcome;
use crate::report::index;
use crate::store::RunDir;
use anyhow::{Context, bail};
use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};

/// How deep a run folder's tree may go when copied (nodes/<node>/<file>).
const COPY_DEPTH_MAX: usize = 16;

#[derive(clap::Args, Debug, Clone)]
pub struct MergeArgs {
    /// The merged results folder (made; one an earlier merge wrote is replaced).
    #[arg(value_name = "OUT")]
    pub out: PathBuf,
    /// Results folders of `faultline suite` (its --results-dir), e.g. one per shard.
    #[arg(value_name = "DIR", required = true)]
    pub dirs: Vec<PathBuf>,
    /// Copy each run's folder into OUT; by default OUT's index links to the runs where they are.
    #[arg(long)]
    pub copy: bool,
}

/// One input folder and what its suite.json says.
struct Input {
    dir: PathBuf,
    runs: SuiteRuns,
}

/// A run taken into the merge: its record and its folder on disk.
struct Taken {
    record: RunRecord,
    source: Option<PathBuf>,
}

/// Merges; returns the worst outcome of the merged suites.
pub fn merge_command(args: &MergeArgs) -> anyhow::Result<Outcome> {
    let inputs: Vec<Input> = args
        .dirs
        .iter()
        .map(|dir| read_input(dir))
        .collect::<anyhow::Result<_>>()?;
    let first = &inputs[0];
    for other in &inputs[1..] {
        if other.runs.suite != first.runs.suite || other.runs.tests != first.runs.tests {
            bail!(
                "{} holds suite {} of {} tests, {} suite {} of {}: merge the shards of one suite",
                first.dir.display(),
                first.runs.suite,
                first.runs.tests,
                other.dir.display(),
                other.runs.suite,
                other.runs.tests
            );
        }
    }
    let taken = take_runs(&inputs)?;
    let out = absolute(&args.out)?;
    check_out(&out, &inputs)?;

    let parent = out.parent().context("OUT has no parent folder")?;
    std::fs::create_dir_all(parent)
        .with_context(|| format!("cannot create {}", parent.display()))?;
    let out_name = out
        .file_name()
        .context("OUT has no folder name")?
        .to_string_lossy();
    let tmp = parent.join(format!(".{out_name}.merging-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
    let written = write_merged(args, &inputs, &taken, &out, &tmp);
    let merged = match written.and_then(|m| replace(&out, &tmp).map(|()| m)) {
        Ok(m) => m,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(e);
        }
    };

    let rows: Vec<Row> = merged
        .runs
        .iter()
        .map(|r| suite::row_of(r, String::new()))
        .collect();
    print!("{}", table(&merged.suite, &rows));
    let duplicates = inputs.iter().map(|i| i.runs.runs.len()).sum::<usize>() - taken.len();
    println!(
        "merged {} runs of {} tests from {} folders{} into {}",
        taken.len(),
        merged.tests,
        inputs.len(),
        if duplicates > 0 {
            format!(" ({duplicates} given twice, counted once)")
        } else {
            String::new()
        },
        args.out.display()
    );
    Ok(merged.outcome)
}

/// Reads `dir`/suite.json, and checks that each run it names is there.
fn read_input(dir: &Path) -> anyhow::Result<Input> {
    if !dir.is_dir() {
        bail!("{}: no such folder", dir.display());
    }
    let path = dir.join(suite_runs::FILE);
    if !path.is_file() {
        bail!(
            "{} is not the results folder of a suite: it has no {} (faultline suite writes one)",
            dir.display(),
            suite_runs::FILE
        );
    }
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    /// The version alone, read first: another version's fields may differ.
    #[derive(serde::Deserialize)]
    struct Version {
        schema_version: u32,
    }
    let at = |e: serde_json::Error| {
        anyhow::anyhow!(
            "{}:{}:{}: {}",
            path.display(),
            e.line(),
            e.column(),
            crate::history::text::clip_message(&e.to_string())
        )
    };
    let version: Version = serde_json::from_str(&text).map_err(at)?;
    if version.schema_version != suite_runs::SCHEMA_VERSION {
        bail!(
            "{}: schema_version {} is not the one this faultline reads ({})",
            path.display(),
            version.schema_version,
            suite_runs::SCHEMA_VERSION
        );
    }
    let mut runs: SuiteRuns = serde_json::from_str(&text).map_err(at)?;
    runs.suite = crate::history::text::excerpt(&runs.suite);
    for r in &mut runs.runs {
        if !is_run_id(&r.id) {
            bail!(
                "{}: run id \"{}\" is not <test>/<timestamp>",
                path.display(),
                crate::history::text::excerpt(&r.id)
            );
        }
        if let Some(folder) = &r.folder {
            let relative = Path::new(folder)
                .components()
                .all(|c| matches!(c, Component::Normal(_) | Component::ParentDir));
            if !relative || !dir.join(folder).is_dir() {
                bail!(
                    "{}: run {} is not in {} (its folder \"{}\" is missing)",
                    path.display(),
                    r.id,
                    dir.display(),
                    crate::history::text::excerpt(folder)
                );
            }
        }
        // Shown on a terminal and in pages: escaped, as any outside text.
        r.name = crate::history::text::escape(&r.name).to_string();
        r.message = crate::history::text::escape(&r.message).to_string();
        if r.position >= runs.tests {
            bail!(
                "{}: run {} is test {} of a suite of {}",
                path.display(),
                r.id,
                r.position + 1,
                runs.tests
            );
        }
    }
    Ok(Input {
        dir: dir.to_path_buf(),
        runs,
    })
}

/// `<test>/<timestamp>`: two plain folder names (what `store` makes), or
/// `<test>/no-folder-<n>`.
fn is_run_id(id: &str) -> bool {
    let mut parts = id.split('/');
    let plain = |p: Option<&str>| {
        p.is_some_and(|p| {
            !p.is_empty()
                && p != "."
                && p != ".."
                && !p.starts_with('.')
                && p.chars().all(|c| !c.is_control() && c != '\\')
        })
    };
    plain(parts.next()) && plain(parts.next()) && parts.next().is_none()
}

/// Every run of the inputs once, in suite order. The same id twice is the
/// same run if the records agree; if not, it is an error.
fn take_runs(inputs: &[Input]) -> anyhow::Result<Vec<Taken>> {
    let mut by_id: HashMap<&str, (&Path, &RunRecord)> = HashMap::new();
    let mut taken = Vec::new();
    for input in inputs {
        for r in &input.runs.runs {
            match by_id.get(r.id.as_str()) {
                None => {
                    by_id.insert(&r.id, (&input.dir, r));
                    taken.push(Taken {
                        record: r.clone(),
                        source: r.folder.as_ref().map(|f| input.dir.join(f)),
                    });
                }
                Some((dir, seen)) => {
                    let same = RunRecord {
                        folder: None,
                        ..(*seen).clone()
                    } == RunRecord {
                        folder: None,
                        ..r.clone()
                    };
                    if !same {
                        bail!(
                            "run {} is in {} and in {}, and they differ: two runs cannot share a folder name",
                            r.id,
                            dir.display(),
                            input.dir.display()
                        );
                    }
                }
            }
        }
    }
    // Stable: runs of one test at one place keep the order they were given in.
    taken.sort_by_key(|t| t.record.position);
    Ok(taken)
}

/// `path` made absolute without resolving its last part (it may not exist).
fn absolute(path: &Path) -> anyhow::Result<PathBuf> {
    let path = std::path::absolute(path)
        .with_context(|| format!("{}: cannot make it absolute", path.display()))?;
    let name = path
        .file_name()
        .with_context(|| format!("{}: OUT must name a folder", path.display()))?;
    let parent = path.parent().unwrap_or(Path::new("/"));
    // The parent as it really is (symlinks resolved), when it exists.
    let parent = std::fs::canonicalize(parent).unwrap_or_else(|_| parent.to_path_buf());
    Ok(parent.join(name))
}

/// OUT must not be, hold or lie in an input; if it exists it must be empty
/// or an earlier merge (its suite.json lists what it merged).
fn check_out(out: &Path, inputs: &[Input]) -> anyhow::Result<()> {
    let out_real = std::fs::canonicalize(out).unwrap_or_else(|_| out.to_path_buf());
    for input in inputs {
        let dir = std::fs::canonicalize(&input.dir)
            .with_context(|| format!("cannot resolve {}", input.dir.display()))?;
        if out_real.starts_with(&dir) || dir.starts_with(&out_real) {
            bail!(
                "OUT {} overlaps the input {}: write the merge to a folder of its own",
                out.display(),
                input.dir.display()
            );
        }
    }
    if out.exists() {
        let empty = std::fs::read_dir(out)
            .with_context(|| format!("{} exists and is not a folder", out.display()))?
            .next()
            .is_none();
        let merged = read_input(out).is_ok_and(|i| !i.runs.merged_from.is_empty());
        if !empty && !merged {
            bail!(
                "{} exists and is not an earlier merge: give a new folder",
                out.display()
            );
        }
    }
    Ok(())
}

/// Writes the merge into `tmp` (to become `out`); returns its suite.json.
fn write_merged(
    args: &MergeArgs,
    inputs: &[Input],
    taken: &[Taken],
    out: &Path,
    tmp: &Path,
) -> anyhow::Result<SuiteRuns> {
    let mut records = Vec::with_capacity(taken.len());
    let mut index_rows = Vec::new();
    for t in taken {
        let mut record = t.record.clone();
        if let Some(source) = &t.source {
            let folder = if args.copy {
                copy_dir(source, &tmp.join(&record.id), 0)?;
                PathBuf::from(&record.id)
            } else {
                let source = std::fs::canonicalize(source)
                    .with_context(|| format!("cannot resolve {}", source.display()))?;
                relative(out, &source)
            };
            let (test, timestamp) = record.id.split_once('/').unwrap_or_default();
            let mut row = index::row(RunDir {
                path: if args.copy {
                    tmp.join(&record.id)
                } else {
                    source.clone()
                },
                test: test.to_string(),
                timestamp: timestamp.to_string(),
            });
            row.href = href(&folder);
            index_rows.push(row);
            record.folder = Some(folder.to_string_lossy().into_owned());
        }
        records.push(record);
    }
    let first = &inputs[0].runs;
    let interrupted: Vec<&str> = inputs
        .iter()
        .filter_map(|i| i.runs.interrupted.as_deref())
        .collect();
    let merged = SuiteRuns {
        schema_version: suite_runs::SCHEMA_VERSION,
        suite: first.suite.clone(),
        tests: first.tests,
        outcome: Outcome::worst(
            inputs
                .iter()
                .map(|i| i.runs.outcome)
                .chain(records.iter().map(|r| r.judged)),
        ),
        interrupted: (!interrupted.is_empty()).then(|| interrupted.join("; ")),
        runs: records,
        merged_from: inputs.iter().map(|i| i.dir.display().to_string()).collect(),
    };
    let rows: Vec<Row> = merged
        .runs
        .iter()
        .map(|r| {
            let dir = r
                .folder
                .as_ref()
                .map_or(String::new(), |f| args.out.join(f).display().to_string());
            suite::row_of(r, dir)
        })
        .collect();
    suite::write_junit_and_summary(&merged.suite, &rows, &tmp.join("junit.xml"))?;
    let path = tmp.join(suite_runs::FILE);
    crate::atomic_file::write(&path, merged.to_json().as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))?;
    // Newest first, as the results index is.
    index_rows.sort_by(|a, b| b.run.timestamp.cmp(&a.run.timestamp));
    let path = tmp.join(index::INDEX_FILE);
    crate::atomic_file::write(&path, index::render(&index_rows).as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(merged)
}

/// The URL of `folder` (relative, `..` allowed), ending in `/`.
fn href(folder: &Path) -> String {
    let mut s = String::new();
    for c in folder.components() {
        match c {
            Component::ParentDir => s.push_str(".."),
            c => {
                let name = c.as_os_str().to_string_lossy();
                s.push_str(&crate::report::html::rel_url(&[name.as_ref()]));
            }
        }
        s.push('/');
    }
    s
}

/// `to` as seen from the folder `from` (both absolute, symlinks resolved).
fn relative(from: &Path, to: &Path) -> PathBuf {
    let (from, to): (Vec<_>, Vec<_>) = (from.components().collect(), to.components().collect());
    let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
    let mut rel = PathBuf::new();
    for _ in common..from.len() {
        rel.push("..");
    }
    for c in &to[common..] {
        rel.push(c);
    }
    rel
}

/// Copies the folder `from` to `to`: files, folders and symlinks (as links).
fn copy_dir(from: &Path, to: &Path, depth: usize) -> anyhow::Result<()> {
    if depth > COPY_DEPTH_MAX {
        bail!(
            "{}: deeper than {COPY_DEPTH_MAX} folders; not a run folder",
            from.display()
        );
    }
    std::fs::create_dir_all(to).with_context(|| format!("cannot create {}", to.display()))?;
    let entries =
        std::fs::read_dir(from).with_context(|| format!("cannot read {}", from.display()))?;
    for entry in entries {
        let entry = entry.with_context(|| format!("cannot read {}", from.display()))?;
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        let kind = entry
            .file_type()
            .with_context(|| format!("cannot read {}", src.display()))?;
        if kind.is_dir() {
            copy_dir(&src, &dst, depth + 1)?;
        } else if kind.is_symlink() {
            let target = std::fs::read_link(&src)
                .with_context(|| format!("cannot read {}", src.display()))?;
            std::os::unix::fs::symlink(&target, &dst)
                .with_context(|| format!("cannot write {}", dst.display()))?;
        } else if kind.is_file() {
            std::fs::copy(&src, &dst)
                .with_context(|| format!("cannot copy {} to {}", src.display(), dst.display()))?;
        }
    }
    Ok(())
}

/// Puts the finished `tmp` in place of `out` (an earlier merge, or nothing).
fn replace(out: &Path, tmp: &Path) -> anyhow::Result<()> {
    if out.exists() {
        let old = PathBuf::from(format!("{}-old", tmp.display()));
        std::fs::rename(out, &old)
            .with_context(|| format!("cannot move {} aside", out.display()))?;
        std::fs::rename(tmp, out)
            .with_context(|| format!("cannot rename {} to {}", tmp.display(), out.display()))?;
        std::fs::remove_dir_all(&old)
            .with_context(|| format!("cannot remove {}", old.display()))?;
    } else {
        std::fs::rename(tmp, out)
            .with_context(|| format!("cannot rename {} to {}", tmp.display(), out.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_are_two_plain_names() {
        assert!(is_run_id("raft-register/20261207T043000.123Z"));
        assert!(is_run_id("raft/no-folder-3"));
        for bad in ["raft", "../x/y", "a/..", "a/b/c", "/a/b", "a/.hidden", "a/"] {
            assert!(!is_run_id(bad), "{bad}");
        }
    }

    #[test]
    fn relative_paths_climb_to_the_common_folder() {
        assert_eq!(
            relative(Path::new("/r/merged"), Path::new("/r/shard1/t/ts")),
            PathBuf::from("../shard1/t/ts")
        );
        assert_eq!(href(Path::new("../shard 1/t/ts")), "../shard%201/t/ts/");
    }
}
