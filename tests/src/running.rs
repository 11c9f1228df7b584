//! A function binary running under the Runtime API stand-in: the harness
//! every function's integration tests start their binary with.

use crate::function::FunctionProcess;
use crate::http::SilentServer;
use crate::runtime_api::{Invocation, RuntimeApi};
use serde_json::Value;
use std::path::Path;
use std::time::Duration;

/// A function's environment, in order; setting a name again replaces the
/// earlier value ("later wins"), so a test overrides a harness default by
/// setting it after.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Env(Vec<(String, String)>);

impl Env {
    pub fn new() -> Env {
        Env::default()
    }

    /// The test credentials, which no real account accepts.
    pub fn test_credentials() -> Env {
        Env::new().extend(&[
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
        ])
    }

    /// Every AWS call to `endpoint` (moto or a stand-in), with the test
    /// credentials.
    pub fn aws(endpoint: &str) -> Env {
        Env::new()
            .set("AWS_ENDPOINT_URL", endpoint)
            .extend(Env::test_credentials().as_pairs())
    }

    pub fn set(mut self, name: &str, value: &str) -> Env {
        self.0.retain(|(k, _)| k != name);
        self.0.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Sets each pair in turn.
    pub fn extend<K: AsRef<str>, V: AsRef<str>>(self, pairs: &[(K, V)]) -> Env {
        pairs
            .iter()
            .fold(self, |env, (k, v)| env.set(k.as_ref(), v.as_ref()))
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The pairs, each name once, as `FunctionProcess::spawn` and
    /// `Emulator::start` take them.
    pub fn as_pairs(&self) -> &[(String, String)] {
        &self.0
    }
}

/// From `Moto::env()` and other pair lists; later pairs win.
impl From<Vec<(String, String)>> for Env {
    fn from(pairs: Vec<(String, String)>) -> Env {
        Env::new().extend(&pairs)
    }
}

impl From<&[(&str, &str)]> for Env {
    fn from(pairs: &[(&str, &str)]) -> Env {
        Env::new().extend(pairs)
    }
}

/// One Runtime API stand-in and the function processes polling it.
pub struct Running {
    pub api: RuntimeApi,
    processes: Vec<FunctionProcess>,
}

impl Running {
    /// Invocations wait this long unless a test gives its own time.
    pub const TIME: Duration = Duration::from_secs(30);

    /// One process of `binary` (pass `env!("CARGO_BIN_EXE_<name>")`, which
    /// only the crate's own tests can see) with exactly the Lambda variables
    /// and `env`, polling a fresh Runtime API stand-in.
    pub async fn start(binary: impl AsRef<Path>, env: &Env) -> Running {
        Running::start_many(binary, env, 1).await
    }

    /// One process of `binary` whose every AWS call goes to a server that
    /// accepts the connection and never answers (the "no answer" tests),
    /// with the test credentials and then `env` (which wins). The server
    /// comes back with it, to count the calls the function made.
    pub async fn start_with_silent_aws(
        binary: impl AsRef<Path>,
        env: &Env,
    ) -> (Running, SilentServer) {
        let silent = SilentServer::start()
            .await
            .expect("the silent server starts");
        let env = Env::aws(&silent.endpoint()).extend(env.as_pairs());
        (Running::start(binary, &env).await, silent)
    }

    /// `count` processes polling one API: that many invocations run at once,
    /// as Lambda runs concurrent ones in separate sandboxes.
    pub async fn start_many(binary: impl AsRef<Path>, env: &Env, count: usize) -> Running {
        assert!(count >= 1, "a function needs at least one process");
        let api = RuntimeApi::start()
            .await
            .expect("the Runtime API stand-in starts");
        let processes = (0..count)
            .map(|_| FunctionProcess::spawn(binary.as_ref(), &api.host_port(), env.as_pairs()))
            .collect();
        Running { api, processes }
    }

    /// Sends `event` with [`Running::TIME`] left; panics if no answer comes.
    pub async fn invoke(&self, event: Value) -> Invocation {
        self.invoke_within(event, Running::TIME).await
    }

    /// Sends `event` with `time` as the function's remaining time; panics if
    /// no answer comes within it (plus the stand-in's grace).
    pub async fn invoke_within(&self, event: Value, time: Duration) -> Invocation {
        self.api
            .invoke(event, time)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// As `invoke_within`, and checks the answer came before the deadline
    /// the function was given.
    pub async fn invoke_before_deadline(&self, event: Value, time: Duration) -> Invocation {
        self.api.invoke_before_deadline(event, time).await
    }

    /// The first (or only) process: `logs()`, `json_lines()`, `peak_rss_kib()`.
    pub fn process(&self) -> &FunctionProcess {
        &self.processes[0]
    }

    /// The first process, for `exit_code()`.
    pub fn process_mut(&mut self) -> &mut FunctionProcess {
        &mut self.processes[0]
    }

    pub fn processes(&self) -> &[FunctionProcess] {
        &self.processes
    }

    /// Every process's stdout lines (logs and EMF documents), process by
    /// process.
    pub fn logs(&self) -> Vec<String> {
        self.processes.iter().flat_map(|p| p.logs()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn later_settings_win_and_each_name_appears_once() {
        let env = Env::aws("http://127.0.0.1:1")
            .set("TABLE", "a")
            .extend(&[("MODE", "latest"), ("TABLE", "b")])
            .set("AWS_ENDPOINT_URL", "http://127.0.0.1:2");
        assert_eq!(env.get("TABLE"), Some("b"));
        assert_eq!(env.get("AWS_ENDPOINT_URL"), Some("http://127.0.0.1:2"));
        assert_eq!(env.get("AWS_ACCESS_KEY_ID"), Some("testing"));
        let names: Vec<&str> = env.as_pairs().iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            names,
            [
                "AWS_ACCESS_KEY_ID",
                "AWS_SECRET_ACCESS_KEY",
                "MODE",
                "TABLE",
                "AWS_ENDPOINT_URL"
            ]
        );
        let from_pairs = Env::from(vec![
            ("X".to_owned(), "1".to_owned()),
            ("X".to_owned(), "2".to_owned()),
        ]);
        assert_eq!(from_pairs.as_pairs(), [("X".to_owned(), "2".to_owned())]);
    }

    /// A stand-in function: prints that it is ready, then answers each
    /// event with the event, its pid, the variables the test reads and
    /// those the event names in "env", after sleeping the event's "sleep"
    /// seconds.
    const ECHO: &str = r#"#!/usr/bin/python3
import json, os, sys, time, urllib.request
api = "http://" + os.environ["AWS_LAMBDA_RUNTIME_API"] + "/2018-06-01/runtime/invocation/"
def serve():
    while True:
        print(json.dumps({"ready": os.getpid()}), flush=True)
        with urllib.request.urlopen(api + "next") as r:
            request_id = r.headers["lambda-runtime-aws-request-id"]
            event = json.load(r)
        time.sleep(event.get("sleep", 0))
        answer = {"event": event, "pid": os.getpid(),
                  "GREETING": os.environ.get("GREETING"), "HOME": os.environ.get("HOME"),
                  "env": {name: os.environ.get(name) for name in event.get("env", [])}}
        urllib.request.urlopen(urllib.request.Request(
            api + request_id + "/response", data=json.dumps(answer).encode(), method="POST")).read()
try:
    serve()
except OSError:
    sys.exit(1)  # the test ended and took the API with it
"#;

    /// A stand-in function whose init fails: it reports the problem named
    /// by its environment, then exits 1, as `fail_init` does.
    const FAILING_INIT: &str = r#"#!/usr/bin/python3
import json, os, sys, urllib.request
api = "http://" + os.environ["AWS_LAMBDA_RUNTIME_API"] + "/2018-06-01/runtime/init/error"
report = {"errorType": "InvalidConfiguration", "errorMessage": os.environ["PROBLEM"]}
urllib.request.urlopen(urllib.request.Request(
    api, data=json.dumps(report).encode(), method="POST")).read()
sys.exit(1)
"#;

    /// Writes `script` as an executable once per test binary, so no test
    /// execs a file while another rewrites it ("text file busy").
    fn fixture(
        once: &'static std::sync::OnceLock<std::path::PathBuf>,
        name: &str,
        script: &str,
    ) -> &'static std::path::Path {
        once.get_or_init(|| {
            let path =
                std::env::temp_dir().join(format!("suite-tests-{name}-{}", std::process::id()));
            std::fs::write(&path, script).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
            path
        })
    }

    fn echo_function() -> &'static std::path::Path {
        static PATH: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
        fixture(&PATH, "echo", ECHO)
    }

    fn failing_init() -> &'static std::path::Path {
        static PATH: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
        fixture(&PATH, "failing-init", FAILING_INIT)
    }

    fn is_ready(line: &Value) -> bool {
        line.get("ready").is_some()
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_process_gets_exactly_its_env_and_answers_invocations() {
        let env = Env::new().set("GREETING", "old").set("GREETING", "hello");
        let running = Running::start(echo_function(), &env).await;
        let answer = running.invoke(json!({"n": 1})).await;
        let body = answer.result.expect("the echo answers");
        assert_eq!(body["event"], json!({"n": 1}));
        assert_eq!(body["GREETING"], "hello", "the later value wins");
        assert_eq!(
            body["HOME"],
            Value::Null,
            "nothing leaks from the test's env"
        );
        let again = running
            .invoke_before_deadline(json!({"n": 2}), Duration::from_secs(20))
            .await;
        assert_eq!(again.result.unwrap()["event"]["n"], 2);
        assert!(running.logs().iter().any(|l| l.contains("ready")));
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn start_many_runs_invocations_side_by_side() {
        let running = Running::start_many(echo_function(), &Env::new(), 2).await;
        assert_eq!(running.processes().len(), 2);
        for process in running.processes() {
            process.json_lines(1, is_ready).await;
        }
        let (first, second) = tokio::join!(
            running.invoke(json!({"sleep": 2})),
            running.invoke(json!({"sleep": 2}))
        );
        let pid = |i: &Invocation| i.result.as_ref().unwrap()["pid"].clone();
        assert_ne!(pid(&first), pid(&second), "each ran in its own process");
    }

    /// The values the echo function sees for `names`.
    async fn env_seen(running: &Running, names: &[&str]) -> Value {
        let answer = running.invoke(json!({ "env": names })).await.result;
        answer.expect("the echo answers")["env"].clone()
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn silent_aws_is_the_endpoint_the_function_is_given() {
        let env = Env::new().set("GREETING", "hi");
        let (running, silent) = Running::start_with_silent_aws(echo_function(), &env).await;
        let names = [
            "AWS_ENDPOINT_URL",
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "GREETING",
        ];
        assert_eq!(
            env_seen(&running, &names).await,
            json!({
                "AWS_ENDPOINT_URL": silent.endpoint(),
                "AWS_ACCESS_KEY_ID": "testing",
                "AWS_SECRET_ACCESS_KEY": "testing",
                "GREETING": "hi",
            })
        );

        let endpoint = "http://127.0.0.1:9";
        let env = Env::new().set("AWS_ENDPOINT_URL", endpoint);
        let (running, _silent) = Running::start_with_silent_aws(echo_function(), &env).await;
        assert_eq!(
            env_seen(&running, &["AWS_ENDPOINT_URL"]).await["AWS_ENDPOINT_URL"],
            endpoint,
            "the caller's env wins"
        );
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_failed_init_is_reported_naming_the_variables() {
        crate::function::assert_init_fails_naming(
            failing_init(),
            &[("PROBLEM", "TABLE is missing; MODE=\"x\" is invalid")],
            &["TABLE", "MODE"],
        )
        .await;
    }

    #[tokio::test(flavor = "multi_thread")]
    #[should_panic(expected = "RETRIES: ")]
    async fn a_failed_init_that_does_not_name_a_variable_fails_the_check() {
        crate::function::assert_init_fails_naming(
            failing_init(),
            &[("PROBLEM", "TABLE is missing")],
            &["TABLE", "RETRIES"],
        )
        .await;
    }
}
