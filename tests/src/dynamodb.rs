//! A DynamoDB stand-in speaking the JSON protocol for PutItem (with the
//! latest-mode condition) and BatchWriteItem, with faults injected from a
//! seed: UnprocessedItems, throttling, 500s and latency.

use crate::http::{Received, reply, serve};
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What to inject.
#[derive(Debug, Clone, Copy)]
pub struct Faults {
    pub seed: u64,
    /// Percent of BatchWriteItem items returned as unprocessed.
    pub unprocessed_percent: u64,
    /// Percent of calls answered with throttling or a 500.
    pub error_percent: u64,
    pub latency: Duration,
}

impl Faults {
    pub fn none(latency: Duration) -> Self {
        Self {
            seed: 1,
            unprocessed_percent: 0,
            error_percent: 0,
            latency,
        }
    }
}

struct State {
    /// Key attribute names per table.
    keys: HashMap<String, Vec<String>>,
    tables: HashMap<String, HashMap<String, Value>>,
    rng: u64,
    calls: u64,
}

impl State {
    fn random(&mut self) -> u64 {
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        self.rng.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn key_of(&self, table: &str, item: &Value) -> Option<String> {
        let names = self.keys.get(table)?;
        Some(
            names
                .iter()
                .map(|k| item[k].to_string())
                .collect::<Vec<_>>()
                .join("|"),
        )
    }
}

pub struct DynamoStandIn {
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for DynamoStandIn {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn error(
    status: u16,
    kind: &str,
    message: &str,
) -> hyper::Response<http_body_util::Full<bytes::Bytes>> {
    reply(
        status,
        json!({"__type": format!("com.amazonaws.dynamodb.v20120810#{kind}"), "message": message})
            .to_string(),
    )
}

impl DynamoStandIn {
    /// `tables`: name and key attribute names.
    pub async fn start(tables: &[(&str, &[&str])], faults: Faults) -> anyhow::Result<Self> {
        let state = Arc::new(Mutex::new(State {
            keys: tables
                .iter()
                .map(|(t, k)| (t.to_string(), k.iter().map(|s| s.to_string()).collect()))
                .collect(),
            tables: HashMap::new(),
            rng: faults.seed | 1,
            calls: 0,
        }));
        let shared = state.clone();
        let (addr, task) = serve(0, move |request: Received| {
            let state = shared.clone();
            async move {
                if !faults.latency.is_zero() {
                    tokio::time::sleep(faults.latency).await;
                }
                let op = request
                    .header("x-amz-target")
                    .unwrap_or("")
                    .rsplit('.')
                    .next()
                    .unwrap_or("")
                    .to_owned();
                let body: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
                let mut s = state.lock().unwrap();
                s.calls += 1;
                if s.random() % 100 < faults.error_percent {
                    return if s.random().is_multiple_of(2) {
                        error(
                            400,
                            "ProvisionedThroughputExceededException",
                            "injected throttling",
                        )
                    } else {
                        error(500, "InternalServerError", "injected failure")
                    };
                }
                match op.as_str() {
                    "PutItem" => put_item(&mut s, &body),
                    "BatchWriteItem" => batch_write(&mut s, &body, faults.unprocessed_percent),
                    other => error(
                        400,
                        "UnknownOperationException",
                        &format!("stand-in does not do {other}"),
                    ),
                }
            }
        })
        .await?;
        Ok(Self { addr, state, task })
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The items of `table`, by their key text.
    pub fn items(&self, table: &str) -> HashMap<String, Value> {
        self.state
            .lock()
            .unwrap()
            .tables
            .get(table)
            .cloned()
            .unwrap_or_default()
    }

    pub fn calls(&self) -> u64 {
        self.state.lock().unwrap().calls
    }
}

fn put_item(s: &mut State, body: &Value) -> hyper::Response<http_body_util::Full<bytes::Bytes>> {
    let table = body["TableName"].as_str().unwrap_or_default().to_owned();
    let item = body["Item"].clone();
    let Some(key) = s.key_of(&table, &item) else {
        return error(400, "ResourceNotFoundException", "no such table");
    };
    // The one condition the function sends: absent, or an older position.
    if let Some(condition) = body["ConditionExpression"].as_str() {
        let names: &Map<String, Value> =
            body["ExpressionAttributeNames"].as_object().expect("names");
        let attr = names
            .get("#position")
            .and_then(Value::as_str)
            .expect("#position");
        let new = body["ExpressionAttributeValues"][":position"]["S"]
            .as_str()
            .expect(":position")
            .to_owned();
        assert!(
            condition.contains("attribute_not_exists(#position)"),
            "unexpected condition {condition}"
        );
        if let Some(existing) = s.tables.get(&table).and_then(|t| t.get(&key))
            && existing[attr]["S"].as_str().unwrap_or("") >= new.as_str()
        {
            return error(
                400,
                "ConditionalCheckFailedException",
                "The conditional request failed",
            );
        }
    }
    s.tables.entry(table).or_default().insert(key, item);
    reply(200, "{}")
}

fn batch_write(
    s: &mut State,
    body: &Value,
    unprocessed_percent: u64,
) -> hyper::Response<http_body_util::Full<bytes::Bytes>> {
    let mut unprocessed = Map::new();
    for (table, requests) in body["RequestItems"]
        .as_object()
        .cloned()
        .unwrap_or_default()
    {
        let requests = requests.as_array().cloned().unwrap_or_default();
        if requests.len() > 25 {
            return error(
                400,
                "ValidationException",
                "Too many items requested for the BatchWriteItem call",
            );
        }
        let mut seen = std::collections::HashSet::new();
        for request in &requests {
            let key = s
                .key_of(&table, &request["PutRequest"]["Item"])
                .unwrap_or_default();
            if !seen.insert(key) {
                return error(
                    400,
                    "ValidationException",
                    "Provided list of item keys contains duplicates",
                );
            }
        }
        let mut left = Vec::new();
        for request in requests {
            if s.random() % 100 < unprocessed_percent {
                left.push(request);
                continue;
            }
            let item = request["PutRequest"]["Item"].clone();
            let key = s.key_of(&table, &item).unwrap_or_default();
            s.tables.entry(table.clone()).or_default().insert(key, item);
        }
        if !left.is_empty() {
            unprocessed.insert(table, Value::Array(left));
        }
    }
    reply(200, json!({"UnprocessedItems": unprocessed}).to_string())
}
