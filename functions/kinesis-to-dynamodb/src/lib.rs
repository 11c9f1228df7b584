//! Kinesis records to DynamoDB items, at least once, in order per key, with
//! nothing lost: poison is set aside, unprocessed items are retried, and the
//! partial batch response respects Lambda's checkpoint rule.

pub mod checkpoint;
pub mod config;
pub mod convert;
pub mod dynamo;
pub mod handler;
pub mod kpl;
pub mod memory;
pub mod pipeline;
pub mod record;
pub mod replay;
pub mod writer;
