//! The launcher binary against moto EC2 and S3, for the integration tests.
#![allow(dead_code)]

use aws_sdk_ec2::types::RequestLaunchTemplateData;
use serde_json::{Value, json};
use std::process::{Command, Output};
use std::time::Duration;
use suite_tests::dynamodb::{DynamoStandIn, Faults};
use suite_tests::moto::Moto;
use suite_tests::process::venv_tool;
use suite_tests::running::{Env, Running};

pub const TEMPLATE: &str = "transcode-worker";
pub const AMI: &str = "ami-12c6146b";
pub const JOBS_TABLE: &str = "transcode-jobs";

/// The launcher binary running against moto, and the services it was
/// seeded with.
pub struct Launcher {
    pub moto: Moto,
    pub ec2: aws_sdk_ec2::Client,
    /// The jobs table (ledger and capacity slots): conditional writes here
    /// are atomic, which moto's are not under concurrent requests.
    pub jobs: DynamoStandIn,
    pub function: Running,
}

/// The launcher's environment: INPUT_BUCKET uploads, OUTPUT_BUCKET outputs,
/// the moto launch template, then `extra` (later entries win).
pub async fn start(extra: &[(&str, &str)]) -> Launcher {
    start_many(1, extra).await
}

/// `processes` function processes polling one Runtime API: that many
/// invocations run at once, as Lambda runs concurrent ones.
pub async fn start_many(processes: usize, extra: &[(&str, &str)]) -> Launcher {
    let moto = Moto::start();
    let ec2 = aws_sdk_ec2::Client::new(&moto.sdk_config().await);
    create_launch_template(&ec2).await;
    let jobs = DynamoStandIn::start(&[(JOBS_TABLE, &["pk"])], Faults::none(Duration::ZERO))
        .await
        .unwrap();
    let env = Env::from(moto.env())
        .extend(&[
            ("INPUT_BUCKET", "uploads"),
            ("OUTPUT_BUCKET", "outputs"),
            ("LAUNCH_TEMPLATE_NAME", TEMPLATE),
            ("JOBS_TABLE", JOBS_TABLE),
            ("AWS_ENDPOINT_URL_DYNAMODB", jobs.endpoint().as_str()),
        ])
        .extend(extra);
    let function =
        Running::start_many(env!("CARGO_BIN_EXE_transcode-launcher"), &env, processes).await;
    Launcher {
        moto,
        ec2,
        jobs,
        function,
    }
}

/// The worker's launch template in moto EC2.
async fn create_launch_template(ec2: &aws_sdk_ec2::Client) {
    ec2.create_launch_template()
        .launch_template_name(TEMPLATE)
        .launch_template_data(
            RequestLaunchTemplateData::builder()
                .image_id(AMI)
                .instance_type(aws_sdk_ec2::types::InstanceType::C6iLarge)
                .build(),
        )
        .send()
        .await
        .expect("moto creates the launch template");
}

impl Launcher {
    /// Every process's stdout lines (logs and EMF documents).
    pub fn logs(&self) -> Vec<String> {
        self.function.logs()
    }

    /// How many log lines contain `needle`, once there are `count` (or 10 s
    /// have passed): stdout reaches the reader thread a moment after the
    /// answer reaches the test.
    pub async fn lines_with(&self, needle: &str, count: usize) -> usize {
        let started = std::time::Instant::now();
        loop {
            let found = self.logs().iter().filter(|l| l.contains(needle)).count();
            if found >= count || started.elapsed() > Duration::from_secs(10) {
                return found;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The answer or the error to `event`, given 60 s.
    pub async fn invoke(&self, event: Value) -> Result<Value, Value> {
        self.function
            .invoke_within(event, Duration::from_secs(60))
            .await
            .result
    }

    /// The user data EC2 stored for the instance, decoded.
    pub async fn user_data(&self, instance_id: &str) -> String {
        let attribute = self
            .ec2
            .describe_instance_attribute()
            .instance_id(instance_id)
            .attribute(aws_sdk_ec2::types::InstanceAttributeName::UserData)
            .send()
            .await
            .unwrap();
        let encoded = attribute.user_data().and_then(|u| u.value()).unwrap();
        String::from_utf8(aws_smithy_types::base64::decode(encoded).unwrap()).unwrap()
    }

    pub async fn instances(&self) -> Vec<aws_sdk_ec2::types::Instance> {
        let page = self.ec2.describe_instances().send().await.unwrap();
        page.reservations()
            .iter()
            .flat_map(|r| r.instances())
            .cloned()
            .collect()
    }

    /// An S3 client on moto (path-style: moto's buckets are not DNS names).
    pub async fn s3(&self) -> aws_sdk_s3::Client {
        let config = aws_sdk_s3::config::Builder::from(&self.moto.sdk_config().await)
            .force_path_style(true)
            .build();
        aws_sdk_s3::Client::from_conf(config)
    }

    /// Writes the job's status.json where worker.sh uploads it (OUTPUT_BUCKET
    /// "outputs", OUTPUT_PREFIX "transcoded"), creating the bucket if needed.
    pub async fn put_status(&self, job_id: &str, body: &str) {
        let s3 = self.s3().await;
        // Already created is fine; any other error shows in the put below.
        let _ = s3.create_bucket().bucket("outputs").send().await;
        s3.put_object()
            .bucket("outputs")
            .key(format!("transcoded/{job_id}/status.json"))
            .body(body.as_bytes().to_vec().into())
            .send()
            .await
            .expect("moto stores the status");
    }

    /// The venv's aws CLI against moto.
    pub fn aws(&self, args: &[&str]) -> Output {
        let output = Command::new(venv_tool("aws"))
            .args(["--endpoint-url", &self.moto.endpoint()])
            .args(args)
            .envs(self.moto.env())
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "aws {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        output
    }
}

pub fn tag<'a>(instance: &'a aws_sdk_ec2::types::Instance, key: &str) -> Option<&'a str> {
    instance
        .tags()
        .iter()
        .find(|t| t.key() == Some(key))
        .and_then(|t| t.value())
}

/// A key as S3 notifications carry it: form-urlencoded.
pub fn form_encode(key: &str) -> String {
    let mut out = String::new();
    for byte in key.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'*' | b'/' => {
                out.push(byte as char)
            }
            b' ' => out.push('+'),
            other => out.push_str(&format!("%{other:02X}")),
        }
    }
    out
}

/// An S3 notification for one created object.
pub fn notification(bucket: &str, key: &str, size: u64, sequencer: &str) -> Value {
    json!({"Records": [{
        "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1",
        "eventTime": "2026-11-22T10:00:00.000Z", "eventName": "ObjectCreated:Put",
        "s3": {"s3SchemaVersion": "1.0", "configurationId": "transcode",
               "bucket": {"name": bucket, "arn": format!("arn:aws:s3:::{bucket}")},
               "object": {"key": form_encode(key), "size": size,
                          "eTag": "0123456789abcdef0123456789abcdef", "sequencer": sequencer}}
    }]})
}
