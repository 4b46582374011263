use proptest::prelude::*;

use super::*;
use crate::selection::tests::{at, id, manifest_update, request, rollback_update};
use crate::{Decision, Error, ManifestRequest, ProtocolVersion, decide, rollout_bucket};

/// The standby revert a deployer would make for a rollout of `target` over `release`'s base.
fn standby_for(release: &ChannelRelease, target: &PublishedUpdate, n: u8) -> PublishedUpdate {
    let (kind, bytes) = standby_body(release.base.as_ref(), target.created_at, id(n)).unwrap();
    standby_update(kind, id(n), bytes, None).unwrap()
}

fn device(n: usize) -> ManifestRequest<'static> {
    let mut r = request(ProtocolVersion::V1);
    r.client_id = Some(format!("device-{n}").into());
    r
}

fn served(release: &ChannelRelease, r: &ManifestRequest) -> Option<UpdateId> {
    match decide(release, r).unwrap() {
        Decision::Manifest(u) | Decision::RollBackToEmbedded(u) => Some(u.id),
        _ => None,
    }
}

fn on(mut r: ManifestRequest<'static>, current: Option<UpdateId>) -> ManifestRequest<'static> {
    r.current_update_id = current.map(|c| c.to_string().into());
    r
}

#[test]
fn a_rollout_splits_devices_between_target_and_control() {
    let v1 = ChannelRelease::from(manifest_update(1, 10));
    let target = manifest_update(2, 20);
    let standby = standby_for(&v1, &target, 12);
    let release = v1.publish(target, 30, Some(standby)).unwrap();
    let mut on_target = 0;
    for n in 0..1000 {
        let got = served(&release, &device(n));
        assert!(got == Some(id(1)) || got == Some(id(2)), "{got:?}");
        on_target += usize::from(got == Some(id(2)));
        assert_eq!(
            got == Some(id(2)),
            rollout_bucket(&format!("device-{n}"), id(2)) < 30
        );
    }
    assert!(
        (270..330).contains(&on_target),
        "{on_target} of 1000 at 30 %"
    );
    // No EAS-Client-ID: never in a rollout.
    assert_eq!(served(&release, &request(ProtocolVersion::V1)), Some(id(1)));
}

#[test]
fn the_newest_update_is_the_rollout_target_even_after_a_revert_else_the_base() {
    assert_eq!(ChannelRelease::default().newest_id(), None);
    let v1 = ChannelRelease::from(manifest_update(1, 10));
    assert_eq!(v1.newest_id(), Some(id(1)));
    let v2 = manifest_update(2, 20);
    let standby = standby_for(&v1, &v2, 12);
    let rollout = v1.publish(v2, 30, Some(standby)).unwrap();
    assert_eq!(rollout.newest_id(), Some(id(2)));
    assert_eq!(rollout.revert().unwrap().newest_id(), Some(id(2)));
    assert_eq!(rollout.raise(100).unwrap().newest_id(), Some(id(2)));
}

#[test]
fn publishing_during_a_rollout_is_refused_so_rollouts_never_stack() {
    let v1 = ChannelRelease::from(manifest_update(1, 10));
    let v2 = manifest_update(2, 20);
    let standby = standby_for(&v1, &v2, 12);
    let release = v1.publish(v2, 10, Some(standby)).unwrap();
    let v3 = manifest_update(3, 30);
    let standby = standby_for(&release, &v3, 13);
    let err = release.publish(v3, 10, Some(standby)).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "update {} is being rolled out to 10% of devices; finish that rollout or revert it first",
            id(2)
        )
    );
    let on_v1 = (0..1000)
        .filter(|&n| served(&release, &device(n)) == Some(id(1)))
        .count();
    assert!(
        on_v1 >= 870,
        "{on_v1} of 1000 devices on v1 with v2 at 10 %"
    );
}

#[test]
fn raising_completes_and_lowering_is_refused() {
    let v1 = ChannelRelease::from(manifest_update(1, 10));
    let v2 = manifest_update(2, 20);
    let standby = standby_for(&v1, &v2, 12);
    let release = v1.publish(v2.clone(), 10, Some(standby)).unwrap();
    let err = release.raise(5).unwrap_err().to_string();
    assert_eq!(
        err,
        "the rollout is at 10%; lowering it to 5% would not take the update back from the devices that have it"
    );
    assert_eq!(release.raise(50).unwrap().rollout.unwrap().percentage, 50);
    let complete = release.raise(100).unwrap();
    assert_eq!(complete, ChannelRelease::from(v2));
    assert_eq!(
        complete.revert().unwrap_err().to_string(),
        "no rollout is in progress"
    );
    assert!(release.raise(101).is_err());
}

