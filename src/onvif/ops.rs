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
    /// The SOAP action when it is not `{namespace}/{name}`: the event
    /// operations take theirs from the WSDL port type
    /// (`…/EventPortType/CreatePullPointSubscriptionRequest`).
    pub explicit_action: Option<&'static str>,
}

impl Operation {
    /// The SOAP action URI: `{namespace}/{name}` for the device and media
    /// services, the declared one for events and WS-BaseNotification.
    pub fn action(&self) -> String {
        match self.explicit_action {
            Some(a) => a.to_string(),
            None => format!("{}/{}", self.namespace, self.name),
        }
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
    ($($konst:ident = $svc:ident $name:literal $(in $nsuri:ident)? $(action $action:literal)?;)*) => {
        $(pub const $konst: Operation = Operation {
            name: $name,
            namespace: ops!(@ns $svc $($nsuri)?),
            service: Service::$svc,
            explicit_action: ops!(@action $($action)?),
        };)*
        /// Every operation the client can send.
        pub const ALL: &[Operation] = &[$($konst),*];
    };
    (@ns $svc:ident) => { Service::$svc.namespace() };
    (@ns $svc:ident $nsuri:ident) => { ns::$nsuri };
    (@action) => { None };
    (@action $action:literal) => { Some($action) };
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
    SET_SYSTEM_DATE_AND_TIME = Device "SetSystemDateAndTime";
    SET_NTP = Device "SetNTP";
    SET_DNS = Device "SetDNS";
    SET_HOSTNAME = Device "SetHostname";
    SET_HOSTNAME_FROM_DHCP = Device "SetHostnameFromDHCP";
    CREATE_USERS = Device "CreateUsers";
    SET_USER = Device "SetUser";
    DELETE_USERS = Device "DeleteUsers";
    GET_DISCOVERY_MODE = Device "GetDiscoveryMode";
    SET_DISCOVERY_MODE = Device "SetDiscoveryMode";
    SET_SCOPES = Device "SetScopes";
    SYSTEM_REBOOT = Device "SystemReboot";
    SET_NETWORK_INTERFACES = Device "SetNetworkInterfaces";
    START_FIRMWARE_UPGRADE = Device "StartFirmwareUpgrade";
    UPGRADE_SYSTEM_FIRMWARE = Device "UpgradeSystemFirmware";
    GET_SYSTEM_BACKUP = Device "GetSystemBackup";
    RESTORE_SYSTEM = Device "RestoreSystem";
    MEDIA_GET_PROFILES = Media "GetProfiles";
    MEDIA_GET_STREAM_URI = Media "GetStreamUri";
    MEDIA_GET_SNAPSHOT_URI = Media "GetSnapshotUri";
    MEDIA_GET_VIDEO_ENCODER_CONFIGURATIONS = Media "GetVideoEncoderConfigurations";
    MEDIA_GET_VIDEO_ENCODER_CONFIGURATION_OPTIONS = Media "GetVideoEncoderConfigurationOptions";
    MEDIA_SET_VIDEO_ENCODER_CONFIGURATION = Media "SetVideoEncoderConfiguration";
    MEDIA2_GET_PROFILES = Media2 "GetProfiles";
    MEDIA2_GET_STREAM_URI = Media2 "GetStreamUri";
    MEDIA2_GET_SNAPSHOT_URI = Media2 "GetSnapshotUri";
    MEDIA2_GET_VIDEO_ENCODER_CONFIGURATIONS = Media2 "GetVideoEncoderConfigurations";
    MEDIA2_GET_VIDEO_ENCODER_CONFIGURATION_OPTIONS = Media2 "GetVideoEncoderConfigurationOptions";
    MEDIA2_SET_VIDEO_ENCODER_CONFIGURATION = Media2 "SetVideoEncoderConfiguration";
    EVENTS_CREATE_PULL_POINT_SUBSCRIPTION = Events "CreatePullPointSubscription"
        action "http://www.onvif.org/ver10/events/wsdl/EventPortType/CreatePullPointSubscriptionRequest";
    EVENTS_PULL_MESSAGES = Events "PullMessages"
        action "http://www.onvif.org/ver10/events/wsdl/PullPointSubscription/PullMessagesRequest";
    // Sent to the subscription's own address (not the events service), with
    // its ReferenceParameters echoed; elements in WS-BaseNotification.
    SUBSCRIPTION_RENEW = Events "Renew" in WSNT
        action "http://docs.oasis-open.org/wsn/bw-2/SubscriptionManager/RenewRequest";
    SUBSCRIPTION_UNSUBSCRIBE = Events "Unsubscribe" in WSNT
        action "http://docs.oasis-open.org/wsn/bw-2/SubscriptionManager/UnsubscribeRequest";
    // Profile G: on-board recordings and their replay.
    RECORDING_GET_RECORDINGS = Recording "GetRecordings";
    SEARCH_GET_RECORDING_SUMMARY = Search "GetRecordingSummary";
    SEARCH_FIND_RECORDINGS = Search "FindRecordings";
    SEARCH_GET_RECORDING_SEARCH_RESULTS = Search "GetRecordingSearchResults";
    SEARCH_END_SEARCH = Search "EndSearch";
    REPLAY_GET_REPLAY_URI = Replay "GetReplayUri";
}
