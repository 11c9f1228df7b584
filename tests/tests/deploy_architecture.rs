//! `make deploy` builds and deploys one Architecture. `sam deploy --guided`
//! saves every parameter into samconfig.toml's deploy section, whose
//! parameter_overrides then replaces the global one for deploy only: the
//! Makefile must not let `sam build` compile for one CPU while `sam deploy`
//! tells Lambda another. The real Makefile runs against a `sam` stand-in
//! that records its arguments and writes a built template as `sam build` does.

use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Command;
use suite_tests::process::{venv_tool, workspace_root};

/// Records each call's arguments (one per line, a blank line after) and,
/// for `build`, writes what `sam build` leaves: the template as built.
const SAM_STAND_IN: &str = r#"#!/bin/sh
for a in "$@"; do printf '%s\n' "$a"; done >> sam-calls.txt
echo >> sam-calls.txt
if [ "$1" = build ]; then
  mkdir -p .aws-sam/build
  cp built-template.yaml .aws-sam/build/template.yaml
fi
"#;

/// What `sam build` writes: the parameter as in template.yaml.
const BUILT_TEMPLATE: &str = "\
AWSTemplateFormatVersion: '2010-09-09'
Parameters:
  Architecture:
    Type: String
    Default: arm64
    AllowedValues:
    - arm64
    - x86_64
  KinesisMode:
    Type: String
    Default: latest
Resources:
  CfnResponderFunction:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: CfnResponderFunction
      Architectures:
      - Ref: Architecture
";

/// samconfig.toml after `sam deploy --guided` answered arm64, then the
/// global Architecture was changed to x86_64.
const SAMCONFIG_AFTER_GUIDED: &str = r#"version = 0.1

[default.global.parameters]
stack_name = "lambda-suite"
parameter_overrides = "Architecture=x86_64"

[default.deploy.parameters]
capabilities = "CAPABILITY_IAM"
resolve_s3 = true
confirm_changeset = true
parameter_overrides = "Architecture=\"arm64\" KinesisMode=\"append\" ItemsSortKey=\"sk\" SesIdentity=\"\" AlarmEmail=\"ops team@example.com\""
"#;

struct Deploy {
    dir: PathBuf,
}

