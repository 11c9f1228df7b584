//! A DynamoDB stand-in speaking the JSON protocol for PutItem (with the
//! latest-mode condition), GetItem, DeleteItem, Scan (one page, no filter)
//! and BatchWriteItem, with faults injected from a seed: UnprocessedItems,
//! throttling, 500s and latency. Its conditional writes are atomic. Like DynamoDB, it
//! refuses an item with an empty attribute name (ValidationException), at
//! most 25 items per BatchWriteItem and duplicate keys within one.
//! Other condition expressions are evaluated by a small parser (comparisons,
//! attribute_exists/attribute_not_exists, AND, OR, NOT, parentheses); one it
//! cannot evaluate is refused with a ValidationException.

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
    /// Attribute names refused like an empty one (see `refuse_attribute`).
    refused_names: Vec<String>,
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
            refused_names: Vec::new(),
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
                    "DeleteItem" => delete_item(&mut s, &request.body),
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

    /// From now on, refuse (ValidationException) any item with a top-level
    /// attribute `name`: a refusal a client cannot foresee, unlike an empty
    /// name.
    pub fn refuse_attribute(&self, name: &str) {
        self.state
            .lock()
            .unwrap()
            .refused_names
            .push(name.to_owned());
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
    if let Some(refusal) = refused(s, put.item) {
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
            other => {
                let values = values.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
                match condition_holds(other, &names, &values, stored.map(String::as_str)) {
                    Ok(holds) => holds,
                    Err(refusal) => return validation(&refusal),
                }
            }
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
fn refused(
    s: &State,
    item: &RawValue,
) -> Option<hyper::Response<http_body_util::Full<bytes::Bytes>>> {
    let attrs: RawItem = serde_json::from_str(item.get()).ok()?;
    if let Some(name) = s
        .refused_names
        .iter()
        .find(|name| attrs.contains_key(name.as_str()))
    {
        return Some(validation(&format!(
            "One or more parameter values were invalid: the stand-in refuses attribute {name}"
        )));
    }
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
            if let Some(refusal) = refused(s, put.put_request.item) {
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

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DeleteItem<'a> {
    table_name: String,
    #[serde(borrow)]
    key: RawItem<'a>,
    condition_expression: Option<String>,
    expression_attribute_names: Option<HashMap<String, String>>,
    expression_attribute_values: Option<HashMap<String, Value>>,
}

/// Deletes an item, if its condition holds; deleting nothing succeeds.
fn delete_item(s: &mut State, body: &[u8]) -> hyper::Response<http_body_util::Full<bytes::Bytes>> {
    let Ok(delete) = serde_json::from_slice::<DeleteItem>(body) else {
        return validation("stand-in could not read the DeleteItem request");
    };
    let Some(names) = s.keys.get(&delete.table_name) else {
        return error(400, "ResourceNotFoundException", "no such table");
    };
    let key = names
        .iter()
        .map(|k| delete.key.get(k.as_str()).map_or("", |v| v.get()))
        .collect::<Vec<_>>()
        .join("|");
    let stored = s.tables.get(&delete.table_name).and_then(|t| t.get(&key));
    if let Some(condition) = &delete.condition_expression {
        let holds = condition_holds(
            condition,
            &delete.expression_attribute_names.unwrap_or_default(),
            &delete.expression_attribute_values.unwrap_or_default(),
            stored.map(String::as_str),
        );
        match holds {
            Ok(true) => {}
            Ok(false) => {
                return error(
                    400,
                    "ConditionalCheckFailedException",
                    "The conditional request failed",
                );
            }
            Err(refusal) => return validation(&refusal),
        }
    }
    if let Some(table) = s.tables.get_mut(&delete.table_name) {
        table.remove(&key);
    }
    reply(200, "{}")
}

/// A parsed condition expression.
#[derive(Debug)]
enum Condition {
    Or(Box<Condition>, Box<Condition>),
    And(Box<Condition>, Box<Condition>),
    Not(Box<Condition>),
    /// attribute_exists (true) or attribute_not_exists (false) of an attribute.
    Exists(String, bool),
    Compare(Operand, Comparison, Operand),
}

#[derive(Debug)]
enum Operand {
    Attribute(String),
    Value(String),
}

#[derive(Debug, Clone, Copy)]
enum Comparison {
    Equal,
    Less,
    LessOrEqual,
    Greater,
    GreaterOrEqual,
}

/// Whether `expression` holds for `stored` (an item's DynamoDB JSON), as
/// DynamoDB evaluates it; Err (a ValidationException's message) when the
/// expression is malformed, names an undefined placeholder, leaves a given
/// one unused, or uses what this stand-in does not evaluate (functions but
/// the two existence checks, `<>`, BETWEEN, IN, document paths).
fn condition_holds(
    expression: &str,
    names: &HashMap<String, String>,
    values: &HashMap<String, Value>,
    stored: Option<&str>,
) -> Result<bool, String> {
    let refuse = |why: String| format!("Invalid ConditionExpression {expression:?}: {why}");
    let tokens = tokenize(expression).map_err(refuse)?;
    let mut parser = Parser {
        tokens: &tokens,
        at: 0,
        names,
        values,
        used_names: Vec::new(),
        used_values: Vec::new(),
    };
    let condition = parser.or().map_err(refuse)?;
    if let Some(extra) = tokens.get(parser.at) {
        return Err(refuse(format!("unexpected {extra:?}")));
    }
    if let Some(unused) = names.keys().find(|k| !parser.used_names.contains(k)) {
        return Err(format!(
            "Value provided in ExpressionAttributeNames unused in expressions: keys: {{{unused}}}"
        ));
    }
    if let Some(unused) = values.keys().find(|k| !parser.used_values.contains(k)) {
        return Err(format!(
            "Value provided in ExpressionAttributeValues unused in expressions: keys: {{{unused}}}"
        ));
    }
    let item: HashMap<String, Value> = match stored {
        Some(text) => serde_json::from_str(text).map_err(|e| format!("stored item: {e}"))?,
        None => HashMap::new(),
    };
    evaluate(&condition, &item, values)
}

fn tokenize(expression: &str) -> Result<Vec<String>, String> {
    let mut tokens = Vec::new();
    let mut chars = expression.char_indices().peekable();
    while let Some((start, c)) = chars.next() {
        match c {
            c if c.is_whitespace() => {}
            '(' | ')' | ',' | '=' => tokens.push(c.to_string()),
            '<' | '>' => {
                let mut token = c.to_string();
                if let Some((_, next @ ('=' | '>'))) = chars.peek().copied()
                    && (next == '=' || c == '<')
                {
                    token.push(next);
                    chars.next();
                }
                tokens.push(token);
            }
            c if c == '#' || c == ':' || c.is_alphanumeric() || c == '_' => {
                let mut end = start + c.len_utf8();
                while let Some((i, next)) = chars.peek().copied() {
                    if !(next.is_alphanumeric() || next == '_') {
                        break;
                    }
                    end = i + next.len_utf8();
                    chars.next();
                }
                tokens.push(expression[start..end].to_owned());
            }
            other => return Err(format!("the stand-in does not evaluate {other:?}")),
        }
    }
    Ok(tokens)
}

struct Parser<'a> {
    tokens: &'a [String],
    at: usize,
    names: &'a HashMap<String, String>,
    values: &'a HashMap<String, Value>,
    used_names: Vec<String>,
    used_values: Vec<String>,
}

impl Parser<'_> {
    fn peek(&self) -> Option<&str> {
        self.tokens.get(self.at).map(String::as_str)
    }

    fn next(&mut self) -> Result<&str, String> {
        let token = self.tokens.get(self.at).ok_or("unexpected end")?;
        self.at += 1;
        Ok(token)
    }

    fn expect(&mut self, wanted: &str) -> Result<(), String> {
        match self.next()? {
            token if token == wanted => Ok(()),
            token => Err(format!("expected {wanted:?}, found {token:?}")),
        }
    }

    fn keyword(&mut self, keyword: &str) -> bool {
        let found = self.peek().is_some_and(|t| t.eq_ignore_ascii_case(keyword));
        if found {
            self.at += 1;
        }
        found
    }

    /// Precedence as in DynamoDB: NOT, then AND, then OR.
    fn or(&mut self) -> Result<Condition, String> {
        let mut left = self.and()?;
        while self.keyword("OR") {
            left = Condition::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Condition, String> {
        let mut left = self.not()?;
        while self.keyword("AND") {
            left = Condition::And(Box::new(left), Box::new(self.not()?));
        }
        Ok(left)
    }

    fn not(&mut self) -> Result<Condition, String> {
        if self.keyword("NOT") {
            return Ok(Condition::Not(Box::new(self.not()?)));
        }
        if self.peek() == Some("(") {
            self.at += 1;
            let inner = self.or()?;
            self.expect(")")?;
            return Ok(inner);
        }
        let exists = match self.peek() {
            Some("attribute_exists") => Some(true),
            Some("attribute_not_exists") => Some(false),
            _ => None,
        };
        if let Some(exists) = exists {
            self.at += 1;
            self.expect("(")?;
            let Operand::Attribute(name) = self.operand()? else {
                return Err("an existence check takes an attribute, not a value".into());
            };
            self.expect(")")?;
            return Ok(Condition::Exists(name, exists));
        }
        let left = self.operand()?;
        let comparison = match self.next()? {
            "=" => Comparison::Equal,
            "<" => Comparison::Less,
            "<=" => Comparison::LessOrEqual,
            ">" => Comparison::Greater,
            ">=" => Comparison::GreaterOrEqual,
            other => return Err(format!("the stand-in does not evaluate {other:?}")),
        };
        Ok(Condition::Compare(left, comparison, self.operand()?))
    }

    fn operand(&mut self) -> Result<Operand, String> {
        let token = self.next()?.to_owned();
        if token.starts_with('#') {
            let name = self.names.get(&token).ok_or_else(|| {
                format!("An expression attribute name used in the document path is not defined; attribute name: {token}")
            })?;
            self.used_names.push(token);
            return Ok(Operand::Attribute(name.clone()));
        }
        if token.starts_with(':') {
            if !self.values.contains_key(&token) {
                return Err(format!(
                    "An expression attribute value used in expression is not defined; attribute value: {token}"
                ));
            }
            self.used_values.push(token.clone());
            return Ok(Operand::Value(token));
        }
        let keyword = ["AND", "OR", "NOT", "BETWEEN", "IN"]
            .iter()
            .any(|k| token.eq_ignore_ascii_case(k));
        if keyword || self.peek() == Some("(") || !token.starts_with(|c: char| c.is_alphabetic()) {
            return Err(format!("the stand-in does not evaluate {token:?} here"));
        }
        Ok(Operand::Attribute(token))
    }
}

fn evaluate(
    condition: &Condition,
    item: &HashMap<String, Value>,
    values: &HashMap<String, Value>,
) -> Result<bool, String> {
    Ok(match condition {
        Condition::Or(a, b) => evaluate(a, item, values)? || evaluate(b, item, values)?,
        Condition::And(a, b) => evaluate(a, item, values)? && evaluate(b, item, values)?,
        Condition::Not(a) => !evaluate(a, item, values)?,
        Condition::Exists(name, exists) => item.contains_key(name) == *exists,
        Condition::Compare(left, comparison, right) => {
            let resolve = |operand: &Operand| match operand {
                Operand::Attribute(name) => item.get(name),
                Operand::Value(placeholder) => values.get(placeholder),
            };
            // A missing attribute compares false, as in DynamoDB.
            let (Some(left), Some(right)) = (resolve(left), resolve(right)) else {
                return Ok(false);
            };
            match order(left, right)? {
                None => false,
                Some(ordering) => match comparison {
                    Comparison::Equal => ordering.is_eq(),
                    Comparison::Less => ordering.is_lt(),
                    Comparison::LessOrEqual => ordering.is_le(),
                    Comparison::Greater => ordering.is_gt(),
                    Comparison::GreaterOrEqual => ordering.is_ge(),
                },
            }
        }
    })
}

/// The order of two typed attribute values (`{"S": "..."}`); None when
/// their types differ (any comparison is then false).
fn order(left: &Value, right: &Value) -> Result<Option<std::cmp::Ordering>, String> {
    let typed = |v: &Value| -> Result<(String, Value), String> {
        match v
            .as_object()
            .map(|o| o.iter().collect::<Vec<_>>())
            .as_deref()
        {
            Some([(kind, value)]) => Ok(((*kind).clone(), (*value).clone())),
            _ => Err(format!("not an attribute value: {v}")),
        }
    };
    let ((left_kind, left), (right_kind, right)) = (typed(left)?, typed(right)?);
    if left_kind != right_kind {
        return Ok(None);
    }
    match (left_kind.as_str(), &left, &right) {
        ("S", Value::String(a), Value::String(b)) => Ok(Some(a.cmp(b))),
        ("N", Value::String(a), Value::String(b)) => {
            let number = |n: &str| {
                n.trim()
                    .parse::<f64>()
                    .map_err(|_| format!("not a number: {n:?}"))
            };
            Ok(number(a)?.partial_cmp(&number(b)?))
        }
        (kind, _, _) => Err(format!(
            "the stand-in does not compare values of type {kind}"
        )),
    }
}

#[cfg(test)]
mod condition_tests {
    use super::*;

    fn holds(expression: &str, stored: Option<Value>) -> Result<bool, String> {
        let names: HashMap<String, String> = [
            ("#k", "claim"),
            ("#e", "expires_at"),
            ("#h", "holder"),
            ("#c", "copy_id"),
        ]
        .into_iter()
        .filter(|(k, _)| expression.contains(k))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let values: HashMap<String, Value> = [
            (":now", json!({"N": "100"})),
            (":holder", json!({"S": "a"})),
            (":copy", json!({"S": "snap-1"})),
        ]
        .into_iter()
        .filter(|(k, _)| expression.contains(k))
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        condition_holds(
            expression,
            &names,
            &values,
            stored.map(|v| v.to_string()).as_deref(),
        )
    }

    fn claim(holder: &str, copy: Option<&str>, expires_at: i64) -> Option<Value> {
        let mut item = json!({
            "claim": {"S": "k"},
            "holder": {"S": holder},
            "expires_at": {"N": expires_at.to_string()},
        });
        if let Some(copy) = copy {
            item["copy_id"] = json!({"S": copy});
        }
        Some(item)
    }

    #[test]
    fn the_copy_claim_conditions() {
        let free = "attribute_not_exists(#k) OR #e < :now";
        assert_eq!(holds(free, None), Ok(true));
        assert_eq!(holds(free, claim("a", None, 101)), Ok(false));
        assert_eq!(holds(free, claim("a", None, 100)), Ok(false));
        assert_eq!(holds(free, claim("a", None, 99)), Ok(true));
        // Numbers compare as numbers, not text.
        assert_eq!(holds(free, claim("a", None, 1000)), Ok(false));

        let held = "#h = :holder AND attribute_not_exists(#c)";
        assert_eq!(holds(held, None), Ok(false));
        assert_eq!(holds(held, claim("a", None, 0)), Ok(true));
        assert_eq!(holds(held, claim("b", None, 0)), Ok(false));
        assert_eq!(holds(held, claim("a", Some("snap-1"), 0)), Ok(false));

        let copy_is = "#c = :copy";
        assert_eq!(holds(copy_is, None), Ok(false));
        assert_eq!(holds(copy_is, claim("a", None, 0)), Ok(false));
        assert_eq!(holds(copy_is, claim("a", Some("snap-1"), 0)), Ok(true));
        assert_eq!(holds(copy_is, claim("a", Some("snap-2"), 0)), Ok(false));
    }

    #[test]
    fn precedence_and_negation() {
        // AND binds tighter than OR; NOT tighter than AND.
        let e = "#h = :holder OR #c = :copy AND attribute_exists(#k)";
        assert_eq!(holds(e, claim("a", None, 0)), Ok(true));
        let e = "(#h = :holder OR #c = :copy) AND NOT attribute_exists(#k)";
        assert_eq!(holds(e, claim("a", None, 0)), Ok(false));
        assert_eq!(
            holds("#e >= :now and #e <= :now", claim("a", None, 100)),
            Ok(true)
        );
        // A value of another type compares false.
        assert_eq!(holds("#h < :now", claim("a", None, 0)), Ok(false));
    }

    #[test]
    fn what_it_cannot_evaluate_is_refused() {
        for refused in [
            "begins_with(#h, :holder)",
            "#h <> :holder",
            "#e BETWEEN :now AND :now",
            "#h = :holder AND",
            "#h = :holder)",
            "size(#h) > :now",
            "#h.x = :holder",
        ] {
            assert!(holds(refused, claim("a", None, 0)).is_err(), "{refused}");
        }
        let undefined = condition_holds("#h = :v", &HashMap::new(), &HashMap::new(), None);
        assert!(undefined.unwrap_err().contains("#h"));
        let names = HashMap::from([
            ("#h".to_owned(), "holder".to_owned()),
            ("#x".to_owned(), "x".to_owned()),
        ]);
        let values = HashMap::from([(":v".to_owned(), json!({"S": "a"}))]);
        let unused = condition_holds("#h = :v", &names, &values, None);
        assert!(unused.unwrap_err().contains("#x"));
    }
}
