//! Byte ranges and entity tags for video (segments and exports): the
//! request headers read into a [`Wanted`], and the answer written from
//! what the service served — 200, 206 with `Content-Range`, 304, or 416.
//! Safari and iOS play MP4 only from servers that answer ranges.

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::fleet::console::recordings::{ByteRange, ExportFile, SegmentBytes, Served, Wanted};

/// The `Range`, `If-None-Match` and `If-Range` headers. A `Range` that is
/// not one well-formed byte range is ignored (the whole is sent), as RFC
/// 9110 allows.
pub fn wanted(headers: &HeaderMap) -> Wanted {
    let text = |h: header::HeaderName| headers.get(h).and_then(|v| v.to_str().ok());
    Wanted {
        range: text(header::RANGE).and_then(parse_range),
        if_none_match: text(header::IF_NONE_MATCH)
            .map(|v| v.split(',').map(|t| t.trim().to_string()).collect())
            .unwrap_or_default(),
        if_range: text(header::IF_RANGE).map(|t| t.trim().to_string()),
    }
}

/// `bytes=first-last`, `bytes=first-` or `bytes=-suffix`; anything else
/// (several ranges, other units, garbage) is None.
pub fn parse_range(v: &str) -> Option<ByteRange> {
    let spec = v.trim().strip_prefix("bytes=")?.trim();
    if spec.contains(',') {
        return None;
    }
    let (a, b) = spec.split_once('-')?;
    let (a, b) = (a.trim(), b.trim());
    let num = |s: &str| {
        (!s.is_empty() && s.len() <= 19 && s.bytes().all(|c| c.is_ascii_digit()))
            .then(|| s.parse::<u64>().ok())
            .flatten()
    };
    match (a.is_empty(), b.is_empty()) {
        (true, false) => Some(ByteRange::Suffix(num(b)?)),
        (false, true) => Some(ByteRange::From(num(a)?, None)),
        (false, false) => {
            let (first, last) = (num(a)?, num(b)?);
            (last >= first).then_some(ByteRange::From(first, Some(last)))
        }
        (true, true) => None,
    }
}

fn common(etag: &str, disposition: String) -> [(header::HeaderName, String); 5] {
    [
        (header::CONTENT_TYPE, "video/mp4".to_string()),
        (header::ACCEPT_RANGES, "bytes".to_string()),
        (header::ETAG, etag.to_string()),
        (header::CONTENT_DISPOSITION, disposition),
        // Private (behind a login) but revalidated with the tag.
        (header::CACHE_CONTROL, "private, no-cache".to_string()),
    ]
}

fn status_of(served: Served, total: u64) -> (StatusCode, Option<String>) {
    match served {
        Served::NotModified => (StatusCode::NOT_MODIFIED, None),
        Served::Unsatisfiable => (
            StatusCode::RANGE_NOT_SATISFIABLE,
            Some(format!("bytes */{total}")),
        ),
        Served::Full => (StatusCode::OK, None),
        Served::Partial { start, end } => (
            StatusCode::PARTIAL_CONTENT,
            Some(format!("bytes {start}-{end}/{total}")),
        ),
    }
}

/// A segment as the service served it; `disposition` is `inline` (the
/// player) or `attachment` (the API).
pub fn segment_response(s: SegmentBytes, disposition: &str) -> Response {
    let (status, content_range) = status_of(s.served, s.total);
    let mut r = (
        status,
        common(
            &s.etag,
            format!("{disposition}; filename=\"{}\"", s.filename),
        ),
        s.bytes,
    )
        .into_response();
    if let Some(cr) = content_range.and_then(|v| HeaderValue::from_str(&v).ok()) {
        r.headers_mut().insert(header::CONTENT_RANGE, cr);
    }
    r
}

