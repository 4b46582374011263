//! `otago fleet`: which runtime versions a project's devices ask for, and how many devices.

use std::io::Write;

use serde::Serialize;

use crate::client::{Client, RuntimeVersions};
use crate::error::Result;
use crate::output::Render;
use crate::settings::{Credential, ServerSettings};

/// What `otago fleet` prints.
#[derive(Debug, Clone, Serialize)]
pub struct FleetReport {
    /// Project ref.
    pub project: String,
    /// The server's answer.
    #[serde(flatten)]
    pub usage: RuntimeVersions,
}

/// Reads the runtime versions the project's devices asked for over the last `days` days.
///
/// # Errors
/// The server's error.
pub async fn fleet(server: &ServerSettings, project: &str, days: u32) -> Result<FleetReport> {
    let client = Client::new(&server.url, Some(server.token(Credential::KeyFirst)?))?;
    let usage = client.runtime_versions(project, days).await?;
    Ok(FleetReport {
        project: project.to_owned(),
        usage,
    })
}

fn percent(share: f64) -> String {
    format!("{:.1}%", share * 100.0)
}

impl Render for FleetReport {
    fn render(&self, out: &mut dyn Write) -> std::io::Result<()> {
        let usage = &self.usage;
        if usage.runtime_versions.is_empty() && usage.other.is_empty() {
            return writeln!(
                out,
                "No device of project {} asked for updates in the last {} day(s).",
                self.project, usage.days
            );
        }
        writeln!(
            out,
            "Runtime versions devices of {} asked for since {} ({} day(s)):",
            self.project, usage.since, usage.days
        )?;
        writeln!(
            out,
            "  {:<8} {:<24} {:>9} {:>7} {:>10}  last seen",
            "platform", "runtime version", "devices", "share", "requests"
        )?;
        for row in &usage.runtime_versions {
            writeln!(
                out,
                "  {:<8} {:<24} {:>9} {:>7} {:>10}  {}",
                row.platform.as_str(),
                row.runtime_version,
                row.devices,
                percent(row.share),
                row.requests,
                row.last_seen
            )?;
        }
        for row in &usage.other {
            writeln!(
                out,
                "  {:<8} {:<24} {:>9} {:>7} {:>10}  {}",
                row.platform.as_str(),
                "(other)",
                row.devices,
                percent(row.share),
                row.requests,
                row.last_seen
            )?;
        }
        Ok(())
    }
}
