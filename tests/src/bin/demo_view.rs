//! `make demo`'s readers: each prints one JSON document (a file, or `-` for
//! stdin) as the demo shows it. Key order is the document's own, and
//! `{"a": 1, "b": [2]}` is written with Python's separators, as the demo
//! always has.
//!
//!   demo-view free-port                 a free port on 127.0.0.1
//!   demo-view get FILE PATH [--len]     the value at PATH (`a.0.b`); --len: its length
//!   demo-view cfn-request FILE          `> Create Custom::X Logical (PhysicalResourceId ..)`
//!   demo-view snapshot-summary FILE     snapshot-copier's answer, its non-empty fields
//!   demo-view transcode-results FILE    transcode-launcher's answer, one line per object
//!   demo-view status-json FILE          a worker's status.json, its main fields
//!   demo-view rotator-report FILE BUCKET  rds-log-rotator's answer
//!   demo-view dynamodb-scan TABLE FILE  `aws dynamodb scan` output, one item a line
//!   demo-view dynamodb-item TABLE KEY VALUE FILE  `aws dynamodb get-item` output
//!   demo-view snapshots REGION FILE     `aws ec2 describe-snapshots` output, the tagged ones
//!   demo-view instances FILE            `aws ec2 describe-instances` output

use anyhow::{Context, bail};
use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use std::fmt::{self, Write as _};

