//! The error every ONVIF call returns: a class to act on, the operation it
//! happened in, and the evidence (HTTP status, fault, message).

use super::fault::{Fault, FaultClass};

#[derive(Debug, Clone, thiserror::Error, serde::Serialize)]
#[error("{operation}: {class}: {message}")]
pub struct OnvifError {
    pub class: FaultClass,
    /// The operation (or step) that failed, e.g. `GetDeviceInformation`.
    pub operation: String,
    pub message: String,
    pub http_status: Option<u16>,
    pub fault: Option<Fault>,
}

impl OnvifError {
    pub fn new(
        class: FaultClass,
        operation: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            class,
            operation: operation.into(),
            message: message.into(),
            http_status: None,
            fault: None,
        }
    }

    pub fn malformed(operation: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(FaultClass::Malformed, operation, message)
    }

    pub fn is(&self, class: FaultClass) -> bool {
        self.class == class
    }
}

pub type OnvifResult<T> = Result<T, OnvifError>;
