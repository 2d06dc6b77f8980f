//! Known-answer tests from the specifications, independent of the code the
//! simulator shares with the client: if camfleet's WS-Security digest,
//! HTTP Digest, webhook signature or MTOM reading were wrong, a simulator
//! built on the same code would agree with it, and only these would fail.
//! Each expected value comes from the document named, or was worked out
//! with Python's hashlib/hmac (noted where so), never from camfleet.

use camfleet::onvif::{httpauth, mtom, wsse};

/// ONVIF Application Programmer's Guide, 6.1.1.3 (UsernameToken digest):
/// Digest = Base64(SHA-1(nonce bytes + Created + password)).
#[test]
fn ws_security_password_digest_matches_the_onvif_guide() {
    use base64::Engine;
    let nonce = base64::engine::general_purpose::STANDARD
        .decode("LKqI6G/AikKCQrN0zqZFlg==")
        .unwrap();
    assert_eq!(
        wsse::password_digest(&nonce, "2010-09-16T07:50:45Z", "userpassword"),
        "tuOSpGlFlIXsozq4HFNeeGeFLEI="
    );
    assert!(wsse::verify_digest(
        "LKqI6G/AikKCQrN0zqZFlg==",
        "2010-09-16T07:50:45Z",
        "userpassword",
        "tuOSpGlFlIXsozq4HFNeeGeFLEI="
    ));
    assert!(!wsse::verify_digest(
        "LKqI6G/AikKCQrN0zqZFlg==",
        "2010-09-16T07:50:46Z",
        "userpassword",
        "tuOSpGlFlIXsozq4HFNeeGeFLEI="
    ));
}

/// The header camfleet sends carries a digest that the formula above,
/// computed here with the `sha1` crate directly, reproduces.
#[test]
fn the_sent_security_header_is_consistent_with_the_formula() {
    use base64::Engine;
    use sha1::Digest;
    let created: chrono::DateTime<chrono::Utc> = "2026-12-06T04:33:22.123Z".parse().unwrap();
    let h = wsse::security_header("admin", "s3cret", created, false);
    let field = |tag: &str| {
        let start = h.find(&format!(":{tag}")).unwrap();
        let open = h[start..].find('>').unwrap() + start + 1;
        let close = h[open..].find('<').unwrap() + open;
        h[open..close].to_string()
    };
    let nonce = base64::engine::general_purpose::STANDARD
        .decode(field("Nonce"))
        .unwrap();
    let created_text = field("Created");
    assert_eq!(created_text, "2026-12-06T04:33:22.123Z");
    let mut sha = sha1::Sha1::new();
    sha.update(&nonce);
    sha.update(created_text.as_bytes());
    sha.update(b"s3cret");
    let want = base64::engine::general_purpose::STANDARD.encode(sha.finalize());
    assert_eq!(field("Password"), want, "{h}");
    assert!(h.contains("#PasswordDigest"), "{h}");
}

/// RFC 7616 §3.9.1's worked example, the response computed by the RFC's
/// formula (written out here, not camfleet's).
fn rfc7616_response(
    hash: fn(&[u8]) -> String,
    cnonce: &str,
    nc: &str,
    qop: &str,
    uri: &str,
) -> String {
    let ha1 = hash(b"Mufasa:http-auth@example.org:Circle of Life");
    let ha2 = hash(format!("GET:{uri}").as_bytes());
    hash(
        format!("{ha1}:7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v:{nc}:{cnonce}:{qop}:{ha2}")
            .as_bytes(),
    )
}

fn md5_hex(b: &[u8]) -> String {
    use md5::Digest;
    hex(&md5::Md5::digest(b))
}