/// A JSON value that keeps its objects' key order.
#[derive(Clone, Debug, PartialEq)]
enum Json {
    Null,
    Bool(bool),
    Number(serde_json::Number),
    Str(String),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

struct JsonVisitor;

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Json;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_unit<E>(self) -> Result<Json, E> {
        Ok(Json::Null)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Json, E> {
        Ok(Json::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Json, E> {
        Ok(Json::Number(v.into()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Json, E> {
        Ok(Json::Number(v.into()))
    }
    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Json, E> {
        serde_json::Number::from_f64(v)
            .map(Json::Number)
            .ok_or_else(|| E::custom("not a finite number"))
    }
    fn visit_str<E>(self, v: &str) -> Result<Json, E> {
        Ok(Json::Str(v.to_owned()))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Json::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json, A::Error> {
        let mut fields = Vec::new();
        while let Some(field) = map.next_entry()? {
            fields.push(field);
        }
        Ok(Json::Object(fields))
    }
}

impl<'de> Deserialize<'de> for Json {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Json, D::Error> {
        d.deserialize_any(JsonVisitor)
    }
}

static NULL: Json = Json::Null;

impl Json {
    fn get(&self, key: &str) -> &Json {
        match self {
            Json::Object(fields) => fields
                .iter()
                .find(|(k, _)| k == key)
                .map_or(&NULL, |(_, v)| v),
            Json::Array(items) => key
                .parse()
                .ok()
                .and_then(|i: usize| items.get(i))
                .unwrap_or(&NULL),
            _ => &NULL,
        }
    }
    fn items(&self) -> &[Json] {
        match self {
            Json::Array(items) => items,
            _ => &[],
        }
    }
    fn text(&self) -> String {
        match self {
            Json::Str(s) => s.clone(),
            other => other.dumps(true),
        }
    }
    /// Python's truthiness: null, false, 0, "" and empty containers are false.
    fn truthy(&self) -> bool {
        match self {
            Json::Null => false,
            Json::Bool(b) => *b,
            Json::Number(n) => n.as_f64() != Some(0.0),
            Json::Str(s) => !s.is_empty(),
            Json::Array(items) => !items.is_empty(),
            Json::Object(fields) => !fields.is_empty(),
        }
    }
    /// Python's `str()` of the value: a string bare, null as None.
    fn py_str(&self) -> String {
        match self {
            Json::Null => "None".to_owned(),
            Json::Str(s) => s.clone(),
            other => other.dumps(true),
        }
    }
    /// Python's `repr()` of a string (None for anything else missing).
    fn py_repr(&self) -> String {
        let Json::Str(s) = self else {
            return self.py_str();
        };
        let quote = if s.contains('\'') && !s.contains('"') {
            '"'
        } else {
            '\''
        };
        let mut out = String::from(quote);
        for c in s.chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                c if c == quote => {
                    out.push('\\');
                    out.push(c);
                }
                c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                    let _ = write!(out, "\\x{:02x}", c as u32);
                }
                c => out.push(c),
            }
        }
        out.push(quote);
        out
    }
    /// Python's `json.dumps(value, ensure_ascii=ascii)`.
    fn dumps(&self, ascii: bool) -> String {
        let mut out = String::new();
        self.dump_into(&mut out, ascii);
        out
    }
    fn dump_into(&self, out: &mut String, ascii: bool) {
        match self {
            Json::Null => out.push_str("null"),
            Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Json::Number(n) => out.push_str(&n.to_string()),
            Json::Str(s) => dump_str(out, s, ascii),
            Json::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    item.dump_into(out, ascii);
                }
                out.push(']');
            }
            Json::Object(fields) => {
                out.push('{');
                for (i, (key, value)) in fields.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    dump_str(out, key, ascii);
                    out.push_str(": ");
                    value.dump_into(out, ascii);
                }
                out.push('}');
            }
        }
    }
}

fn dump_str(out: &mut String, s: &str, ascii: bool) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 || (ascii && !c.is_ascii()) => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    let _ = write!(out, "\\u{unit:04x}");
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn read(path: &str) -> anyhow::Result<Json> {
    let text = if path == "-" {
        std::io::read_to_string(std::io::stdin())?
    } else {
        std::fs::read_to_string(path).with_context(|| format!("reading {path}"))?
    };
    // The aws CLI prints nothing for get-item of a missing item.
    if text.trim().is_empty() {
        return Ok(Json::Null);
    }
    serde_json::from_str(&text).with_context(|| format!("{path}: not JSON"))
}

fn get(doc: &Json, path: &str, len: bool) -> anyhow::Result<()> {
    let value = path
        .split('.')
        .filter(|step| !step.is_empty())
        .fold(doc, |value, step| value.get(step));
    if len {
        match value {
            Json::Array(items) => println!("{}", items.len()),
            Json::Object(fields) => println!("{}", fields.len()),
            _ => bail!("{path} is neither an array nor an object"),
        }
    } else if *value == Json::Null {
        bail!("nothing at {path}");
    } else {
        println!("{}", value.text());
    }
    Ok(())
}

fn cfn_request(event: &Json) {
    let mut line = format!(
        "\n> {} {} {}",
        event.get("RequestType").text(),
        event.get("ResourceType").text(),
        event.get("LogicalResourceId").text()
    );
    if let Json::Str(physical) = event.get("PhysicalResourceId") {
        let _ = write!(line, " (PhysicalResourceId {physical})");
    }
    println!("{line}");
}

fn snapshot_summary(answer: &Json) {
    if let Json::Object(fields) = answer {
        for (key, value) in fields.iter().filter(|(_, v)| v.truthy()) {
            println!("    {key}: {}", value.dumps(true));
        }
    }
}

fn transcode_results(answer: &Json) {
    if answer.get("testEvent").truthy() {
        println!("    s3:TestEvent: nothing to do");
    }
    for result in answer.get("results").items() {
        let detail = match result.get("instanceId") {
            id if id.truthy() => id,
            _ => result.get("reason"),
        };
        let key = match result.get("key") {
            Json::Null => Json::Str(String::new()),
            key => key.clone(),
        };
        println!(
            "    {:<9} {}  {}",
            result.get("outcome").py_str(),
            key.py_repr(),
            detail.py_str()
        );
    }
}

fn status_json(status: &Json) {
    let fields = ["status", "exitCode", "durationSeconds", "source", "ffmpeg"]
        .into_iter()
        .map(|key| (key.to_owned(), status.get(key).clone()))
        .collect();
    println!("    status.json: {}", Json::Object(fields).dumps(false));
}

fn rotator_report(answer: &Json, bucket: &str) {
    for target in answer.get("targets").items() {
        let instance = target.get("instance").py_str();
        for log in target.get("logs").items() {
            let extra = match log.get("wouldArchiveRows") {
                Json::Null => String::new(),
                rows => format!(", {} to archive", rows.py_str()),
            };
            println!(
                "    {instance} {:<7} archived {:>4} rows in {} part(s){extra}; {}",
                log.get("log").py_str(),
                log.get("archivedRows").py_str(),
                log.get("archives").items().len(),
                log.get("reason").py_str()
            );
            for warning in log.get("warnings").items() {
                println!("      warning: {}", warning.py_str());
            }
        }
        if target.get("digest").truthy() {
            println!(
                "    digest: s3://{bucket}/{}; worst by total time:",
                target.get("digest").py_str()
            );
            for query in target.get("topQueries").items().iter().take(3) {
                let secs = match query.get("totalTimeSecs") {
                    Json::Number(n) => n.as_f64().unwrap_or(f64::NAN),
                    _ => f64::NAN,
                };
                let fingerprint: String =
                    query.get("fingerprint").py_str().chars().take(90).collect();
                println!(
                    "      {secs:7.3} s  x{:<3} {fingerprint}",
                    query.get("count").py_str()
                );
            }
        }
    }
}

/// DynamoDB JSON to plain values; N stays text so nothing is rounded.
fn plain(value: &Json) -> Json {
    let Json::Object(fields) = value else {
        return value.clone();
    };
    let Some((kind, v)) = fields.first() else {
        return Json::Null;
    };
    match (kind.as_str(), v) {
        ("M", Json::Object(map)) => {
            Json::Object(map.iter().map(|(k, x)| (k.clone(), plain(x))).collect())
        }
        ("L", Json::Array(list)) => Json::Array(list.iter().map(plain).collect()),
        ("B", Json::Str(base64)) => Json::Str(format!("<{} bytes>", base64_len(base64))),
        ("NULL", _) => Json::Null,
        (_, v) => v.clone(),
    }
}

/// The length of what a base64 text decodes to.
fn base64_len(text: &str) -> usize {
    let padding = text.bytes().rev().take_while(|&b| b == b'=').count();
    text.len() / 4 * 3 - padding
}

fn plain_item(item: &Json) -> Json {
    let Json::Object(fields) = item else {
        return Json::Null;
    };
    let mut fields: Vec<_> = fields.iter().map(|(k, v)| (k.clone(), plain(v))).collect();
    fields.sort_by(|a, b| a.0.cmp(&b.0));
    Json::Object(fields)
}

fn dynamodb_scan(table: &str, scan: &Json) {
    let mut items: Vec<&Json> = scan.get("Items").items().iter().collect();
    println!("    {table}: {} item(s)", items.len());
    let key = ["pk", "address", "position"]
        .into_iter()
        .find(|k| items.first().is_some_and(|item| *item.get(k) != Json::Null));
    if let Some(key) = key {
        items.sort_by_cached_key(|item| plain(item.get(key)).dumps(true));
    }
    for item in items {
        println!("      {}", plain_item(item).dumps(true));
    }
}

fn dynamodb_item(table: &str, key: &str, value: &str, answer: &Json) {
    match answer.get("Item") {
        Json::Null => println!("    {table}: no item {key}={value}"),
        item => println!("    {table}: {}", plain_item(item).dumps(true)),
    }
}

fn tags(resource: &Json) -> Vec<(String, Json)> {
    resource
        .get("Tags")
        .items()
        .iter()
        .map(|tag| (tag.get("Key").py_str(), tag.get("Value").clone()))
        .collect()
}

fn tag<'a>(tags: &'a [(String, Json)], key: &str) -> &'a Json {
    tags.iter()
        .find(|(k, _)| k == key)
        .map_or(&NULL, |(_, v)| v)
}

