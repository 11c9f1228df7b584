//! moto in server mode, on 127.0.0.1 and a free port, one per test binary.

use crate::process::{Guard, free_port, spawn, venv_tool, wait_for_port};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType,
    ScalarAttributeType,
};
use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::time::Duration;

pub struct Moto {
    pub port: u16,
    _guard: Guard,
}

impl Moto {
    pub fn start() -> Self {
        let port = free_port();
        let mut command = Command::new(venv_tool("moto_server"));
        command
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let guard = spawn(command);
        assert!(
            wait_for_port(port, Duration::from_secs(30)),
            "moto did not start on port {port}"
        );
        Self {
            port,
            _guard: guard,
        }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Environment for an SDK client or a function pointed at this server.
    pub fn env(&self) -> Vec<(String, String)> {
        [
            ("AWS_ENDPOINT_URL", self.endpoint().as_str()),
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
            ("AWS_SESSION_TOKEN", "testing"),
            ("AWS_REGION", "us-east-1"),
            ("AWS_DEFAULT_REGION", "us-east-1"),
            ("AWS_EC2_METADATA_DISABLED", "true"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    }
}

impl Moto {
    /// SDK settings for this server, for tests' own clients.
    pub async fn sdk_config(&self) -> aws_config::SdkConfig {
        local_sdk_config(&self.endpoint()).await
    }

    pub async fn dynamodb(&self) -> aws_sdk_dynamodb::Client {
        aws_sdk_dynamodb::Client::new(&self.sdk_config().await)
    }
}

/// SDK settings for any local endpoint (moto, a stand-in): us-east-1 and
/// test credentials, set explicitly since tests run on many threads.
pub async fn local_sdk_config(endpoint: &str) -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "testing", "testing", None, None, "test",
        ))
        .load()
        .await
}

/// An item as the SDK returns it.
pub type Row = HashMap<String, AttributeValue>;

/// Creates an on-demand table whose keys (hash, then range) are strings.
pub async fn create_table(db: &aws_sdk_dynamodb::Client, name: &str, keys: &[&str]) {
    let mut request = db
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest);
    for (i, key) in keys.iter().enumerate() {
        let kind = if i == 0 {
            KeyType::Hash
        } else {
            KeyType::Range
        };
        request = request
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name(*key)
                    .attribute_type(ScalarAttributeType::S)
                    .build()
                    .expect("complete"),
            )
            .key_schema(
                KeySchemaElement::builder()
                    .attribute_name(*key)
                    .key_type(kind)
                    .build()
                    .expect("complete"),
            );
    }
    request.send().await.expect("moto creates the table");
}

pub async fn scan(db: &aws_sdk_dynamodb::Client, table: &str) -> Vec<Row> {
    db.scan()
        .table_name(table)
        .send()
        .await
        .expect("moto scans the table")
        .items
        .unwrap_or_default()
}
