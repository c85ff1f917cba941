//! `hf:` datasets through the Hugging Face client (feature `hub`), against a small Hub on
//! 127.0.0.1 that this test starts: the dataset-info API at the parquet revision, and HEAD/GET
//! on `resolve/` URLs with the headers the client needs (ETag, X-Repo-Commit, Content-Length).
#![cfg(feature = "hub")]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ndarray::{Array1, Array2};
use ofql_data::hub::{HubId, HubOptions, fetch};
use ofql_data::{Dataset, read_parquet, write_parquet};

const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";
const REPO: &str = "someone/offline-mirror";

/// Rows `start..start + n`: observation (k, -k), action k / 10, reward k, one terminal at the
/// end of the shard.
fn shard(start: usize, n: usize) -> Dataset {
    let obs = Array2::from_shape_fn((n, 2), |(i, j)| {
        let k = (start + i) as f32;
        if j == 0 { k } else { -k }
    });
    let acts = Array2::from_shape_fn((n, 1), |(i, _)| (start + i) as f32 / 10.0);
    let rewards = Array1::from_shape_fn(n, |i| (start + i) as f32);
    let terminals = Array1::from_shape_fn(n, |i| i == n - 1);
    Dataset::new(obs, acts, rewards, terminals, Array1::from_elem(n, false))
}

/// Serves `files` (path in the repo -> bytes) at the parquet revision and logs every request.
struct Hub {
    base: String,
    requests: Arc<Mutex<Vec<String>>>,
}

fn serve(files: BTreeMap<String, Vec<u8>>) -> Hub {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let requests = Arc::new(Mutex::new(Vec::new()));
    let log = requests.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request_line = String::new();
            if reader.read_line(&mut request_line).is_err() {
                continue;
            }
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
            }
            let mut parts = request_line.split_whitespace();
            let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
            log.lock().unwrap().push(format!("{method} {target}"));
            let revision = "refs%2Fconvert%2Fparquet";
            let info = format!("/api/datasets/{REPO}/revision/{revision}");
            let resolve = format!("/datasets/{REPO}/resolve/{revision}/");
            let (status, headers, body) = if target == info {
                let siblings: Vec<_> = files
                    .keys()
                    .map(|f| serde_json::json!({ "rfilename": f }))
                    .chain([serde_json::json!({ "rfilename": ".gitattributes" })])
                    .collect();
                let json = serde_json::json!({ "id": REPO, "sha": COMMIT, "siblings": siblings });
                ("200 OK", String::new(), json.to_string().into_bytes())
            } else if let Some(body) = target.strip_prefix(&resolve).and_then(|f| files.get(f)) {
                let etag = format!("etag-{}-{}", body.len(), target.len());
                let headers = format!("ETag: \"{etag}\"\r\nX-Repo-Commit: {COMMIT}\r\n");
                ("200 OK", headers, body.clone())
            } else {
                ("404 Not Found", "X-Error-Code: EntryNotFound\r\n".into(), b"{}".to_vec())
            };
            let head = format!(
                "HTTP/1.1 {status}\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(head.as_bytes());
            if method != "HEAD" {
                let _ = stream.write_all(&body);
            }
        }
    });
    Hub { base, requests }
}

fn parquet_bytes(dir: &Path, name: &str, data: &Dataset) -> Vec<u8> {
    let path = dir.join(name);
    write_parquet(&path, data).unwrap();
    std::fs::read(path).unwrap()
}

fn options(hub: &Hub, hf_cache: &Path) -> HubOptions {
    HubOptions {
        endpoint: Some(hub.base.clone()),
        hf_cache: Some(hf_cache.to_path_buf()),
        retries: 0,
        ..HubOptions::default()
    }
}

