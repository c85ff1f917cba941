//! Downloads into a cache folder: resumable (HTTP Range on a `.part` file), with a progress
//! bar on stderr, and SHA-256 pins recorded in a TOML file the user can commit.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::error::DataError;
use crate::registry;

/// Default cache folder (git-ignored), relative to the working directory.
pub const DEFAULT_CACHE_DIR: &str = "data/cache";
/// Environment variable that overrides the cache folder.
pub const CACHE_ENV: &str = "OFQL_DATA_DIR";
/// Default pins file (meant to be committed).
pub const DEFAULT_PINS_FILE: &str = "data/pins.toml";

/// The cache folder: the flag, else `$OFQL_DATA_DIR`, else `data/cache`.
pub fn cache_dir(flag: Option<&Path>) -> PathBuf {
    match (flag, std::env::var_os(CACHE_ENV)) {
        (Some(p), _) => p.to_path_buf(),
        (None, Some(env)) if !env.is_empty() => PathBuf::from(env),
        _ => PathBuf::from(DEFAULT_CACHE_DIR),
    }
}

/// The file a dataset argument names: an existing file (or Minari dataset folder), or a registry name whose file is in
/// the cache (`cache_dir(cache)`), with its registry entry when it is a known dataset. What
/// `ofql train` (through `data.dataset`) and every `ofql dataset` command accept.
pub fn resolve(
    dataset: &str,
    cache: Option<&Path>,
) -> Result<(PathBuf, Option<registry::DatasetInfo>), DataError> {
    // A Hugging Face dataset fetched into the cache (`hf:<owner>/<name>:<config>`).
    if let Some(id) = crate::hub::HubId::parse(dataset)? {
        let dir = cache_dir(cache);
        let local = id.local_path(&dir)?;
        if !local.is_file() {
            return Err(DataError::NotDownloaded { name: dataset.into(), file: local, cache: dir });
        }
        return Ok((local, id.info()));
    }
    // A file, or a folder in Minari's layout.
    let path = Path::new(dataset);
    if path.exists() {
        return Ok((path.to_path_buf(), registry::infer_from_file(path)));
    }
    // Minari's ids have slashes too (`D4RL/antmaze/medium-play-v1`): the registry first.
    let known = registry::lookup(dataset);
    let looks_like_path = dataset.contains(['/', '\\'])
        || [".hdf5", ".h5", ".parquet"].iter().any(|ext| dataset.ends_with(ext));
    if looks_like_path && known.is_err() {
        return Err(DataError::MissingFile(path.to_path_buf()));
    }
    let info = known?;
    let dir = cache_dir(cache);
    let mut local = dir.clone();
    for part in info.local_path().split('/') {
        local = safe_join(&local, part)?;
    }
    let complete = info.remote_files().iter().all(|f| dir.join(&f.local_path).is_file());
    if !complete {
        return Err(DataError::NotDownloaded {
            name: dataset.to_string(),
            file: local,
            cache: dir,
        });
    }
    Ok((local, Some(info)))
}

/// `dir/name` when `name` is one plain file name; nothing else can escape the folder.
pub fn safe_join(dir: &Path, name: &str) -> Result<PathBuf, DataError> {
    let unsafe_name = || DataError::UnsafeName(name.to_string());
    let mut parts = Path::new(name).components();
    match (parts.next(), parts.next()) {
        (Some(Component::Normal(_)), None) => {}
        _ => return Err(unsafe_name()),
    }
    if name.starts_with('.') || name.contains(['/', '\\', '\0']) || name.contains("..") {
        return Err(unsafe_name());
    }
    Ok(dir.join(name))
}

/// SHA-256 pins: a TOML table `"file name" = "hex digest"`, sorted by name.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Pins {
    path: PathBuf,
    entries: BTreeMap<String, String>,
}

