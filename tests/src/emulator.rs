//! `cargo lambda watch`, the Runtime API emulator, on a free loopback port.

use crate::process::{Guard, free_port, spawn, venv_tool, wait_for_port, workspace_root};
use std::process::{Command, Stdio};
use std::time::Duration;

pub struct Emulator {
    pub port: u16,
    _guard: Guard,
}

impl Emulator {
    /// Starts the emulator for the workspace with `env` for the functions.
    /// A function's `[package.metadata.lambda.env]` wins over `env` for the
    /// same name (cargo-lambda's precedence): vary only what it leaves out.
    pub fn start(env: &[(String, String)]) -> Self {
        let port = free_port();
        let venv_bin = venv_tool("cargo-lambda")
            .parent()
            .expect("venv bin")
            .to_path_buf();
        let path = format!(
            "{}:{}",
            venv_bin.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let mut command = Command::new(venv_tool("cargo-lambda"));
        command
            .args([
                "lambda",
                "watch",
                "--quiet",
                "--ignore-changes",
                "-A",
                "127.0.0.1",
                "-P",
                &port.to_string(),
            ])
            .current_dir(workspace_root())
            .env("PATH", path)
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let guard = spawn(command);
        assert!(
            wait_for_port(port, Duration::from_secs(60)),
            "cargo lambda watch did not listen on {port}"
        );
        Self {
            port,
            _guard: guard,
        }
    }

    /// Invokes `function` synchronously, as `aws lambda invoke` would.
    pub async fn invoke(
        &self,
        function: &str,
        payload: &serde_json::Value,
    ) -> anyhow::Result<(u16, String)> {
        let body = serde_json::to_vec(payload)?;
        let request = format!(
            "POST /2015-03-31/functions/{function}/invocations HTTP/1.1\r\nHost: 127.0.0.1:{}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            self.port,
            body.len()
        );
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await?;
        stream.write_all(request.as_bytes()).await?;
        stream.write_all(&body).await?;
        let mut reply = Vec::new();
        // The first invoke compiles the function.
        tokio::time::timeout(Duration::from_secs(900), stream.read_to_end(&mut reply)).await??;
        let text = String::from_utf8_lossy(&reply).into_owned();
        let status = text
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let body = text
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_owned())
            .unwrap_or_default();
        Ok((status, body))
    }
}
