//! Writing an output the user named without ever losing what was there: through a
//! temporary sibling, moved into place only when complete, and only over what this tool
//! would have written itself.

use std::path::Path;

use anyhow::{Context, Result, bail};
use ofql_data::minari::{MAIN_FILE, METADATA_FILE};

/// Write `output` (a file, or a Minari folder when `folder`) through a temporary sibling
/// and move it into place only once it is complete, so a failed write leaves an existing
/// output as it was. An existing output is replaced only when it is what this command
/// writes: a file for a file layout, a folder holding nothing but Minari's two files for
/// Minari; anything else is refused, never deleted.
pub fn write_replacing(
    output: &Path,
    folder: bool,
    write: impl FnOnce(&Path) -> Result<()>,
) -> Result<()> {
    if output.exists() {
        if folder {
            let extra = foreign_entries(output)?;
            if !extra.is_empty() {
                bail!(
                    "{} holds files that are not a Minari dataset this tool wrote ({}): it is not \
                     replaced; choose another output path",
                    output.display(),
                    extra.join(", ")
                );
            }
        } else if !output.is_file() {
            bail!(
                "{} exists and is not a file (a folder?): it is not replaced; choose another \
                 output path",
                output.display()
            );
        }
    }
    let parent = output.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = output.file_name().context("the output path names no file")?.to_string_lossy();
    let sibling = |what: &str| parent.join(format!(".{name}.{what}-{}", std::process::id()));
    let partial = sibling("partial");
    let written = write(&partial);
    if let Err(e) = written {
        let _ =
            if folder { std::fs::remove_dir_all(&partial) } else { std::fs::remove_file(&partial) };
        return Err(e.context(format!("writing {}", output.display())));
    }
    if folder && output.exists() {
        // Folders cannot be renamed over each other: move the old one aside first, and
        // back if the new one cannot take its place.
        let old = sibling("old");
        std::fs::rename(output, &old).with_context(|| format!("replace {}", output.display()))?;
        if let Err(e) = std::fs::rename(&partial, output) {
            std::fs::rename(&old, output)?;
            return Err(e).with_context(|| format!("replace {}", output.display()));
        }
        std::fs::remove_dir_all(&old)?;
    } else {
        std::fs::rename(&partial, output)
            .with_context(|| format!("move the new file into {}", output.display()))?;
    }
    Ok(())
}

/// Paths under a folder (relative) that are not what a Minari folder written by this tool
/// holds (`data/` with its two files).
fn foreign_entries(dir: &Path) -> Result<Vec<String>> {
    if !dir.is_dir() {
        return Ok(vec![dir.display().to_string()]);
    }
    let ours = [format!("data/{MAIN_FILE}"), format!("data/{METADATA_FILE}")];
    let mut extra = vec![];
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in
            std::fs::read_dir(&d).with_context(|| format!("cannot read {}", d.display()))?
        {
            let path = entry?.path();
            let rel = path.strip_prefix(dir).unwrap_or(&path).to_string_lossy().into_owned();
            if path.is_dir() && rel == "data" {
                stack.push(path);
            } else if !ours.contains(&rel) {
                extra.push(rel);
            }
        }
    }
    extra.sort();
    Ok(extra)
}
