//! camfleet: manage a fleet of ONVIF IP cameras.
//!
//! Protocol and infrastructure leaves (`onvif`, `discovery`, `sim`) know
//! nothing of the database or the web; see ARCHITECTURE.md for the map.

pub mod app;
pub mod cli;
pub mod clock;
pub mod config;
pub mod db;
pub mod discovery;
pub mod error;
pub mod fleet;
pub mod notify;
pub mod onvif;
pub mod recorder;
pub mod secrets;
pub mod shutdown;
pub mod sim;
pub mod storage;
pub mod tls;
pub mod web;
pub mod xml;
