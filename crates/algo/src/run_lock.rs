//! One process per run folder, and no run in a folder the tool did not make.

use std::fs::{self, File, OpenOptions};
use std::path::Path;

use anyhow::{Context, Result, bail};

/// An exclusive lock on a run folder (`<run>/.lock`, an advisory file lock that the kernel
/// drops when the process ends, so a killed run never leaves it stuck).
pub struct RunLock {
    _file: File,
}

impl RunLock {
    /// Lock `out` for a run whose folder is marked by the file `marker` (its config). A new
    /// run needs a folder that does not exist or is empty: the tool never writes into a
    /// folder it did not make. A resumed run needs its folder.
    pub fn acquire(out: &Path, resume: bool, marker: &Path) -> Result<RunLock> {
        if !resume && out.exists() {
            let mut entries = fs::read_dir(out)
                .with_context(|| format!("--out {} is not a folder", out.display()))?;
            if entries.next().is_some() {
                if marker.is_file() {
                    bail!(
                        "{} already holds a run: pass --resume to continue it, or choose another \
                         --out",
                        out.display()
                    );
                }
                bail!(
                    "{} exists and is not empty, and it is not a run folder: choose another --out \
                     (a new run needs a folder that does not exist or is empty)",
                    out.display()
                );
            }
        }
        fs::create_dir_all(out)
            .with_context(|| format!("cannot create run directory {}", out.display()))?;
        let path = out.join(".lock");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .with_context(|| format!("cannot open the run's lock file {}", path.display()))?;
        match file.try_lock() {
            Ok(()) => Ok(RunLock { _file: file }),
            Err(std::fs::TryLockError::WouldBlock) => bail!(
                "{} is in use by another ofql process (it holds {}): wait for it to finish, or \
                 choose another --out",
                out.display(),
                path.display()
            ),
            Err(std::fs::TryLockError::Error(e)) => {
                Err(e).with_context(|| format!("cannot lock {}", path.display()))
            }
        }
    }
}