/// An export, streamed from its file (256 KiB reads): all of it or the
/// asked-for range.
pub fn export_response(e: ExportFile) -> Response {
    let (status, content_range) = status_of(e.served, e.len);
    let (start, len) = match e.served {
        Served::Full => (0, e.len),
        Served::Partial { start, end } => (start, end - start + 1),
        Served::NotModified | Served::Unsatisfiable => (0, 0),
    };
    let headers = common(&e.etag, format!("attachment; filename=\"{}\"", e.filename));
    let body = match e.file {
        // One seek to the range's start (an lseek), then reads.
        Some(file)
            if len > 0
                && std::io::Seek::seek(&mut &file, std::io::SeekFrom::Start(start)).is_ok() =>
        {
            let file = tokio::fs::File::from_std(file);
            let stream = futures::stream::unfold((file, len), |(mut f, left)| async move {
                use tokio::io::AsyncReadExt;
                if left == 0 {
                    return None;
                }
                let mut buf = vec![0u8; left.min(256 * 1024) as usize];
                match f.read(&mut buf).await {
                    Ok(0) => None,
                    Ok(n) => {
                        buf.truncate(n);
                        Some((
                            Ok::<_, std::io::Error>(bytes::Bytes::from(buf)),
                            (f, left - n as u64),
                        ))
                    }
                    Err(e) => Some((Err(e), (f, 0))),
                }
            });
            axum::body::Body::from_stream(stream)
        }
        _ => axum::body::Body::empty(),
    };
    let mut r = (status, headers, body).into_response();
    if len > 0
        && let Ok(v) = HeaderValue::from_str(&len.to_string())
    {
        r.headers_mut().insert(header::CONTENT_LENGTH, v);
    }
    if let Some(cr) = content_range.and_then(|v| HeaderValue::from_str(&v).ok()) {
        r.headers_mut().insert(header::CONTENT_RANGE, cr);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_read_as_rfc_9110_writes_them() {
        assert_eq!(
            parse_range("bytes=0-63"),
            Some(ByteRange::From(0, Some(63)))
        );
        assert_eq!(parse_range("bytes=100-"), Some(ByteRange::From(100, None)));
        assert_eq!(parse_range("bytes=-500"), Some(ByteRange::Suffix(500)));
        assert_eq!(
            parse_range(" bytes = 5 - 9 "),
            None,
            "the unit is not spaced"
        );
        assert_eq!(
            parse_range("bytes= 5 - 9"),
            Some(ByteRange::From(5, Some(9)))
        );
        for bad in [
            "bytes=0-1,4-5",
            "items=0-1",
            "bytes=9-5",
            "bytes=-",
            "bytes=a-b",
            "",
            "bytes=99999999999999999999-",
        ] {
            assert_eq!(parse_range(bad), None, "{bad}");
        }
        let r = |v| parse_range(v).unwrap();
        assert_eq!(r("bytes=0-63").resolve(1000), Some((0, 63)));
        assert_eq!(r("bytes=990-2000").resolve(1000), Some((990, 999)));
        assert_eq!(r("bytes=-2000").resolve(1000), Some((0, 999)));
        assert_eq!(r("bytes=1000-").resolve(1000), None);
        assert_eq!(r("bytes=0-").resolve(0), None);
    }

    #[test]
    fn tags_decide_between_304_206_200_and_416() {
        let tag = "\"abc\"";
        let w = |range: Option<&str>, inm: &[&str], if_range: Option<&str>| Wanted {
            range: range.and_then(parse_range),
            if_none_match: inm.iter().map(|s| s.to_string()).collect(),
            if_range: if_range.map(str::to_string),
        };
        assert_eq!(w(None, &[tag], None).decide(tag, 10), Served::NotModified);
        assert_eq!(
            w(None, &["W/\"abc\""], None).decide(tag, 10),
            Served::NotModified
        );
        assert_eq!(w(None, &["\"old\""], None).decide(tag, 10), Served::Full);
        assert_eq!(
            w(Some("bytes=2-3"), &[], Some(tag)).decide(tag, 10),
            Served::Partial { start: 2, end: 3 }
        );
        assert_eq!(
            w(Some("bytes=2-3"), &[], Some("\"old\"")).decide(tag, 10),
            Served::Full
        );
        assert_eq!(
            w(Some("bytes=20-"), &[], None).decide(tag, 10),
            Served::Unsatisfiable
        );
    }
}
