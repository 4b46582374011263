//! Criterion benchmarks of otago-core's hot paths on the real fixture export:
//! hashing a 1.6 MB bundle, building and rendering a manifest, signing, answering a protocol
//! request from pre-rendered responses, and making and applying the bundle patch between the
//! fixture's two exports.
//!
//! ```sh
//! cargo bench -p otago-benches
//! ```
#![allow(missing_docs)] // criterion's macros generate undocumented functions

use std::collections::BTreeMap;
use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use otago_benches::fixture_file;
use otago_core::{
    AssetDescription, DescribedPlatform, ExportMetadata, Manifest, ManifestRequest, ManifestSpec,
    Platform, PreparedUpdates, PublishedUpdate, SignatureHeader, SigningKey, StoredSignature,
    Timestamp, UpdateId, apply_patch, asset_hash, make_patch,
};

const BUNDLE: &str = "exports/v1/_expo/static/js/ios/index-17db1bcc5eb02aebfc93514b328cbb77.hbc";
/// The same bundle after the one-line change of exports/v2.
const BUNDLE_V2: &str = "exports/v2/_expo/static/js/ios/index-00a3d570fc8c0ce5371590dd50230874.hbc";

fn ios_spec() -> ManifestSpec {
    let metadata = ExportMetadata::parse(&fixture_file("exports/v1/metadata.json")).unwrap();
    let export = metadata.platform(Platform::Ios).unwrap();
    let files = DescribedPlatform::describe(Platform::Ios, export, |path| {
        Some(fixture_file(&format!("exports/v1/{}", path.as_str())))
    })
    .unwrap();
    ManifestSpec {
        id: UpdateId::from_random_bytes([42; 16]),
        created_at: Timestamp::from_unix_millis(1_767_225_600_000).unwrap(),
        runtime_version: "1.0.0".to_owned(),
        launch_asset: files.launch_asset.description,
        assets: files
            .assets
            .into_iter()
            .map(|file| file.description)
            .collect(),
        asset_base_url: "https://updates.example.com/assets".to_owned(),
        metadata: BTreeMap::new(),
        expo_client: Some(
            serde_json::from_slice(&fixture_file("expo-config.public.json")).unwrap(),
        ),
    }
}

fn signing_key() -> SigningKey {
    SigningKey::from_pem(&String::from_utf8(fixture_file("keys/private-key.pem")).unwrap()).unwrap()
}

fn hashing(c: &mut Criterion) {
    let bundle = fixture_file(BUNDLE);
    let mut group = c.benchmark_group("hash");
    group.throughput(Throughput::Bytes(bundle.len() as u64));
    group.bench_function("launch asset 1.6 MB (sha256 + md5)", |b| {
        b.iter(|| AssetDescription::of_launch_asset(black_box(&bundle), "hbc").unwrap());
    });
    group.finish();
}

fn manifests(c: &mut Criterion) {
    let spec = ios_spec();
    c.bench_function("manifest build + serialize", |b| {
        b.iter(|| Manifest::build(black_box(spec.clone())).unwrap().to_bytes());
    });
    let bytes = Manifest::build(spec).unwrap().to_bytes();
    let key = signing_key();
    c.bench_function("sign manifest (rsa-2048, pkcs1v15/sha256)", |b| {
        b.iter(|| key.sign(black_box(&bytes)));
    });
    let header = SignatureHeader::new(key.sign(&bytes), "main")
        .unwrap()
        .to_header_value();
    let signature = StoredSignature::parse(&header).unwrap();
    c.bench_function("prepare responses (render every variant at publish)", |b| {
        b.iter(|| {
            let update = PublishedUpdate::manifest(bytes.clone(), Some(signature.clone())).unwrap();
            PreparedUpdates::new(update.into(), &BTreeMap::new()).unwrap()
        });
    });
}

fn answering(c: &mut Criterion) {
    let key = signing_key();
    let bytes = Manifest::build(ios_spec()).unwrap().to_bytes();
    let signature = StoredSignature::parse(
        &SignatureHeader::new(key.sign(&bytes), "main")
            .unwrap()
            .to_header_value(),
    )
    .unwrap();
    let prepared = PreparedUpdates::new(
        PublishedUpdate::manifest(bytes, Some(signature))
            .unwrap()
            .into(),
        &BTreeMap::new(),
    )
    .unwrap();
    // The headers expo-updates 57 sends.
    let headers: &[(&str, &[u8])] = &[
        (
            "Accept",
            b"multipart/mixed,application/expo+json,application/json",
        ),
        ("Expo-Platform", b"ios"),
        ("Expo-Protocol-Version", b"1"),
        ("Expo-API-Version", b"1"),
        ("Expo-Updates-Environment", b"BARE"),
        ("Expo-JSON-Error", b"true"),
        ("EAS-Client-ID", b"6f1c2f4e-93a8-4c55-8a3d-2f1e0b7c9d11"),
        ("Expo-Runtime-Version", b"1.0.0"),
        (
            "Expo-Embedded-Update-ID",
            b"0c3a4f4e-1b2d-4e5f-8a9b-0c1d2e3f4a5b",
        ),
        (
            "expo-expect-signature",
            b"sig, keyid=\"main\", alg=\"rsa-v1_5-sha256\"",
        ),
    ];
    c.bench_function(
        "answer a request (parse headers + choose pre-rendered)",
        |b| {
            b.iter(|| {
                let request = ManifestRequest::parse("GET", headers.iter().copied()).unwrap();
                prepared
                    .answer(black_box(&request))
                    .unwrap()
                    .response
                    .body()
                    .len()
            });
        },
    );
}

fn patching(c: &mut Criterion) {
    let (base, target) = (fixture_file(BUNDLE), fixture_file(BUNDLE_V2));
    let target_hash = asset_hash(&target);
    let patch = make_patch(&base, &target, &target_hash).unwrap();
    let mut group = c.benchmark_group("patch");
    group.sample_size(10);
    group.throughput(Throughput::Bytes(target.len() as u64));
    group.bench_function("make and verify, 1.6 MB bundle (one-line change)", |b| {
        b.iter(|| make_patch(black_box(&base), black_box(&target), &target_hash).unwrap());
    });
    group.bench_function("apply, 1.6 MB bundle", |b| {
        b.iter(|| apply_patch(black_box(&base), black_box(&patch.bytes), u64::MAX).unwrap());
    });
    group.finish();
}

criterion_group!(benches, hashing, manifests, answering, patching);
criterion_main!(benches);
