//! End-to-end tests of the `otago` binary against a real otago-server on a loopback port.

mod client;
mod codesigning;
mod deploy;
mod doctor;
#[cfg(unix)]
mod export;
mod failures;
mod fleet;
mod harness;
mod patches;
mod projects;
mod tls;
