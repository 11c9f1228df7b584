//! Local runs of one function: `make invoke` and env.json, both made from
//! each function's `[package.metadata.lambda.env]`.

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;
use suite_tests::lambda_env::{LambdaPackage, lambda_packages, sam_env_json, sam_env_json_text};
use suite_tests::process::{free_port, sam_template, venv_tool, workspace_root};
use suite_tests::running::{Env, Running};

fn make_invoke(args: &[&str]) -> Output {
    Command::new("make")
        .args(["--no-print-directory", "invoke"])
        .args(args)
        .current_dir(workspace_root())
        .output()
        .expect("make runs")
}

fn text(output: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// After `make invoke` returned: nothing it started is left, neither a
/// process naming its files nor moto on its port.
fn assert_all_stopped(stdout: &str) {
    let work = stdout
        .lines()
        .find_map(|l| l.strip_prefix("(files of this run: "))
        .and_then(|l| l.strip_suffix(')'))
        .unwrap_or_else(|| panic!("no files line in:\n{stdout}"));
    let root = workspace_root();
    let lambda_env = std::fs::read_to_string(root.join(work).join("lambda.env")).unwrap();
    let moto_port: u16 = lambda_env
        .lines()
        .find_map(|l| l.strip_prefix("AWS_ENDPOINT_URL=\"http://127.0.0.1:"))
        .expect("the run's endpoint")
        .trim_end_matches('"')
        .parse()
        .unwrap();
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", moto_port)).is_err(),
        "moto still listens on {moto_port}"
    );
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        assert!(
            !cmdline.contains(work),
            "process {:?} is still running: {cmdline}",
            entry.file_name()
        );
    }
}