fn sha256_hex(b: &[u8]) -> String {
    use sha2::Digest;
    hex(&sha2::Sha256::digest(b))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A `key=value` or `key="value"` parameter of an Authorization header.
fn param(header: &str, key: &str) -> String {
    let at = header
        .find(&format!(" {key}="))
        .or_else(|| header.find(&format!(",{key}=")))
        .unwrap_or_else(|| panic!("{key} in {header}"));
    let rest = &header[at + key.len() + 2..];
    if let Some(q) = rest.strip_prefix('"') {
        q[..q.find('"').unwrap()].to_string()
    } else {
        rest.split(',').next().unwrap().trim().to_string()
    }
}

#[test]
fn the_rfc_7616_example_values_hold_for_the_formula() {
    // The published responses of §3.9.1, for MD5 and SHA-256.
    let cnonce = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ";
    assert_eq!(
        rfc7616_response(md5_hex, cnonce, "00000001", "auth", "/dir/index.html"),
        "8ca523f5e9506fed4657c9700eebdbec"
    );
    assert_eq!(
        rfc7616_response(sha256_hex, cnonce, "00000001", "auth", "/dir/index.html"),
        "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
    );
}

#[test]
fn http_digest_answers_the_rfc_7616_challenge_by_its_formula() {
    for (algorithm, hash) in [
        ("MD5", md5_hex as fn(&[u8]) -> String),
        ("SHA-256", sha256_hex),
    ] {
        let mut headers = http::HeaderMap::new();
        headers.insert(
            http::header::WWW_AUTHENTICATE,
            format!(
                "Digest realm=\"http-auth@example.org\", qop=\"auth, auth-int\", algorithm={algorithm}, nonce=\"7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v\", opaque=\"FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS\""
            )
            .parse()
            .unwrap(),
        );
        let (mut client, _) = httpauth::choose(&headers, false).unwrap();
        let h = httpauth::respond(
            &mut client,
            "Mufasa",
            "Circle of Life",
            "GET",
            "/dir/index.html",
            None,
        )
        .unwrap();
        assert!(h.starts_with("Digest "), "{h}");
        assert_eq!(param(&h, "username"), "Mufasa");
        assert_eq!(param(&h, "realm"), "http-auth@example.org");
        assert_eq!(param(&h, "uri"), "/dir/index.html");
        assert_eq!(
            param(&h, "opaque"),
            "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"
        );
        let qop = param(&h, "qop");
        assert_eq!(qop, "auth", "{h}");
        let want = rfc7616_response(
            hash,
            &param(&h, "cnonce"),
            &param(&h, "nc"),
            &qop,
            "/dir/index.html",
        );
        assert_eq!(param(&h, "response"), want, "{algorithm}: {h}");
    }
}

/// camfleet's webhook signature: `sha256=` HMAC-SHA256 over
/// `"{timestamp}.{body}"`. Expected value from Python:
/// `hmac.new(b'webhook-secret', b'1764979200.{"alert":"offline","device":7}', hashlib.sha256).hexdigest()`.
#[test]
fn webhook_signature_known_answer() {
    let body = br#"{"alert":"offline","device":7}"#;
    let want = "sha256=7cc353cb099e9613a5b9dbfd50205b29a5b5593f6154e6bab4a9e083af78104e";
    assert_eq!(
        camfleet::notify::webhook::signature(b"webhook-secret", 1_764_979_200, body),
        want
    );
    assert!(camfleet::notify::webhook::verify(
        b"webhook-secret",
        1_764_979_200,
        body,
        want
    ));
    assert!(!camfleet::notify::webhook::verify(
        b"webhook-secret",
        1_764_979_201,
        body,
        want
    ));
}

/// XOP 1.0 (W3C) / RFC 2387: a multipart/related package whose root part
/// refers to a binary part by `cid:` (percent-encoded Content-ID, RFC
/// 2392); the root is found by `start`, not by position, and the binary
/// part's bytes come back exactly, CR LF and all.
#[test]
fn mtom_package_from_the_xop_rules() {
    let binary: &[u8] = b"\x00\x01\r\n--not-the-boundary\r\n\xff";
    let mut body = Vec::new();
    body.extend_from_slice(b"preamble to be ignored\r\n--MIME_boundary\r\n");
    body.extend_from_slice(b"Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: binary\r\nContent-ID: <backup/1@example.org>\r\n\r\n");
    body.extend_from_slice(binary);
    body.extend_from_slice(b"\r\n--MIME_boundary\r\n");
    body.extend_from_slice(b"Content-Type: application/xop+xml; charset=UTF-8; type=\"application/soap+xml\"\r\nContent-Transfer-Encoding: 8bit\r\nContent-ID: <mainpart@example.org>\r\n\r\n");
    body.extend_from_slice(br#"<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"><s:Body><Data><xop:Include xmlns:xop="http://www.w3.org/2004/08/xop/include" href="cid:backup%2F1@example.org"/></Data></s:Body></s:Envelope>"#);
    body.extend_from_slice(b"\r\n--MIME_boundary--\r\nepilogue\r\n");
    let ct = "Multipart/Related; boundary=MIME_boundary; type=\"application/xop+xml\"; start=\"<mainpart@example.org>\"; start-info=\"application/soap+xml\"";
    let (root, parts) = mtom::split_multipart(ct, &body).expect("a valid package");
    assert!(
        root.starts_with(b"<s:Envelope"),
        "{:?}",
        String::from_utf8_lossy(&root)
    );
    let part = parts
        .iter()
        .find(|(id, _)| id == "backup/1@example.org")
        .unwrap_or_else(|| panic!("{:?}", parts.iter().map(|p| &p.0).collect::<Vec<_>>()));
    assert_eq!(&part.1[..], binary);
    // The reference is inlined as base64, as if the answer had been inline.
    let mut el = camfleet::xml::parse(&root).unwrap();
    mtom::inline_attachments(&mut el, &parts);
    use base64::Engine;
    let data = el.find_local("Data").unwrap();
    assert_eq!(
        base64::engine::general_purpose::STANDARD
            .decode(data.text.trim())
            .unwrap(),
        binary
    );
}
