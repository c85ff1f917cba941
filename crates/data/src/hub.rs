//! Hugging Face datasets in parquet, named `hf:<owner>/<name>:<config>` (the config may be left
//! out for a dataset with one config, `default`). The Hub keeps a parquet conversion of every
//! dataset at revision `refs/convert/parquet`, as `<config>/<split>/<shard>.parquet`; `fetch`
//! downloads one config's `train` shards, reads them with [`read_parquet`] (per-step rows, or
//! the per-episode rows of mirrors such as `edbeeching/decision_transformer_gym_replay`) and
//! keeps them in the cache as one per-step parquet file, which `resolve` then finds by name.
//!
//! The download (feature `hub`) goes through `hf-hub`, the client of candle-datasets' hub
//! module: the Hugging Face cache (`HF_HUB_CACHE`, shared with Python's `huggingface_hub`),
//! `HF_TOKEN` for gated datasets, `HF_ENDPOINT` for a mirror. Without the feature, names are
//! still resolved in the cache, and `fetch` says how to rebuild.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

use crate::error::DataError;
use crate::fetch::safe_join;
use crate::registry::{self, DatasetInfo};

pub const PREFIX: &str = "hf:";
/// The revision where the Hub keeps its parquet conversion of every dataset.
pub const PARQUET_REVISION: &str = "refs/convert/parquet";
/// The split that is read (datasets for offline RL have only this one).
pub const SPLIT: &str = "train";

/// A Hugging Face dataset's config: `hf:<owner>/<name>:<config>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HubId {
    pub owner: String,
    pub name: String,
    pub config: String,
}

impl HubId {
    /// `Ok(None)` when `text` does not start with `hf:`; an error when it does but is not
    /// `hf:<owner>/<name>[:<config>]` with plain names.
    pub fn parse(text: &str) -> Result<Option<HubId>, DataError> {
        let Some(rest) = text.strip_prefix(PREFIX) else { return Ok(None) };
        let bad = || DataError::BadHubName(text.to_string());
        let (repo, config) = rest.split_once(':').unwrap_or((rest, "default"));
        let (owner, name) = repo.split_once('/').ok_or_else(bad)?;
        let plain = |s: &str| {
            !s.is_empty()
                && s != "."
                && s != ".."
                && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        };
        if ![owner, name, config].into_iter().all(plain) {
            return Err(bad());
        }
        Ok(Some(HubId { owner: owner.into(), name: name.into(), config: config.into() }))
    }

    pub fn repo(&self) -> String {
        format!("{}/{}", self.owner, self.name)
    }

    /// The converted file in `cache`: `hub/<owner>/<name>/<config>.parquet`.
    pub fn local_path(&self, cache: &Path) -> Result<PathBuf, DataError> {
        let mut path = cache.join("hub");
        for part in [self.owner.as_str(), self.name.as_str()] {
            path = safe_join(&path, part)?;
        }
        safe_join(&path, &format!("{}.parquet", self.config))
    }

    /// The registry's entry when the config is a D4RL name (as in the D4RL mirrors), so the
    /// data is scored and evaluated like the original file.
    pub fn info(&self) -> Option<DatasetInfo> {
        registry::lookup(&self.config).ok()
    }

    /// The parquet files of this config's train split among a revision's files, sorted.
    /// The error lists the configs (or this config's splits) that are there.
    pub fn select_files<'a>(&self, files: &[&'a str]) -> Result<Vec<&'a str>, DataError> {
        let parquet: Vec<&str> =
            files.iter().copied().filter(|f| f.ends_with(".parquet")).collect();
        let in_config: Vec<&str> = parquet
            .iter()
            .copied()
            .filter(|f| f.strip_prefix(&self.config).is_some_and(|r| r.starts_with('/')))
            .collect();
        // The folder names at depth `depth` (configs at 0, splits at 1), each once, sorted.
        let folders = |files: &[&str], depth: usize| {
            let set: std::collections::BTreeSet<String> = files
                .iter()
                .filter(|f| f.split('/').count() > depth + 1)
                .filter_map(|f| f.split('/').nth(depth).map(String::from))
                .collect();
            set.into_iter().collect::<Vec<_>>()
        };
        if in_config.is_empty() {
            return Err(DataError::HubConfigMissing {
                repo: self.repo(),
                config: self.config.clone(),
                found: folders(&parquet, 0),
            });
        }
        let mut train: Vec<&str> = in_config
            .iter()
            .copied()
            .filter(|f| f.split('/').nth(1) == Some(SPLIT) && f.split('/').count() == 3)
            .collect();
        if train.is_empty() {
            return Err(DataError::HubSplitMissing {
                repo: self.repo(),
                config: self.config.clone(),
                found: folders(&in_config, 1),
            });
        }
        train.sort();
        Ok(train)
    }
}

