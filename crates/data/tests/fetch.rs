//! Downloads from a tiny HTTP server on 127.0.0.1 that this test starts: first fetch records
//! the pin, an interrupted transfer resumes with a Range request, a changed file is refused.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::{Arc, Mutex};

use ofql_data::fetch::{FetchOptions, Pins, fetch, sha256_file};
use ofql_data::registry;

/// Serves `body` at every path; supports `Range: bytes=N-`. When `cut_first` is set, the first
/// full-body response announces the whole length but closes the connection halfway.
struct Server {
    base: String,
    ranges: Arc<Mutex<Vec<Option<String>>>>,
}

fn serve(body: Vec<u8>, cut_first: bool) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let ranges = Arc::new(Mutex::new(Vec::new()));
    let seen = ranges.clone();
    std::thread::spawn(move || {
        let mut cut = cut_first;
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request_line = String::new();
            reader.read_line(&mut request_line).unwrap();
            let mut range = None;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap() == 0 || line == "\r\n" {
                    break;
                }
                if let Some((k, v)) = line.split_once(':')
                    && k.eq_ignore_ascii_case("range")
                {
                    range = Some(v.trim().to_string());
                }
            }
            seen.lock().unwrap().push(range.clone());
            if request_line.contains("/missing") {
                let _ = stream.write_all(
                    b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                );
                continue;
            }
            let start: usize = range
                .as_deref()
                .and_then(|r| r.strip_prefix("bytes="))
                .and_then(|r| r.strip_suffix('-'))
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            let n = body.len();
            let head = if range.is_some() {
                format!(
                    "HTTP/1.1 206 Partial Content\r\nContent-Length: {}\r\nContent-Range: bytes {start}-{}/{n}\r\nConnection: close\r\n\r\n",
                    n - start,
                    n - 1
                )
            } else {
                format!("HTTP/1.1 200 OK\r\nContent-Length: {n}\r\nConnection: close\r\n\r\n")
            };
            let _ = stream.write_all(head.as_bytes());
            let end = if cut && range.is_none() { n / 2 } else { n };
            cut = false;
            let _ = stream.write_all(&body[start..end]);
            let _ = stream.flush();
        }
    });
    Server { base, ranges }
}

fn payload() -> Vec<u8> {
    (0..300_000u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect()
}

fn pins_in(dir: &Path) -> Pins {
    Pins::load(&dir.join("pins.toml")).unwrap()
}

#[test]
fn first_fetch_records_the_pin_and_later_ones_verify_it() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(payload(), false);
    let info = registry::lookup("hopper-medium-v2").unwrap();
    let url = info.url(&server.base);
    let cache = dir.path().join("cache");
    let mut pins = pins_in(dir.path());
    let got = fetch(&url, &cache, &info.file_name(), &mut pins, &FetchOptions::default()).unwrap();
    assert_eq!(got.path, cache.join("hopper-medium-v2.hdf5"));
    assert_eq!(std::fs::read(&got.path).unwrap(), payload());
    assert_eq!(
        (got.pin, got.cached, got.resumed_from, got.bytes),
        ("recorded", false, None, 300_000)
    );
    assert_eq!(got.sha256, sha256_file(&got.path).unwrap());
    // The pin is on disk for the user to commit.
    let reloaded = pins_in(dir.path());
    assert_eq!(reloaded.get("hopper-medium-v2.hdf5"), Some(got.sha256.as_str()));

    let again =
        fetch(&url, &cache, &info.file_name(), &mut pins_in(dir.path()), &FetchOptions::default())
            .unwrap();
    assert_eq!((again.pin, again.cached), ("verified", true));
    assert_eq!(
        server.ranges.lock().unwrap().len(),
        1,
        "a cached file must not be downloaded again"
    );
}

