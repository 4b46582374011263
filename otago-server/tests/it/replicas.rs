//! Several replicas on one real PostgreSQL database (`OTAGO_TEST_DATABASE_URL`, set by
//! `.ci/run`) and one real S3-compatible bucket (`OTAGO_TEST_S3_URL`), each with a data folder
//! of its own: what one replica changes, the others serve within a second, and the database,
//! not a per-process lock, keeps two replicas from racing.

use std::time::{Duration, Instant};

use otago_core::Platform;
use otago_server::config::{DatabaseUrl, StorageUrl};
use otago_server::store::{MetaStore as _, PostgresStore};
use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::{
    RUNTIME, Server, as_refs, body, build_signed, client_headers, export, fresh_bucket,
    fresh_database, now_ms, parse_multipart, publish_body, with_standbys,
};

/// One database and one bucket that replicas share; each replica has its own data folder.
struct Cluster {
    database: String,
    storage: StorageUrl,
    dirs: tempfile::TempDir,
}

impl Cluster {
    async fn new() -> Self {
        Self {
            database: fresh_database().await,
            storage: fresh_bucket().0,
            dirs: tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap(),
        }
    }

    /// The data folder of replica `name`.
    fn dir(&self, name: &str) -> std::path::PathBuf {
        self.dirs.path().join(name)
    }

    /// Starts replica `name`.
    async fn replica(&self, name: &str) -> Server {
        self.replica_with(name, |_| {}).await
    }

    /// Starts replica `name` with its configuration changed by `configure`.
    async fn replica_with(
        &self,
        name: &str,
        configure: impl FnOnce(&mut otago_server::ServerConfig),
    ) -> Server {
        let database = DatabaseUrl::Postgres(self.database.clone());
        let storage = self.storage.clone();
        Server::start_in_configured(&self.dir(name), move |config| {
            config.database_url = Some(database);
            config.storage_url = Some(storage);
            config.patch_bases = 0;
            configure(config);
        })
        .await
    }
}

/// The manifest a replica serves an iOS device: its bytes and signature, if any.
async fn served(server: &Server, project_ref: &str) -> Option<(Vec<u8>, String)> {
    let headers = client_headers("ios");
    let response = server.manifest(project_ref, &as_refs(&headers)).await;
    if response.status() != 200 {
        return None;
    }
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    let (_, parts) = parse_multipart(&content_type, &body(response).await);
    let part = parts.into_iter().find(|p| p.name() == "manifest")?;
    let signature = part.header("expo-signature")?.to_owned();
    Some((part.body, signature))
}

