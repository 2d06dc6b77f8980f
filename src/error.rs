//! The application error: a kind to act on, a message for people, and the
//! source for the log. The web layer maps kind → HTTP status in one place.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    NotFound,
    Unauthenticated,
    PermissionDenied,
    InvalidArgument,
    /// A constraint (unique name, …) refused the change.
    Conflict,
    /// Try again later: database busy, device unreachable.
    Unavailable,
    /// Out of disk, quota, or a limit.
    ResourceExhausted,
    Internal,
}

#[derive(Debug)]
pub struct Error {
    pub kind: ErrorKind,
    pub message: String,
    pub source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl Error {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            source: None,
        }
    }

    pub fn with_source(
        kind: ErrorKind,
        message: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Self {
            kind,
            message: message.into(),
            source: Some(Box::new(source)),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.message)?;
        if let Some(s) = &self.source {
            write!(f, ": {s}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|s| s as &(dyn std::error::Error + 'static))
    }
}

impl From<sea_orm::DbErr> for Error {
    fn from(e: sea_orm::DbErr) -> Self {
        let text = e.to_string();
        let lower = text.to_ascii_lowercase();
        let kind = if lower.contains("database is locked")
            || lower.contains("busy")
            || lower.contains("pool timed out")
        {
            ErrorKind::Unavailable
        } else if lower.contains("unique constraint") || lower.contains("duplicate key") {
            ErrorKind::Conflict
        } else if lower.contains("disk is full") || lower.contains("no space left") {
            ErrorKind::ResourceExhausted
        } else if matches!(e, sea_orm::DbErr::RecordNotFound(_)) {
            ErrorKind::NotFound
        } else {
            ErrorKind::Internal
        };
        Error::with_source(kind, "database", e)
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An error and its sources, `: `-separated: the exact text shown to the
/// person who has to fix it (a camera, a mail server, a trap receiver).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut msg = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        src = s.source();
    }
    msg
}