fn snapshots(region: &str, answer: &Json) {
    // moto's own AMI snapshots carry no tags; the demo's all do.
    let mut snapshots: Vec<&Json> = answer
        .get("Snapshots")
        .items()
        .iter()
        .filter(|s| s.get("Tags").truthy())
        .collect();
    println!("    {region}: {} tagged snapshot(s)", snapshots.len());
    snapshots.sort_by_key(|s| s.get("SnapshotId").py_str());
    for snapshot in snapshots {
        let tags = tags(snapshot);
        let or_dash = |key| match tag(&tags, key) {
            Json::Null => "-".to_owned(),
            value => value.py_str(),
        };
        let origin = match tag(&tags, "dr:source-snapshot-id") {
            source if source.truthy() => format!("copy of {}", source.py_str()),
            _ => format!("copy-to={}", or_dash("dr:copy-to")),
        };
        println!(
            "      {}  {:<34} {origin}",
            snapshot.get("SnapshotId").py_str(),
            or_dash("Name")
        );
    }
}

fn instances(answer: &Json) {
    let instances: Vec<&Json> = answer
        .get("Reservations")
        .items()
        .iter()
        .flat_map(|r| r.get("Instances").items())
        .collect();
    println!("    {} worker(s)", instances.len());
    for instance in instances {
        let tags = tags(instance);
        println!(
            "      {}  {}  {:<8} {}  {}",
            instance.get("InstanceId").py_str(),
            instance.get("InstanceType").py_str(),
            instance.get("State").get("Name").py_str(),
            tag(&tags, "transcode:job-id").py_str(),
            tag(&tags, "transcode:source-key").py_repr()
        );
    }
}

