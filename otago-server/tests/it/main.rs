//! Integration tests: the real server on a loopback port, spoken to over HTTP.
//!
//! `protocol` and `assets` check PROTOCOL.md's checklist (C1–C44) against exports/v1 then
//! exports/v2 of the example app; `security` sends hostile requests; `api` is the management API;
//! `bounds` floods a real server with made-up requests and idle or slow connections; `demo`
//! covers demo mode, the binary and `otago-server check`; `crash` kills the binary with
//! SIGKILL during an upload and a publish; `disk_full` fills a small tmpfs under the data folder;
//! `patches` applies the server's bundle patches with `bspatch`; `releases` drives simulated
//! devices through rollouts, reverts, the health gate and ramps; `replicas` runs several servers on
//! one PostgreSQL database and one bucket; `storage` holds both blob stores to one contract; `cdn` serves assets through nginx caching
//! in front of a bucket; `migrate` moves an embedded install to PostgreSQL and a bucket.

/// This target runs every server on SQLite and a folder (`it_scaled` runs many of the same
/// tests again on PostgreSQL and a bucket).
pub(crate) const SCALED_OUT: bool = false;

mod access;
mod api;
mod assets;
mod bounds;
mod cdn;
mod crash;
mod demo;
mod disk_full;
mod harness;
mod migrate;
mod patches;
mod protocol;
mod releases;
mod replicas;
mod security;
mod storage;
