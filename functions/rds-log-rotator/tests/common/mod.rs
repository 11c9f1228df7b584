//! The rotator binary against a real MariaDB, with moto for S3 and Secrets
//! Manager.
#![allow(dead_code)]

use flate2::read::GzDecoder;
use rds_log_rotator::FUNCTION_NAME;
use serde_json::Value;
use std::collections::HashMap;
use std::io::Read;
use std::time::Duration;
use suite_tests::events::sample;
use suite_tests::mariadb::{MariaDb, PASSWORD, USER};
use suite_tests::moto::Moto;
use suite_tests::running::{Env, Running};

pub const BUCKET: &str = "rds-archive";
pub const INSTANCE: &str = "orders-db";
/// The time each invocation is given: runs against MariaDB and moto take
/// seconds, a few of them many.
pub const RUN_TIME: Duration = Duration::from_secs(120);

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

impl Stack {
    /// The rotator's environment against this stack, then `extra` (later
    /// entries win).
    pub fn env(&self, extra: &[(&str, &str)]) -> Env {
        Env::from(self.moto.env())
            .extend(&[
                (
                    "DB_INSTANCES",
                    format!("{INSTANCE}=127.0.0.1:{}", self.db.port).as_str(),
                ),
                ("SECRET_ARN", &self.secret_arn),
                ("DB_TLS", "disabled"),
                ("ARCHIVE_BUCKET", BUCKET),
                ("S3_FORCE_PATH_STYLE", "true"),
            ])
            .extend(extra)
    }

    /// `processes` rotator processes polling one Runtime API.
    pub async fn rotator(&self, processes: usize, extra: &[(&str, &str)]) -> Running {
        Running::start_many(
            env!("CARGO_BIN_EXE_rds-log-rotator"),
            &self.env(extra),
            processes,
        )
        .await
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

/// `event`'s answer from `rotator`, given [`RUN_TIME`].
pub async fn invoke(rotator: &Running, event: Value) -> Result<Value, Value> {
    rotator.invoke_within(event, RUN_TIME).await.result
}

pub fn scheduled() -> Value {
    sample(FUNCTION_NAME, "01-scheduled.json")
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
