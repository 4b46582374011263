//! Nothing an anonymous client sends grows memory or disk without bound, and connection floods
//! do not lock others out. Each test runs the real binary on loopback, bounded in count.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use base64::Engine as _;
use sha2::Digest as _;

use crate::harness::{ADMIN, CLIENT_ACCEPT, FIXTURE, Running};

/// The binary serving the demo project, with extra arguments; `prlimit` sets its open-file
/// limit when given.
struct Demo {
    running: Running,
    addr: String,
    project_ref: String,
}

fn start_demo(dir: &Path, nofile: Option<u64>, extra: &[&str]) -> Demo {
    let binary = env!("CARGO_BIN_EXE_otago-server");
    let mut command = match nofile {
        Some(limit) => {
            let mut command = Command::new("prlimit");
            command.arg(format!("--nofile={limit}:{limit}")).arg(binary);
            command
        }
        None => Command::new(binary),
    };
    let mut child = command
        .args(["--listen", "127.0.0.1:0", "--log", "warn", "--demo"])
        .arg("--demo-app-dir")
        .arg(FIXTURE)
        .arg("--data-dir")
        .arg(dir)
        .args(extra)
        .env("OTAGO_ADMIN_TOKEN", ADMIN)
        .env_remove("OTAGO_PUBLIC_URL")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut project_ref = None;
    let base = loop {
        let line = lines
            .next()
            .expect("the server says where it listens")
            .unwrap();
        if let Some((_, rest)) = line.split_once("/manifest/") {
            let reference: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            project_ref.get_or_insert(reference);
        }
        if let Some(rest) = line.strip_prefix("otago-server listening on ") {
            break rest.split(' ').next().unwrap().to_owned();
        }
    };
    std::thread::spawn(move || lines.for_each(drop));
    Demo {
        running: Running(child),
        addr: base.trim_start_matches("http://").to_owned(),
        project_ref: project_ref.expect("the demo prints its update URL"),
    }
}

impl Demo {
    fn pid(&self) -> u32 {
        self.running.0.id()
    }

    /// Resident memory of the server process, in bytes (from /proc).
    fn rss_bytes(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        let kib: u64 = status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS in /proc/<pid>/status");
        kib * 1024
    }

    /// SIGTERM, then wait: the server flushes its counts before it exits.
    fn stop(mut self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let exit = self.running.0.wait().unwrap();
        assert!(exit.success(), "{exit:?}");
    }
}

/// Bytes of the SQLite files (database, WAL, shared memory) in a data folder.
fn sqlite_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .map(Result::unwrap)
        .filter(|entry| entry.file_name().to_string_lossy().contains(".sqlite"))
        .map(|entry| entry.metadata().unwrap().len())
        .sum()
}

/// A manifest request as an app sends it, over HTTP/1.1 keep-alive.
fn manifest_request(project_ref: &str, platform: &str, runtime_version: &str, n: u64) -> String {
    format!(
        "GET /manifest/{project_ref} HTTP/1.1\r\nhost: localhost\r\naccept: {CLIENT_ACCEPT}\r\n\
         expo-platform: {platform}\r\nexpo-runtime-version: {runtime_version}\r\n\
         expo-protocol-version: 1\r\nexpo-current-update-id: {n:08x}-0000-4000-8000-{n:012x}\r\n\
         eas-client-id: {n:012x}-client\r\n\r\n"
    )
}

/// Reads one HTTP/1.1 response with a content-length from a keep-alive stream; its status.
fn read_response(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> u16 {
    loop {
        if let Some(head_end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buffer[..head_end]).to_ascii_lowercase();
            let length: usize = head
                .lines()
                .find_map(|line| line.strip_prefix("content-length:"))
                .map_or(0, |value| value.trim().parse().unwrap());
            let total = head_end + 4 + length;
            if buffer.len() >= total {
                let status = head[9..12].parse().unwrap();
                buffer.drain(..total);
                return status;
            }
        }
        let mut chunk = [0_u8; 16 * 1024];
        let n = stream.read(&mut chunk).unwrap();
        assert!(n > 0, "the server closed a keep-alive connection");
        buffer.extend_from_slice(&chunk[..n]);
    }
}