#[test]
fn interrupted_download_resumes_with_a_range_request() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(payload(), true);
    let url = format!("{}/gym_mujoco_v2/x.hdf5", server.base);
    let mut pins = pins_in(dir.path());
    let no_retry = FetchOptions { retries: 0, ..FetchOptions::default() };
    let err = fetch(&url, dir.path(), "x.hdf5", &mut pins, &no_retry).unwrap_err();
    let msg = format!("{err:#}");
    assert!(msg.contains("run the same command again to resume") && msg.contains(&url), "{msg}");
    let part = dir.path().join("x.hdf5.part");
    assert_eq!(std::fs::metadata(&part).unwrap().len(), 150_000);
    assert!(!dir.path().join("x.hdf5").exists());

    let got = fetch(&url, dir.path(), "x.hdf5", &mut pins, &FetchOptions::default()).unwrap();
    assert_eq!(got.resumed_from, Some(150_000));
    assert_eq!(std::fs::read(&got.path).unwrap(), payload());
    assert!(!part.exists());
    let ranges = server.ranges.lock().unwrap().clone();
    assert_eq!(ranges, vec![None, Some("bytes=150000-".to_string())]);
}

/// With retries, one command continues an interrupted transfer itself, by a Range request.
#[test]
fn retries_resume_the_partial_file() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(payload(), true);
    let url = format!("{}/y.hdf5", server.base);
    let opts = FetchOptions {
        retries: 2,
        retry_delay: std::time::Duration::from_millis(10),
        ..FetchOptions::default()
    };
    let got = fetch(&url, dir.path(), "y.hdf5", &mut pins_in(dir.path()), &opts).unwrap();
    assert_eq!(std::fs::read(&got.path).unwrap(), payload());
    let ranges = server.ranges.lock().unwrap().clone();
    assert_eq!(ranges, vec![None, Some("bytes=150000-".to_string())]);
}

/// A server that accepts the connection and never answers: the fetch fails within its
/// timeouts (here 0.3 s per attempt, two attempts), naming the URL, instead of hanging.
#[test]
fn a_server_that_never_answers_times_out() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/z.hdf5", listener.local_addr().unwrap());
    // Accept and hold every connection, silent, until the test ends.
    std::thread::spawn(move || {
        let mut held = vec![];
        for stream in listener.incoming().take(4) {
            held.push(stream);
        }
        std::thread::sleep(std::time::Duration::from_secs(60));
    });
    let dir = tempfile::tempdir().unwrap();
    let opts = FetchOptions {
        read_timeout: std::time::Duration::from_millis(300),
        connect_timeout: std::time::Duration::from_millis(300),
        retries: 1,
        retry_delay: std::time::Duration::from_millis(10),
        ..FetchOptions::default()
    };
    let started = std::time::Instant::now();
    let err = fetch(&url, dir.path(), "z.hdf5", &mut pins_in(dir.path()), &opts).unwrap_err();
    let took = started.elapsed();
    let msg = format!("{err:#}");
    assert!(msg.contains(&url) && msg.contains("2 attempt(s)"), "{msg}");
    assert!(took < std::time::Duration::from_secs(10), "took {took:?}");
    assert!(!dir.path().join("z.hdf5").exists());
}

#[test]
fn checksum_mismatch_is_refused_and_nothing_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(payload(), false);
    let url = format!("{}/f.hdf5", server.base);
    let mut pins = pins_in(dir.path());
    pins.record("f.hdf5", &"0".repeat(64)).unwrap();
    let err = fetch(&url, dir.path(), "f.hdf5", &mut pins, &FetchOptions::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("checksum mismatch for f.hdf5") && err.contains(&"0".repeat(64)), "{err}");
    assert!(!dir.path().join("f.hdf5").exists() && !dir.path().join("f.hdf5.part").exists());
    assert_eq!(pins_in(dir.path()).get("f.hdf5"), Some("0".repeat(64).as_str()));
}

#[test]
fn http_errors_and_unsafe_names_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(payload(), false);
    let mut pins = pins_in(dir.path());
    let err = fetch(
        &format!("{}/missing", server.base),
        dir.path(),
        "m.hdf5",
        &mut pins,
        &FetchOptions::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("HTTP 404"), "{err}");
    let err = fetch(&server.base, dir.path(), "../evil", &mut pins, &FetchOptions::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("not a valid file name"), "{err}");
    assert!(!dir.path().parent().unwrap().join("evil").exists());
}
