//! Writing a whole file so that a reader sees the old file or the new one,
//! never half of one: the bytes go to a uniquely named temporary file in the
//! same folder, which is then renamed over the target. Two writers never share
//! a temporary name, and a failed write (a full disk) leaves no temporary
//! behind. Not for files that grow as a run goes (history.jsonl, logs).

use std::io::{self, BufWriter, Write};
use std::path::Path;

/// Writes `path` whole with `fill`, through a temporary file.
pub fn write_with<T>(
    path: &Path,
    fill: impl FnOnce(&mut dyn Write) -> io::Result<T>,
) -> io::Result<T> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    // Dropped on every early return: the temporary file is removed.
    let tmp = tempfile::Builder::new()
        .prefix(".faultline-")
        .suffix(".tmp")
        .tempfile_in(dir)?;
    let mut w = BufWriter::new(tmp);
    let out = fill(&mut w)?;
    let tmp = w.into_inner().map_err(io::IntoInnerError::into_error)?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(out)
}

/// Writes `bytes` to `path` whole, through a temporary file.
pub fn write(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_with(path, |w| w.write_all(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn a_failed_write_keeps_the_old_file_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("results.json");
        write(&path, b"old").unwrap();
        let err = write_with(&path, |w| {
            w.write_all(b"half of the new")?;
            Err::<(), _>(io::Error::other("the disk is full"))
        })
        .unwrap_err();
        assert_eq!(err.to_string(), "the disk is full");
        assert_eq!(std::fs::read(&path).unwrap(), b"old");
        assert_eq!(entries(dir.path()), ["results.json"]);
    }

    #[test]
    fn writers_at_once_never_share_a_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("results.json");
        std::thread::scope(|s| {
            for i in 0..8 {
                let path = &path;
                s.spawn(move || {
                    for _ in 0..50 {
                        write(path, format!("writer {i}").as_bytes()).unwrap();
                    }
                });
            }
        });
        assert!(
            std::fs::read_to_string(&path)
                .unwrap()
                .starts_with("writer ")
        );
        assert_eq!(entries(dir.path()), ["results.json"]);
    }
}