#[test]
fn one_configs_shards_are_fetched_joined_and_then_found_by_name() {
    let tmp = tempfile::tempdir().unwrap();
    let mut files = BTreeMap::new();
    // Shard names sort in row order; the other config must not be downloaded.
    files.insert(
        "hopper-medium-v2/train/0000.parquet".into(),
        parquet_bytes(tmp.path(), "a", &shard(0, 3)),
    );
    files.insert(
        "hopper-medium-v2/train/0001.parquet".into(),
        parquet_bytes(tmp.path(), "b", &shard(3, 2)),
    );
    files.insert(
        "walker2d-medium-v2/train/0000.parquet".into(),
        parquet_bytes(tmp.path(), "c", &shard(0, 4)),
    );
    let hub = serve(files);
    let (cache, hf_cache) = (tmp.path().join("cache"), tmp.path().join("hf"));
    let name = format!("hf:{REPO}:hopper-medium-v2");
    let id = HubId::parse(&name).unwrap().unwrap();

    // Before the fetch the name is not in the cache, and the error says how to get it.
    let err = ofql_data::resolve(&name, Some(&cache)).unwrap_err().to_string();
    assert!(err.contains(&format!("ofql dataset fetch {name}")), "{err}");

    let got = fetch(&id, &cache, &options(&hub, &hf_cache)).unwrap();
    assert!(!got.already_present);
    assert_eq!(
        got.files,
        ["hopper-medium-v2/train/0000.parquet", "hopper-medium-v2/train/0001.parquet"]
    );
    assert_eq!(got.commit.as_deref(), Some(COMMIT));
    assert_eq!(got.steps, Some(5));
    let requests = hub.requests.lock().unwrap().clone();
    assert!(requests.iter().all(|r| !r.contains("walker2d")), "{requests:?}");
    assert!(
        requests.iter().any(|r| r.starts_with("GET /datasets/") && r.ends_with("0001.parquet"))
    );

    // The shards are in the Hugging Face cache, joined in order in ours.
    let hf_repo = hf_cache.join("datasets--someone--offline-mirror");
    assert!(
        hf_repo.join("snapshots").join(COMMIT).join("hopper-medium-v2/train/0001.parquet").exists()
    );
    let (path, info) = ofql_data::resolve(&name, Some(&cache)).unwrap();
    assert_eq!(path, got.path);
    assert_eq!(
        info.unwrap().name,
        "hopper-medium-v2",
        "scored as the D4RL dataset its config names"
    );
    let data = read_parquet(&path).unwrap();
    let both = Dataset::concat(vec![shard(0, 3), shard(3, 2)]).unwrap();
    assert_eq!(data.observations, both.observations);
    assert_eq!(data.actions, both.actions);
    assert_eq!(data.rewards, both.rewards);
    assert_eq!(data.terminals, both.terminals);
    assert_eq!(data.metadata["source"], serde_json::json!(name));
    assert_eq!(data.metadata["hub_commit"], serde_json::json!(COMMIT));

    // A second fetch reads the cache and asks the Hub nothing.
    let before = hub.requests.lock().unwrap().len();
    let again = fetch(&id, &cache, &options(&hub, &hf_cache)).unwrap();
    assert!(again.already_present);
    assert_eq!(hub.requests.lock().unwrap().len(), before);

    // A config that is not there: the error lists the ones that are.
    let missing = HubId::parse(&format!("hf:{REPO}:ant-medium-v2")).unwrap().unwrap();
    let err = format!("{:#}", fetch(&missing, &cache, &options(&hub, &hf_cache)).unwrap_err());
    assert!(err.contains("hopper-medium-v2, walker2d-medium-v2"), "{err}");
    assert!(!missing.local_path(&cache).unwrap().exists());

    // A dataset the Hub does not have.
    let unknown = HubId::parse("hf:nobody/nothing:x").unwrap().unwrap();
    let err = format!("{:#}", fetch(&unknown, &cache, &options(&hub, &hf_cache)).unwrap_err());
    assert!(err.contains("nobody/nothing"), "{err}");
}

#[test]
fn a_hub_that_never_answers_is_an_error_not_a_hang() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            let mut buf = [0u8; 1024];
            let mut s = stream;
            let _ = s.read(&mut buf);
            held.push(s); // read the request, never answer
        }
    });
    let tmp = tempfile::tempdir().unwrap();
    let opts = HubOptions {
        endpoint: Some(base),
        hf_cache: Some(tmp.path().join("hf")),
        read_timeout: Duration::from_millis(500),
        retries: 0,
        ..HubOptions::default()
    };
    let id = HubId::parse("hf:someone/slow:hopper-medium-v2").unwrap().unwrap();
    let start = Instant::now();
    let err = format!("{:#}", fetch(&id, &tmp.path().join("cache"), &opts).unwrap_err());
    assert!(start.elapsed() < Duration::from_secs(30), "took {:?}", start.elapsed());
    assert!(err.contains("someone/slow"), "{err}");
}