impl Pins {
    /// Load the pins file; a missing file means no pins yet.
    pub fn load(path: &Path) -> Result<Self> {
        let mut entries: BTreeMap<String, String> = BTreeMap::new();
        if path.exists() {
            let text = fs::read_to_string(path)
                .with_context(|| format!("read pins {}", path.display()))?;
            entries = toml::from_str(&text).with_context(|| {
                format!("{}: expected lines `\"name\" = \"<sha256 hex>\"`", path.display())
            })?;
            if let Some((k, v)) = entries.iter().find(|(_, v)| !is_hex_digest(v)) {
                bail!("{}: the pin of `{k}` is `{v}`, not 64 hex digits", path.display());
            }
        }
        Ok(Pins { path: path.to_path_buf(), entries })
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.entries.get(name).map(String::as_str)
    }

    /// Record a pin and rewrite the file.
    pub fn record(&mut self, name: &str, sha256: &str) -> Result<()> {
        self.entries.insert(name.to_string(), sha256.to_string());
        if let Some(parent) = self.path.parent().filter(|p| !p.as_os_str().is_empty()) {
            fs::create_dir_all(parent)?;
        }
        let mut text = String::from(
            "# SHA-256 of downloaded datasets, recorded by `ofql dataset fetch` on first download.\n\
             # Commit this file: later downloads that differ are refused.\n",
        );
        text.push_str(&toml::to_string(&self.entries)?);
        fs::write(&self.path, text).with_context(|| format!("write pins {}", self.path.display()))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn is_hex_digest(s: &str) -> bool {
    s.len() == 64 && s.chars().all(|c| c.is_ascii_hexdigit())
}

/// What a fetch did.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Fetched {
    pub path: PathBuf,
    pub bytes: u64,
    pub sha256: String,
    /// "verified" (matched an existing pin) or "recorded" (first download, pin written).
    pub pin: &'static str,
    /// Bytes already on disk from an interrupted download, or None if none were reused.
    pub resumed_from: Option<u64>,
    /// The file was already complete in the cache (no network access).
    pub cached: bool,
}

/// How a download waits and retries. A server that accepts and never answers, or stops
/// sending, costs at most `read_timeout` per attempt, never a hang.
#[derive(Debug, Clone)]
pub struct FetchOptions {
    pub progress: bool,
    pub connect_timeout: Duration,
    /// The longest wait for any one read (the response head or a piece of the body).
    pub read_timeout: Duration,
    /// Further attempts after a failed one (network errors, timeouts, HTTP 5xx); each resumes
    /// the partial file.
    pub retries: u32,
    /// The wait before the first retry, doubled before each next one.
    pub retry_delay: Duration,
}

impl Default for FetchOptions {
    fn default() -> Self {
        FetchOptions {
            progress: false,
            connect_timeout: Duration::from_secs(30),
            read_timeout: Duration::from_secs(60),
            retries: 3,
            retry_delay: Duration::from_secs(2),
        }
    }
}

/// Why an attempt failed: worth another try (network, timeout, server error) or not.
enum Failure {
    Retry(anyhow::Error),
    Final(anyhow::Error),
}

/// Download `url` to `dir/name`, resuming `dir/name.part` if present, and verify or record
/// its SHA-256 in `pins` under `name`. A mismatch deletes the download and fails.
pub fn fetch(
    url: &str,
    dir: &Path,
    name: &str,
    pins: &mut Pins,
    opts: &FetchOptions,
) -> Result<Fetched> {
    fetch_pinned_as(url, dir, name, name, pins, opts)
}

/// `fetch` into `dir/<local_path>` (plain names joined by `/`, e.g. Minari's
/// `D4RL/antmaze/medium-play-v1/data/main_data.hdf5`), pinned under `local_path`.
pub fn fetch_to(
    url: &str,
    dir: &Path,
    local_path: &str,
    pins: &mut Pins,
    opts: &FetchOptions,
) -> Result<Fetched> {
    let (folder, name) = local_path.rsplit_once('/').unwrap_or(("", local_path));
    let mut sub = dir.to_path_buf();
    for part in folder.split('/').filter(|p| !p.is_empty()) {
        sub = safe_join(&sub, part)?;
    }
    fetch_pinned_as(url, &sub, name, local_path, pins, opts)
}

fn fetch_pinned_as(
    url: &str,
    dir: &Path,
    name: &str,
    pin_key: &str,
    pins: &mut Pins,
    opts: &FetchOptions,
) -> Result<Fetched> {
    let dest = safe_join(dir, name)?;
    let part = safe_join(dir, &format!("{name}.part"))?;
    fs::create_dir_all(dir).with_context(|| format!("create cache folder {}", dir.display()))?;
    if dest.exists() {
        let sha256 = sha256_file(&dest)?;
        let pin = check_pin(pins, pin_key, &sha256, || Ok(()))?;
        let bytes = fs::metadata(&dest)?.len();
        return Ok(Fetched { path: dest, bytes, sha256, pin, resumed_from: None, cached: true });
    }
    let first = fs::metadata(&part).map(|m| m.len()).unwrap_or(0);
    let mut delay = opts.retry_delay;
    let mut attempt = 0;
    let resumed_from = loop {
        // Each attempt resumes from what the part file holds by now.
        let have = fs::metadata(&part).map(|m| m.len()).unwrap_or(0);
        match download(url, &part, have, opts) {
            Ok(_) => break (first > 0).then_some(first),
            Err(Failure::Final(e)) => return Err(e),
            Err(Failure::Retry(e)) if attempt >= opts.retries => {
                return Err(e.context(format!(
                    "download {url} failed after {} attempt(s); run the same command again to \
                     resume from {} (--retries, --read-timeout and --connect-timeout set the \
                     patience)",
                    attempt + 1,
                    part.display()
                )));
            }
            Err(Failure::Retry(e)) => {
                if opts.progress {
                    eprintln!("download {url}: {e:#}; retrying in {:.1} s", delay.as_secs_f64());
                }
                std::thread::sleep(delay);
                delay *= 2;
                attempt += 1;
            }
        }
    };
    let sha256 = sha256_file(&part)?;
    let pin = check_pin(pins, pin_key, &sha256, || {
        fs::remove_file(&part).with_context(|| format!("remove {}", part.display()))
    })?;
    fs::rename(&part, &dest).with_context(|| format!("move download to {}", dest.display()))?;
    let bytes = fs::metadata(&dest)?.len();
    Ok(Fetched { path: dest, bytes, sha256, pin, resumed_from, cached: false })
}

/// Compare with the pin, or record it; `discard` runs before a mismatch is reported.
fn check_pin(
    pins: &mut Pins,
    name: &str,
    sha256: &str,
    discard: impl FnOnce() -> Result<()>,
) -> Result<&'static str> {
    match pins.get(name) {
        Some(pinned) if pinned.eq_ignore_ascii_case(sha256) => Ok("verified"),
        Some(pinned) => {
            let err = DataError::ChecksumMismatch {
                name: name.to_string(),
                pinned: pinned.to_string(),
                got: sha256.to_string(),
            };
            discard()?;
            Err(err.into())
        }
        None => {
            pins.record(name, sha256)?;
            Ok("recorded")
        }
    }
}