/// Waits until `server` serves `expected`; how long it took.
async fn until_served(server: &Server, project_ref: &str, expected: &[u8]) -> Duration {
    let start = Instant::now();
    loop {
        if served(server, project_ref)
            .await
            .is_some_and(|(bytes, _)| bytes == expected)
        {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{} still does not serve the update",
            server.url
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn three_replicas_serve_a_publish_made_through_one_within_a_second() {
    let cluster = Cluster::new().await;
    let a = cluster.replica("a").await;
    let b = cluster.replica("b").await;
    let c = cluster.replica("c").await;
    // A project made through one replica is known to the others.
    let project_ref = a.signing_project("replicas").await;
    let v1 = a
        .publish_export(&project_ref, export("exports/v1"), now_ms() - 60_000)
        .await
        .manifests;
    for other in [&b, &c] {
        until_served(other, &project_ref, &v1[&Platform::Ios].bytes).await;
    }
    let v2 = a
        .publish_export(&project_ref, export("exports/v2"), now_ms() - 30_000)
        .await
        .manifests;
    let expected = &v2[&Platform::Ios];
    for other in [&b, &c] {
        let took = until_served(other, &project_ref, &expected.bytes).await;
        println!(
            "replicas: {} served the publish {} ms after it was answered",
            other.url,
            took.as_millis()
        );
        assert!(took < Duration::from_secs(1), "took {took:?}");
        let (bytes, signature) = served(other, &project_ref).await.unwrap();
        assert_eq!(bytes, expected.bytes, "the exact signed bytes");
        assert_eq!(signature, expected.signature);
        // Every asset it names comes back with its hash, through this replica.
        let manifest: Value = serde_json::from_slice(&bytes).unwrap();
        let mut assets = vec![manifest["launchAsset"].clone()];
        assets.extend(manifest["assets"].as_array().unwrap().iter().cloned());
        for asset in assets {
            let url = asset["url"].as_str().unwrap().replace(&a.url, &other.url);
            let fetched = other.client.get(&url).send().await.unwrap();
            assert_eq!(fetched.status(), 200, "{url}");
            assert_eq!(
                otago_core::asset_hash(&body(fetched).await),
                asset["hash"].as_str().unwrap()
            );
        }
    }
    for server in [a, b, c] {
        server.stop().await;
    }
    // `otago-server check --database-url --storage-url` reads the same database and bucket:
    // all whole.
    let report = otago_server::check_store(
        &cluster.dir("a"),
        Some(&DatabaseUrl::Postgres(cluster.database.clone())),
        Some(&cluster.storage),
    )
    .await
    .unwrap();
    assert_eq!(report.problems, Vec::<String>::new());
    assert!(report.assets_checked > 0);
}

#[tokio::test]
async fn a_key_revoked_through_one_replica_stops_working_on_the_others() {
    let cluster = Cluster::new().await;
    let a = cluster.replica("a").await;
    let b = cluster.replica("b").await;
    let project = a.create_project("revoke", "production").await;
    let project_ref = project["ref"].as_str().unwrap();
    let keys = format!("/api/v1/projects/{project_ref}/keys");
    let created: Value = a
        .admin(Method::POST, &keys)
        .json(&json!({"name": "ci"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let secret = created["secret"].as_str().unwrap();
    let read = |server: &Server| {
        server
            .request(Method::GET, &format!("/api/v1/projects/{project_ref}"))
            .bearer_auth(secret)
            .send()
    };
    // b confirms the key and keeps it in its cache.
    assert_eq!(read(&b).await.unwrap().status(), 200);
    let revoked = a
        .admin(
            Method::DELETE,
            &format!("{keys}/{}", created["id"].as_str().unwrap()),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 204);
    let start = Instant::now();
    while read(&b).await.unwrap().status() == 200 {
        assert!(
            start.elapsed() < Duration::from_secs(1),
            "b still takes the revoked key"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(read(&b).await.unwrap().status(), 401);
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn two_replicas_publishing_to_one_channel_at_once_cannot_both_win() {
    let cluster = Cluster::new().await;
    let a = cluster.replica("a").await;
    let b = cluster.replica("b").await;
    let project_ref = a.signing_project("race").await;
    let at = now_ms() - 60_000;
    a.upload_export(&project_ref, export("exports/v1")).await;
    a.upload_export(&project_ref, export("exports/v2")).await;
    // Two different updates with the same createdAt: whichever lands first, the other must not.
    for round in 0..5 {
        let at = at + round * 1000;
        let one = build_signed(export("exports/v1"), &format!("{}/assets", a.url), at);
        let two = build_signed(export("exports/v2"), &format!("{}/assets", b.url), at);
        let (body_one, body_two) = (
            publish_body(RUNTIME, &one, None),
            publish_body(RUNTIME, &two, None),
        );
        let (first, second) = tokio::join!(
            a.publish(&project_ref, &body_one),
            b.publish(&project_ref, &body_two),
        );
        let statuses = [first.status().as_u16(), second.status().as_u16()];
        let wins = statuses.iter().filter(|s| **s == 201).count();
        assert_eq!(wins, 1, "round {round}: {statuses:?}");
        let loser = if statuses[0] == 201 { second } else { first };
        assert_eq!(loser.status(), 409);
        let problem: Value = loser.json().await.unwrap();
        assert!(
            ["release_changed", "not_newer"]
                .contains(&problem["error"]["code"].as_str().unwrap_or_default()),
            "{problem}"
        );
        let winner = if statuses[0] == 201 { &one } else { &two };
        for server in [&a, &b] {
            until_served(server, &project_ref, &winner[&Platform::Ios].bytes).await;
        }
    }
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn replicas_starting_at_once_migrate_once_and_a_newer_schema_is_refused() {
    let database = fresh_database().await;
    let (one, two) = tokio::join!(
        PostgresStore::connect(&database),
        PostgresStore::connect(&database)
    );
    let (one, _two) = (one.unwrap(), two.unwrap());
    assert!(one.projects().await.unwrap().is_empty());
    let (client, connection) = tokio_postgres::connect(&database, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
        .batch_execute("UPDATE schema_version SET version = 99")
        .await
        .unwrap();
    let err = PostgresStore::connect(&database)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("schema version 99") && err.contains("run a newer otago-server"),
        "{err}"
    );
}

/// Background jobs this replica did, by kind, from its `/metrics`.
async fn jobs_done(server: &Server, kind: &str) -> u64 {
    let text = body(
        server
            .request(Method::GET, "/metrics")
            .send()
            .await
            .unwrap(),
    )
    .await;
    let line = format!("otago_background_jobs_total{{kind=\"{kind}\"}} ");
    String::from_utf8(text)
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix(&line).map(|n| n.parse().unwrap()))
        .unwrap()
}

#[tokio::test]
async fn a_job_a_dead_replica_claimed_waits_for_its_claim_then_one_live_replica_does_it() {
    let cluster = Cluster::new().await;
    let fast_sweeps = |config: &mut otago_server::ServerConfig| {
        config.job_sweep_interval = Duration::from_millis(100);
    };
    let a = cluster.replica_with("a", fast_sweeps).await;
    let b = cluster.replica_with("b", fast_sweeps).await;
    let project = a.create_project("jobs", "production").await;
    let project_ref = project["ref"].as_str().unwrap();

    // A replica that died while compressing this asset holds the job for 1.5 s more.
    let text: Vec<u8> = format!("console.log('jobs {}');\n", rand::random::<u64>())
        .bytes()
        .cycle()
        .take(60_000)
        .collect();
    let hash = otago_core::asset_hash(&text);
    let (client, connection) = tokio_postgres::connect(&cluster.database, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let claimed_at = Instant::now();
    client
        .execute(
            "INSERT INTO job_claims (job, holder, until_ms) VALUES ($1, 'replica-dead', $2)",
            &[&format!("compress:{hash}"), &(now_ms() + 1500)],
        )
        .await
        .unwrap();
    let response = a
        .admin(
            Method::PUT,
            &format!("/api/v1/projects/{project_ref}/assets/{hash}"),
        )
        .header("content-type", "application/javascript")
        .body(text.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);

    // Served plain until the claim runs out, then compressed by exactly one live replica.
    let compressed = |server: &Server| {
        let request = server
            .request(Method::GET, &format!("/assets/{hash}"))
            .header("accept-encoding", "br");
        async move {
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), 200);
            response.headers().get("content-encoding").is_some()
        }
    };
    loop {
        let (on_a, on_b) = (compressed(&a).await, compressed(&b).await);
        if on_a && on_b {
            break;
        }
        assert!(
            claimed_at.elapsed() < Duration::from_secs(10),
            "not compressed 10 s after the dead replica's claim"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let took = claimed_at.elapsed();
    assert!(
        took >= Duration::from_millis(1400),
        "compressed after {took:?}, while claimed"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        jobs_done(&a, "compress").await + jobs_done(&b, "compress").await,
        1,
        "one replica compressed it, once"
    );
    println!(
        "jobs: the dead replica's job was done {} ms after its claim",
        took.as_millis()
    );
    a.stop().await;
    b.stop().await;
}

/// Whether the connections named `application_name` are encrypted: (encrypted, in the clear).
async fn encrypted_connections(
    client: &tokio_postgres::Client,
    application_name: &str,
) -> (i64, i64) {
    let row = client
        .query_one(
            "SELECT count(*) FILTER (WHERE s.ssl), count(*) FILTER (WHERE NOT s.ssl)
             FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid)
             WHERE a.application_name = $1",
            &[&application_name],
        )
        .await
        .unwrap();
    (row.get(0), row.get(1))
}

#[tokio::test]
async fn the_database_connection_is_encrypted_and_verify_modes_check_the_certificate() {
    let database = fresh_database().await;
    let (client, connection) = tokio_postgres::connect(&database, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let ssl: String = client.query_one("SHOW ssl", &[]).await.unwrap().get(0);
    assert_eq!(
        ssl, "on",
        "the test database must offer TLS (ssl = on in postgresql.conf)"
    );
    let cert_file: String = client
        .query_one("SHOW ssl_cert_file", &[])
        .await
        .unwrap()
        .get(0);
    let name = |mode: &str| format!("otago-tls-{mode}-{:x}", rand::random::<u32>());

    // By default (prefer) every connection is encrypted; sslmode=disable sends in the clear.
    let (default, clear) = (name("default"), name("disable"));
    let store = PostgresStore::connect(&format!("{database}&application_name={default}"))
        .await
        .unwrap();
    store.projects().await.unwrap();
    let (encrypted, plain) = encrypted_connections(&client, &default).await;
    assert!(
        encrypted > 0 && plain == 0,
        "{encrypted} encrypted, {plain} in the clear"
    );
    let store = PostgresStore::connect(&format!(
        "{database}&sslmode=disable&application_name={clear}"
    ))
    .await
    .unwrap();
    store.projects().await.unwrap();
    let (encrypted, plain) = encrypted_connections(&client, &clear).await;
    assert!(
        encrypted == 0 && plain > 0,
        "{encrypted} encrypted, {plain} in the clear"
    );

    // verify-ca trusts the server's certificate as the root it names; verify-full also wants
    // it to name the host: it names localhost, not 127.0.0.1; without sslrootcert the system's
    // roots do not know it.
    let verify_ca = name("verify-ca");
    let store = PostgresStore::connect(&format!(
        "{database}&sslmode=verify-ca&sslrootcert={cert_file}&application_name={verify_ca}"
    ))
    .await
    .unwrap();
    store.projects().await.unwrap();
    let (encrypted, plain) = encrypted_connections(&client, &verify_ca).await;
    assert!(encrypted > 0 && plain == 0);
    let by_name = database.replacen("127.0.0.1", "localhost", 1);
    assert_ne!(by_name, database, "the test database URL names 127.0.0.1");
    let store = PostgresStore::connect(&format!(
        "{by_name}&sslmode=verify-full&sslrootcert={cert_file}"
    ))
    .await
    .unwrap();
    store.projects().await.unwrap();
    for url in [
        format!("{database}&sslmode=verify-full&sslrootcert={cert_file}"),
        format!("{database}&sslmode=verify-full"),
    ] {
        let err = PostgresStore::connect(&url).await.unwrap_err().to_string();
        assert!(err.to_lowercase().contains("certificate"), "{url}: {err}");
    }
    let err = PostgresStore::connect(&format!(
        "{database}&sslrootcert=/nonexistent.pem&sslmode=verify-ca"
    ))
    .await
    .unwrap_err()
    .to_string();
    assert!(err.contains("sslrootcert /nonexistent.pem"), "{err}");
}

/// The id of the update `server` sends iOS device `client_id` that runs `running` (`running`
/// itself when there is nothing newer for it).
async fn served_id(server: &Server, project_ref: &str, client_id: &str, running: &str) -> String {
    let mut headers = client_headers("ios");
    for header in &mut headers {
        if header.0 == "eas-client-id" {
            header.1 = client_id.to_owned();
        }
    }
    headers.push(("expo-current-update-id", running.to_owned()));
    let response = server.manifest(project_ref, &as_refs(&headers)).await;
    if response.status() == 204 {
        return running.to_owned();
    }
    assert_eq!(response.status(), 200);
    let text = String::from_utf8(body(response).await).unwrap();
    let start = text.find("{\"id\":\"").unwrap() + 7;
    text[start..start + 36].to_owned()
}

/// How many of `devices`, running `running`, `server` sends `update`.
async fn sent(
    server: &Server,
    project_ref: &str,
    devices: &[String],
    running: &str,
    update: &str,
) -> usize {
    let mut n = 0;
    for device in devices {
        if served_id(server, project_ref, device, running).await == update {
            n += 1;
        }
    }
    n
}

#[tokio::test]
async fn a_rollout_change_and_a_revert_through_one_replica_reach_the_other_within_a_second() {
    let cluster = Cluster::new().await;
    let a = cluster.replica("a").await;
    let b = cluster.replica("b").await;
    let project_ref = a.signing_project("rollouts").await;
    let v1 = a
        .publish_export(&project_ref, export("exports/v1"), now_ms() - 60_000)
        .await
        .manifests;
    let v1_id = v1[&Platform::Ios].id.clone();
    // v2 as a rollout at 0 % through A, with the standby reverts `otago deploy` makes.
    a.upload_export(&project_ref, export("exports/v2")).await;
    let v2 = build_signed(
        export("exports/v2"),
        &a.state.config().asset_base_url(),
        now_ms() - 30_000,
    );
    let v2_id = v2[&Platform::Ios].id.clone();
    let controls = v1
        .iter()
        .map(|(platform, built)| (*platform, Some(built.bytes.clone())))
        .collect();
    let response = a
        .publish(
            &project_ref,
            &with_standbys(publish_body(RUNTIME, &v2, Some(0)), &controls),
        )
        .await;
    assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
    let group: Value = response.json().await.unwrap();
    let group_id = group["id"].as_str().unwrap();
    let devices: Vec<String> = (0..40)
        .map(|i| format!("00000000-0000-4000-8000-{i:012}"))
        .collect();
    assert_eq!(
        sent(&b, &project_ref, &devices, &v1_id, &v2_id).await,
        0,
        "nobody at 0 %"
    );

    // The rollout goes to 50 % through B: A serves v2 to some devices within a second.
    let response = b
        .admin(
            Method::PATCH,
            &format!("/api/v1/projects/{project_ref}/groups/{group_id}"),
        )
        .json(&json!({"rollout_percentage": 50}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    let start = Instant::now();
    let mut split = 0;
    while split == 0 {
        assert!(
            start.elapsed() < Duration::from_secs(1),
            "A still serves nobody v2"
        );
        split = sent(&a, &project_ref, &devices, &v1_id, &v2_id).await;
    }
    println!(
        "replicas: a rollout change reached the other replica in {} ms ({split} of 40 devices on v2)",
        start.elapsed().as_millis()
    );
    let settled = sent(&a, &project_ref, &devices, &v1_id, &v2_id).await;
    assert!((8..=32).contains(&settled), "{settled} of 40 at 50 %");

    // Reverted through A: B sends a device running v2 the standby (v1's code, signed anew).
    let response = a
        .admin(
            Method::POST,
            &format!("/api/v1/projects/{project_ref}/groups/{group_id}/revert"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let reverted: Value = response.json().await.unwrap();
    let standby_id = reverted["updates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["platform"] == "ios")
        .unwrap()["standby_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let start = Instant::now();
    while served_id(&b, &project_ref, &devices[0], &v2_id).await != standby_id {
        assert!(
            start.elapsed() < Duration::from_secs(1),
            "B does not serve the revert"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    println!(
        "replicas: a revert reached the other replica in {} ms",
        start.elapsed().as_millis()
    );
    assert_eq!(
        sent(&b, &project_ref, &devices, &v1_id, &v2_id).await,
        0,
        "nobody is sent v2 after the revert"
    );
    a.stop().await;
    b.stop().await;
}

/// A TCP proxy to the database that can cut every connection and refuse new ones: a replica
/// behind it is cut off from its database while it keeps serving.
struct Cuttable {
    port: u16,
    cut: std::sync::Arc<std::sync::atomic::AtomicBool>,
    connections: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl Cuttable {
    async fn start(upstream: String) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let cut = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let connections = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (is_cut, tasks) = (cut.clone(), connections.clone());
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if is_cut.load(std::sync::atomic::Ordering::SeqCst) {
                    continue;
                }
                let upstream = upstream.clone();
                let task = tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(&upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                tasks.lock().unwrap().push(task);
            }
        });
        Self {
            port,
            cut,
            connections,
        }
    }

    fn cut(&self) {
        self.cut.store(true, std::sync::atomic::Ordering::SeqCst);
        for task in self.connections.lock().unwrap().drain(..) {
            task.abort();
        }
    }

    fn restore(&self) {
        self.cut.store(false, std::sync::atomic::Ordering::SeqCst);
    }
}

#[tokio::test]
async fn a_replica_cut_off_longer_than_the_change_log_keeps_reloads_everything() {
    let cluster = Cluster::new().await;
    let a = cluster.replica("a").await;
    let parsed = url::Url::parse(&cluster.database).unwrap();
    let upstream = format!(
        "{}:{}",
        parsed.host_str().unwrap(),
        parsed.port().unwrap_or(5432)
    );
    let proxy = Cuttable::start(upstream.clone()).await;
    let via_proxy = cluster
        .database
        .replacen(&upstream, &format!("127.0.0.1:{}", proxy.port), 1);
    let b = cluster
        .replica_with("b", |config| {
            config.database_url = Some(DatabaseUrl::Postgres(via_proxy));
        })
        .await;
    let project_ref = a.signing_project("cut-off").await;
    let v1 = a
        .publish_export(&project_ref, export("exports/v1"), now_ms() - 60_000)
        .await
        .manifests;
    until_served(&b, &project_ref, &v1[&Platform::Ios].bytes).await;

    // B is cut off; v2 is published through A, and its change is dropped from the log as too
    // old (backdated 25 hours, then pruned by the next change).
    proxy.cut();
    let v2 = a
        .publish_export(&project_ref, export("exports/v2"), now_ms() - 30_000)
        .await
        .manifests;
    let (client, connection) = tokio_postgres::connect(&cluster.database, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
        .execute("UPDATE changes SET at = at - 90000000", &[])
        .await
        .unwrap();
    a.create_project("cut-off-other", "production").await;
    let left: i64 = client
        .query_one("SELECT count(*) FROM changes WHERE kind = 'channel'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(left, 0, "the channel changes were dropped from the log");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        served(&b, &project_ref).await.unwrap().0,
        v1[&Platform::Ios].bytes,
        "cut off, B keeps serving what it has"
    );

    // Back in touch, B finds it missed dropped changes and reloads: it serves v2.
    proxy.restore();
    let took = until_served(&b, &project_ref, &v2[&Platform::Ios].bytes).await;
    println!(
        "replicas: reconnected, the cut-off replica caught up in {} ms",
        took.as_millis()
    );
    a.stop().await;
    b.stop().await;
}
