//! Copies tagged EBS snapshots to other regions for disaster recovery, once
//! each, deferring (never dropping) what the copy limit holds back, and
//! prunes only its own old copies.

pub mod api;
pub mod claims;
pub mod config;
pub mod copier;
pub mod destinations;
pub mod ec2;
pub mod fake;
pub mod handler;
pub mod retention;
pub mod snapshot;
pub mod tags;