fn free_port() -> anyhow::Result<()> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    println!("{}", listener.local_addr()?.port());
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args.as_slice() {
        ["free-port"] => free_port()?,
        ["get", file, path] => get(&read(file)?, path, false)?,
        ["get", file, path, "--len"] => get(&read(file)?, path, true)?,
        ["cfn-request", file] => cfn_request(&read(file)?),
        ["snapshot-summary", file] => snapshot_summary(&read(file)?),
        ["transcode-results", file] => transcode_results(&read(file)?),
        ["status-json", file] => status_json(&read(file)?),
        ["rotator-report", file, bucket] => rotator_report(&read(file)?, bucket),
        ["dynamodb-scan", table, file] => dynamodb_scan(table, &read(file)?),
        ["dynamodb-item", table, key, value, file] => {
            dynamodb_item(table, key, value, &read(file)?)
        }
        ["snapshots", region, file] => snapshots(region, &read(file)?),
        ["instances", file] => instances(&read(file)?),
        _ => bail!("usage: see the head of tests/src/bin/demo_view.rs"),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(text: &str) -> Json {
        serde_json::from_str(text).unwrap()
    }

    #[test]
    fn dumps_as_python_does() {
        let value = json(r#"{"b": [1, 2.5, null, true], "a": "é\n\"x\""}"#);
        assert_eq!(
            value.dumps(true),
            r#"{"b": [1, 2.5, null, true], "a": "\u00e9\n\"x\""}"#
        );
        assert_eq!(value.get("a").dumps(false), r#""é\n\"x\"""#);
    }

    #[test]
    fn repr_as_python_does() {
        assert_eq!(json(r#""a b""#).py_repr(), "'a b'");
        assert_eq!(json(r#""it's""#).py_repr(), "\"it's\"");
        assert_eq!(json("null").py_repr(), "None");
    }

    #[test]
    fn dynamodb_json_to_plain_values() {
        let item = json(
            r#"{"pk": {"S": "x"}, "n": {"N": "1.50"}, "b": {"B": "AAEC"},
            "m": {"M": {"z": {"NULL": true}, "a": {"L": [{"BOOL": false}]}}}}"#,
        );
        assert_eq!(
            plain_item(&item).dumps(true),
            r#"{"b": "<3 bytes>", "m": {"z": null, "a": [false]}, "n": "1.50", "pk": "x"}"#
        );
    }
}
