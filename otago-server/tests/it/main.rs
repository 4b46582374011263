//! Integration tests: the real server on a loopback port, spoken to over HTTP.
//!
//! `protocol` and `assets` check PROTOCOL.md's checklist (C1–C44) against dist-v1 then dist-v2
//! of the shared fixture; `security` sends hostile requests; `api` is the management API;
//! `demo` covers demo mode, the binary and `otago-server check`; `crash` kills the binary with
//! SIGKILL during an upload and a publish.

mod access;
mod api;
mod assets;
mod crash;
mod demo;
mod harness;
mod protocol;
mod releases;
mod security;
