//! The fleet services: the domain. Each composes the protocol leaves
//! (`onvif`, `discovery`) with the database; the web layer calls them.

pub mod audit;
pub mod csv;
pub mod discovery;
pub mod inventory;
pub mod sessions;
pub mod users;
