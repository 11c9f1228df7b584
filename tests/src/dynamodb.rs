//! A DynamoDB stand-in speaking the JSON protocol for PutItem (with the
//! latest-mode condition), GetItem, Scan (one page, no filter) and
//! BatchWriteItem, with faults injected from a seed: UnprocessedItems,
//! throttling, 500s and latency. Its conditional writes are atomic. Like DynamoDB, it
//! refuses an item with an empty attribute name (ValidationException), at
//! most 25 items per BatchWriteItem and duplicate keys within one.

use crate::http::{Received, reply, serve};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};
use std::borrow::Cow;
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
    /// Store nothing: every GetItem finds nothing, every write succeeds.
    /// For benchmarks that want the first-write path on every invoke.
    pub forget: bool,
}

impl Faults {
    pub fn none(latency: Duration) -> Self {
        Self {
            seed: 1,
            unprocessed_percent: 0,
            error_percent: 0,
            latency,
            forget: false,
        }
    }
}

struct State {
    /// Key attribute names per table.
    keys: HashMap<String, Vec<String>>,
    /// Items as the DynamoDB JSON text they were written as, by key text.
    /// Kept as text (and requests read borrowed) so that the stand-in costs
    /// little CPU: it shares the cores with the function it measures.
    tables: HashMap<String, HashMap<String, String>>,
    rng: u64,
    calls: u64,
}

/// An item's attributes, borrowed from a request body.
type RawItem<'a> = HashMap<Cow<'a, str>, &'a RawValue>;

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PutItem<'a> {
    table_name: String,
    #[serde(borrow)]
    item: &'a RawValue,
    condition_expression: Option<String>,
    expression_attribute_names: Option<HashMap<String, String>>,
    expression_attribute_values: Option<HashMap<String, HashMap<String, String>>>,
}

#[derive(Deserialize)]
struct BatchWrite<'a> {
    #[serde(rename = "RequestItems", borrow)]
    request_items: HashMap<String, Vec<&'a RawValue>>,
}

#[derive(Deserialize)]
struct WriteRequest<'a> {
    #[serde(rename = "PutRequest", borrow)]
    put_request: PutRequest<'a>,
}

#[derive(Deserialize)]
struct PutRequest<'a> {
    #[serde(rename = "Item", borrow)]
    item: &'a RawValue,
}

