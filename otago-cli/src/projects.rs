//! `otago projects ...` and `otago keys ...`: thin calls of the management API.

use serde::Serialize;

use crate::client::{ApiKey, Client, CreatedKey, Project};
use crate::error::Result;
use crate::settings::{Credential, ServerSettings};

/// A created project, with the app.json snippet that points an app at it.
#[derive(Debug, Clone, Serialize)]
pub struct ProjectCreated {
    /// The project (`ref`, `update_url`, ...).
    #[serde(flatten)]
    pub project: Project,
    /// What to merge into app.json.
    pub app_json: serde_json::Value,
}

/// The projects the credentials see.
#[derive(Debug, Clone, Serialize)]
pub struct ProjectList {
    /// Projects.
    pub projects: Vec<Project>,
}

/// A created API key; `key` is the secret to use as OTAGO_API_KEY, shown only now.
#[derive(Debug, Clone, Serialize)]
pub struct KeyCreated {
    /// Project ref.
    pub project: String,
    /// Key id.
    pub id: String,
    /// Key name.
    pub name: String,
    /// The secret.
    pub key: String,
    /// Creation time.
    pub created_at: Option<String>,
}

/// A project's keys.
#[derive(Debug, Clone, Serialize)]
pub struct KeyList {
    /// Project ref.
    pub project: String,
    /// Keys.
    pub keys: Vec<ApiKey>,
}

/// A revoked key.
#[derive(Debug, Clone, Serialize)]
pub struct KeyRevoked {
    /// Project ref.
    pub project: String,
    /// Key id.
    pub id: String,
    /// Always `true`.
    pub revoked: bool,
}

fn client(server: &ServerSettings, credential: Credential) -> Result<Client> {
    Client::new(&server.url, Some(server.token(credential)?))
}

/// The app.json keys that point an app at a project.
#[must_use]
pub fn app_json_snippet(update_url: &str) -> serde_json::Value {
    serde_json::json!({
        "expo": {
            "runtimeVersion": { "policy": "appVersion" },
            "updates": { "url": update_url }
        }
    })
}

/// `otago projects create`.
///
/// # Errors
/// The server's error (409 when the app and environment exist).
pub async fn create_project(
    server: &ServerSettings,
    app: &str,
    environment: &str,
) -> Result<ProjectCreated> {
    let project = client(server, Credential::AdminFirst)?
        .create_project(app, environment)
        .await?;
    let app_json = app_json_snippet(&project.update_url);
    Ok(ProjectCreated { project, app_json })
}

/// `otago projects list`.
///
/// # Errors
/// The server's error.
pub async fn list_projects(server: &ServerSettings) -> Result<ProjectList> {
    let projects = client(server, Credential::AdminFirst)?
        .list_projects()
        .await?;
    Ok(ProjectList { projects })
}

/// `otago keys create`.
///
/// # Errors
/// The server's error.
pub async fn create_key(server: &ServerSettings, project: &str, name: &str) -> Result<KeyCreated> {
    let CreatedKey {
        id,
        name,
        secret,
        created_at,
    } = client(server, Credential::AdminFirst)?
        .create_key(project, name)
        .await?;
    Ok(KeyCreated {
        project: project.to_owned(),
        id,
        name,
        key: secret,
        created_at,
    })
}

/// `otago keys list`.
///
/// # Errors
/// The server's error.
pub async fn list_keys(server: &ServerSettings, project: &str) -> Result<KeyList> {
    let keys = client(server, Credential::AdminFirst)?
        .list_keys(project)
        .await?;
    Ok(KeyList {
        project: project.to_owned(),
        keys,
    })
}

/// `otago keys revoke`.
///
/// # Errors
/// The server's error (404 for an unknown key).
pub async fn revoke_key(
    server: &ServerSettings,
    project: &str,
    key_id: &str,
) -> Result<KeyRevoked> {
    client(server, Credential::AdminFirst)?
        .revoke_key(project, key_id)
        .await?;
    Ok(KeyRevoked {
        project: project.to_owned(),
        id: key_id.to_owned(),
        revoked: true,
    })
}