impl Deploy {
    fn new(name: &str, samconfig: &str) -> Self {
        let dir = workspace_root()
            .join("target/deploy-architecture")
            .join(name);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("bin")).unwrap();
        let sam = dir.join("bin/sam");
        std::fs::write(&sam, SAM_STAND_IN).unwrap();
        let mut permissions = std::fs::metadata(&sam).unwrap().permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut permissions, 0o755);
        std::fs::set_permissions(&sam, permissions).unwrap();
        std::fs::write(dir.join("built-template.yaml"), BUILT_TEMPLATE).unwrap();
        std::fs::write(dir.join("samconfig.toml"), samconfig).unwrap();
        std::os::unix::fs::symlink(workspace_root().join("scripts"), dir.join("scripts")).unwrap();
        Deploy { dir }
    }

    /// `make deploy` with the given make arguments; the sam calls recorded.
    fn run(&self, args: &[&str]) -> Result<Vec<Vec<String>>, String> {
        let _ = std::fs::remove_file(self.dir.join("sam-calls.txt"));
        let venv_bin = venv_tool("python").parent().unwrap().to_owned();
        let path = format!(
            "{}:{}:/usr/bin:/bin",
            self.dir.join("bin").display(),
            venv_bin.display()
        );
        let output = Command::new("make")
            .arg("-f")
            .arg(workspace_root().join("Makefile"))
            // The venv is the repository's; nothing to install here.
            .args(["-o", "venv", "--no-print-directory", "deploy"])
            .args(args)
            .current_dir(&self.dir)
            .env("PATH", path)
            .output()
            .expect("make runs");
        let calls = std::fs::read_to_string(self.dir.join("sam-calls.txt")).unwrap_or_default();
        let calls: Vec<Vec<String>> = calls
            .split("\n\n")
            .filter(|c| !c.trim().is_empty())
            .map(|c| c.lines().map(str::to_owned).collect())
            .collect();
        if output.status.success() {
            Ok(calls)
        } else {
            Err(format!(
                "make deploy failed: {}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ))
        }
    }

    fn path(&self, relative: &str) -> PathBuf {
        self.dir.join(relative)
    }
}

/// The parameter overrides one sam call gets on its command line, as sam
/// reads them (`Key=Value` words, or file://FILE).
fn overrides(dir: &Path, call: &[String]) -> Value {
    let at = call
        .iter()
        .position(|a| a == "--parameter-overrides")
        .unwrap_or_else(|| panic!("no --parameter-overrides in {call:?}"));
    let script = "\
import json, sys
from samcli.cli.types import CfnParameterOverridesType
print(json.dumps(CfnParameterOverridesType().convert(sys.argv[1:], None, None)))
";
    let output = Command::new(venv_tool("python"))
        .arg("-c")
        .arg(script)
        .args(call[at + 1..].iter().take_while(|a| !a.starts_with("--")))
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

fn built_allowed_architectures(deploy: &Deploy) -> Value {
    let script = "\
import json, sys
from samcli.yamlhelper import yaml_parse
t = yaml_parse(open(sys.argv[1]).read())
print(json.dumps(t['Parameters']['Architecture']['AllowedValues']))
";
    let output = Command::new(venv_tool("python"))
        .args(["-c", script])
        .arg(deploy.path(".aws-sam/build/template.yaml"))
        .output()
        .unwrap();
    serde_json::from_slice(&output.stdout).unwrap()
}

#[test]
fn make_deploy_builds_and_deploys_the_one_global_architecture() {
    let deploy = Deploy::new("after-guided", SAMCONFIG_AFTER_GUIDED);
    let calls = deploy.run(&[]).unwrap();
    assert_eq!(calls.len(), 2, "{calls:?}");
    assert_eq!(calls[0][0], "build", "{calls:?}");
    assert_eq!(calls[1][0], "deploy", "{calls:?}");
    let built = overrides(&deploy.dir, &calls[0]);
    assert_eq!(built["Architecture"], "x86_64", "build: {calls:?}");
    let deployed = overrides(&deploy.dir, &calls[1]);
    // The global Architecture for both; what --guided saved stays.
    assert_eq!(
        deployed,
        json!({
            "Architecture": "x86_64",
            "KinesisMode": "append",
            "ItemsSortKey": "sk",
            "SesIdentity": "",
            "AlarmEmail": "ops team@example.com",
        }),
        "deploy: {calls:?}"
    );
    // A deploy of this build with another Architecture (an answer to a
    // --guided prompt) is refused by CloudFormation's parameter check.
    assert_eq!(built_allowed_architectures(&deploy), json!(["x86_64"]));

    // One make variable changes both, and extra parameters merge in.
    let calls = deploy
        .run(&["ARCH=arm64", "PARAMS=KinesisMode=latest Tracing=Active"])
        .unwrap();
    assert_eq!(overrides(&deploy.dir, &calls[0])["Architecture"], "arm64");
    let deployed = overrides(&deploy.dir, &calls[1]);
    assert_eq!(deployed["Architecture"], "arm64");
    assert_eq!(deployed["KinesisMode"], "latest");
    assert_eq!(deployed["Tracing"], "Active");
    assert_eq!(deployed["ItemsSortKey"], "sk");
    assert_eq!(built_allowed_architectures(&deploy), json!(["arm64"]));
}

#[test]
fn make_deploy_refuses_an_architecture_the_template_does_not_allow() {
    let deploy = Deploy::new("bad-arch", SAMCONFIG_AFTER_GUIDED);
    let error = deploy.run(&["ARCH=riscv"]).unwrap_err();
    assert!(error.contains("riscv"), "{error}");
    let calls = std::fs::read_to_string(deploy.path("sam-calls.txt")).unwrap_or_default();
    assert!(
        !calls.lines().any(|l| l == "deploy"),
        "deployed anyway: {calls}"
    );
}

#[test]
fn the_repositorys_samconfig_names_the_architecture_once() {
    let text = std::fs::read_to_string(workspace_root().join("samconfig.toml")).unwrap();
    let deploy = Deploy::new("repository-samconfig", &text);
    let calls = deploy.run(&[]).unwrap();
    let built = overrides(&deploy.dir, &calls[0]);
    let deployed = overrides(&deploy.dir, &calls[1]);
    assert_eq!(built["Architecture"], deployed["Architecture"]);
    assert!(
        ["arm64", "x86_64"].contains(&built["Architecture"].as_str().unwrap_or_default()),
        "{built}"
    );
}