impl State {
    fn random(&mut self) -> u64 {
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        self.rng.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// The key text of `item`: its key attributes' JSON, joined.
    fn key_of(&self, table: &str, item: &RawValue) -> Option<String> {
        let names = self.keys.get(table)?;
        let attrs: RawItem = serde_json::from_str(item.get()).ok()?;
        Some(
            names
                .iter()
                .map(|k| attrs.get(k.as_str()).map_or("", |v| v.get()))
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
                    // tokio's timer rounds sleeps up to the next millisecond
                    // tick (10 ms became ~11): a thread sleep keeps the
                    // latency the benchmarks' floors assume.
                    let latency = faults.latency;
                    let _ = tokio::task::spawn_blocking(move || std::thread::sleep(latency)).await;
                }
                let op = request
                    .header("x-amz-target")
                    .unwrap_or("")
                    .rsplit('.')
                    .next()
                    .unwrap_or("")
                    .to_owned();
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
                if faults.forget {
                    return match op.as_str() {
                        "GetItem" | "PutItem" => reply(200, "{}"),
                        _ => reply(200, r#"{"UnprocessedItems":{}}"#),
                    };
                }
                match op.as_str() {
                    "GetItem" => get_item(&s, &request.body),
                    "PutItem" => put_item(&mut s, &request.body),
                    "Scan" => scan(&s, &request.body),
                    "BatchWriteItem" => {
                        batch_write(&mut s, &request.body, faults.unprocessed_percent)
                    }
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
        let state = self.state.lock().unwrap();
        let Some(items) = state.tables.get(table) else {
            return HashMap::new();
        };
        items
            .iter()
            .map(|(key, text)| {
                (
                    key.clone(),
                    serde_json::from_str(text).expect("stored JSON"),
                )
            })
            .collect()
    }

    pub fn calls(&self) -> u64 {
        self.state.lock().unwrap().calls
    }
}

fn validation(message: &str) -> hyper::Response<http_body_util::Full<bytes::Bytes>> {
    error(400, "ValidationException", message)
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct GetItem<'a> {
    table_name: String,
    #[serde(borrow)]
    key: RawItem<'a>,
}

fn get_item(s: &State, body: &[u8]) -> hyper::Response<http_body_util::Full<bytes::Bytes>> {
    let Ok(get) = serde_json::from_slice::<GetItem>(body) else {
        return validation("stand-in could not read the GetItem request");
    };
    let Some(names) = s.keys.get(&get.table_name) else {
        return error(400, "ResourceNotFoundException", "no such table");
    };
    let key = names
        .iter()
        .map(|k| get.key.get(k.as_str()).map_or("", |v| v.get()))
        .collect::<Vec<_>>()
        .join("|");
    match s.tables.get(&get.table_name).and_then(|t| t.get(&key)) {
        Some(item) => reply(200, format!("{{\"Item\":{item}}}")),
        None => reply(200, "{}"),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Scan {
    table_name: String,
}

/// Every item in one page: enough for the small tables tests use.
fn scan(s: &State, body: &[u8]) -> hyper::Response<http_body_util::Full<bytes::Bytes>> {
    let Ok(scan) = serde_json::from_slice::<Scan>(body) else {
        return validation("stand-in could not read the Scan request");
    };
    if !s.keys.contains_key(&scan.table_name) {
        return error(400, "ResourceNotFoundException", "no such table");
    }
    let items: Vec<&str> = s
        .tables
        .get(&scan.table_name)
        .map(|t| t.values().map(String::as_str).collect())
        .unwrap_or_default();
    reply(
        200,
        format!(
            "{{\"Items\":[{}],\"Count\":{n},\"ScannedCount\":{n}}}",
            items.join(","),
            n = items.len()
        ),
    )
}

fn put_item(s: &mut State, body: &[u8]) -> hyper::Response<http_body_util::Full<bytes::Bytes>> {
    let Ok(put) = serde_json::from_slice::<PutItem>(body) else {
        return validation("stand-in could not read the PutItem request");
    };
    let Some(key) = s.key_of(&put.table_name, put.item) else {
        return error(400, "ResourceNotFoundException", "no such table");
    };
    if let Some(refusal) = refused(put.item) {
        return refusal;
    }
    if let Some(condition) = &put.condition_expression {
        let names = put.expression_attribute_names.unwrap_or_default();
        let values = put.expression_attribute_values.unwrap_or_default();
        let stored = s.tables.get(&put.table_name).and_then(|t| t.get(&key));
        // A stored attribute's text, of DynamoDB type `kind`.
        let stored_value = |name: &str, kind: &str| {
            let attrs: RawItem = serde_json::from_str(stored?).ok()?;
            let value: HashMap<String, String> =
                serde_json::from_str(attrs.get(names.get(name)?.as_str())?.get()).ok()?;
            value.get(kind).cloned()
        };
        let holds = match condition.as_str() {
            // kinesis-to-dynamodb, latest mode across shards: absent; or the
            // same shard and an older position; or another shard and an
            // earlier arrival (a tie keeps the stored item).
            c if c.contains("attribute_not_exists(#position)") && c.contains("#arrival") => {
                match (
                    stored_value("#position", "S"),
                    stored_value("#shard", "S"),
                    stored_value("#arrival", "N").and_then(|n| n.parse::<i64>().ok()),
                ) {
                    (None, _, _) => true,
                    (Some(position), Some(shard), _) if shard == values[":shard"]["S"] => {
                        position < values[":position"]["S"]
                    }
                    (Some(_), Some(_), Some(arrival)) => values[":arrival"]["N"]
                        .parse::<i64>()
                        .is_ok_and(|new| arrival < new),
                    _ => false,
                }
            }
            // kinesis-to-dynamodb, latest mode: absent, or an older position.
            c if c.contains("attribute_not_exists(#position)") => {
                let new = &values[":position"]["S"];
                stored_value("#position", "S").is_none_or(|existing| existing < *new)
            }
            // ses-bounce-handler: optimistic locking.
            "attribute_not_exists(#key)" => stored.is_none(),
            "#version = :version" => {
                stored_value("#version", "N").as_ref() == values[":version"].get("N")
            }
            other => panic!("the stand-in does not evaluate {other}"),
        };
        if !holds {
            return error(
                400,
                "ConditionalCheckFailedException",
                "The conditional request failed",
            );
        }
    }
    s.tables
        .entry(put.table_name)
        .or_default()
        .insert(key, put.item.get().to_owned());
    reply(200, "{}")
}

/// DynamoDB refuses an item with an empty attribute name (moto does not):
/// the whole call fails with ValidationException, as for BatchWriteItem.
fn refused(item: &RawValue) -> Option<hyper::Response<http_body_util::Full<bytes::Bytes>>> {
    let attrs: RawItem = serde_json::from_str(item.get()).ok()?;
    attrs.contains_key("").then(|| {
        validation("One or more parameter values were invalid: An attribute name cannot be empty")
    })
}

fn batch_write(
    s: &mut State,
    body: &[u8],
    unprocessed_percent: u64,
) -> hyper::Response<http_body_util::Full<bytes::Bytes>> {
    let Ok(batch) = serde_json::from_slice::<BatchWrite>(body) else {
        return validation("stand-in could not read the BatchWriteItem request");
    };
    let mut unprocessed: HashMap<&str, Vec<&RawValue>> = HashMap::new();
    for (table, requests) in &batch.request_items {
        if requests.len() > 25 {
            return validation("Too many items requested for the BatchWriteItem call");
        }
        let mut puts = Vec::with_capacity(requests.len());
        for request in requests {
            let Ok(put) = serde_json::from_str::<WriteRequest>(request.get()) else {
                return validation("stand-in takes PutRequests only");
            };
            if let Some(refusal) = refused(put.put_request.item) {
                return refusal;
            }
            let key = s.key_of(table, put.put_request.item).unwrap_or_default();
            if puts.iter().any(|(k, _, _)| *k == key) {
                return validation("Provided list of item keys contains duplicates");
            }
            puts.push((key, put.put_request.item, *request));
        }
        for (key, item, request) in puts {
            if s.random() % 100 < unprocessed_percent {
                unprocessed.entry(table).or_default().push(request);
                continue;
            }
            s.tables
                .entry(table.clone())
                .or_default()
                .insert(key, item.get().to_owned());
        }
    }
    let answer = serde_json::to_string(&HashMap::from([("UnprocessedItems", unprocessed)]))
        .expect("serializes");
    reply(200, answer)
}
