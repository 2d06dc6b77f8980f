//! HTTP authentication toward cameras: Digest (RFC 7616: MD5, SHA-256, several
//! challenges in one 401 or in several headers) and Basic only where a device
//! asks for it. Challenge parsing and the response maths come from the
//! `http-auth` crate; choosing the strongest challenge is ours.

use http::HeaderMap;
use http_auth::{ChallengeRef, PasswordClient, PasswordParams, digest::Algorithm};

/// Which HTTP scheme a device wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HttpScheme {
    DigestSha256,
    DigestMd5,
    Basic,
}

/// Parse every `WWW-Authenticate` header and pick the strongest challenge we
/// can answer: Digest SHA-256, then Digest MD5, then Basic (if allowed).
/// Well-formed challenges before a syntax error are still used.
pub fn choose(
    headers: &HeaderMap,
    allow_basic: bool,
) -> Result<(PasswordClient, HttpScheme), String> {
    let mut best: Option<(u8, PasswordClient, HttpScheme)> = None;
    let mut last_err = String::from("no WWW-Authenticate challenge");
    for value in headers.get_all(http::header::WWW_AUTHENTICATE) {
        let Ok(text) = value.to_str() else {
            last_err = "non-ASCII WWW-Authenticate header".into();
            continue;
        };
        for parsed in http_auth::parser::ChallengeParser::new(text) {
            let challenge = match parsed {
                Ok(c) => c,
                Err(e) => {
                    last_err = e.to_string();
                    break;
                }
            };
            match rank(&challenge, allow_basic) {
                Ok((score, client, scheme)) => {
                    if best.as_ref().is_none_or(|b| score > b.0) {
                        best = Some((score, client, scheme));
                    }
                }
                Err(e) => last_err = e,
            }
        }
    }
    best.map(|(_, c, s)| (c, s)).ok_or(last_err)
}

fn rank(
    c: &ChallengeRef<'_>,
    allow_basic: bool,
) -> Result<(u8, PasswordClient, HttpScheme), String> {
    if c.scheme.eq_ignore_ascii_case("Digest") {
        let d = http_auth::DigestClient::try_from(c)?;
        let (score, scheme) = match d.algorithm() {
            Algorithm::Sha256 | Algorithm::Sha512Trunc256 => (3, HttpScheme::DigestSha256),
            _ => (2, HttpScheme::DigestMd5),
        };
        return Ok((score, PasswordClient::Digest(d), scheme));
    }
    if c.scheme.eq_ignore_ascii_case("Basic") {
        if !allow_basic {
            return Err("device asks for Basic auth, not allowed here".into());
        }
        let b = http_auth::BasicClient::try_from(c)?;
        return Ok((1, PasswordClient::Basic(b), HttpScheme::Basic));
    }
    Err(format!("unsupported auth scheme {:?}", c.scheme))
}

/// The `Authorization` header value for one request. `uri` must equal the
/// request target (path and query) exactly.
pub fn respond(
    client: &mut PasswordClient,
    user: &str,
    password: &str,
    method: &str,
    uri: &str,
    body: Option<&[u8]>,
) -> Result<String, String> {
    let header = client.respond(&PasswordParams {
        username: user,
        password,
        uri,
        method,
        body,
    })?;
    Ok(quote_qop(header))
}

/// http-auth writes `qop=auth` bare, as RFC 7616 allows; several camera
/// firmwares only accept the quoted form, and every server we know accepts it.
fn quote_qop(header: String) -> String {
    header
        .replace(", qop=auth-int", ", qop=\"auth-int\"")
        .replace(", qop=auth,", ", qop=\"auth\",")
}

/// True when a 401's Digest challenge says `stale=true` (nonce expired, the
/// password was fine): retry with the new nonce instead of failing.
pub fn is_stale(client: &PasswordClient) -> bool {
    matches!(client, PasswordClient::Digest(d) if d.stale())
}

/// The request target of a URL as HTTP sends it: path plus query.
pub fn request_target(url: &url::Url) -> String {
    match url.query() {
        Some(q) => format!("{}?{}", url.path(), q),
        None => url.path().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(http::header::WWW_AUTHENTICATE, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn sha256_is_preferred_over_md5_in_one_header() {
        let h = headers(&[
            r#"Digest realm="cam", qop="auth", algorithm=MD5, nonce="abc", Digest realm="cam", qop="auth", algorithm=SHA-256, nonce="def""#,
        ]);
        let (_, scheme) = choose(&h, false).unwrap();
        assert_eq!(scheme, HttpScheme::DigestSha256);
    }

    #[test]
    fn sha256_is_preferred_across_headers() {
        let h = headers(&[
            r#"Digest realm="cam", qop="auth", nonce="abc""#,
            r#"Digest realm="cam", qop="auth", algorithm=SHA-256, nonce="def""#,
        ]);
        assert_eq!(choose(&h, false).unwrap().1, HttpScheme::DigestSha256);
    }

    #[test]
    fn basic_only_when_allowed() {
        let h = headers(&[r#"Basic realm="cam""#]);
        assert!(choose(&h, false).is_err());
        assert_eq!(choose(&h, true).unwrap().1, HttpScheme::Basic);
    }

    #[test]
    fn rfc2617_vector() {
        // RFC 2617 §3.5 example.
        let h = headers(&[
            r#"Digest realm="testrealm@host.com", qop="auth,auth-int", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41""#,
        ]);
        let (client, _) = choose(&h, false).unwrap();
        let PasswordClient::Digest(mut d) = client else {
            panic!("digest expected")
        };
        let resp = d
            .respond_with_testing_cnonce(
                &PasswordParams {
                    username: "Mufasa",
                    password: "Circle Of Life",
                    uri: "/dir/index.html",
                    method: "GET",
                    body: None,
                },
                "0a4f113b",
            )
            .unwrap();
        assert!(
            resp.contains(r#"response="6629fae49393a05397450978507c4ef1""#),
            "{resp}"
        );
        assert!(resp.contains(r#"uri="/dir/index.html""#));
        assert!(resp.contains("qop=auth"));
        let quoted = quote_qop(resp);
        assert!(quoted.contains(r#"qop="auth","#), "{quoted}");
    }

    #[test]
    fn request_target_keeps_query() {
        let u = url::Url::parse("http://h:8/snap.jpg?ch=1&x=2").unwrap();
        assert_eq!(request_target(&u), "/snap.jpg?ch=1&x=2");
    }
}