/// Append the rest of `url` to `part` (which holds `have` bytes), with a Range request when
/// it holds some.
fn download(url: &str, part: &Path, have: u64, opts: &FetchOptions) -> Result<(), Failure> {
    let retry = |e: anyhow::Error| Failure::Retry(e);
    let fatal = |e: anyhow::Error| Failure::Final(e);
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_connect(Some(opts.connect_timeout))
        .timeout_recv_response(Some(opts.read_timeout))
        .timeout_per_read(Some(opts.read_timeout))
        .build()
        .into();
    let mut request = agent.get(url);
    if have > 0 {
        request = request.header("Range", format!("bytes={have}-"));
    }
    let mut response = request
        .call()
        .map_err(|e| retry(anyhow::Error::new(e).context(format!("download {url}"))))?;
    let status = response.status().as_u16();
    let header =
        |k: &str| response.headers().get(k).and_then(|v| v.to_str().ok()).map(str::to_string);
    let (mut file, start) = match status {
        206 if have > 0 => {
            let expected = format!("bytes {have}-");
            if !header("content-range").is_some_and(|r| r.starts_with(&expected)) {
                return Err(fatal(anyhow::anyhow!(
                    "download {url}: the server answered the resume request with a wrong Content-Range"
                )));
            }
            (OpenOptions::new().append(true).open(part).map_err(|e| fatal(e.into()))?, have)
        }
        // The part file already holds the whole file.
        416 if have > 0
            && header("content-range").is_some_and(|r| r.ends_with(&format!("/{have}"))) =>
        {
            return Ok(());
        }
        200 => {
            let f = File::create(part)
                .with_context(|| format!("create {}", part.display()))
                .map_err(fatal)?;
            (f, 0)
        }
        500..=599 => {
            return Err(retry(anyhow::anyhow!("download {url}: HTTP {status} (server error)")));
        }
        _ => {
            return Err(fatal(anyhow::anyhow!(
                "download {url}: HTTP {status}; check the name, the base URL and the network"
            )));
        }
    };
    let total = header("content-length").and_then(|v| v.parse::<u64>().ok()).map(|n| n + start);
    let bar = progress_bar(total, start, opts.progress, part);
    let mut reader = response.body_mut().as_reader();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) => {
                file.flush().map_err(|e| fatal(e.into()))?;
                bar.abandon();
                return Err(retry(
                    anyhow::Error::new(e).context(format!("download {url} interrupted")),
                ));
            }
        };
        file.write_all(&buf[..n]).map_err(|e| fatal(e.into()))?;
        bar.inc(n as u64);
    }
    file.flush().map_err(|e| fatal(e.into()))?;
    bar.finish_and_clear();
    // A body shorter than announced is an interrupted download, not a complete file.
    if let Some(total) = total {
        let got = fs::metadata(part).map_err(|e| fatal(e.into()))?.len();
        if got < total {
            return Err(retry(anyhow::anyhow!(
                "download {url} ended after {got} of {total} bytes"
            )));
        }
    }
    Ok(())
}

