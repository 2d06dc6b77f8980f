//! SOAP envelopes: building SOAP 1.2 requests, reading 1.1 or 1.2 answers.

use super::fault::Fault;
use super::ns;
use crate::xml::{self, Element, XmlError};

/// Build a SOAP 1.2 request. `header` is pre-rendered header content (the
/// WS-Security block) or empty; `body` is the request element, which declares
/// its own namespace prefixes.
pub fn request(header: &str, body: &str) -> String {
    let mut s = String::with_capacity(256 + header.len() + body.len());
    s.push_str(r#"<?xml version="1.0" encoding="UTF-8"?><s:Envelope xmlns:s=""#);
    s.push_str(ns::SOAP12);
    s.push_str(r#"" xmlns:tt=""#);
    s.push_str(ns::TT);
    s.push_str(r#""><s:Header>"#);
    s.push_str(header);
    s.push_str("</s:Header><s:Body>");
    s.push_str(body);
    s.push_str("</s:Body></s:Envelope>");
    s
}

/// WS-Addressing 1.0 request headers: `Action`, `To`, `MessageID`, and each
/// serialised ReferenceParameter (already marked `IsReferenceParameter`).
pub fn addressing(
    action: &str,
    to: &str,
    message_id: &str,
    reference_parameters: &[String],
) -> String {
    let mut h = format!(
        r#"<wsa:Action xmlns:wsa="{0}">{1}</wsa:Action><wsa:To xmlns:wsa="{0}">{2}</wsa:To><wsa:MessageID xmlns:wsa="{0}">urn:uuid:{3}</wsa:MessageID>"#,
        ns::WSA_2005,
        crate::xml::escape(action),
        crate::xml::escape(to),
        crate::xml::escape(message_id),
    );
    for p in reference_parameters {
        h.push_str(p);
    }
    h
}

/// SOAP version seen in an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum SoapVersion {
    Soap11,
    Soap12,
    /// No recognisable envelope namespace (undeclared prefix or bare elements).
    Unknown,
}

/// What came back in a SOAP body.
#[derive(Debug)]
pub enum Reply {
    /// The first element of the body (the operation's response).
    Body(Element),
    Fault(Fault),
}

#[derive(Debug)]
pub struct Parsed {
    pub version: SoapVersion,
    pub reply: Reply,
    pub header: Option<Element>,
}

#[derive(Debug, thiserror::Error)]
pub enum EnvelopeError {
    #[error(transparent)]
    Xml(#[from] XmlError),
    #[error("not a SOAP envelope (root element <{0}>)")]
    NotEnvelope(String),
    #[error("SOAP envelope without a body")]
    NoBody,
    #[error("SOAP body is empty")]
    EmptyBody,
}

/// Parse an answer. Tolerates either SOAP version and undeclared prefixes.
pub fn parse(bytes: &[u8]) -> Result<Parsed, EnvelopeError> {
    let root = xml::parse(bytes)?;
    if root.local != "Envelope" {
        return Err(EnvelopeError::NotEnvelope(root.local));
    }
    let version = match root.ns_uri() {
        Some(ns::SOAP12) => SoapVersion::Soap12,
        Some(ns::SOAP11) => SoapVersion::Soap11,
        _ => SoapVersion::Unknown,
    };
    let mut header = None;
    let mut body = None;
    for c in root.children {
        match c.local.as_str() {
            "Header" => header = Some(c),
            "Body" if body.is_none() => body = Some(c),
            _ => {}
        }
    }
    let body = body.ok_or(EnvelopeError::NoBody)?;
    let first = body
        .children
        .into_iter()
        .next()
        .ok_or(EnvelopeError::EmptyBody)?;
    let reply = if first.local == "Fault" {
        Reply::Fault(Fault::from_element(&first))
    } else {
        Reply::Body(first)
    };
    Ok(Parsed {
        version,
        reply,
        header,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_is_soap12_with_header_and_body() {
        let r = request("<h/>", "<tds:GetHostname xmlns:tds=\"x\"/>");
        let p = parse(r.as_bytes()).unwrap();
        assert_eq!(p.version, SoapVersion::Soap12);
        match p.reply {
            Reply::Body(b) => assert_eq!(b.local, "GetHostname"),
            Reply::Fault(_) => panic!("not a fault"),
        }
    }

    #[test]
    fn soap11_answer_is_read() {
        let doc = br#"<SOAP-ENV:Envelope xmlns:SOAP-ENV="http://schemas.xmlsoap.org/soap/envelope/"><SOAP-ENV:Body><r:X xmlns:r="urn:r"/></SOAP-ENV:Body></SOAP-ENV:Envelope>"#;
        let p = parse(doc).unwrap();
        assert_eq!(p.version, SoapVersion::Soap11);
    }

    #[test]
    fn html_error_page_is_not_an_envelope() {
        assert!(matches!(
            parse(b"<html><body>404</body></html>"),
            Err(EnvelopeError::NotEnvelope(_))
        ));
    }
}
