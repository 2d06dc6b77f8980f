//! Namespace URIs camfleet reads and writes. Matching is always by URI.

pub const SOAP12: &str = "http://www.w3.org/2003/05/soap-envelope";
pub const SOAP11: &str = "http://schemas.xmlsoap.org/soap/envelope/";
pub const WSSE: &str =
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd";
pub const WSU: &str =
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd";
pub const PASSWORD_DIGEST: &str = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#PasswordDigest";
pub const PASSWORD_TEXT: &str = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#PasswordText";
pub const BASE64_BINARY: &str = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-soap-message-security-1.0#Base64Binary";
pub const TDS: &str = "http://www.onvif.org/ver10/device/wsdl";
pub const TRT: &str = "http://www.onvif.org/ver10/media/wsdl";
pub const TR2: &str = "http://www.onvif.org/ver20/media/wsdl";
pub const TT: &str = "http://www.onvif.org/ver10/schema";
pub const TER: &str = "http://www.onvif.org/ver10/error";
pub const TEV: &str = "http://www.onvif.org/ver10/events/wsdl";
pub const TIMG: &str = "http://www.onvif.org/ver20/imaging/wsdl";
pub const TPTZ: &str = "http://www.onvif.org/ver20/ptz/wsdl";
pub const TRC: &str = "http://www.onvif.org/ver10/recording/wsdl";
pub const TSE: &str = "http://www.onvif.org/ver10/search/wsdl";
pub const TRP: &str = "http://www.onvif.org/ver10/replay/wsdl";
pub const TMD: &str = "http://www.onvif.org/ver10/deviceIO/wsdl";
pub const TAN: &str = "http://www.onvif.org/ver20/analytics/wsdl";
pub const WSA_2004: &str = "http://schemas.xmlsoap.org/ws/2004/08/addressing";
pub const WSD: &str = "http://schemas.xmlsoap.org/ws/2005/04/discovery";
pub const DN: &str = "http://www.onvif.org/ver10/network/wsdl";
pub const WSNT: &str = "http://docs.oasis-open.org/wsn/b-2";
pub const WSA_2005: &str = "http://www.w3.org/2005/08/addressing";
