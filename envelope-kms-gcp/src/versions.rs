//! Cloud KMS key versions as the SDK sees them: the version a header records, the current
//! one, their states, and a key's description.
//!
//! A header records the CryptoKeyVersion *id* (`3` of `…/cryptoKeys/K/cryptoKeyVersions/3`):
//! the key's name is already its key id, so the full version name would repeat it in every
//! ciphertext.

use std::time::{Duration, SystemTime};

use envelope_core::{Error, KeyDescription, KeyVersionInfo, KeyVersionState, RotationState};
use google_cloud_kms_v1::model::crypto_key_version::CryptoKeyVersionState;
use google_cloud_kms_v1::model::{CryptoKey, CryptoKeyVersion};

const VERSIONS: &str = "/cryptoKeyVersions/";

/// The version id in a CryptoKeyVersion name, which must belong to `key_name`.
pub(crate) fn version_id<'a>(
    key_name: &str,
    version_name: &'a str,
    operation: &'static str,
) -> Result<&'a str, Error> {
    version_name
        .strip_prefix(key_name)
        .and_then(|rest| rest.strip_prefix(VERSIONS))
        .filter(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()))
        .ok_or_else(|| Error::Kms {
            operation,
            message: format!(
                "Cloud KMS answered with version {version_name:?}, not a version of {key_name}"
            ),
            source: None,
        })
}

/// The version id named anywhere in a message (`…/cryptoKeyVersions/7 is not enabled…`),
/// or empty.
pub(crate) fn version_in_message(message: &str) -> String {
    message
        .split_once(VERSIONS)
        .map(|(_, rest)| {
            rest.chars()
                .take_while(char::is_ascii_digit)
                .collect::<String>()
        })
        .unwrap_or_default()
}

/// A CryptoKeyVersion state in the SDK's terms.
pub(crate) fn state(state: &CryptoKeyVersionState) -> KeyVersionState {
    match state {
        CryptoKeyVersionState::Enabled => KeyVersionState::Enabled,
        CryptoKeyVersionState::Disabled => KeyVersionState::Disabled,
        CryptoKeyVersionState::DestroyScheduled => KeyVersionState::PendingDestruction,
        CryptoKeyVersionState::Destroyed => KeyVersionState::Destroyed,
        other => KeyVersionState::Other(
            other
                .name()
                .map(str::to_owned)
                .or_else(|| other.value().map(|v| format!("state {v}")))
                .unwrap_or_else(|| "unknown".into()),
        ),
    }
}

fn system_time(t: &google_cloud_wkt::Timestamp) -> Option<SystemTime> {
    SystemTime::try_from(*t).ok()
}

fn version_info(key_name: &str, v: &CryptoKeyVersion) -> Result<KeyVersionInfo, Error> {
    Ok(KeyVersionInfo {
        version: version_id(key_name, &v.name, "describe")?.to_owned(),
        state: state(&v.state),
        created_at: v.create_time.as_ref().and_then(system_time),
    })
}

