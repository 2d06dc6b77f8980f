//! A small, tolerant, namespace-aware XML tree for camera answers.
//!
//! Cameras answer with any prefix, SOAP 1.1 or 1.2, BOMs, invalid UTF-8, odd
//! whitespace and sometimes undeclared prefixes. We read the whole (size-capped)
//! body into a tree of elements keyed by *namespace URI + local name* and let
//! typed operations pick fields out of it, each with its own fallback.
//!
//! Safety rules: no DTD (a `<!DOCTYPE` is an error), no entity expansion beyond
//! the five predefined ones and character references, bounded nesting depth and
//! element count. It never panics on any input (see `fuzz/`).

use quick_xml::events::{BytesStart, Event};
use quick_xml::name::ResolveResult;
use quick_xml::reader::NsReader;

/// Deepest nesting accepted. SOAP answers from cameras stay under 20.
pub const MAX_DEPTH: usize = 64;
/// Most elements accepted in one document.
pub const MAX_ELEMENTS: usize = 200_000;

/// Where an element's name lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ns {
    /// A declared namespace URI (shared: a document has only a handful).
    Uri(std::sync::Arc<str>),
    /// No prefix and no default namespace.
    None,
    /// A prefix that was never declared (a common camera bug); matched by local name.
    Undeclared(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attr {
    pub ns: Ns,
    pub local: String,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Element {
    pub ns: Ns,
    pub local: String,
    pub attrs: Vec<Attr>,
    pub children: Vec<Element>,
    /// Concatenated character data directly inside this element.
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum XmlError {
    #[error("empty document")]
    Empty,
    #[error("document type declarations are not accepted")]
    Dtd,
    #[error("nesting deeper than {MAX_DEPTH}")]
    TooDeep,
    #[error("more than {MAX_ELEMENTS} elements")]
    TooMany,
    #[error("malformed XML at byte {pos}: {msg}")]
    Malformed { pos: u64, msg: String },
}

impl Element {
    /// True when this element has the local name and either the given
    /// namespace or an undeclared prefix (which we forgive).
    pub fn is(&self, ns: &str, local: &str) -> bool {
        self.local == local && self.ns_matches(ns)
    }

    /// The declared namespace URI, if any.
    pub fn ns_uri(&self) -> Option<&str> {
        match &self.ns {
            Ns::Uri(u) => Some(u),
            _ => None,
        }
    }

    fn ns_matches(&self, ns: &str) -> bool {
        match &self.ns {
            Ns::Uri(u) => &**u == ns,
            Ns::Undeclared(_) | Ns::None => true,
        }
    }

    /// First child with this namespace and local name.
    pub fn child(&self, ns: &str, local: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.is(ns, local))
    }

    /// All children with this namespace and local name.
    pub fn children_named<'a>(
        &'a self,
        ns: &'a str,
        local: &'a str,
    ) -> impl Iterator<Item = &'a Element> + 'a {
        self.children.iter().filter(move |c| c.is(ns, local))
    }

    /// First child with this local name in any namespace. Used where vendors
    /// are known to put a field in the wrong schema namespace.
    pub fn child_local(&self, local: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.local == local)
    }

    pub fn children_local<'a>(&'a self, local: &'a str) -> impl Iterator<Item = &'a Element> + 'a {
        self.children.iter().filter(move |c| c.local == local)
    }

    /// Follow a path of local names (any namespace), first match at each step.
    pub fn path_local(&self, path: &[&str]) -> Option<&Element> {
        let mut cur = self;
        for p in path {
            cur = cur.child_local(p)?;
        }
        Some(cur)
    }

    /// Trimmed text of a child found by local name path; `None` when missing or empty.
    pub fn text_at(&self, path: &[&str]) -> Option<String> {
        let t = self.path_local(path)?.text.trim();
        (!t.is_empty()).then(|| t.to_string())
    }

    /// Trimmed own text, `None` when empty.
    pub fn text_trimmed(&self) -> Option<&str> {
        let t = self.text.trim();
        (!t.is_empty()).then_some(t)
    }

    /// Attribute by local name (any namespace).
    pub fn attr(&self, local: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|a| a.local == local)
            .map(|a| a.value.as_str())
    }

    /// Depth-first search for the first descendant (or self) by namespace and name.
    pub fn find(&self, ns: &str, local: &str) -> Option<&Element> {
        if self.is(ns, local) {
            return Some(self);
        }
        self.children.iter().find_map(|c| c.find(ns, local))
    }

    /// Depth-first search by local name only.
    pub fn find_local(&self, local: &str) -> Option<&Element> {
        if self.local == local {
            return Some(self);
        }
        self.children.iter().find_map(|c| c.find_local(local))
    }
}

