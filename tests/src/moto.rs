//! moto in server mode, on 127.0.0.1 and a free port, one per test binary.

use crate::process::{Guard, free_port, spawn, venv_tool, wait_for_port};
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
