//! SOAP faults and the classification every caller reasons with.
//!
//! Cameras report the same failure in many ways: HTTP 400/401/500 with or
//! without a Fault, or HTTP 200 with a Fault; with `ter:NotAuthorized`, with a
//! WS-Security code, or only with free text ("Sender not Authorized", "too
//! many attempt(s)"). [`classify`] folds all of these into one [`FaultClass`].

use crate::xml::Element;

/// A parsed SOAP fault (1.1 or 1.2).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Fault {
    /// Top-level code, local part only (`Sender`, `Receiver`, `Client`, `Server`).
    pub code: String,
    /// Subcodes, outermost first, local parts (`NotAuthorized`, `ActionNotSupported`).
    pub subcodes: Vec<String>,
    /// Reason text (first language given).
    pub reason: String,
    /// Detail text, flattened, if any.
    pub detail: String,
}

impl Fault {
    pub fn from_element(f: &Element) -> Fault {
        let mut fault = Fault::default();
        // SOAP 1.2: Code/Value, Code/Subcode/Value..., Reason/Text, Detail
        if let Some(code) = f.child_local("Code") {
            fault.code = local_part(&code.text_at(&["Value"]).unwrap_or_default());
            let mut cur = code.child_local("Subcode");
            while let Some(sc) = cur {
                if let Some(v) = sc.text_at(&["Value"]) {
                    fault.subcodes.push(local_part(&v));
                }
                cur = sc.child_local("Subcode");
            }
        }
        if let Some(reason) = f.child_local("Reason") {
            fault.reason = reason
                .child_local("Text")
                .and_then(|t| t.text_trimmed())
                .or_else(|| reason.text_trimmed())
                .unwrap_or_default()
                .to_string();
        }
        // SOAP 1.1: faultcode, faultstring, detail
        if let Some(fc) = f.text_at(&["faultcode"]) {
            let mut parts = fc.split('.');
            fault.code = local_part(parts.next().unwrap_or_default());
            fault.subcodes.extend(parts.map(local_part));
        }
        if let Some(fs) = f.text_at(&["faultstring"]) {
            fault.reason = fs;
        }
        if let Some(d) = f.child_local("Detail").or_else(|| f.child_local("detail")) {
            let mut s = String::new();
            flatten_text(d, &mut s);
            fault.detail = s.trim().to_string();
            // Some cameras put the real subcode in the detail.
            if fault.subcodes.is_empty() {
                for c in &d.children {
                    if let Some(v) = c.text_trimmed()
                        && v.contains(':')
                    {
                        fault.subcodes.push(local_part(v));
                    }
                }
            }
        }
        fault
    }

    /// Render as a SOAP 1.2 Fault body (used by the simulator).
    pub fn to_soap12(&self) -> String {
        use crate::xml::escape;
        let mut s = String::from("<s:Fault><s:Code><s:Value>s:");
        s.push_str(&escape(&self.code));
        s.push_str("</s:Value>");
        for sc in &self.subcodes {
            s.push_str("<s:Subcode><s:Value>ter:");
            s.push_str(&escape(sc));
            s.push_str("</s:Value>");
        }
        for _ in &self.subcodes {
            s.push_str("</s:Subcode>");
        }
        s.push_str(r#"</s:Code><s:Reason><s:Text xml:lang="en">"#);
        s.push_str(&escape(&self.reason));
        s.push_str("</s:Text></s:Reason></s:Fault>");
        s
    }
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.code)?;
        for s in &self.subcodes {
            write!(f, "/{s}")?;
        }
        if !self.reason.is_empty() {
            write!(f, ": {}", self.reason)?;
        }
        Ok(())
    }
}

fn local_part(q: &str) -> String {
    let q = q.trim();
    q.rsplit_once(':').map(|(_, l)| l).unwrap_or(q).to_string()
}

fn flatten_text(e: &Element, out: &mut String) {
    if let Some(t) = e.text_trimmed() {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(t);
    }
    for c in &e.children {
        flatten_text(c, out);
    }
}

