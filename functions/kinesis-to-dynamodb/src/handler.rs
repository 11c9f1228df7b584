//! Maps a Kinesis invocation to the pipeline.

use crate::config::Config;
use crate::pipeline::{Counts, process};
use crate::ports::Table;
use crate::record::EventRecord;
use lambda_runtime::LambdaEvent;
use serde::Deserialize;
use shared::batch::PartialBatchResponse;
use shared::metrics::Emf;
use shared::runtime::{Payload, PayloadError, deadline_instant};
use std::time::SystemTime;

#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    #[error("the event has no Records list: this function takes Kinesis events")]
    NotKinesis,
    #[error("this function takes Kinesis events: {0}")]
    Unreadable(#[from] PayloadError),
}

impl From<HandlerError> for lambda_runtime::Diagnostic {
    fn from(e: HandlerError) -> Self {
        Self {
            error_type: "NotAKinesisEvent".into(),
            error_message: e.to_string(),
        }
    }
}

/// The event. Each record is read on its own (see [`EventRecord`]), so a
/// malformed one is set aside instead of failing, and blocking, the shard.
#[derive(Deserialize)]
pub struct KinesisBatch {
    #[serde(rename = "Records")]
    pub records: Option<Vec<EventRecord>>,
}

pub async fn handle<T: Table + Clone + 'static>(
    table: &T,
    config: &Config,
    event: LambdaEvent<Payload<KinesisBatch>>,
) -> Result<PartialBatchResponse, HandlerError> {
    let deadline = deadline_instant(event.context.deadline, SystemTime::now());
    let records = event.payload.0?.records.ok_or(HandlerError::NotKinesis)?;
    let (response, counts) = process(table, config, &records, deadline).await;
    drop(records);
    crate::malloc::release_freed_memory();
    emit(&counts);
    tracing::info!(
        ?counts,
        failures = response.batch_item_failures.len(),
        "batch processed"
    );
    Ok(response)
}

fn emit(counts: &Counts) {
    Emf::for_function(crate::FUNCTION_NAME)
        .with_counts([
            ("RecordsIn", counts.records_in),
            ("UserRecords", counts.user_records),
            ("Written", counts.written),
            ("StaleSkipped", counts.stale_skipped),
            ("Collapsed", counts.collapsed),
            ("Rejected", counts.rejected),
            ("Retried", counts.retried),
            ("Failed", counts.failed),
        ])
        .emit();
}
