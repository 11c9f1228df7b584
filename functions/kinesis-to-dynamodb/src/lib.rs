//! Kinesis records to DynamoDB items, at least once, in order per key.
//!
//! In progress (issue 3): the domain core. The writer, the handler and the
//! binary are still to come.

pub mod checkpoint;
pub mod config;
pub mod convert;
pub mod kpl;
pub mod pipeline;
pub mod record;
pub mod writer;