/// Strip a UTF-8/UTF-16 BOM and leading junk whitespace, decode lossily.
pub fn decode_lossy(bytes: &[u8]) -> std::borrow::Cow<'_, str> {
    let b = bytes.strip_prefix(&[0xEF, 0xBB, 0xBF]).unwrap_or(bytes);
    // Valid UTF-8 is the common case and `from_utf8` checks it much faster
    // than the lossy decoder walks it.
    match std::str::from_utf8(b) {
        Ok(s) => std::borrow::Cow::Borrowed(s),
        Err(_) => String::from_utf8_lossy(b),
    }
}

/// Parse a whole document into its root element.
pub fn parse(bytes: &[u8]) -> Result<Element, XmlError> {
    let text = decode_lossy(bytes);
    let text = text.trim_start_matches(|c: char| c.is_whitespace() || c == '\u{feff}');
    if text.is_empty() {
        return Err(XmlError::Empty);
    }
    let mut reader = NsReader::from_str(text);
    let cfg = reader.config_mut();
    cfg.trim_text(false);
    cfg.check_end_names = false; // some cameras close with the wrong prefix
    cfg.expand_empty_elements = false;

    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    let mut count = 0usize;
    let mut uris = UriCache::default();
    loop {
        let item = reader
            .read_resolved_event()
            .map(|(res, ev)| (resolve_ns(res, &mut uris), ev))
            .map_err(|e| e.to_string());
        let ev = match item {
            Ok(x) => x,
            Err(msg) => {
                return Err(XmlError::Malformed {
                    pos: reader.buffer_position(),
                    msg,
                });
            }
        };
        match ev {
            (res, ev @ (Event::Start(_) | Event::Empty(_))) => {
                count += 1;
                if count > MAX_ELEMENTS {
                    return Err(XmlError::TooMany);
                }
                if stack.len() >= MAX_DEPTH {
                    return Err(XmlError::TooDeep);
                }
                match ev {
                    Event::Start(start) => {
                        stack.push(make_element(&reader, res, &start, &mut uris))
                    }
                    Event::Empty(start) => {
                        let el = make_element(&reader, res, &start, &mut uris);
                        attach(&mut stack, &mut root, el);
                    }
                    _ => {}
                }
            }
            (_, Event::End(_)) => {
                if let Some(el) = stack.pop() {
                    attach(&mut stack, &mut root, el);
                }
            }
            (_, Event::Text(t)) => {
                if let Some(top) = stack.last_mut() {
                    let raw: &str = t.as_ref();
                    push_unescaped(&mut top.text, raw);
                }
            }
            (_, Event::GeneralRef(r)) => {
                if let Some(top) = stack.last_mut() {
                    let name: &str = r.as_ref();
                    let name = name.to_string();
                    push_reference(&mut top.text, &name);
                }
            }
            (_, Event::CData(c)) => {
                if let Some(top) = stack.last_mut() {
                    let c: &str = c.as_ref();
                    top.text.push_str(c);
                }
            }
            (_, Event::DocType(_)) => return Err(XmlError::Dtd),
            (_, Event::Eof) => break,
            _ => {}
        }
        if root.is_some() && stack.is_empty() {
            // Ignore anything after the root element (some cameras append junk).
            break;
        }
    }
    // Unclosed elements at EOF: close them (truncated bodies keep what arrived).
    while let Some(el) = stack.pop() {
        attach(&mut stack, &mut root, el);
    }
    root.ok_or(XmlError::Empty)
}

fn attach(stack: &mut [Element], root: &mut Option<Element>, el: Element) {
    match stack.last_mut() {
        Some(parent) => parent.children.push(el),
        None => {
            if root.is_none() {
                *root = Some(el);
            }
        }
    }
}

/// The few namespace URIs of one document, each allocated once. The reader
/// hands out the same slice for every use of one declaration, so the slice's
/// address finds it before any bytes are compared.
#[derive(Default)]
struct UriCache(Vec<(usize, usize, std::sync::Arc<str>)>);

impl UriCache {
    fn get(&mut self, uri: &str) -> std::sync::Arc<str> {
        let key = (uri.as_ptr() as usize, uri.len());
        if let Some((_, _, u)) = self.0.iter().find(|(p, l, _)| (*p, *l) == key) {
            return u.clone();
        }
        let u = match self.0.iter().find(|(_, _, u)| &**u == uri) {
            Some((_, _, u)) => u.clone(),
            None => uri.into(),
        };
        if self.0.len() < 64 {
            self.0.push((key.0, key.1, u.clone()));
        }
        u
    }
}

fn resolve_ns(res: ResolveResult<'_>, uris: &mut UriCache) -> Ns {
    match res {
        ResolveResult::Bound(ns) => Ns::Uri(uris.get(AsRef::<str>::as_ref(&ns))),
        ResolveResult::Unbound => Ns::None,
        ResolveResult::Unknown(p) => Ns::Undeclared(p.to_string()),
    }
}

