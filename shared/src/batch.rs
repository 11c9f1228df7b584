//! Partial batch responses for Kinesis, DynamoDB Streams and SQS sources.

use serde::Serialize;

/// `{"batchItemFailures":[{"itemIdentifier":"..."}]}`; empty means all done.
///
/// For Kinesis the identifier is the sequence number and Lambda resumes from
/// the lowest one reported; for SQS it is the message id.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PartialBatchResponse {
    pub batch_item_failures: Vec<BatchItemFailure>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchItemFailure {
    pub item_identifier: String,
}

impl PartialBatchResponse {
    /// Every record succeeded.
    pub fn success() -> Self {
        Self::default()
    }

    /// Reports the given records as failed, in the order given.
    pub fn failing<I, S>(ids: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            batch_item_failures: ids
                .into_iter()
                .map(|id| BatchItemFailure {
                    item_identifier: id.into(),
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_shape() {
        let json = serde_json::to_string(&PartialBatchResponse::failing(["49590"])).unwrap();
        assert_eq!(
            json,
            r#"{"batchItemFailures":[{"itemIdentifier":"49590"}]}"#
        );
        let ok = serde_json::to_string(&PartialBatchResponse::success()).unwrap();
        assert_eq!(ok, r#"{"batchItemFailures":[]}"#);
    }
}