#[test]
fn make_invoke_cfn_responder_prints_what_cloudformation_received() {
    let output = make_invoke(&[
        "FN=cfn-responder",
        "EVENT=events/cfn-responder/01-create-ami-lookup.json",
    ]);
    let (stdout, stderr) = text(&output);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    let answer = stdout
        .split("CloudFormation stand-in:")
        .nth(1)
        .unwrap_or_else(|| panic!("no stand-in section in:\n{stdout}"));
    assert!(answer.contains(r#""Status": "SUCCESS""#), "{stdout}");
    assert!(answer.contains(r#""ImageId": "ami-"#), "{stdout}");
    assert!(
        answer.contains(r#""LogicalResourceId": "LatestAmi""#),
        "{stdout}"
    );
    assert_all_stopped(&stdout);
}

#[test]
fn make_invoke_ses_bounce_handler_prints_the_response_and_logs() {
    let output = make_invoke(&[
        "FN=ses-bounce-handler",
        "EVENT=events/ses-bounce-handler/01-permanent-bounce-two-recipients.json",
    ]);
    let (stdout, stderr) = text(&output);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    let (logs, response) = stdout
        .split_once("\nresponse:\n")
        .unwrap_or_else(|| panic!("no response in:\n{stdout}"));
    // Both recipients land in the seeded table, named by the metadata.
    assert!(response.contains(r#""suppressed": 2"#), "{stdout}");
    assert!(logs.contains("recipient applied"), "{stdout}");
    assert_all_stopped(&stdout);
}

#[test]
fn make_invoke_rds_log_rotator_runs_against_mariadb_and_stops_it() {
    let output = make_invoke(&[
        "FN=rds-log-rotator",
        "EVENT=events/rds-log-rotator/02-manual-dry-run.json",
    ]);
    let (stdout, stderr) = text(&output);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    let (_, response) = stdout
        .split_once("\nresponse:\n")
        .unwrap_or_else(|| panic!("no response in:\n{stdout}"));
    // The run's DB_INSTANCES and SECRET_ARN reached the function.
    assert!(response.contains(r#""dryRun": true"#), "{stdout}");
    assert!(response.contains(r#""instance": "orders-db""#), "{stdout}");
    assert!(
        response.contains("dry run: would rotate mysql.slow_log"),
        "{stdout}"
    );
    // MariaDB's data directory is under the run's files: the scan in
    // assert_all_stopped finds a server left running.
    assert_all_stopped(&stdout);
}

#[test]
fn make_invoke_names_the_variable_that_is_wrong() {
    let cases: [(&[&str], &str); 4] = [
        (
            &["EVENT=events/ses-bounce-handler/07-delivery.json"],
            "FN is not set",
        ),
        (
            &[
                "FN=no-such-fn",
                "EVENT=events/ses-bounce-handler/07-delivery.json",
            ],
            "FN=no-such-fn is not a function; functions: cfn-responder ",
        ),
        (&["FN=ses-bounce-handler"], "EVENT is not set"),
        (
            &[
                "FN=ses-bounce-handler",
                "EVENT=events/ses-bounce-handler/nope.json",
            ],
            "EVENT=events/ses-bounce-handler/nope.json: no such file",
        ),
    ];
    for (args, message) in cases {
        let output = make_invoke(args);
        let (stdout, stderr) = text(&output);
        assert!(!output.status.success(), "{args:?} succeeded: {stdout}");
        assert!(
            stderr.contains(message),
            "{args:?}: expected {message:?} in:\n{stderr}"
        );
        assert!(
            !stdout.contains("building"),
            "{args:?} went on to build:\n{stdout}"
        );
    }
}

#[test]
fn env_json_is_made_from_the_functions_metadata() {
    let root = workspace_root();
    let packages = lambda_packages(&root).unwrap();
    let expected = sam_env_json_text(&sam_template(), &packages).unwrap();
    let actual = std::fs::read_to_string(root.join("env.json"))
        .expect("env.json at the repository root (make env.json)");
    assert_eq!(
        actual, expected,
        "env.json is stale: run `make env.json` and commit it"
    );
}

/// env.json is committed and meant for `sam local invoke` with real
/// credentials: it carries no value that only fits the local demo (a bucket
/// name someone else may own, the demo's retention or capacity), and
/// snapshot-copier only reports what it would delete.
#[test]
fn env_json_carries_no_demo_only_values_and_keeps_the_sweep_dry() {
    let root = workspace_root();
    let env_json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(root.join("env.json")).unwrap()).unwrap();
    let demo_only = [
        ("SnapshotCopierFunction", "KEEP_COPIES"),
        ("SnapshotCopierFunction", "DEFAULT_DESTINATIONS"),
        ("TranscodeLauncherFunction", "MAX_RUNNING_JOBS"),
        ("TranscodeLauncherFunction", "INPUT_BUCKET"),
        ("TranscodeLauncherFunction", "OUTPUT_BUCKET"),
        ("RdsLogRotatorFunction", "ARCHIVE_BUCKET"),
    ];
    for (id, key) in demo_only {
        assert!(
            env_json[id].get(key).is_none(),
            "env.json gives {id} the demo's {key}: {}",
            env_json[id][key]
        );
    }
    assert_eq!(
        env_json["SnapshotCopierFunction"]["DRY_RUN"], "true",
        "env.json must keep snapshot-copier's sweep a dry run"
    );
}

/// A value env.json sets must reach the function: SAM drops a variable the
/// template does not declare, so such a setting is refused, not lost.
#[test]
fn env_json_refuses_to_set_a_variable_the_template_does_not_declare() {
    let template = serde_json::json!({"Resources": {"F": {
        "Type": "AWS::Serverless::Function",
        "Metadata": {"BuildProperties": {"Binary": "f"}},
        "Properties": {"Environment": {"Variables": {"DRY_RUN": "false"}}},
    }}});
    let package = |sets: &[(&str, &str)]| LambdaPackage {
        name: "f".into(),
        bins: vec!["f".into()],
        env: Default::default(),
        env_json_leaves_out: vec![],
        env_json_sets: sets
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    };
    let set = sam_env_json(&template, &[package(&[("DRY_RUN", "true")])]).unwrap();
    assert_eq!(set["F"]["DRY_RUN"], "true");
    let error = sam_env_json(&template, &[package(&[("DRY_RUM", "true")])])
        .expect_err("an undeclared variable is refused")
        .to_string();
    assert!(error.contains("DRY_RUM"), "{error}");
}

#[test]
fn env_json_names_functions_of_the_template() {
    let root = workspace_root();
    let template = sam_template();
    let env_json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(root.join("env.json")).unwrap()).unwrap();
    let ids: Vec<&String> = env_json.as_object().unwrap().keys().collect();
    let functions: Vec<&String> = template["Resources"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, r)| r["Type"] == "AWS::Serverless::Function")
        .map(|(id, _)| id)
        .collect();
    for id in &ids {
        assert!(
            functions.contains(id),
            "env.json names {id}, which is no function of template.yaml"
        );
    }
    assert_eq!(ids.len(), functions.len(), "one entry per function");
}

#[test]
fn every_function_has_its_local_environment_in_its_cargo_toml() {
    let root = workspace_root();
    let packages = lambda_packages(&root).unwrap();
    for entry in std::fs::read_dir(root.join("functions")).unwrap().flatten() {
        let name = entry.file_name().into_string().unwrap();
        if !Path::new(&entry.path()).join("Cargo.toml").exists() {
            continue;
        }
        let package = packages
            .iter()
            .find(|p| p.name == name)
            .unwrap_or_else(|| panic!("functions/{name}: no [package.metadata.lambda.env]"));
        // The run's endpoint comes from the caller: cargo lambda watch would
        // let a value here override it.
        assert!(
            !package.env.contains_key("AWS_ENDPOINT_URL"),
            "functions/{name}: AWS_ENDPOINT_URL depends on the run"
        );
        assert_eq!(
            package.env.get("AWS_REGION").map(String::as_str),
            Some("us-east-1")
        );
    }
}

/// A function as `sam local invoke --env-vars env.json` runs it.
struct SamLocalFunction {
    logical_id: String,
    binary: String,
    env: Vec<(String, String)>,
}

/// What `sam local invoke --env-vars env.json` gives each function, from
/// SAM's own code (its template provider resolves the intrinsics, its
/// EnvironmentVariables applies the overrides).
fn sam_local_environments() -> Vec<SamLocalFunction> {
    let root = workspace_root();
    let output = Command::new(venv_tool("python"))
        .arg("-c")
        .arg(
            "import json, sys\n\
             from samcli.lib.providers.sam_stack_provider import SamLocalStackProvider\n\
             from samcli.lib.providers.sam_function_provider import SamFunctionProvider\n\
             from samcli.local.lambdafn.env_vars import EnvironmentVariables\n\
             overrides = json.load(open(sys.argv[2]))\n\
             stacks, _ = SamLocalStackProvider.get_stacks(sys.argv[1])\n\
             out = []\n\
             for f in SamFunctionProvider(stacks).get_all():\n\
             \x20   variables = (f.environment or {}).get('Variables', {})\n\
             \x20   env = EnvironmentVariables(f.name, f.memory, f.timeout, f.handler, variables=variables,\n\
             \x20                              override_values=overrides.get(f.name, {})).resolve()\n\
             \x20   out.append([f.name, f.metadata['BuildProperties']['Binary'], env])\n\
             print(json.dumps(out))",
        )
        .arg(root.join("template.yaml"))
        .arg(root.join("env.json"))
        .env("SAM_CLI_TELEMETRY", "0")
        .current_dir(&root)
        .output()
        .expect("the .venv python runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let functions: Vec<(String, String, std::collections::BTreeMap<String, String>)> =
        serde_json::from_slice(&output.stdout).expect("SAM's environments as JSON");
    functions
        .into_iter()
        .map(|(logical_id, binary, env)| SamLocalFunction {
            logical_id,
            binary,
            env: env.into_iter().collect(),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn with_env_json_every_function_starts_as_sam_local_invoke_runs_it() {
    let root = workspace_root();
    let env_json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(root.join("env.json")).unwrap()).unwrap();
    let functions = sam_local_environments();
    assert_eq!(functions.len(), env_json.as_object().unwrap().len());

    let packages = lambda_packages(&root).unwrap();
    let mut build = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    build.args(["build", "--quiet"]).current_dir(&root);
    for function in &functions {
        let binary = &function.binary;
        let package = packages
            .iter()
            .find(|p| p.bins.contains(binary))
            .unwrap_or_else(|| panic!("no package builds {binary}"));
        build.args(["-p", &package.name, "--bin", binary]);
    }
    assert!(build.status().unwrap().success(), "building the functions");

    // Nothing answers on this loopback port: an init that called AWS fails
    // here instead of leaving the machine.
    let nowhere = format!("http://127.0.0.1:{}", free_port());
    for SamLocalFunction {
        logical_id: id,
        binary,
        env,
    } in functions
    {
        // SAM passes only the variables the template declares: every value
        // env.json holds reaches the function.
        for (key, value) in env_json[&id].as_object().unwrap() {
            assert!(
                env.contains(&(key.clone(), value.as_str().unwrap().to_owned())),
                "{id}: SAM drops env.json's {key}"
            );
        }
        let env = Env::from(env).set("AWS_ENDPOINT_URL", &nowhere);
        let function = Running::start(root.join("target/debug").join(&binary), &env).await;
        let polled = function.api.first_poll(Duration::from_secs(60)).await;
        let init_error = function.api.init_error(Duration::ZERO).await;
        assert!(
            polled.is_some() && init_error.is_none(),
            "{id} does not start with the environment sam local invoke gives it: {init_error:?}\n{:#?}",
            function.logs()
        );
    }
}
