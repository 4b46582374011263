//! Standby reverts: made and signed by the deployer together with a rollout, kept unserved
//! by the server, and served the moment the rollout is reverted.
//!
//! expo-updates never launches an update older than the one it runs, so offering the control
//! again after a revert moves no device back. The standby is the control's code under a new
//! id and a `createdAt` just after the target's (or, when the control is the embedded update,
//! a `rollBackToEmbedded` directive with a later `commitTime`), so devices on the target take
//! it. The deployer signs it, so the server never needs the private key.

use crate::{
    Directive, Error, Manifest, PublishedUpdate, Result, StoredSignature, Timestamp, UpdateId,
    UpdateKind,
};

/// The bytes of the standby revert for a rollout of `target` over `control` (`None`: the
/// devices' embedded update), under the fresh id `id`: the control's manifest with that id
/// and a `createdAt` one millisecond after the target's, or a `rollBackToEmbedded` directive
/// with that `commitTime` when the control is the embedded update or a rollback to it.
///
/// # Errors
/// [`Error::InvalidManifest`] when the control's manifest does not parse, or the target is
/// dated at the end of time.
pub fn standby_body(
    control: Option<&PublishedUpdate>,
    target_created_at: Timestamp,
    id: UpdateId,
) -> Result<(UpdateKind, Vec<u8>)> {
    let created_at = Timestamp::from_unix_millis(target_created_at.unix_millis() + 1)?;
    match control {
        Some(control) if control.kind == UpdateKind::Manifest => {
            let mut manifest = Manifest::parse(&control.body.bytes)?;
            manifest.id = id;
            manifest.created_at = created_at;
            Ok((UpdateKind::Manifest, manifest.to_bytes()))
        }
        _ => Ok((
            UpdateKind::RollBackToEmbedded,
            Directive::roll_back_to_embedded(created_at).to_bytes(),
        )),
    }
}

/// The standby as a published update, from its bytes and signature.
///
/// # Errors
/// [`Error::InvalidManifest`] when the bytes are not a manifest or directive of `kind`.
pub fn standby_update(
    kind: UpdateKind,
    id: UpdateId,
    bytes: impl Into<bytes::Bytes>,
    signature: Option<StoredSignature>,
) -> Result<PublishedUpdate> {
    let update = match kind {
        UpdateKind::Manifest => PublishedUpdate::manifest(bytes, signature)?,
        UpdateKind::RollBackToEmbedded => {
            PublishedUpdate::roll_back_to_embedded(id, bytes, signature)?
        }
    };
    if update.id != id {
        return Err(Error::InvalidManifest {
            reason: format!("the standby's manifest has id {}, not {id}", update.id),
        });
    }
    Ok(update)
}

/// Checks that `standby` is a valid standby revert of a rollout of `target` over `control`:
/// newer than the target, with the control's code (same manifest but for `id` and
/// `createdAt`) or, for an embedded control, a `rollBackToEmbedded` directive.
///
/// # Errors
/// [`Error::Release`] naming what differs.
pub fn check_standby(
    control: Option<&PublishedUpdate>,
    target: &PublishedUpdate,
    standby: &PublishedUpdate,
) -> Result<()> {
    let refuse = |reason: String| Err(Error::Release { reason });
    if standby.created_at <= target.created_at {
        return refuse(format!(
            "the standby revert's date {} must be later than the target's {}, or devices on the target would ignore it",
            standby.created_at, target.created_at
        ));
    }
    if [Some(target.id), control.map(|c| c.id)].contains(&Some(standby.id)) {
        return refuse(format!(
            "the standby revert reuses update id {}; give it a new one",
            standby.id
        ));
    }
    match control.filter(|c| c.kind == UpdateKind::Manifest) {
        Some(control) => {
            if standby.kind != UpdateKind::Manifest {
                return refuse(format!(
                    "the control is update {}, so the standby revert must be its manifest under a new id, not a directive",
                    control.id
                ));
            }
            let mut copy = Manifest::parse(&standby.body.bytes)?;
            copy.id = control.id;
            copy.created_at = control.created_at;
            if copy != Manifest::parse(&control.body.bytes)? {
                return refuse(format!(
                    "the standby revert is not a copy of the control update {}: only `id` and `createdAt` may differ",
                    control.id
                ));
            }
        }
        None => {
            if standby.kind != UpdateKind::RollBackToEmbedded {
                return refuse(
                    "the control is the embedded update, so the standby revert must be a rollBackToEmbedded directive"
                        .to_owned(),
                );
            }
        }
    }
    Ok(())
}