/// A key's description from GetCryptoKey and, when the caller could list them, its
/// versions (ListCryptoKeyVersions); without the list only the primary version is named.
pub(crate) fn describe(
    key: &CryptoKey,
    versions: Option<&[CryptoKeyVersion]>,
) -> Result<KeyDescription, Error> {
    let primary = key
        .primary
        .as_ref()
        .map(|p| version_info(&key.name, p))
        .transpose()?;
    let mut listed = match versions {
        Some(versions) => versions
            .iter()
            .map(|v| version_info(&key.name, v))
            .collect::<Result<Vec<_>, _>>()?,
        None => Vec::new(),
    };
    if let Some(primary) = &primary
        && !listed.iter().any(|v| v.version == primary.version)
    {
        listed.push(primary.clone());
    }
    // Numeric order: "10" after "9".
    listed.sort_by(|a, b| (a.version.len(), &a.version).cmp(&(b.version.len(), &b.version)));
    let period = key
        .rotation_period()
        .and_then(|d| Duration::try_from(**d).ok());
    Ok(KeyDescription {
        key_id: key.name.clone(),
        current_version: primary.as_ref().map(|p| p.version.clone()),
        versions: listed,
        rotation: RotationState {
            automatic: period.is_some(),
            period,
            next_rotation: key.next_rotation_time.as_ref().and_then(system_time),
            last_rotated: primary.and_then(|p| p.created_at),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use google_cloud_kms_v1::model::crypto_key::RotationSchedule;
    use google_cloud_wkt::Timestamp;

    const KEY: &str = "projects/p/locations/global/keyRings/r/cryptoKeys/k";

    fn version(id: &str, state: CryptoKeyVersionState, created: i64) -> CryptoKeyVersion {
        CryptoKeyVersion::new()
            .set_name(format!("{KEY}/cryptoKeyVersions/{id}"))
            .set_state(state)
            .set_create_time(Timestamp::new(created, 0).unwrap())
    }

    #[test]
    fn version_ids_come_only_from_versions_of_the_key() {
        assert_eq!(
            version_id(KEY, &format!("{KEY}/cryptoKeyVersions/12"), "wrap").unwrap(),
            "12"
        );
        for bad in [
            format!("{KEY}/cryptoKeyVersions/"),
            format!("{KEY}/cryptoKeyVersions/1a"),
            format!("{KEY}2/cryptoKeyVersions/1"),
            "projects/p/locations/global/keyRings/r/cryptoKeys/other/cryptoKeyVersions/1".into(),
            KEY.to_owned(),
            String::new(),
        ] {
            let err = version_id(KEY, &bad, "wrap").unwrap_err();
            assert_eq!(err.kind(), envelope_core::ErrorKind::Kms, "{bad}");
        }
    }

    #[test]
    fn versions_named_in_error_messages() {
        assert_eq!(
            version_in_message(&format!(
                "{KEY}/cryptoKeyVersions/7 is not enabled, current state is: DISABLED."
            )),
            "7"
        );
        assert_eq!(version_in_message("Permission denied"), "");
    }

    #[test]
    fn every_state_maps() {
        use CryptoKeyVersionState as S;
        assert_eq!(state(&S::Enabled), KeyVersionState::Enabled);
        assert_eq!(state(&S::Disabled), KeyVersionState::Disabled);
        assert_eq!(
            state(&S::DestroyScheduled),
            KeyVersionState::PendingDestruction
        );
        assert_eq!(state(&S::Destroyed), KeyVersionState::Destroyed);
        assert_eq!(
            state(&S::PendingGeneration),
            KeyVersionState::Other("PENDING_GENERATION".into())
        );
        assert_eq!(
            state(&S::from(99)),
            KeyVersionState::Other("state 99".into())
        );
    }

    /// What real Cloud KMS answers for a rotated key (drongo has one version only): the
    /// primary is the newest, older versions keep their states, the schedule is reported.
    #[test]
    fn description_of_a_rotated_key() {
        let key = CryptoKey::new()
            .set_name(KEY)
            .set_primary(version("10", CryptoKeyVersionState::Enabled, 2_000))
            .set_next_rotation_time(Timestamp::new(9_000, 0).unwrap())
            .set_rotation_schedule(RotationSchedule::RotationPeriod(Box::new(
                google_cloud_wkt::Duration::new(90 * 86_400, 0).unwrap(),
            )));
        let listed = [
            version("10", CryptoKeyVersionState::Enabled, 2_000),
            version("9", CryptoKeyVersionState::Disabled, 1_500),
            version("1", CryptoKeyVersionState::Destroyed, 1_000),
            version("2", CryptoKeyVersionState::DestroyScheduled, 1_100),
        ];
        let d = describe(&key, Some(&listed)).unwrap();
        assert_eq!(d.key_id, KEY);
        assert_eq!(d.current_version.as_deref(), Some("10"));
        let ids: Vec<_> = d.versions.iter().map(|v| v.version.as_str()).collect();
        assert_eq!(ids, ["1", "2", "9", "10"]);
        assert_eq!(d.versions[0].state, KeyVersionState::Destroyed);
        assert_eq!(d.versions[1].state, KeyVersionState::PendingDestruction);
        assert_eq!(d.versions[2].state, KeyVersionState::Disabled);
        assert!(d.rotation.automatic);
        assert_eq!(d.rotation.period, Some(Duration::from_secs(90 * 86_400)));
        assert_eq!(
            d.rotation.next_rotation,
            Some(SystemTime::UNIX_EPOCH + Duration::from_secs(9_000))
        );
        assert_eq!(
            d.rotation.last_rotated,
            Some(SystemTime::UNIX_EPOCH + Duration::from_secs(2_000))
        );
    }

    #[test]
    fn description_without_the_version_list_or_a_schedule() {
        let key = CryptoKey::new().set_name(KEY).set_primary(version(
            "3",
            CryptoKeyVersionState::Enabled,
            5,
        ));
        let d = describe(&key, None).unwrap();
        assert_eq!(d.current_version.as_deref(), Some("3"));
        assert_eq!(d.versions.len(), 1);
        assert!(!d.rotation.automatic);
        assert_eq!(d.rotation.period, None);
        // A key whose primary is not one of its own versions is refused, not trusted.
        let foreign =
            CryptoKey::new()
                .set_name(KEY)
                .set_primary(CryptoKeyVersion::new().set_name(
                    "projects/x/locations/global/keyRings/r/cryptoKeys/k/cryptoKeyVersions/1",
                ));
        assert!(describe(&foreign, None).is_err());
        // No primary (every version disabled or destroyed): no current version.
        let d = describe(&CryptoKey::new().set_name(KEY), None).unwrap();
        assert_eq!(d.current_version, None);
    }
}