#[test]
fn a_revert_moves_devices_on_the_target_to_the_standby_and_tells_the_others_no_update() {
    let v1 = ChannelRelease::from(manifest_update(1, 10));
    let v2 = manifest_update(2, 20);
    let standby = standby_for(&v1, &v2, 12);
    assert!(standby.created_at > v2.created_at);
    let reverted = v1.publish(v2, 50, Some(standby)).unwrap().revert().unwrap();
    assert_eq!(served(&reverted, &on(device(1), Some(id(2)))), Some(id(12)));
    for current in [Some(id(1)), Some(id(12))] {
        assert_eq!(
            decide(&reverted, &on(device(1), current)).unwrap(),
            Decision::NoUpdateAvailable,
            "{current:?}"
        );
    }
    // A new install (on its embedded update) gets the control.
    assert_eq!(served(&reverted, &device(1)), Some(id(1)));
    assert!(
        reverted
            .revert()
            .unwrap_err()
            .to_string()
            .contains("was reverted")
    );
    // The next rollout keeps the control; the earlier standby is one of its aliases.
    let v3 = manifest_update(3, 40);
    let standby = standby_for(&reverted, &v3, 13);
    let next = reverted.publish(v3, 0, Some(standby)).unwrap();
    assert_eq!(next.base_aliases, vec![id(12)]);
    assert_eq!(
        decide(&next, &on(device(1), Some(id(12)))).unwrap(),
        Decision::NoUpdateAvailable
    );
}

#[test]
fn a_revert_over_the_embedded_update_rolls_devices_back_to_it() {
    let nothing = ChannelRelease::default();
    let v1 = manifest_update(1, 10);
    let standby = standby_for(&nothing, &v1, 11);
    assert_eq!(standby.kind, UpdateKind::RollBackToEmbedded);
    let reverted = nothing
        .publish(v1, 50, Some(standby))
        .unwrap()
        .revert()
        .unwrap();
    let mut r = on(device(1), Some(id(1)));
    r.embedded_update_id = Some("e0000000-0000-4000-8000-000000000000".into());
    assert_eq!(
        decide(&reverted, &r).unwrap(),
        Decision::RollBackToEmbedded(&reverted.rollout.as_ref().unwrap().standby)
    );
    r.current_update_id = r.embedded_update_id.clone();
    assert_eq!(decide(&reverted, &r).unwrap(), Decision::NoUpdate);
}

#[test]
fn failed_updates_are_never_served_again() {
    let v1 = ChannelRelease::from(manifest_update(1, 10));
    let v2 = manifest_update(2, 20);
    let standby = standby_for(&v1, &v2, 12);
    let release = v1.publish(v2, 99, Some(standby)).unwrap();
    let n = (0..100)
        .find(|&n| served(&release, &device(n)) == Some(id(2)))
        .unwrap();
    let mut r = device(n);
    r.recent_failed_update_ids = vec![id(2).to_string()];
    assert_eq!(served(&release, &r), Some(id(1)), "the control instead");
    r.recent_failed_update_ids
        .push(id(1).to_string().to_uppercase());
    assert_eq!(decide(&release, &r).unwrap(), Decision::NoUpdate);
    r.protocol_version = ProtocolVersion::V0;
    assert_eq!(decide(&release, &r).unwrap_err(), Error::NoUpdate);
    let reverted = release.revert().unwrap();
    let mut r = on(device(n), Some(id(2)));
    r.recent_failed_update_ids = vec![id(12).to_string()];
    assert_eq!(served(&reverted, &r), Some(id(1)));
}

#[test]
fn standbys_must_copy_the_control() {
    let v1 = ChannelRelease::from(manifest_update(1, 10));
    let v2 = manifest_update(2, 20);
    let wrong = manifest_update(12, 30);
    let err = v1
        .publish(v2.clone(), 10, Some(wrong))
        .unwrap_err()
        .to_string();
    assert!(err.contains("not a copy of the control update"), "{err}");
    let directive = rollback_update(12, 30);
    let err = v1
        .publish(v2.clone(), 10, Some(directive))
        .unwrap_err()
        .to_string();
    assert!(err.contains("must be its manifest under a new id"), "{err}");
    let (kind, bytes) = standby_body(v1.base.as_ref(), at(15), id(12)).unwrap();
    let early = standby_update(kind, id(12), bytes, None).unwrap();
    let err = v1
        .publish(v2.clone(), 10, Some(early))
        .unwrap_err()
        .to_string();
    assert!(err.contains("must be later than the target's"), "{err}");
    let err = v1.publish(v2, 10, None).unwrap_err().to_string();
    assert!(err.contains("needs its standby revert"), "{err}");
    let old = manifest_update(3, 5);
    assert!(
        v1.publish(old, 100, None)
            .unwrap_err()
            .to_string()
            .contains("not newer")
    );
}

