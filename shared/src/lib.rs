//! What two or more functions of the suite share. A module belongs here only
//! when at least two crates use it; one function's logic lives in that
//! function's crate (the CloudFormation protocol is cfn-responder's `cfn`).
//!
//! | module | role | used by |
//! |---|---|---|
//! | [`aws`] | SDK configuration: one timeout and retry policy for every client; SDK error text; a not-found answer as `None` | all six functions |
//! | [`batch`] | the partial-batch answer (`batchItemFailures`) of stream and queue events | kinesis-to-dynamodb, ses-bounce-handler |
//! | [`config`] | `EnvReader`: typed environment variables, every problem reported at once | all six |
//! | [`logging`] | JSON logs with the keys Powertools users query; e-mail addresses masked | all six |
//! | [`metrics`] | CloudWatch EMF documents per function and stack | all six |
//! | [`redrive`] | moving a failure queue back to its function (the `lambda-redrive` tool, feature `redrive`) | operators of every function |
//! | [`retry`] | jittered backoff and the retry loop bounded by a deadline | cfn-responder, kinesis-to-dynamodb |
//! | [`runtime`] | Runtime API details: the start-up (logs, configuration or `fail_init`, SDK configuration), the invocation deadline, per-invocation log keys and unreadable payloads | all six |
//! | [`s3`] | one S3 object's bytes, a missing key as `None` (feature `s3`) | rds-log-rotator, transcode-launcher |
//! | [`sqs`] | one SQS queue's receive, delete and visibility calls (feature `sqs`) | kinesis-replay, lambda-redrive |
//! | [`time`] | seconds and milliseconds since the epoch | every function that stamps TTLs or timestamps |

pub mod aws;
pub mod batch;
pub mod config;
pub mod logging;
pub mod metrics;
pub mod redrive;
pub mod retry;
pub mod runtime;
#[cfg(feature = "s3")]
pub mod s3;
#[cfg(feature = "sqs")]
pub mod sqs;
pub mod time;
