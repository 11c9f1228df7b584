//! The sample events under `events/<function>/`, as JSON: the same files
//! `make demo`, `sam local invoke` and every function's tests play.

use crate::process::workspace_root;
use serde_json::Value;
use std::path::PathBuf;

fn folder(function: &str) -> PathBuf {
    workspace_root().join("events").join(function)
}

/// `events/<function>/<name>` as JSON; panics naming the path if it is
/// missing or not JSON, since a test without its event proves nothing.
pub fn sample(function: &str, name: &str) -> Value {
    let path = folder(function).join(name);
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every `*.json` sample of `function` with its file name, sorted by name
/// (the numbered prefixes give the order a demo plays them in).
pub fn samples(function: &str) -> Vec<(String, Value)> {
    let dir = folder(function);
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| {
            let entry = entry.unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
            entry.file_name().to_string_lossy().into_owned()
        })
        .filter(|name| name.ends_with(".json"))
        .collect();
    names.sort();
    names
        .into_iter()
        .map(|name| {
            let event = sample(function, &name);
            (name, event)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sample_is_read_as_json() {
        let event = sample("rds-log-rotator", "02-manual-dry-run.json");
        assert!(event.is_object(), "{event}");
    }

    #[test]
    fn samples_are_every_json_file_in_name_order() {
        let all = samples("ses-bounce-handler");
        let names: Vec<&str> = all.iter().map(|(name, _)| name.as_str()).collect();
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(names, sorted);
        assert_eq!(
            names.first(),
            Some(&"01-permanent-bounce-two-recipients.json")
        );
        assert!(names.contains(&"10-sqs-wrapped-bounce.json"), "{names:?}");
        assert_eq!(
            all[0].1,
            sample(
                "ses-bounce-handler",
                "01-permanent-bounce-two-recipients.json"
            )
        );
    }

    #[test]
    #[should_panic(expected = "events/ses-bounce-handler/nope.json")]
    fn a_missing_sample_names_its_path() {
        sample("ses-bounce-handler", "nope.json");
    }
}
