//! The catalogue of every ONVIF operation camfleet sends.
//!
//! Each entry names its service namespace and SOAP action. The client builds
//! requests only from this table, and `tests/wsdl.rs` checks that `wsdl/`
//! declares each one with the same namespace and action, so the declared
//! contract and what goes on the wire cannot drift apart.
//!
//! To add an operation: add a constant here, declare it in the matching
//! `wsdl/*.wsdl`, then write its typed call in `device.rs`/`media.rs`.

use super::ns;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Operation {
    /// Local name of the request element, e.g. `GetDeviceInformation`.
    pub name: &'static str,
    /// Target namespace of the service's WSDL.
    pub namespace: &'static str,
    /// Which service endpoint answers it.
    pub service: Service,
}

impl Operation {
    /// The SOAP action URI: `{namespace}/{name}` for every ONVIF service we use.
    pub fn action(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

/// An ONVIF service whose endpoint a device advertises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Service {
    Device,
    Media,
    Media2,
    Events,
    Imaging,
    Ptz,
    Recording,
    Search,
    Replay,
    DeviceIo,
    Analytics,
}

impl Service {
    pub const fn namespace(self) -> &'static str {
        match self {
            Service::Device => ns::TDS,
            Service::Media => ns::TRT,
            Service::Media2 => ns::TR2,
            Service::Events => ns::TEV,
            Service::Imaging => ns::TIMG,
            Service::Ptz => ns::TPTZ,
            Service::Recording => ns::TRC,
            Service::Search => ns::TSE,
            Service::Replay => ns::TRP,
            Service::DeviceIo => ns::TMD,
            Service::Analytics => ns::TAN,
        }
    }

    pub fn from_namespace(uri: &str) -> Option<Service> {
        ALL_SERVICES
            .iter()
            .copied()
            .find(|s| s.namespace() == uri.trim())
    }
}

pub const ALL_SERVICES: [Service; 11] = [
    Service::Device,
    Service::Media,
    Service::Media2,
    Service::Events,
    Service::Imaging,
    Service::Ptz,
    Service::Recording,
    Service::Search,
    Service::Replay,
    Service::DeviceIo,
    Service::Analytics,
];

macro_rules! ops {
    ($($konst:ident = $svc:ident $name:literal;)*) => {
        $(pub const $konst: Operation = Operation {
            name: $name,
            namespace: Service::$svc.namespace(),
            service: Service::$svc,
        };)*
        /// Every operation the client can send.
        pub const ALL: &[Operation] = &[$($konst),*];
    };
}

ops! {
    GET_SYSTEM_DATE_AND_TIME = Device "GetSystemDateAndTime";
    GET_DEVICE_INFORMATION = Device "GetDeviceInformation";
    GET_SERVICES = Device "GetServices";
    GET_CAPABILITIES = Device "GetCapabilities";
    GET_SCOPES = Device "GetScopes";
    GET_HOSTNAME = Device "GetHostname";
    GET_NETWORK_INTERFACES = Device "GetNetworkInterfaces";
    GET_NTP = Device "GetNTP";
    GET_DNS = Device "GetDNS";
    GET_USERS = Device "GetUsers";
    MEDIA_GET_PROFILES = Media "GetProfiles";
    MEDIA_GET_STREAM_URI = Media "GetStreamUri";
    MEDIA_GET_SNAPSHOT_URI = Media "GetSnapshotUri";
    MEDIA_GET_VIDEO_ENCODER_CONFIGURATIONS = Media "GetVideoEncoderConfigurations";
    MEDIA2_GET_PROFILES = Media2 "GetProfiles";
    MEDIA2_GET_STREAM_URI = Media2 "GetStreamUri";
    MEDIA2_GET_SNAPSHOT_URI = Media2 "GetSnapshotUri";
    MEDIA2_GET_VIDEO_ENCODER_CONFIGURATIONS = Media2 "GetVideoEncoderConfigurations";
}
