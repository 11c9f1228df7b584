//! The suppression table in DynamoDB, keyed by the normalized address;
//! conditional writes on a version attribute give the optimistic locking.

use crate::ports::{StoreError, SuppressionStore, Written};
use crate::suppression::{Entry, Status};
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_smithy_types::DateTime;
use aws_smithy_types::date_time::Format;
use std::collections::HashMap;

/// The table's key attribute and its TTL attribute.
pub const KEY_ATTR: &str = "address";
pub const TTL_ATTR: &str = "expiresAt";

pub struct DynamoStore {
    client: Client,
    table: String,
}

impl DynamoStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    fn call_error(
        &self,
        operation: &'static str,
        e: impl std::error::Error + 'static,
    ) -> StoreError {
        StoreError::Call {
            operation,
            table: self.table.clone(),
            // SDK errors can quote the request, which holds the address.
            message: shared::logging::mask_emails_in(&shared::aws::error_text(&e)),
        }
    }
}

fn iso(epoch_secs: i64) -> String {
    DateTime::from_secs(epoch_secs)
        .fmt(Format::DateTime)
        .unwrap_or_default()
}

fn s(text: &str) -> AttributeValue {
    AttributeValue::S(text.to_owned())
}

fn n(number: impl ToString) -> AttributeValue {
    AttributeValue::N(number.to_string())
}

/// The item for `entry` at version `entry.version + 1`. Empty strings are
/// left out: DynamoDB keys cannot hold them and they say nothing.
pub fn to_item(entry: &Entry) -> HashMap<String, AttributeValue> {
    let mut item = HashMap::from([
        (KEY_ATTR.to_owned(), s(&entry.address)),
        ("status".to_owned(), s(entry.status.as_str())),
        ("firstSeen".to_owned(), s(&iso(entry.first_seen))),
        ("lastSeen".to_owned(), s(&iso(entry.last_seen))),
        ("count".to_owned(), n(entry.count)),
        (
            "softBounces".to_owned(),
            AttributeValue::L(entry.soft_bounces.iter().map(n).collect()),
        ),
        (
            "recentNotifications".to_owned(),
            AttributeValue::L(entry.recent_keys.iter().map(|k| s(k)).collect()),
        ),
        ("version".to_owned(), n(entry.version + 1)),
    ]);
    let optional = [
        ("reason", entry.reason.as_deref()),
        ("type", Some(entry.kind.as_str())),
        ("subType", Some(entry.subtype.as_str())),
        ("diagnosticCode", entry.diagnostic_code.as_deref()),
        ("lastMessageId", Some(entry.last_message_id.as_str())),
        ("lastFeedbackId", Some(entry.last_feedback_id.as_str())),
    ];
    for (name, value) in optional {
        if let Some(value) = value.filter(|v| !v.is_empty()) {
            item.insert(name.to_owned(), s(value));
        }
    }
    if let Some(at) = entry.expires_at {
        item.insert(TTL_ATTR.to_owned(), n(at));
    }
    item
}

/// Reads an item back. Timestamps are ISO 8601 in the table for people.
pub fn from_item(item: &HashMap<String, AttributeValue>) -> Result<Entry, StoreError> {
    let text = |name: &str| item.get(name).and_then(|v| v.as_s().ok()).cloned();
    let number = |name: &str| {
        item.get(name)
            .and_then(|v| v.as_n().ok())
            .and_then(|v| v.parse::<i64>().ok())
    };
    let time = |name: &str| {
        text(name)
            .and_then(|t| DateTime::from_str(&t, Format::DateTime).ok())
            .map_or(0, |t| t.secs())
    };
    let list = |name: &str| -> Vec<AttributeValue> {
        item.get(name)
            .and_then(|v| v.as_l().ok())
            .cloned()
            .unwrap_or_default()
    };
    let address = text(KEY_ATTR).ok_or_else(|| StoreError::Unreadable(format!("no {KEY_ATTR}")))?;
    let status = text("status")
        .as_deref()
        .and_then(Status::parse)
        .ok_or_else(|| StoreError::Unreadable("status is missing or unknown".into()))?;
    Ok(Entry {
        address,
        status,
        reason: text("reason"),
        kind: text("type").unwrap_or_default(),
        subtype: text("subType").unwrap_or_default(),
        diagnostic_code: text("diagnosticCode"),
        first_seen: time("firstSeen"),
        last_seen: time("lastSeen"),
        count: number("count").unwrap_or(0).max(0) as u64,
        soft_bounces: list("softBounces")
            .iter()
            .filter_map(|v| v.as_n().ok()?.parse().ok())
            .collect(),
        last_message_id: text("lastMessageId").unwrap_or_default(),
        last_feedback_id: text("lastFeedbackId").unwrap_or_default(),
        recent_keys: list("recentNotifications")
            .iter()
            .filter_map(|v| v.as_s().ok().cloned())
            .collect(),
        expires_at: number(TTL_ATTR),
        version: number("version").unwrap_or(0).max(0) as u64,
    })
}

impl SuppressionStore for DynamoStore {
    async fn get(&self, address: &str) -> Result<Option<Entry>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(KEY_ATTR, s(address))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| self.call_error("GetItem", e))?;
        output.item.as_ref().map(from_item).transpose()
    }

    async fn put(&self, entry: &Entry) -> Result<Written, StoreError> {
        let request = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(to_item(entry)));
        let request = if entry.version == 0 {
            request
                .condition_expression("attribute_not_exists(#key)")
                .expression_attribute_names("#key", KEY_ATTR)
        } else {
            request
                .condition_expression("#version = :version")
                .expression_attribute_names("#version", "version")
                .expression_attribute_values(":version", n(entry.version))
        };
        match request.send().await {
            Ok(_) => Ok(Written::Yes),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Ok(Written::Conflict)
            }
            Err(e) => Err(self.call_error("PutItem", e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_round_trip() {
        let entry = Entry {
            address: "jane@example.com".into(),
            status: Status::Soft,
            reason: None,
            kind: "Bounce".into(),
            subtype: "Transient/MailboxFull".into(),
            diagnostic_code: Some("smtp; 452".into()),
            first_seen: 1_763_700_000,
            last_seen: 1_763_750_000,
            count: 2,
            soft_bounces: vec![1_763_700_000, 1_763_750_000],
            last_message_id: "m".into(),
            last_feedback_id: "f".into(),
            recent_keys: vec!["f0".into(), "f".into()],
            expires_at: Some(1_764_354_800),
            version: 4,
        };
        let item = to_item(&entry);
        assert_eq!(item["lastSeen"], s("2025-11-21T18:33:20Z"));
        assert_eq!(item["version"], n(5));
        let back = from_item(&item).unwrap();
        assert_eq!(
            back,
            Entry {
                version: 5,
                ..entry
            }
        );
    }
}