/// Sends `count` manifest requests numbered from `first` over one connection, in batches of
/// pipelined requests, each with a made-up runtime version, update id and client id, every
/// other one to a made-up project ref. Returns how many were answered 200 or 204.
fn flood(addr: &str, project_ref: &str, first: u64, count: u64) -> u64 {
    const BATCH: u64 = 50;
    let mut stream = TcpStream::connect(addr).unwrap();
    let mut buffer = Vec::new();
    let mut answered = 0;
    let mut n = first;
    while n < first + count {
        let batch_end = (n + BATCH).min(first + count);
        let mut requests = String::new();
        for i in n..batch_end {
            let made_up_ref = format!("p_{:010}", i % 10_000_000_000);
            let target = if i % 2 == 0 {
                project_ref
            } else {
                &made_up_ref
            };
            let platform = if i % 4 < 2 { "ios" } else { "android" };
            // 255 bytes: the longest runtime version accepted.
            let runtime_version = format!("{i:0>255}");
            requests.push_str(&manifest_request(target, platform, &runtime_version, i));
        }
        stream.write_all(requests.as_bytes()).unwrap();
        for _ in n..batch_end {
            let status = read_response(&mut stream, &mut buffer);
            assert!([200, 204, 404].contains(&status), "status {status}");
            if status != 404 {
                answered += 1;
            }
        }
        n = batch_end;
    }
    answered
}

const MIB: u64 = 1024 * 1024;

/// One request on its own connection (`connection: close` added): status, head and body.
fn raw_blocking(addr: &str, request: &str) -> (u16, String, Vec<u8>) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let request = request.replacen("\r\n", "\r\nconnection: close\r\n", 1);
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    let head_end = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a response head");
    let head = String::from_utf8_lossy(&response[..head_end]).into_owned();
    let status = head[9..12].parse().unwrap();
    (status, head, response[head_end + 4..].to_vec())
}

/// `GET path` with the admin token: the body of a 200.
fn admin_get(addr: &str, path: &str) -> Vec<u8> {
    let (status, head, body) = raw_blocking(
        addr,
        &format!("GET {path} HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {ADMIN}\r\n\r\n"),
    );
    assert_eq!(status, 200, "{head}");
    body
}

