//! Child processes that die with the test, and where things are.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// Kills the child when dropped, so a failing test leaves nothing behind.
pub struct Guard(pub Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The workspace root (where Cargo.toml with [workspace] is).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the workspace")
        .to_path_buf()
}

/// A tool from the project's venv (`make venv`). Missing is a failure, never
/// a skip: CI must not pass without the real dependency.
pub fn venv_tool(name: &str) -> PathBuf {
    let path = workspace_root().join(".venv/bin").join(name);
    assert!(
        path.exists(),
        "{} is missing: run `make venv` (CI installs it through .ci/run)",
        path.display()
    );
    path
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// Waits until something accepts connections on 127.0.0.1:`port`.
pub fn wait_for_port(port: u16, within: Duration) -> bool {
    let start = Instant::now();
    while start.elapsed() < within {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// Spawns `command`, failing loudly if it cannot start.
pub fn spawn(mut command: Command) -> Guard {
    let child = command
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {:?}: {e}", command.get_program()));
    Guard(child)
}

/// `template.yaml` as JSON, read with cfn-lint's own decoder (so `!Ref`,
/// `!If` and friends arrive as `Ref`/`Fn::If` objects, as CloudFormation
/// sees them). A template cfn-lint cannot decode fails the test.
pub fn sam_template() -> serde_json::Value {
    let output = std::process::Command::new(venv_tool("python"))
        .arg("-c")
        .arg(
            "import json, sys\n\
             from cfnlint.decode import decode\n\
             template, problems = decode(sys.argv[1])\n\
             assert not problems, problems\n\
             print(json.dumps(template, default=str))",
        )
        .arg(workspace_root().join("template.yaml"))
        .output()
        .expect("the .venv python runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("cfn-lint printed JSON")
}