/// What kind of failure this is, as a caller needs to act on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultClass {
    /// Credentials refused (or the account is locked). Never retried in a loop.
    Unauthorized,
    /// The device does not offer this operation or service.
    NotSupported,
    /// The request was understood and refused for its arguments.
    InvalidArgument,
    /// The device failed while handling a valid request.
    DeviceError,
    /// Connection refused/reset, DNS, TLS, HTTP-level trouble.
    Transport,
    /// No (complete) answer within the deadline.
    Timeout,
    /// The answer could not be understood.
    Malformed,
}

impl FaultClass {
    pub fn as_str(self) -> &'static str {
        match self {
            FaultClass::Unauthorized => "unauthorized",
            FaultClass::NotSupported => "not_supported",
            FaultClass::InvalidArgument => "invalid_argument",
            FaultClass::DeviceError => "device_error",
            FaultClass::Transport => "transport",
            FaultClass::Timeout => "timeout",
            FaultClass::Malformed => "malformed",
        }
    }
}

impl std::fmt::Display for FaultClass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

const AUTH_SUBCODES: &[&str] = &[
    "NotAuthorized",
    "FailedAuthentication",
    "InvalidSecurity",
    "InvalidSecurityToken",
    "FailedCheck",
    "SecurityTokenUnavailable",
    "MessageExpired",
    "AccountLocked",
];
const NOT_SUPPORTED_SUBCODES: &[&str] = &[
    "ActionNotSupported",
    "NotSupported",
    "NoSuchService",
    "OperationNotSupported",
    "InvalidAction",
    "EndpointUnavailable",
];
const INVALID_ARG_SUBCODES: &[&str] = &[
    "InvalidArgVal",
    "InvalidArgs",
    "InvalidArg",
    "NoProfile",
    "NoConfig",
    "NoEntity",
    "NoSource",
    "ConfigModify",
    "ConflictingConfig",
    "InvalidArgument",
    "UsernameClash",
    "PasswordTooLong",
    "UsernameTooShort",
    "PasswordTooWeak",
    // The generic faults of ONVIF Core (5.11.2.1) for a request the device
    // could not read: about its syntax, never its credentials (a device
    // that cannot read an MTOM request says `WellFormed`).
    "WellFormed",
    "TagMismatch",
    "Tag",
    "Namespace",
    "MissingAttr",
    "ProhibAttr",
];

/// Words that mean "your credentials were refused" in the reason text of
/// cameras that give no proper subcode.
fn reason_says_unauthorized(reason: &str) -> bool {
    let r = reason.to_ascii_lowercase();
    [
        "not authorized",
        "not authorised",
        "unauthorized",
        "authority failure",
        "authentication fail",
        "authentication error",
        "failed authentication",
        "password digest mismatch",
        "missing username",
        "invalid username",
        "wrong password",
        "sender not authorized",
        "attempt(s)",
        "locked",
        "access denied",
        "permission denied",
    ]
    .iter()
    .any(|w| r.contains(w))
}

fn reason_says_not_supported(reason: &str) -> bool {
    let r = reason.to_ascii_lowercase();
    [
        "not supported",
        "not implemented",
        "unsupported",
        "unknown action",
        "no such",
        "action not",
    ]
    .iter()
    .any(|w| r.contains(w))
}

/// The fault names, by subcode, a cause other than authentication: the
/// operation is not offered, or its arguments were refused. Only a subcode
/// counts: reason texts come in every wording and language, so an answer
/// without one says nothing about whether the credentials were accepted.
pub fn names_non_auth_cause(fault: &Fault) -> bool {
    let has = |set: &[&str]| {
        fault
            .subcodes
            .iter()
            .any(|s| set.iter().any(|w| s.eq_ignore_ascii_case(w)))
    };
    !has(AUTH_SUBCODES) && (has(NOT_SUPPORTED_SUBCODES) || has(INVALID_ARG_SUBCODES))
}