impl std::fmt::Display for HubId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{PREFIX}{}/{}:{}", self.owner, self.name, self.config)
    }
}

/// How `fetch` reaches the Hub.
pub struct HubOptions {
    /// The Hub's address; `None`: `HF_ENDPOINT`, else Hugging Face's.
    pub endpoint: Option<String>,
    /// The Hugging Face cache; `None`: `HF_HUB_CACHE`, else `~/.cache/huggingface/hub`.
    pub hf_cache: Option<PathBuf>,
    pub revision: String,
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
    /// Further attempts after a network or server error.
    pub retries: u32,
}

impl Default for HubOptions {
    fn default() -> Self {
        HubOptions {
            endpoint: None,
            hf_cache: None,
            revision: PARQUET_REVISION.into(),
            connect_timeout: Duration::from_secs(30),
            read_timeout: Duration::from_secs(60),
            retries: 3,
        }
    }
}

/// What `fetch` did, for the report.
#[derive(Debug, Serialize)]
pub struct HubFetched {
    /// The `hf:` name.
    pub name: String,
    pub path: PathBuf,
    /// The shards read (empty when the converted file was already in the cache).
    pub files: Vec<String>,
    /// The commit the shards came from.
    pub commit: Option<String>,
    pub steps: Option<usize>,
    pub already_present: bool,
}

#[cfg(feature = "hub")]
pub use download::fetch;

/// Without the `hub` feature there is no client: say how to get one.
#[cfg(not(feature = "hub"))]
pub fn fetch(id: &HubId, _cache: &Path, _opts: &HubOptions) -> anyhow::Result<HubFetched> {
    anyhow::bail!(
        "{id}: this ofql was built without Hugging Face access; rebuild it with the `hub` feature \
         (`cargo install --path crates/cli --features hub`), or download the parquet files yourself \
         and pass them with --dataset"
    )
}

#[cfg(feature = "hub")]
mod download {
    use std::path::Path;

    use anyhow::{Context, Result};
    use hf_hub::HFClient;

    use super::{HubFetched, HubId, HubOptions};
    use crate::dataset::Dataset;
    use crate::parquet::{read_parquet, write_parquet};