fn progress_bar(total: Option<u64>, start: u64, show: bool, part: &Path) -> indicatif::ProgressBar {
    if !show {
        return indicatif::ProgressBar::hidden();
    }
    let bar = match total {
        Some(t) => indicatif::ProgressBar::new(t),
        None => indicatif::ProgressBar::no_length(),
    };
    let style = indicatif::ProgressStyle::with_template(
        "{msg} [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
    )
    .expect("valid template")
    .progress_chars("=> ");
    bar.set_style(style);
    bar.set_message(part.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default());
    bar.set_position(start);
    bar
}

/// Hex SHA-256 of a file, streamed.
pub fn sha256_file(path: &Path) -> Result<String> {
    let mut file = File::open(path).with_context(|| format!("open {}", path.display()))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_cannot_leave_the_cache_folder() {
        let dir = Path::new("/cache");
        assert_eq!(
            safe_join(dir, "hopper-medium-v2.hdf5").unwrap(),
            dir.join("hopper-medium-v2.hdf5")
        );
        for bad in ["../x", "a/b", "/etc/passwd", "..", ".", "", ".hidden", "a\\b", "x..y", "a\0b"]
        {
            let err = safe_join(dir, bad).unwrap_err().to_string();
            assert!(err.contains("not a valid file name"), "{bad}: {err}");
        }
    }

    #[test]
    fn pins_round_trip_and_reject_garbage() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/pins.toml");
        let mut pins = Pins::load(&path).unwrap();
        assert_eq!(pins.get("a.hdf5"), None);
        let digest = "ab".repeat(32);
        pins.record("a.hdf5", &digest).unwrap();
        let again = Pins::load(&path).unwrap();
        assert_eq!(again.get("a.hdf5"), Some(digest.as_str()));
        fs::write(&path, "\"a\" = \"not-hex\"\n").unwrap();
        let err = Pins::load(&path).unwrap_err().to_string();
        assert!(err.contains("the pin of `a`"), "{err}");
        fs::write(&path, "not toml at all").unwrap();
        assert!(Pins::load(&path).is_err());
    }

    #[test]
    fn cache_dir_prefers_the_flag() {
        assert_eq!(cache_dir(Some(Path::new("/x"))), PathBuf::from("/x"));
    }
}