#[test]
fn a_flood_of_made_up_runtime_versions_stays_within_bounds() {
    // The bounds this test holds the server to, for 100,000 requests (8 connections) with
    // distinct made-up runtime versions (255 bytes), update ids, client ids and refs. (Before
    // the counters were bounded, 20 s of this took RSS to 1.99 GB and the database to
    // 2.55 GB.) The RSS bound leaves room for the allocator's per-thread pools, which settle
    // at a few tens of MiB whatever the number of requests.
    const REQUESTS: u64 = 100_000;
    const CONNECTIONS: u64 = 8;
    const MAX_RSS_GROWTH: u64 = 32 * MIB;
    const MAX_SQLITE_BYTES: u64 = 8 * MIB;
    const MAX_ADOPTION_JSON: usize = 64 * 1024;

    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let server = start_demo(dir.path(), None, &[]);
    let flood_all = |first: u64, count: u64| -> u64 {
        std::thread::scope(|scope| {
            let per_connection = count / CONNECTIONS;
            let workers: Vec<_> = (0..CONNECTIONS)
                .map(|c| {
                    let (addr, project_ref) = (&server.addr, &server.project_ref);
                    scope.spawn(move || {
                        flood(
                            addr,
                            project_ref,
                            first + c * per_connection,
                            per_connection,
                        )
                    })
                })
                .collect();
            workers.into_iter().map(|w| w.join().unwrap()).sum()
        })
    };
    // Warm up the same way (connection buffers, the allocator's per-thread pools) before the
    // baseline.
    assert_eq!(flood_all(0, 2_000), 1_000);
    let rss_before = server.rss_bytes();
    let sqlite_before = sqlite_bytes(dir.path());
    let started = Instant::now();
    // Every request to the real project is answered (nothing is published for its version).
    assert_eq!(flood_all(1_000_000, REQUESTS), REQUESTS / 2);
    let took = started.elapsed();
    let rss_after = server.rss_bytes();

    let adoption = admin_get(
        &server.addr,
        &format!("/api/v1/projects/{}/adoption", server.project_ref),
    );
    let project_ref = server.project_ref.clone();
    server.stop();
    let sqlite_after = sqlite_bytes(dir.path());

    eprintln!(
        "flood: {REQUESTS} requests in {took:?}, RSS {} -> {} KiB, sqlite {} -> {} KiB, adoption JSON {} bytes before the final flush",
        rss_before / 1024,
        rss_after / 1024,
        sqlite_before / 1024,
        sqlite_after / 1024,
        adoption.len()
    );
    assert!(
        rss_after <= rss_before + MAX_RSS_GROWTH,
        "RSS grew from {rss_before} to {rss_after} bytes"
    );
    assert!(
        sqlite_after <= MAX_SQLITE_BYTES,
        "the database takes {sqlite_after} bytes"
    );

    // Restarted on the same data: what the flood left is small and says what it was.
    let server = start_demo(dir.path(), None, &[]);
    assert_eq!(server.project_ref, project_ref);
    let get = |path: &str| admin_get(&server.addr, path);
    let adoption = get(&format!("/api/v1/projects/{project_ref}/adoption"));
    assert!(
        adoption.len() <= MAX_ADOPTION_JSON,
        "{} bytes",
        adoption.len()
    );
    let adoption: serde_json::Value = serde_json::from_slice(&adoption).unwrap();
    let bucket: u64 = adoption["counts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|row| row["runtime_version"].is_null())
        .map(|row| row["count"].as_u64().unwrap())
        .sum();
    assert_eq!(bucket, REQUESTS / 2 + 1_000, "{adoption:#}");
    let fleet = get(&format!("/api/v1/projects/{project_ref}/runtime-versions"));
    assert!(fleet.len() <= MAX_ADOPTION_JSON, "{} bytes", fleet.len());
    let fleet: serde_json::Value = serde_json::from_slice(&fleet).unwrap();
    // 64 runtime versions a day by name (two days if the test ran over midnight, UTC), the
    // rest in the `other` bucket; every request is in one or the other.
    let named = fleet["runtime_versions"].as_array().unwrap();
    assert!((64..=128).contains(&named.len()), "{}", named.len());
    let requests = |rows: &serde_json::Value| -> u64 {
        rows.as_array()
            .unwrap()
            .iter()
            .map(|row| row["requests"].as_u64().unwrap())
            .sum()
    };
    assert_eq!(
        requests(&fleet["runtime_versions"]) + requests(&fleet["other"]),
        REQUESTS / 2 + 1_000
    );
    server.stop();
}

/// Opens `count` connections to `addr` that send nothing.
fn idle_connections(addr: &str, count: usize) -> Vec<TcpStream> {
    (0..count)
        .map(|_| TcpStream::connect(addr).unwrap())
        .collect()
}

/// The test process needs room for its own client sockets.
fn raise_own_file_limit() {
    let limit = rlimit::increase_nofile_limit(8_192).unwrap();
    assert!(
        limit >= 4_096,
        "the test needs 4096 open files, has {limit}"
    );
}

/// One manifest request on a new connection: its status and how long it took.
fn timed_manifest(addr: &str, project_ref: &str) -> (u16, Duration) {
    let started = Instant::now();
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    stream
        .write_all(manifest_request(project_ref, "ios", "1.0.0", 1).as_bytes())
        .unwrap();
    let status = read_response(&mut stream, &mut Vec::new());
    (status, started.elapsed())
}

#[test]
fn with_1024_open_files_1100_idle_connections_do_not_lock_others_out() {
    raise_own_file_limit();
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let server = start_demo(dir.path(), Some(1024), &[]);
    let idle = idle_connections(&server.addr, 1_100);
    for _ in 0..3 {
        let (status, _) = timed_manifest(&server.addr, &server.project_ref);
        assert!([200, 204].contains(&status), "status {status}");
    }
    drop(idle);
    server.stop();
}

#[test]
fn slow_headers_do_not_delay_others_and_past_the_cap_busy_servers_answer_503() {
    raise_own_file_limit();
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let server = start_demo(dir.path(), None, &[]);
    // Slowloris: 1,000 connections, each sending a request head a byte at a time.
    let mut slow = idle_connections(&server.addr, 1_000);
    for stream in &mut slow {
        stream
            .write_all(b"GET /manifest/p_0123456789 HTTP/1.1\r\nhost: x\r\n")
            .unwrap();
    }
    let stop = Arc::new(AtomicBool::new(false));
    let dripping = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                for stream in &mut slow {
                    let _ = stream.write_all(b"x");
                }
                std::thread::sleep(Duration::from_millis(200));
            }
            slow
        })
    };
    for _ in 0..5 {
        let (status, took) = timed_manifest(&server.addr, &server.project_ref);
        assert!([200, 204].contains(&status), "status {status}");
        assert!(took < Duration::from_millis(100), "answered in {took:?}");
    }
    stop.store(true, Ordering::Relaxed);
    drop(dripping.join().unwrap());
    server.stop();

    // A cap of 4 connections, each with an upload in flight: the fifth gets a clean 503.
    let server = start_demo(dir.path(), None, &["--max-connections", "4"]);
    let bytes = b"never finished";
    let hash = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(bytes));
    // Each upload asks `expect: 100-continue`: the server answers `100 Continue` once its
    // handler reads the body, so the request is in flight before the next connection opens.
    let mut uploads: Vec<TcpStream> = (0..4)
        .map(|_| {
            let mut stream = TcpStream::connect(&server.addr).unwrap();
            write!(
                stream,
                "PUT /api/v1/projects/{}/assets/{hash} HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {ADMIN}\r\n\
                 content-type: application/octet-stream\r\ncontent-length: 1000\r\nexpect: 100-continue\r\n\r\n",
                server.project_ref
            )
            .unwrap();
            let mut continued = Vec::new();
            while !continued.ends_with(b"\r\n\r\n") {
                let mut byte = [0_u8; 1];
                assert_eq!(stream.read(&mut byte).unwrap(), 1, "the server closed an upload");
                continued.push(byte[0]);
            }
            assert!(continued.starts_with(b"HTTP/1.1 100"), "{}", String::from_utf8_lossy(&continued));
            stream.write_all(b"never").unwrap();
            stream
        })
        .collect();
    // Every connection has a request in flight: a fifth gets 503.
    let refused = Some(timed_manifest(&server.addr, &server.project_ref).0);
    assert_eq!(refused, Some(503));
    let (status, head, body) = raw_blocking(
        &server.addr,
        &manifest_request(&server.project_ref, "ios", "1.0.0", 2),
    );
    assert_eq!(status, 503, "{head}");
    assert!(
        head.to_ascii_lowercase().contains("retry-after: 1"),
        "{head}"
    );
    let error: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(error["error"]["code"], "server_busy");
    // One upload gives up: its connection ends, and requests are served again.
    drop(uploads.pop());
    let served = (0..100).any(|_| {
        let (status, _) = timed_manifest(&server.addr, &server.project_ref);
        [200, 204].contains(&status)
    });
    assert!(served);
    drop(uploads);
    server.stop();
}

#[test]
fn runtime_versions_past_the_publish_limit_are_refused_at_the_header() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let server = start_demo(dir.path(), None, &[]);
    let longest = "v".repeat(255);
    let (status, head, _) = raw_blocking(
        &server.addr,
        &manifest_request(&server.project_ref, "ios", &longest, 3),
    );
    assert!([200, 204].contains(&status), "{head}");
    let (status, head, body) = raw_blocking(
        &server.addr,
        &manifest_request(&server.project_ref, "ios", &format!("{longest}v"), 3),
    );
    assert_eq!(status, 400, "{head}");
    let body = String::from_utf8_lossy(&body);
    assert!(
        body.contains("expo-runtime-version") && body.contains("256 bytes"),
        "{body}"
    );
    server.stop();
}
