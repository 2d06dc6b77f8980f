//! WS-Security UsernameToken (ONVIF Core §5.12): PasswordDigest =
//! Base64(SHA-1(nonce_bytes ‖ created ‖ password)), with `created` in the
//! camera's clock, UTC, ending in `Z`, whole seconds or milliseconds.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use chrono::{DateTime, SecondsFormat, Utc};
use rand::Rng;
use sha1::{Digest, Sha1};

use super::ns;
use crate::xml::escape;

/// Compute the PasswordDigest over the *raw* nonce bytes.
pub fn password_digest(nonce: &[u8], created: &str, password: &str) -> String {
    let mut h = Sha1::new();
    h.update(nonce);
    h.update(created.as_bytes());
    h.update(password.as_bytes());
    B64.encode(h.finalize())
}

/// `Created` as cameras accept it: UTC, `Z` suffix, milliseconds at most.
/// Hikvision and others reject `+00:00` offsets and nanosecond fractions.
pub fn format_created(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// A fresh 20-byte nonce (ONVIF asks for at least 16 random bytes).
pub fn fresh_nonce() -> [u8; 20] {
    let mut n = [0u8; 20];
    rand::rng().fill_bytes(&mut n);
    n
}

/// The `<wsse:Security>` header for one request.
pub fn security_header(
    user: &str,
    password: &str,
    created: DateTime<Utc>,
    text_mode: bool,
) -> String {
    let created = format_created(created);
    let nonce = fresh_nonce();
    let (ptype, pvalue) = if text_mode {
        (ns::PASSWORD_TEXT, escape(password))
    } else {
        (
            ns::PASSWORD_DIGEST,
            password_digest(&nonce, &created, password),
        )
    };
    format!(
        concat!(
            r#"<wsse:Security s:mustUnderstand="1" xmlns:wsse="{wsse}" xmlns:wsu="{wsu}">"#,
            r#"<wsse:UsernameToken><wsse:Username>{user}</wsse:Username>"#,
            r#"<wsse:Password Type="{ptype}">{pvalue}</wsse:Password>"#,
            r#"<wsse:Nonce EncodingType="{b64t}">{nonce}</wsse:Nonce>"#,
            r#"<wsu:Created>{created}</wsu:Created></wsse:UsernameToken></wsse:Security>"#
        ),
        wsse = ns::WSSE,
        wsu = ns::WSU,
        user = escape(user),
        ptype = ptype,
        pvalue = pvalue,
        b64t = ns::BASE64_BINARY,
        nonce = B64.encode(nonce),
        created = created,
    )
}

/// Server side (the simulator): verify a digest token.
pub fn verify_digest(nonce_b64: &str, created: &str, password: &str, digest_b64: &str) -> bool {
    match B64.decode(nonce_b64.trim()) {
        Ok(nonce) => password_digest(&nonce, created.trim(), password) == digest_b64.trim(),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn onvif_programmers_guide_vector() {
        let nonce = B64.decode("LKqI6G/AikKCQrN0zqZFlg==").unwrap();
        assert_eq!(
            password_digest(&nonce, "2010-09-16T07:50:45Z", "userpassword"),
            "tuOSpGlFlIXsozq4HFNeeGeFLEI="
        );
        assert!(verify_digest(
            "LKqI6G/AikKCQrN0zqZFlg==",
            "2010-09-16T07:50:45Z",
            "userpassword",
            "tuOSpGlFlIXsozq4HFNeeGeFLEI="
        ));
    }

    #[test]
    fn created_is_utc_z_with_millis_not_offset_or_nanos() {
        let t = Utc.with_ymd_and_hms(2026, 11, 26, 3, 4, 5).unwrap()
            + chrono::Duration::nanoseconds(123_456_789);
        let s = format_created(t);
        assert_eq!(s, "2026-11-26T03:04:05.123Z");
        assert!(!s.contains("+00:00"));
    }

    #[test]
    fn nonce_is_fresh_and_long_enough() {
        let a = fresh_nonce();
        let b = fresh_nonce();
        assert!(a.len() >= 16);
        assert_ne!(a, b);
    }

    #[test]
    fn header_escapes_user_and_carries_digest() {
        let h = security_header("a<b", "pw", Utc::now(), false);
        assert!(h.contains("a&lt;b"));
        assert!(h.contains("#PasswordDigest"));
        assert!(!h.contains(">pw<"));
    }
}
