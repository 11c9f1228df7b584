//! Kinesis records to DynamoDB items, at least once, in order per key.
//!
//! In progress (issue 3): the pure domain core. The handler, the writer and
//! the binary are still to come.

pub mod checkpoint;
pub mod convert;
pub mod kpl;