/// One step of a random history.
#[derive(Debug, Clone)]
enum Step {
    Publish { percentage: u8, rollback: bool },
    Raise(u8),
    Revert,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => (prop_oneof![Just(100u8), 0u8..100], any::<bool>())
            .prop_map(|(percentage, rollback)| Step::Publish { percentage, rollback: rollback && percentage == 100 }),
        2 => (0u8..=100).prop_map(Step::Raise),
        1 => Just(Step::Revert),
    ]
}

/// The manifest bytes without `id` and `createdAt`: what a device runs.
fn code(update: &PublishedUpdate) -> Option<crate::Manifest> {
    let mut manifest = crate::Manifest::parse(&update.body.bytes).ok()?;
    manifest.id = id(0);
    manifest.created_at = at(0);
    Some(manifest)
}

fn replay(steps: &[Step]) -> ChannelRelease {
    let mut release = ChannelRelease::default();
    for (i, step) in steps.iter().enumerate() {
        let n = u8::try_from(i + 1).unwrap();
        let seconds = i64::from(n) * 10;
        let next = match step {
            Step::Publish {
                percentage,
                rollback,
            } => {
                let update = if *rollback {
                    rollback_update(n, seconds)
                } else {
                    manifest_update(n, seconds)
                };
                let standby = standby_for(&release, &update, n + 100);
                release.publish(update, *percentage, Some(standby))
            }
            Step::Raise(p) => release.raise(*p),
            Step::Revert => release.revert(),
        };
        match next {
            Ok(next) => release = next,
            Err(Error::Release { .. }) => {}
            Err(other) => panic!("{step:?} failed with {other}"),
        }
    }
    release
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn every_device_gets_the_target_or_the_control_and_never_what_it_failed(
        steps in proptest::collection::vec(step(), 0..12),
        devices in proptest::collection::vec((0usize..3, 0u8..4, any::<bool>()), 50),
    ) {
        let release = replay(&steps);
        prop_assert!(release.check().is_ok());
        let ids: Vec<UpdateId> = release.updates().map(|(_, u)| u.id).collect();
        let in_progress = release.rollout_in_progress().cloned();
        for (n, &(current, failed_mask, v1)) in devices.iter().enumerate() {
            let mut r = device(n);
            r.protocol_version = if v1 { ProtocolVersion::V1 } else { ProtocolVersion::V0 };
            r.current_update_id = ids.get(current).map(|c| c.to_string().into());
            r.embedded_update_id = Some("e0000000-0000-4000-8000-000000000000".into());
            r.recent_failed_update_ids = ids
                .iter()
                .enumerate()
                .filter(|(i, _)| failed_mask & (1 << i) != 0)
                .map(|(_, id)| id.to_string())
                .collect();
            let decision = match decide(&release, &r) {
                Ok(decision) => decision,
                Err(err) => {
                    prop_assert!(
                        !v1 && matches!(err, Error::NoUpdate | Error::RollbackNeedsProtocolV1),
                        "{err}"
                    );
                    continue;
                }
            };
            let (Decision::Manifest(update) | Decision::RollBackToEmbedded(update)) = decision else {
                continue;
            };
            prop_assert!(!r.recent_failed_update_ids.contains(&update.id.to_string()), "served a failed update");
            let control = release.base.as_ref();
            let target = release.rollout.as_ref().map(|r| &r.target);
            let is_target = target.is_some_and(|t| t.id == update.id);
            let control_code = control.is_some_and(|c| c.id == update.id)
                || (update.kind == UpdateKind::Manifest && control.and_then(code) == code(update))
                || (update.kind == UpdateKind::RollBackToEmbedded
                    && control.is_none_or(|c| c.kind == UpdateKind::RollBackToEmbedded));
            prop_assert!(is_target || control_code, "{:?} is neither target nor control", update.id);
            if is_target {
                let rollout = in_progress.as_ref().expect("a target is served only during its rollout");
                let bucket = rollout_bucket(&format!("device-{n}"), update.id);
                prop_assert!(bucket < rollout.percentage);
            }
        }
    }

    #[test]
    fn the_share_on_the_target_stays_within_its_percentage(percentage in 0u8..100, seed in any::<u8>()) {
        let base = ChannelRelease::from(manifest_update(seed, 10));
        let target = manifest_update(seed.wrapping_add(1), 20);
        let standby = standby_for(&base, &target, seed.wrapping_add(2));
        let release = base.publish(target.clone(), percentage, Some(standby)).unwrap();
        let devices = 2000usize;
        let on_target = (0..devices)
            .filter(|&n| served(&release, &device(n)) == Some(target.id))
            .count();
        let p = f64::from(percentage) / 100.0;
        let sigma = (p * (1.0 - p) * devices as f64).sqrt();
        let bound = p * devices as f64 + 4.0 * sigma + 1.0;
        prop_assert!((on_target as f64) <= bound, "{on_target} of {devices} at {percentage}%");
    }
}