fn make_element(
    reader: &NsReader<&[u8]>,
    ns: Ns,
    start: &BytesStart<'_>,
    uris: &mut UriCache,
) -> Element {
    let local = AsRef::<str>::as_ref(&start.local_name()).to_string();
    let mut attrs = Vec::new();
    for a in start.attributes().with_checks(false).flatten() {
        let key = a.key;
        if AsRef::<str>::as_ref(&key).starts_with("xmlns") {
            continue;
        }
        let (ares, alocal) = reader.resolver().resolve_attribute(key);
        let raw: &str = &a.value;
        let mut value = String::new();
        push_unescaped(&mut value, raw);
        attrs.push(Attr {
            ns: resolve_ns(ares, uris),
            local: AsRef::<str>::as_ref(&alocal).to_string(),
            value,
        });
    }
    Element {
        ns,
        local,
        attrs,
        children: Vec::new(),
        text: String::new(),
    }
}

/// Unescape text that may still contain entity references; unknown or broken
/// references are kept literally rather than failing the document.
fn push_unescaped(out: &mut String, s: &str) {
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        match after.find(';') {
            Some(j) if j <= 10 => {
                push_reference(out, &after[..j]);
                rest = &after[j + 1..];
            }
            _ => {
                out.push('&');
                rest = after;
            }
        }
    }
    out.push_str(rest);
}

fn push_reference(out: &mut String, name: &str) {
    let c = match name {
        "lt" => Some('<'),
        "gt" => Some('>'),
        "amp" => Some('&'),
        "apos" => Some('\''),
        "quot" => Some('"'),
        _ => {
            let num = if let Some(h) = name.strip_prefix("#x").or_else(|| name.strip_prefix("#X")) {
                u32::from_str_radix(h, 16).ok()
            } else if let Some(d) = name.strip_prefix('#') {
                d.parse::<u32>().ok()
            } else {
                None
            };
            num.and_then(char::from_u32)
        }
    };
    match c {
        Some(c) => out.push(c),
        None => {
            // Unknown entity: keep it literally, never expand.
            out.push('&');
            out.push_str(name);
            out.push(';');
        }
    }
}

/// Escape text for inclusion in XML we write.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_by_namespace_not_prefix() {
        let doc = br#"<x:Envelope xmlns:x="http://www.w3.org/2003/05/soap-envelope"><x:Body><foo:Thing xmlns:foo="urn:a">v</foo:Thing></x:Body></x:Envelope>"#;
        let root = parse(doc).unwrap();
        assert!(root.is("http://www.w3.org/2003/05/soap-envelope", "Envelope"));
        let body = root
            .child("http://www.w3.org/2003/05/soap-envelope", "Body")
            .unwrap();
        assert!(body.child("urn:a", "Thing").is_some());
        assert!(body.child("urn:b", "Thing").is_none());
    }

    #[test]
    fn undeclared_prefix_is_forgiven() {
        let root = parse(b"<a:Root><b:Child>1</b:Child></a:Root>").unwrap();
        assert_eq!(root.text_at(&["Child"]).as_deref(), Some("1"));
        assert!(root.child("urn:anything", "Child").is_some());
    }

    #[test]
    fn bom_and_invalid_utf8_are_tolerated() {
        let mut doc = vec![0xEF, 0xBB, 0xBF];
        doc.extend_from_slice(b"<R><N>caf\xE9</N></R>");
        let root = parse(&doc).unwrap();
        assert_eq!(root.text_at(&["N"]).unwrap(), "caf\u{fffd}");
    }

    #[test]
    fn doctype_is_rejected() {
        let doc = br#"<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x "boom">]><r>&x;</r>"#;
        assert_eq!(parse(doc), Err(XmlError::Dtd));
    }

    #[test]
    fn unknown_entity_is_kept_literally() {
        let root = parse(b"<r>a &x; &amp; &#65;</r>").unwrap();
        assert_eq!(root.text, "a &x; & A");
    }

    #[test]
    fn nesting_is_bounded() {
        let doc = "<a>".repeat(MAX_DEPTH + 5);
        assert_eq!(parse(doc.as_bytes()), Err(XmlError::TooDeep));
    }

    #[test]
    fn truncated_body_keeps_what_arrived() {
        let root = parse(b"<r><a>1</a><b>2").unwrap();
        assert_eq!(root.text_at(&["a"]).as_deref(), Some("1"));
        assert_eq!(root.text_at(&["b"]).as_deref(), Some("2"));
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for doc in [
            &b""[..],
            b"   ",
            b"\x00\x01\x02",
            b"<<<>>>",
            b"HTTP/1.1 200 OK",
        ] {
            let _ = parse(doc);
        }
        assert!(parse(b"").is_err());
    }
}