/// Classify a fault together with the HTTP status it came with.
pub fn classify(status: u16, fault: Option<&Fault>) -> FaultClass {
    if let Some(f) = fault {
        let has = |set: &[&str]| {
            f.subcodes
                .iter()
                .chain(std::iter::once(&f.code))
                .any(|s| set.iter().any(|w| s.eq_ignore_ascii_case(w)))
        };
        if has(AUTH_SUBCODES) || reason_says_unauthorized(&f.reason) {
            return FaultClass::Unauthorized;
        }
        if has(NOT_SUPPORTED_SUBCODES) || reason_says_not_supported(&f.reason) {
            return FaultClass::NotSupported;
        }
        if has(INVALID_ARG_SUBCODES) {
            return FaultClass::InvalidArgument;
        }
        if status == 401 || status == 403 {
            return FaultClass::Unauthorized;
        }
        let code = f.code.to_ascii_lowercase();
        if code == "sender" || code == "client" {
            return FaultClass::InvalidArgument;
        }
        if code == "versionmismatch" || code == "mustunderstand" {
            return FaultClass::NotSupported;
        }
        return FaultClass::DeviceError;
    }
    match status {
        401 | 403 => FaultClass::Unauthorized,
        404 | 405 | 501 => FaultClass::NotSupported,
        400 => FaultClass::InvalidArgument,
        500..=599 => FaultClass::DeviceError,
        _ => FaultClass::Malformed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xml;

    fn fault_of(doc: &str) -> Fault {
        let root = xml::parse(doc.as_bytes()).unwrap();
        Fault::from_element(root.find_local("Fault").unwrap())
    }

    #[test]
    fn soap12_subcodes_are_read_in_order() {
        let f = fault_of(
            r#"<e:Envelope xmlns:e="http://www.w3.org/2003/05/soap-envelope" xmlns:ter="http://www.onvif.org/ver10/error"><e:Body><e:Fault><e:Code><e:Value>e:Sender</e:Value><e:Subcode><e:Value>ter:NotAuthorized</e:Value></e:Subcode></e:Code><e:Reason><e:Text xml:lang="en">Sender not Authorized</e:Text></e:Reason></e:Fault></e:Body></e:Envelope>"#,
        );
        assert_eq!(f.code, "Sender");
        assert_eq!(f.subcodes, vec!["NotAuthorized"]);
        assert_eq!(classify(200, Some(&f)), FaultClass::Unauthorized);
        assert_eq!(classify(400, Some(&f)), FaultClass::Unauthorized);
    }

    #[test]
    fn free_text_only_lockout_is_unauthorized() {
        let f = Fault {
            code: "Receiver".into(),
            reason: "Too many failed attempt(s), try later".into(),
            ..Default::default()
        };
        assert_eq!(classify(500, Some(&f)), FaultClass::Unauthorized);
    }

    #[test]
    fn roundtrip_through_simulator_rendering() {
        let f = Fault {
            code: "Receiver".into(),
            subcodes: vec!["ActionNotSupported".into()],
            reason: "no".into(),
            detail: String::new(),
        };
        let doc = format!(
            r#"<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" xmlns:ter="http://www.onvif.org/ver10/error"><s:Body>{}</s:Body></s:Envelope>"#,
            f.to_soap12()
        );
        let g = fault_of(&doc);
        assert_eq!(g, f);
        assert_eq!(classify(500, Some(&g)), FaultClass::NotSupported);
    }

    #[test]
    fn soap11_wsse_faultcode_is_unauthorized() {
        let f = fault_of(
            r#"<S:Envelope xmlns:S="http://schemas.xmlsoap.org/soap/envelope/"><S:Body><S:Fault><faultcode>wsse:FailedAuthentication</faultcode><faultstring>The security token could not be authenticated</faultstring></S:Fault></S:Body></S:Envelope>"#,
        );
        assert_eq!(f.code, "FailedAuthentication");
        assert_eq!(classify(500, Some(&f)), FaultClass::Unauthorized);
    }

    #[test]
    fn status_alone_classifies() {
        assert_eq!(classify(401, None), FaultClass::Unauthorized);
        assert_eq!(classify(404, None), FaultClass::NotSupported);
        assert_eq!(classify(500, None), FaultClass::DeviceError);
        assert_eq!(classify(200, None), FaultClass::Malformed);
    }
}
