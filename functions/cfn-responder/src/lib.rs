//! CloudFormation custom-resource responder: answers every request exactly
//! once and hosts resource types CloudFormation lacks.

pub mod config;
pub mod handler;
pub mod idempotency;
pub mod resource;
pub mod resources;
pub mod responder;
