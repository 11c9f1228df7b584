//! The rotator binary against a real MariaDB, with moto for S3 and Secrets
//! Manager.
#![allow(dead_code)]

use flate2::read::GzDecoder;
use serde_json::Value;
use std::collections::HashMap;
use std::io::Read;
use std::path::Path;
use std::time::Duration;
use suite_tests::function::FunctionProcess;
use suite_tests::mariadb::{MariaDb, PASSWORD, USER};
use suite_tests::moto::Moto;
use suite_tests::process::workspace_root;
use suite_tests::runtime_api::RuntimeApi;

pub const BUCKET: &str = "rds-archive";
pub const INSTANCE: &str = "orders-db";

pub struct Stack {
    pub db: MariaDb,
    pub moto: Moto,
    pub s3: aws_sdk_s3::Client,
    pub secret_arn: String,
}

pub async fn start() -> Stack {
    let db = MariaDb::start();
    let moto = Moto::start();
    let sdk = moto.sdk_config().await;
    let s3 = rds_log_rotator::aws::s3::client(&sdk, true);
    s3.create_bucket().bucket(BUCKET).send().await.unwrap();
    let secret = aws_sdk_secretsmanager::Client::new(&sdk)
        .create_secret()
        .name("rds/orders-db/log_rotator")
        .secret_string(serde_json::json!({"username": USER, "password": PASSWORD}).to_string())
        .send()
        .await
        .unwrap();
    Stack {
        db,
        moto,
        s3,
        secret_arn: secret.arn().unwrap().to_owned(),
    }
}

/// A rotator process and its Runtime API.
pub struct Rotator {
    pub api: RuntimeApi,
    processes: Vec<FunctionProcess>,
}

impl Stack {
    pub fn env(&self, extra: &[(&str, &str)]) -> Vec<(String, String)> {
        let mut env = self.moto.env();
        for (k, v) in [
            (
                "DB_INSTANCES",
                format!("{INSTANCE}=127.0.0.1:{}", self.db.port),
            ),
            ("SECRET_ARN", self.secret_arn.clone()),
            ("DB_TLS", "disabled".into()),
            ("ARCHIVE_BUCKET", BUCKET.into()),
            ("S3_FORCE_PATH_STYLE", "true".into()),
        ] {
            env.push((k.to_owned(), v));
        }
        for (k, v) in extra {
            env.retain(|(name, _)| name != k);
            env.push(((*k).to_owned(), (*v).to_owned()));
        }
        env
    }

    /// `processes` rotator processes polling one Runtime API.
    pub async fn rotator(&self, processes: usize, extra: &[(&str, &str)]) -> Rotator {
        let api = RuntimeApi::start().await.unwrap();
        let env = self.env(extra);
        let processes = (0..processes)
            .map(|_| {
                FunctionProcess::spawn(
                    Path::new(env!("CARGO_BIN_EXE_rds-log-rotator")),
                    &api.host_port(),
                    &env,
                )
            })
            .collect();
        Rotator { api, processes }
    }

    /// Statements that each leave one row in slow_log and one in
    /// general_log (long_query_time=0), returned as sent.
    pub fn markers(&self, round: u32, n: u32) -> Vec<String> {
        let statements: Vec<String> = (0..n)
            .map(|i| format!("SELECT 'marker-{round}-{i}' AS marker"))
            .collect();
        self.db.sql(&format!("{};", statements.join(";\n")));
        statements
    }

    /// Every archived row, per log, decoded from the parts in S3.
    pub async fn archive(&self) -> HashMap<&'static str, Vec<Value>> {
        let mut rows: HashMap<&'static str, Vec<Value>> = HashMap::new();
        let listed = self
            .s3
            .list_objects_v2()
            .bucket(BUCKET)
            .send()
            .await
            .unwrap();
        for object in listed.contents() {
            let key = object.key().unwrap();
            if !key.ends_with(".jsonl.gz") {
                continue;
            }
            let log = if key.starts_with("rds-logs/slow/") {
                "slow"
            } else {
                "general"
            };
            let body = self.get(key).await.unwrap();
            let mut text = String::new();
            GzDecoder::new(&body[..]).read_to_string(&mut text).unwrap();
            rows.entry(log).or_default().extend(
                text.lines()
                    .map(|l| serde_json::from_str::<Value>(l).unwrap()),
            );
        }
        rows
    }

    pub async fn get(&self, key: &str) -> Option<Vec<u8>> {
        let object = self
            .s3
            .get_object()
            .bucket(BUCKET)
            .key(key)
            .send()
            .await
            .ok()?;
        Some(object.body.collect().await.unwrap().into_bytes().to_vec())
    }

    /// Each statement appears exactly once in each log's archive, and no
    /// archived row appears twice.
    pub async fn assert_archived_exactly_once(&self, statements: &[String]) {
        let archive = self.archive().await;
        for (log, field) in [("slow", "sql_text"), ("general", "argument")] {
            let rows = archive.get(log).cloned().unwrap_or_default();
            let mut counts: HashMap<&str, usize> = HashMap::new();
            for row in &rows {
                if let Some(text) = row[field].as_str() {
                    *counts.entry(text).or_default() += 1;
                }
            }
            for statement in statements {
                assert_eq!(
                    counts.get(statement.as_str()),
                    Some(&1),
                    "{log}: {statement}"
                );
            }
            let distinct: std::collections::HashSet<String> =
                rows.iter().map(Value::to_string).collect();
            assert_eq!(
                distinct.len(),
                rows.len(),
                "{log}: an archived row appears twice"
            );
        }
    }
}

impl Rotator {
    /// Every line the processes wrote so far.
    pub fn logs(&self) -> Vec<String> {
        self.processes.iter().flat_map(|p| p.logs()).collect()
    }

    pub async fn invoke(&self, event: Value) -> Result<Value, Value> {
        self.api
            .invoke(event, Duration::from_secs(120))
            .await
            .unwrap()
            .result
    }
}

pub fn sample(name: &str) -> Value {
    let path = workspace_root().join("events/rds-log-rotator").join(name);
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

pub fn scheduled() -> Value {
    sample("01-scheduled.json")
}

/// The report for one log of the only target.
pub fn log_report<'a>(answer: &'a Value, log: &str) -> &'a Value {
    answer["targets"][0]["logs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["log"] == log)
        .unwrap_or_else(|| panic!("no {log} report in {answer}"))
}
