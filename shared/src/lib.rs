//! What two or more functions of the suite share: SDK and environment
//! configuration, logging, the CloudFormation custom-resource protocol, and
//! small event helpers.

pub mod aws;
pub mod batch;
pub mod cfn;
pub mod config;
pub mod logging;
pub mod metrics;
pub mod redrive;
pub mod retry;
pub mod runtime;
pub mod s3_key;
pub mod time;
