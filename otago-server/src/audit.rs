//! What the audit log records: who changed a project's settings or keys, and how. Entries are
//! written by the store in the same transaction as the change, so a change is never missing
//! from the log.

use otago_core::Timestamp;
use serde_json::{Value, json};

use crate::store::{AuditRecord, KeyRecord, ProjectRecord};

/// A settings change.
pub(crate) const SETTINGS_CHANGED: &str = "project.settings_changed";
/// A key created.
pub(crate) const KEY_CREATED: &str = "key.created";
/// A key revoked.
pub(crate) const KEY_REVOKED: &str = "key.revoked";

/// A certificate as the log shows it: the SHA-256 of its PEM text (hex) and its common name;
/// `null` for none.
fn certificate(pem: Option<&str>) -> Value {
    let Some(pem) = pem else {
        return Value::Null;
    };
    let digest = crate::ids::sha256(pem.trim().as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    let common_name = otago_core::SigningCertificate::from_pem(pem)
        .ok()
        .and_then(|cert| cert.common_name());
    json!({ "pem_sha256": hex, "common_name": common_name })
}

/// The `before` and `after` of every setting that differs between two states of a project,
/// `None` when none does.
pub(crate) fn settings_changes(before: &ProjectRecord, after: &ProjectRecord) -> Option<Value> {
    let mut changes = serde_json::Map::new();
    if before.require_signing != after.require_signing {
        changes.insert(
            "require_signing".into(),
            json!({ "before": before.require_signing, "after": after.require_signing }),
        );
    }
    if before.certificate_pem != after.certificate_pem {
        changes.insert(
            "certificate".into(),
            json!({
                "before": certificate(before.certificate_pem.as_deref()),
                "after": certificate(after.certificate_pem.as_deref()),
            }),
        );
    }
    if before.max_asset_bytes != after.max_asset_bytes {
        changes.insert(
            "max_asset_bytes".into(),
            json!({ "before": before.max_asset_bytes, "after": after.max_asset_bytes }),
        );
    }
    (!changes.is_empty()).then(|| json!({ "changes": changes }))
}

/// The entry for a created key.
pub(crate) fn key_created(key: &KeyRecord, actor: &str) -> AuditRecord {
    AuditRecord {
        seq: 0,
        project_ref: key.project_ref.clone(),
        at: key.created_at,
        actor: actor.to_owned(),
        action: KEY_CREATED.to_owned(),
        detail: json!({
            "key_id": key.id,
            "name": key.name,
            "role": key.role.as_str(),
            "expires_at": key.expires_at.map(|t| t.to_string()),
        }),
    }
}

/// The entry for a revoked key.
pub(crate) fn key_revoked(
    project_ref: &str,
    key_id: &str,
    actor: &str,
    at: Timestamp,
) -> AuditRecord {
    AuditRecord {
        seq: 0,
        project_ref: project_ref.to_owned(),
        at,
        actor: actor.to_owned(),
        action: KEY_REVOKED.to_owned(),
        detail: json!({ "key_id": key_id }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project(require_signing: bool, pem: Option<&str>) -> ProjectRecord {
        ProjectRecord {
            r#ref: "p_0123456789".into(),
            app: "a".into(),
            environment: "e".into(),
            require_signing,
            certificate_pem: pem.map(str::to_owned),
            max_asset_bytes: 10,
            created_at: Timestamp::from_unix_millis(0).unwrap(),
        }
    }

    #[test]
    fn only_changed_settings_are_recorded() {
        let on = project(true, Some("PEM"));
        assert_eq!(settings_changes(&on, &on), None);
        let off = project(false, None);
        let changes = settings_changes(&on, &off).unwrap();
        assert_eq!(
            changes["changes"]["require_signing"],
            json!({"before": true, "after": false})
        );
        let certificate = &changes["changes"]["certificate"];
        assert_eq!(certificate["after"], Value::Null);
        assert_eq!(
            certificate["before"]["pem_sha256"].as_str().unwrap().len(),
            64
        );
        assert!(changes["changes"].get("max_asset_bytes").is_none());
    }
}
