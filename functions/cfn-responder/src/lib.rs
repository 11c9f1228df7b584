//! CloudFormation custom-resource responder: answers every request exactly
//! once and hosts resource types CloudFormation lacks.
//!
//! Modules:
//! - `main.rs`: wiring only: config, clients, adapters, the runtime loop.
//! - `config`: `Config::from_env`, every bad variable reported at once.
//! - `handler`: the Lambda event to `Responder::handle` and its `Summary`.
//! - `responder`: answers each request once; `decide` picks the answer,
//!   `answer` records and PUTs it.
//! - `cfn`: the CloudFormation protocol: envelope, response, 4096-byte fit,
//!   physical ids, property parsing, ResponseURL policy, the PUT.
//! - `resource`: the extension point (`CustomResource`, `Registry`).
//! - `resources`: the hosted types (`Custom::AmiLookup`,
//!   `Custom::SesIdentityNotifications`) and the topic-owner key.
//! - `idempotency`: the claim rules for non-idempotent types.
//! - `ports`: the traits the domain calls (stores, EC2, SES).
//! - `aws`: the SDK adapters (DynamoDB, EC2, SES).
//! - `fallback`: in-process production fallbacks (`Local*`), used without
//!   an idempotency table and after a failed initialisation.
//! - `testing` (`cfg(test)`): the in-memory doubles of the ports
//!   (`InMemory*`) for the unit tests.

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
#[cfg(test)]
pub mod testing;
