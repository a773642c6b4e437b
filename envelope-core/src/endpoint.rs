//! The transport policy every network backend applies to its KMS endpoint.

use std::net::IpAddr;

use crate::error::{Error, Result};

/// Checks a KMS endpoint URL: `https://` always; plain `http://` only when its host is a
/// loopback address (`127.0.0.0/8`, `::1`, `localhost`) **and** the caller opted in (for a
/// local emulator or dev server). Anything else is refused with a message saying why.
pub fn check_kms_endpoint(endpoint: &str, allow_http_loopback: bool) -> Result<()> {
    if endpoint.starts_with("https://") {
        return Ok(());
    }
    let Some(rest) = endpoint.strip_prefix("http://") else {
        return Err(Error::InvalidConfig(format!(
            "KMS endpoint {endpoint:?} must start with https://"
        )));
    };
    let authority = rest.split('/').next().unwrap_or("");
    let host = match authority.rsplit_once(':') {
        Some((h, port)) if port.chars().all(|c| c.is_ascii_digit()) => h,
        _ => authority,
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let loopback = host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
    if !loopback {
        return Err(Error::InvalidConfig(format!(
            "plain http to {host:?} is refused: only loopback endpoints may use http"
        )));
    }
    if !allow_http_loopback {
        return Err(Error::InvalidConfig(format!(
            "plain http to {host} needs an explicit opt-in (allow_http_loopback, or ?http=loopback in the key URI)"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn https_always_http_only_loopback_with_opt_in() {
        assert!(check_kms_endpoint("https://kms.eu-west-1.amazonaws.com", false).is_ok());
        for ok in [
            "http://127.0.0.1:8200",
            "http://[::1]:8200",
            "http://localhost:5000/x",
        ] {
            assert!(check_kms_endpoint(ok, true).is_ok(), "{ok}");
            assert!(
                check_kms_endpoint(ok, false).is_err(),
                "{ok} without opt-in"
            );
        }
        for bad in [
            "http://10.0.0.5:8200",
            "http://vault.example",
            "ftp://x",
            "127.0.0.1:8200",
        ] {
            assert!(check_kms_endpoint(bad, true).is_err(), "{bad}");
        }
    }
}
