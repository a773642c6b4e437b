//! The CRC32C end-to-end integrity checks Google recommends for Encrypt and Decrypt: the
//! client sends the CRC32C of what it sends and checks the CRC32C of what it receives, so
//! that a request or response corrupted in transit is an error instead of a wrong key.

use envelope_core::Error;
use google_cloud_kms_v1::model::{DecryptResponse, EncryptResponse};

/// The CRC32C of `bytes`, as Cloud KMS's `Int64Value` fields carry it.
pub(crate) fn crc32c(bytes: &[u8]) -> i64 {
    i64::from(crc32c::crc32c(bytes))
}

fn corrupted(operation: &'static str, what: &str) -> Error {
    Error::Kms {
        operation,
        message: format!(
            "integrity check failed: {what} (request or response corrupted in transit; retry)"
        ),
        source: None,
    }
}

/// Checks an Encrypt response: the service verified the plaintext's (and, when sent, the
/// AAD's) checksum, and the returned ciphertext matches the checksum returned with it.
pub(crate) fn check_encrypt(
    response: &EncryptResponse,
    sent_aad: bool,
    operation: &'static str,
) -> Result<(), Error> {
    if !response.verified_plaintext_crc32c {
        return Err(corrupted(
            operation,
            "Cloud KMS did not verify the plaintext's CRC32C",
        ));
    }
    if sent_aad && !response.verified_additional_authenticated_data_crc32c {
        return Err(corrupted(
            operation,
            "Cloud KMS did not verify the additional authenticated data's CRC32C",
        ));
    }
    match response.ciphertext_crc32c {
        Some(expected) if expected == crc32c(&response.ciphertext) => Ok(()),
        Some(_) => Err(corrupted(
            operation,
            "the ciphertext does not match its CRC32C",
        )),
        None => Err(corrupted(
            operation,
            "Cloud KMS returned no CRC32C for the ciphertext",
        )),
    }
}

/// Checks a Decrypt response: the plaintext matches the checksum returned with it.
pub(crate) fn check_decrypt(
    response: &DecryptResponse,
    operation: &'static str,
) -> Result<(), Error> {
    match response.plaintext_crc32c {
        Some(expected) if expected == crc32c(&response.plaintext) => Ok(()),
        Some(_) => Err(corrupted(
            operation,
            "the plaintext does not match its CRC32C",
        )),
        None => Err(corrupted(
            operation,
            "Cloud KMS returned no CRC32C for the plaintext",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use envelope_core::ErrorKind;

    #[test]
    fn known_answer() {
        // RFC 3720 B.4: 32 bytes of zeros.
        assert_eq!(crc32c(&[0u8; 32]), 0x8a91_36aa);
        assert_eq!(crc32c(b""), 0);
    }

    fn good_encrypt() -> EncryptResponse {
        EncryptResponse::new()
            .set_ciphertext(b"wrapped".to_vec())
            .set_ciphertext_crc32c(crc32c(b"wrapped"))
            .set_verified_plaintext_crc32c(true)
            .set_verified_additional_authenticated_data_crc32c(true)
    }

    #[test]
    fn encrypt_responses() {
        assert!(check_encrypt(&good_encrypt(), true, "wrap").is_ok());
        let flipped = good_encrypt().set_ciphertext(b"wrappee".to_vec());
        let no_crc = good_encrypt().set_or_clear_ciphertext_crc32c(None::<i64>);
        let unverified = good_encrypt().set_verified_plaintext_crc32c(false);
        let aad_unverified =
            good_encrypt().set_verified_additional_authenticated_data_crc32c(false);
        for (what, response) in [
            ("flipped ciphertext", &flipped),
            ("missing ciphertext CRC", &no_crc),
            ("plaintext CRC not verified", &unverified),
            ("AAD CRC not verified", &aad_unverified),
        ] {
            let err = check_encrypt(response, true, "wrap").unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Kms, "{what}");
            assert!(err.to_string().contains("integrity check failed"), "{err}");
        }
        // Without AAD the service has no AAD checksum to verify.
        assert!(check_encrypt(&aad_unverified, false, "wrap").is_ok());
    }

    #[test]
    fn decrypt_responses() {
        let good = DecryptResponse::new()
            .set_plaintext(vec![7u8; 32])
            .set_plaintext_crc32c(crc32c(&[7u8; 32]));
        assert!(check_decrypt(&good, "unwrap").is_ok());
        let flipped = good.clone().set_plaintext(vec![6u8; 32]);
        assert!(check_decrypt(&flipped, "unwrap").is_err());
        let missing = good.set_or_clear_plaintext_crc32c(None::<i64>);
        assert!(check_decrypt(&missing, "unwrap").is_err());
    }
}