    /// Download `id`'s train shards (unless its converted file is in `cache` already) and
    /// write them as one per-step parquet file; an interrupted fetch leaves no file behind.
    pub fn fetch(id: &HubId, cache: &Path, opts: &HubOptions) -> Result<HubFetched> {
        let dest = id.local_path(cache)?;
        if dest.is_file() {
            return Ok(HubFetched {
                name: id.to_string(),
                path: dest,
                files: vec![],
                commit: None,
                steps: None,
                already_present: true,
            });
        }
        let http = reqwest::Client::builder()
            .connect_timeout(opts.connect_timeout)
            .read_timeout(opts.read_timeout)
            .build()
            .context("build the HTTP client")?;
        let mut builder =
            HFClient::builder().client(http).retry_max_attempts(opts.retries as usize + 1);
        if let Some(endpoint) = &opts.endpoint {
            builder = builder.endpoint(endpoint.trim_end_matches('/'));
        }
        if let Some(dir) = &opts.hf_cache {
            builder = builder.cache_dir(dir);
        }
        let client = builder.build_sync().context("start the Hugging Face client")?;
        let repo = client.dataset(&id.owner, &id.name);
        let info = repo.info().revision(opts.revision.clone()).send().with_context(|| {
            format!("list the files of {} at revision {}", id.repo(), opts.revision)
        })?;
        let siblings = info.siblings.unwrap_or_default();
        let names: Vec<&str> = siblings.iter().map(|s| s.rfilename.as_str()).collect();
        let files = id.select_files(&names)?;
        let mut parts = Vec::with_capacity(files.len());
        for file in &files {
            let local = repo
                .download_file()
                .filename(file.to_string())
                .revision(opts.revision.clone())
                .send()
                .with_context(|| format!("download {file} of {}", id.repo()))?;
            eprintln!("hub: {} {file} -> {}", id.repo(), local.display());
            parts.push(read_parquet(&local).with_context(|| format!("read {file} of {id}"))?);
        }
        let mut data =
            Dataset::concat(parts).with_context(|| format!("join the shards of {id}"))?;
        data.validate(&dest)?;
        data.metadata.insert("source".into(), id.to_string().into());
        if let Some(sha) = &info.sha {
            data.metadata.insert("hub_commit".into(), sha.clone().into());
        }
        let dir = dest.parent().expect("a cache path has a parent");
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
        // Written beside, renamed when complete: a killed fetch leaves no half file by name.
        let partial = dest.with_extension("parquet.partial");
        write_parquet(&partial, &data)?;
        std::fs::rename(&partial, &dest)
            .with_context(|| format!("move {} to {}", partial.display(), dest.display()))?;
        Ok(HubFetched {
            name: id.to_string(),
            path: dest,
            files: files.iter().map(|f| f.to_string()).collect(),
            commit: info.sha,
            steps: Some(data.len()),
            already_present: false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(text: &str) -> HubId {
        HubId::parse(text).unwrap().unwrap()
    }

    #[test]
    fn names_parse_with_and_without_a_config() {
        assert_eq!(HubId::parse("hopper-medium-v2").unwrap(), None);
        let a = id("hf:edbeeching/decision_transformer_gym_replay:halfcheetah-medium-v2");
        assert_eq!(a.repo(), "edbeeching/decision_transformer_gym_replay");
        assert_eq!(a.config, "halfcheetah-medium-v2");
        assert_eq!(
            a.to_string(),
            "hf:edbeeching/decision_transformer_gym_replay:halfcheetah-medium-v2"
        );
        assert_eq!(id("hf:me/data").config, "default");
        for bad in ["hf:", "hf:nobody", "hf:a/b/c", "hf:a/..:x", "hf:a/b:../x", "hf:/b", "hf:a/b:"]
        {
            let err = HubId::parse(bad).unwrap_err().to_string();
            assert!(err.contains(bad) && err.contains("hf:<owner>/<name>"), "{bad}: {err}");
        }
    }

    #[test]
    fn the_converted_file_lives_under_the_cache_and_is_scored_as_its_d4rl_name() {
        let a = id("hf:edbeeching/decision_transformer_gym_replay:hopper-medium-v2");
        let p = a.local_path(Path::new("/cache")).unwrap();
        assert_eq!(
            p,
            Path::new(
                "/cache/hub/edbeeching/decision_transformer_gym_replay/hopper-medium-v2.parquet"
            )
        );
        assert_eq!(a.info().unwrap().name, "hopper-medium-v2");
        assert!(id("hf:me/data:something-else").info().is_none());
    }

    #[test]
    fn one_configs_train_shards_are_chosen_and_a_missing_one_lists_what_is_there() {
        let files = [
            "README.md",
            "hopper-medium-v2/train/0001.parquet",
            "hopper-medium-v2/train/0000.parquet",
            "hopper-medium-v2-extra/train/0000.parquet",
            "walker2d-medium-v2/train/0000.parquet",
            "walker2d-medium-v2/test/0000.parquet",
            "only-test/test/0000.parquet",
        ];
        let got = id("hf:a/b:hopper-medium-v2").select_files(&files).unwrap();
        assert_eq!(
            got,
            ["hopper-medium-v2/train/0000.parquet", "hopper-medium-v2/train/0001.parquet"]
        );
        let missing = id("hf:a/b:ant-medium-v2").select_files(&files).unwrap_err().to_string();
        assert!(
            missing.contains("ant-medium-v2")
                && missing.contains(
                    "hopper-medium-v2, hopper-medium-v2-extra, only-test, walker2d-medium-v2"
                ),
            "{missing}"
        );
        let no_train = id("hf:a/b:only-test").select_files(&files).unwrap_err().to_string();
        assert!(no_train.contains("train") && no_train.contains("test"), "{no_train}");
    }
}
