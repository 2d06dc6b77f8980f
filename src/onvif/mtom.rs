//! MTOM/XOP (SOAP 1.2 with binary attachments, `multipart/related`): the
//! answers of GetSystemBackup (and the legacy firmware upgrade request the
//! simulator reads). The root part is the envelope; `xop:Include` elements
//! point at the other parts by Content-ID.

use base64::Engine as _;
use bytes::Bytes;

use crate::xml::Element;

/// Split a `multipart/related` (MTOM) body into the root part (the SOAP
/// envelope) and the attachments by Content-ID (without `<>`).
pub fn split_multipart(content_type: &str, body: &[u8]) -> Option<(Bytes, Vec<(String, Bytes)>)> {
    let param = |name: &str| {
        content_type.split(';').find_map(|p| {
            let (k, v) = p.trim().split_once('=')?;
            (k.trim().eq_ignore_ascii_case(name)).then(|| v.trim().trim_matches('"').to_string())
        })
    };
    let boundary = format!("--{}", param("boundary")?);
    let start = param("start").map(|s| s.trim_matches(|c| c == '<' || c == '>').to_string());
    let mut parts = Vec::new();
    let mut rest = body;
    loop {
        let i = find(rest, boundary.as_bytes())?;
        rest = &rest[i + boundary.len()..];
        if rest.starts_with(b"--") {
            break;
        }
        let end = find(rest, boundary.as_bytes())?;
        let part = &rest[..end];
        let part = part.strip_prefix(b"\r\n").unwrap_or(part);
        let split = find(part, b"\r\n\r\n")?;
        let headers = std::str::from_utf8(&part[..split]).ok()?;
        let mut content = &part[split + 4..];
        content = content.strip_suffix(b"\r\n").unwrap_or(content);
        let cid = headers
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.trim()
                    .eq_ignore_ascii_case("content-id")
                    .then(|| v.trim().trim_matches(|c| c == '<' || c == '>').to_string())
            })
            .unwrap_or_default();
        parts.push((cid, Bytes::copy_from_slice(content)));
    }
    let root_at = start
        .and_then(|s| parts.iter().position(|(c, _)| *c == s))
        .unwrap_or(0);
    if parts.is_empty() {
        return None;
    }
    let root = parts.remove(root_at).1;
    Some((root, parts))
}

pub(crate) fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Replace every `xop:Include href="cid:…"` with the attachment's bytes as
/// base64 text in its parent, so callers read MTOM and inline answers the
/// same way. Unknown references are left as they are.
pub fn inline_attachments(el: &mut Element, parts: &[(String, Bytes)]) {
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut found: Option<String> = None;
    el.children.retain(|c| {
        if c.local != "Include" {
            return true;
        }
        let href = c
            .attrs
            .iter()
            .find(|a| a.local == "href")
            .map(|a| a.value.clone())
            .unwrap_or_default();
        let cid = href.strip_prefix("cid:").unwrap_or(&href);
        // Content-IDs may be percent-encoded in the reference.
        let decoded = super::types::percent_decode(cid);
        match parts.iter().find(|(id, _)| *id == cid || *id == decoded) {
            Some((_, data)) => {
                found = Some(b64.encode(data));
                false
            }
            None => true,
        }
    });
    if let Some(text) = found {
        el.text = text;
    }
    for c in &mut el.children {
        inline_attachments(c, parts);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 14: a `cid:` with `%` before a multi-byte character sliced a
    /// string inside the character and panicked.
    #[test]
    fn a_percent_before_a_multibyte_character_does_not_panic() {
        let body = "--b1\r\nContent-ID: <root>\r\n\r\n<r><Data><xop:Include xmlns:xop=\"http://www.w3.org/2004/08/xop/include\" href=\"cid:%a\u{e9}\"/></Data></r>\r\n--b1\r\nContent-ID: <x>\r\n\r\nhello\r\n--b1--\r\n";
        let (root, parts) =
            split_multipart("multipart/related; boundary=\"b1\"", body.as_bytes()).unwrap();
        let mut el = crate::xml::parse(&root).unwrap();
        inline_attachments(&mut el, &parts);
        assert_eq!(super::super::types::percent_decode("%a\u{e9}"), "%a\u{e9}");
        assert_eq!(super::super::types::percent_decode("%"), "%");
        assert_eq!(
            super::super::types::percent_decode("file%401%4"),
            "file@1%4"
        );
        assert_eq!(super::super::types::percent_decode("%e9"), "\u{fffd}");
    }

    #[test]
    fn an_mtom_answer_reads_like_an_inline_one() {
        let body = b"--b1\r\nContent-Type: application/xop+xml\r\nContent-ID: <root>\r\n\r\n<r><Data><xop:Include xmlns:xop=\"http://www.w3.org/2004/08/xop/include\" href=\"cid:file%401\"/></Data></r>\r\n--b1\r\nContent-ID: <file@1>\r\n\r\nhello\r\n--b1--\r\n";
        let (root, parts) =
            split_multipart("multipart/related; boundary=\"b1\"; start=\"<root>\"", body).unwrap();
        let mut el = crate::xml::parse(&root).unwrap();
        inline_attachments(&mut el, &parts);
        assert_eq!(el.text_at(&["Data"]).as_deref(), Some("aGVsbG8="));
        assert!(
            split_multipart("multipart/related", body).is_none(),
            "no boundary"
        );
        assert!(split_multipart("multipart/related; boundary=zz", body).is_none());
    }
}
