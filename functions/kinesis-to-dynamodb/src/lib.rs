//! Kinesis records to DynamoDB items, at least once, in order per key, with
//! nothing lost: poison is set aside, unprocessed items are retried, and the
//! partial batch response respects Lambda's checkpoint rule.
//!
//! Modules:
//! - `config`: the environment, read once at start-up.
//! - `handler`: the Kinesis event in, the partial batch response out.
//! - `pipeline`: one batch: decode, collapse, write, set poison aside, checkpoint.
//! - `record`: a Kinesis record to an item (`Entry`) or a reject.
//! - `convert`: JSON to DynamoDB attribute values, numbers exact.
//! - `kpl`: KPL aggregation, read and written.
//! - `checkpoint`: Lambda's partial-batch checkpoint rule.
//! - `batch_write`: retries within the deadline, and BatchWriteItem batching.
//! - `replay`: the operator's replay of the failure queue and rejects table.
//! - `ports`: the traits the domain calls (`Table`, `Shards`, `Queue`,
//!   `Rejects`) and the errors it branches on.
//! - `aws`: the SDK adapters: `dynamodb`, `kinesis`, `sqs`.
//! - `malloc`: glibc malloc tuning for megabyte events.
//! - `testing` (feature `testing`): in-memory doubles of the ports.

/// The function's name in logs (`service`) and metrics (`Function`).
pub const FUNCTION_NAME: &str = "kinesis-to-dynamodb";

pub mod aws;
pub mod batch_write;
pub mod checkpoint;
pub mod config;
pub mod convert;
pub mod handler;
pub mod kpl;
pub mod malloc;
pub mod pipeline;
pub mod ports;
pub mod record;
pub mod replay;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
