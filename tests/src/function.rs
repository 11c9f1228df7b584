//! A real function binary running against the Runtime API stand-in, with its
//! stdout (logs, EMF) captured.

use crate::process::Guard;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Instant;

pub struct FunctionProcess {
    guard: Guard,
    pub started: Instant,
    logs: Arc<Mutex<Vec<String>>>,
}

impl FunctionProcess {
    /// Starts `binary` with the Lambda environment variables and `env`.
    pub fn spawn(binary: &Path, runtime_api: &str, env: &[(String, String)]) -> Self {
        let mut command = Command::new(binary);
        command
            .env_clear()
            .env("AWS_LAMBDA_RUNTIME_API", runtime_api)
            .env("AWS_LAMBDA_FUNCTION_NAME", "local")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/local")
            .env("AWS_LAMBDA_LOG_STREAM_NAME", "local")
            .env("AWS_LAMBDA_LOG_FORMAT", "JSON")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let started = Instant::now();
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        let logs = Arc::new(Mutex::new(Vec::new()));
        let stdout = child.stdout.take().expect("piped stdout");
        let sink = logs.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        Self {
            guard: Guard(child),
            started,
            logs,
        }
    }

    pub fn logs(&self) -> Vec<String> {
        self.logs.lock().unwrap().clone()
    }

    /// The stdout lines that parse as JSON and that `pick` selects, once
    /// there are `count` of them; panics with the whole log after 5 s.
    pub async fn json_lines(
        &self,
        count: usize,
        pick: impl Fn(&serde_json::Value) -> bool,
    ) -> Vec<serde_json::Value> {
        let started = Instant::now();
        loop {
            let found: Vec<serde_json::Value> = self
                .logs()
                .iter()
                .filter_map(|l| serde_json::from_str(l).ok())
                .filter(|l| pick(l))
                .collect();
            if found.len() >= count {
                return found;
            }
            assert!(
                started.elapsed() < std::time::Duration::from_secs(5),
                "expected {count} matching lines: {:#?}",
                self.logs()
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    /// Peak resident memory so far, in KiB (VmHWM).
    pub fn peak_rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.guard.0.id())).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
    }

    /// Whether the process has exited, and with which code.
    pub fn exit_code(&mut self) -> Option<i32> {
        self.guard
            .0
            .try_wait()
            .ok()
            .flatten()
            .and_then(|s| s.code())
    }
}

/// Starts `binary` with `env` and checks that its init fails, reported as
/// InvalidConfiguration naming each of `names`, and that the process exits 1.
pub async fn assert_init_fails_naming(binary: &Path, env: &[(&str, &str)], names: &[&str]) {
    let mut running = crate::running::Running::start(binary, &env.into()).await;
    let report = running
        .api
        .init_error(std::time::Duration::from_secs(10))
        .await
        .expect("an init error is reported");
    assert_eq!(report["errorType"], "InvalidConfiguration");
    let message = report["errorMessage"].as_str().unwrap_or_default();
    for name in names {
        assert!(message.contains(name), "{name}: {message}");
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(
        running.process_mut().exit_code(),
        Some(1),
        "the process exits after reporting"
    );
}
