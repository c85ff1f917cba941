//! Checkpoints in safetensors: named tensors (weights, optimiser state) plus string metadata
//! (step counter, RNG state as JSON), written atomically.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result, bail};
use candle_core::{Device, Tensor};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::optim::Adam;
use crate::params::NamedVars;

const STEP_KEY: &str = "step";

#[derive(Default)]
pub struct Checkpoint {
    tensors: HashMap<String, Tensor>,
    metadata: BTreeMap<String, String>,
}

impl Checkpoint {
    pub fn new() -> Checkpoint {
        Checkpoint::default()
    }

    /// Add a network's parameters as `{prefix}.{name}` (values copied now).
    pub fn add_vars(&mut self, prefix: &str, net: &(impl NamedVars + ?Sized)) -> Result<()> {
        for (name, var) in net.prefixed_vars(prefix) {
            self.insert(name, var.as_detached_tensor().copy()?)?;
        }
        Ok(())
    }

    pub fn add_adam(&mut self, prefix: &str, adam: &Adam) -> Result<()> {
        for (name, t) in adam.state_tensors(prefix)? {
            self.insert(name, t)?;
        }
        Ok(())
    }

    pub fn insert(&mut self, name: String, tensor: Tensor) -> Result<()> {
        if self.tensors.insert(name.clone(), tensor).is_some() {
            bail!("checkpoint tensor `{name}` was added twice");
        }
        Ok(())
    }

    pub fn tensor(&self, name: &str) -> Option<&Tensor> {
        self.tensors.get(name)
    }

    pub fn set_meta(&mut self, key: &str, value: impl Into<String>) {
        self.metadata.insert(key.to_string(), value.into());
    }

    pub fn meta(&self, key: &str) -> Option<&str> {
        self.metadata.get(key).map(String::as_str)
    }

    pub fn set_step(&mut self, step: u64) {
        self.set_meta(STEP_KEY, step.to_string());
    }

    pub fn step(&self) -> Result<u64> {
        let s = self.meta(STEP_KEY).context("checkpoint has no `step` entry")?;
        s.parse().with_context(|| format!("checkpoint `step` = {s:?} is not a number"))
    }

    /// Store any serde value (e.g. a `ChaCha8Rng`, whose serde form is its full state) as JSON.
    /// Drop a metadata entry (e.g. to write a checkpoint as an older version did).
    pub fn remove_meta(&mut self, key: &str) -> Option<String> {
        self.metadata.remove(key)
    }

    pub fn set_json<T: Serialize>(&mut self, key: &str, value: &T) -> Result<()> {
        self.set_meta(key, serde_json::to_string(value)?);
        Ok(())
    }

    pub fn json<T: DeserializeOwned>(&self, key: &str) -> Result<T> {
        let s = self.meta(key).with_context(|| format!("checkpoint has no `{key}` entry"))?;
        serde_json::from_str(s).with_context(|| format!("checkpoint entry `{key}` is malformed"))
    }

    /// Write to `path` atomically: a temporary file in the same directory, then a rename, so a
    /// crash never leaves a half-written checkpoint under the final name.
    pub fn save(&self, path: &Path) -> Result<()> {
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        let meta: HashMap<String, String> = self.metadata.clone().into_iter().collect();
        let bytes = safetensors::serialize(self.tensors.iter(), Some(meta))
            .with_context(|| format!("serialising checkpoint {}", path.display()))?;
        let mut tmp = tempfile::Builder::new()
            .prefix(PARTIAL_PREFIX)
            .suffix(".tmp")
            .tempfile_in(dir)
            .with_context(|| format!("creating a temporary file in {}", dir.display()))?;
        tmp.write_all(&bytes)?;
        tmp.as_file().sync_all()?;
        tmp.persist(path)
            .with_context(|| format!("renaming checkpoint into {}", path.display()))?;
        Ok(())
    }

    pub fn load(path: &Path, device: &Device) -> Result<Checkpoint> {
        let bytes = std::fs::read(path).with_context(|| {
            format!("reading checkpoint {} (does the file exist?)", path.display())
        })?;
        let (_, header) = safetensors::SafeTensors::read_metadata(&bytes)
            .with_context(|| format!("{} is not a safetensors checkpoint", path.display()))?;
        let metadata = header.metadata().clone().unwrap_or_default().into_iter().collect();
        let tensors = candle_core::safetensors::load_buffer(&bytes, device)
            .with_context(|| format!("reading tensors of {}", path.display()))?;
        Ok(Checkpoint { tensors, metadata })
    }

    /// Write the stored `{prefix}.{name}` tensors into the network's parameters. Every
    /// parameter must be present with the same shape and dtype; nothing is written otherwise.
    pub fn restore_vars(&self, prefix: &str, net: &(impl NamedVars + ?Sized)) -> Result<()> {
        let vars = net.prefixed_vars(prefix);
        let mut values = Vec::with_capacity(vars.len());
        for (name, var) in &vars {
            let Some(t) = self.tensors.get(name) else {
                bail!(
                    "checkpoint has no tensor `{name}`: it was written by another model or version"
                );
            };
            if t.dims() != var.dims() || t.dtype() != var.dtype() {
                bail!(
                    "checkpoint tensor `{name}` is {:?} {:?} but the model expects {:?} {:?}: \
                     the network sizes in the config differ from the run that wrote it",
                    t.dtype(),
                    t.dims(),
                    var.dtype(),
                    var.dims()
                );
            }
            values.push(t.to_device(var.device())?);
        }
        for ((_, var), value) in vars.iter().zip(values) {
            var.set(&value)?;
        }
        Ok(())
    }

    pub fn restore_adam(&self, prefix: &str, adam: &mut Adam) -> Result<()> {
        adam.load_state(prefix, &self.tensors).map_err(|e| anyhow::anyhow!("{e}"))
    }
}

/// The name prefix of a checkpoint being written (renamed into place when complete).
const PARTIAL_PREFIX: &str = ".partial-checkpoint-";

/// Remove the temporary files of checkpoint writes that a kill interrupted in `dir` (only
/// files named as [`Checkpoint::save`] names them; nothing else is touched).
pub fn remove_partial_files(dir: &Path) -> Result<()> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Ok(()) };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with(PARTIAL_PREFIX) && name.ends_with(".tmp") {
            std::fs::remove_file(entry.path())
                .with_context(|| format!("cannot remove {}", entry.path().display()))?;
        }
    }
    Ok(())
}
