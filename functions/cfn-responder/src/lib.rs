//! CloudFormation custom-resource responder: answers every request exactly
//! once and hosts resource types CloudFormation lacks.

/// The function's name in metrics (the `Function` dimension) and logs.
pub const FUNCTION_NAME: &str = "cfn-responder";

pub mod aws;
pub mod cfn;
pub mod config;
pub mod fallback;
pub mod handler;
pub mod idempotency;
pub mod ports;
pub mod resource;
pub mod resources;
pub mod responder;
