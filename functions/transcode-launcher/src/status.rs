//! The jobs' `status.json` objects in the output bucket: what the worker
//! reported, and the failure status written for a job whose every attempt
//! died.

use serde_json::Value;

/// Marks the failure status the launcher writes itself (see
/// `launcher::failure_status`), as opposed to a worker's report.
pub const WRITTEN_BY_LAUNCHER: &str = "transcode-launcher reconcile";

/// What a job's status.json says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Report {
    Success,
    /// The worker reported a failure, or wrote something that is no status
    /// (the reason says which, and why).
    WorkerFailed(String),
    /// The failure status the reconcile wrote for a job out of attempts.
    LauncherFailed,
}

/// worker.sh writes `{"status": "success"|"failure", "exitCode", "error", ...}`.
/// Anything else is a failure too: nothing proves the outputs are whole.
pub fn read(body: &[u8]) -> Report {
    let garbled = |why: String| Report::WorkerFailed(format!("unreadable status.json: {why}"));
    let value: Value = match serde_json::from_slice(body) {
        Ok(value) => value,
        Err(e) => return garbled(format!("not JSON ({e})")),
    };
    let Some(fields) = value.as_object() else {
        return garbled("not a JSON object".into());
    };
    if fields.get("writtenBy").and_then(Value::as_str) == Some(WRITTEN_BY_LAUNCHER) {
        return Report::LauncherFailed;
    }
    match fields.get("status") {
        Some(Value::String(s)) if s == "success" => Report::Success,
        Some(Value::String(s)) if s == "failure" => {
            let error = fields
                .get("error")
                .and_then(Value::as_str)
                .filter(|e| !e.is_empty())
                .unwrap_or("no error given");
            let exit = fields
                .get("exitCode")
                .map_or_else(|| "none".to_owned(), Value::to_string);
            Report::WorkerFailed(format!(
                "the worker reported failure (exit code {exit}): {error}"
            ))
        }
        Some(other) => garbled(format!(
            "\"status\" is {other}, neither \"success\" nor \"failure\""
        )),
        None => garbled("no \"status\" field".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_read_as_the_worker_means_them_and_anything_else_is_a_failure_naming_why() {
        assert_eq!(
            read(br#"{"status":"success","exitCode":0}"#),
            Report::Success
        );
        let Report::WorkerFailed(why) =
            read(br#"{"status":"failure","exitCode":124,"error":"ffmpeg ran longer"}"#)
        else {
            panic!("a failure")
        };
        assert!(
            why.contains("exit code 124") && why.contains("ffmpeg ran longer"),
            "{why}"
        );
        for (body, because) in [
            (&b"{\"status\":\"succ"[..], "not JSON"),
            (b"\xff\xfe", "not JSON"),
            (b"[]", "not a JSON object"),
            (br#"{"exitCode":0}"#, "no \"status\" field"),
            (br#"{"status":"done"}"#, "\"status\" is \"done\""),
            (br#"{"status":true}"#, "\"status\" is true"),
        ] {
            match read(body) {
                Report::WorkerFailed(why) => assert!(
                    why.starts_with("unreadable status.json") && why.contains(because),
                    "{why}"
                ),
                other => panic!("{body:?}: {other:?}"),
            }
        }
        let ours = format!(r#"{{"status":"failure","writtenBy":"{WRITTEN_BY_LAUNCHER}"}}"#);
        assert_eq!(read(ours.as_bytes()), Report::LauncherFailed);
    }
}
