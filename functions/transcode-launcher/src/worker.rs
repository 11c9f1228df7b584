//! The worker's user-data: a bash script that transcodes one object,
//! uploads the outputs and `status.json`, and shuts the instance down.
//!
//! Everything that comes from an event is carried as base64 in a
//! single-quoted word and decoded into a variable at run time; settings are
//! single-quoted literals. Both are data, never shell code, and the script
//! never `eval`s. The aws CLI never sees an event value where it applies its
//! parameter-file rules (`file://`, `fileb://`, `http://`): uploads take
//! `--cli-input-json` rendered here by serde_json, the download one
//! `s3://bucket/key` word.

use crate::event::ObjectCreated;
use aws_smithy_types::base64;
use std::sync::LazyLock;

/// EC2's limit on raw user data.
pub const USER_DATA_LIMIT: usize = 16 * 1024;

/// An output the worker makes: ffmpeg options followed by the file name.
#[derive(Debug, PartialEq, Eq)]
pub struct Preset {
    pub name: &'static str,
    pub output: &'static str,
    pub args: &'static [&'static str],
}

macro_rules! h264 {
    ($name:literal, $output:literal, $scale:literal) => {
        Preset {
            name: $name,
            output: $output,
            args: &[
                "-map",
                "0:v:0",
                "-map",
                "0:a:0?",
                "-vf",
                $scale,
                "-c:v",
                "libx264",
                "-preset",
                "veryfast",
                "-crf",
                "23",
                "-pix_fmt",
                "yuv420p",
                "-c:a",
                "aac",
                "-b:a",
                "128k",
                "-movflags",
                "+faststart",
            ],
        }
    };
}

pub const PRESETS: &[Preset] = &[
    h264!("mp4-1080p", "video-1080p.mp4", "scale=-2:1080"),
    h264!("mp4-720p", "video-720p.mp4", "scale=-2:720"),
    h264!("mp4-480p", "video-480p.mp4", "scale=-2:480"),
    Preset {
        name: "thumbnail",
        output: "thumbnail.jpg",
        args: &[
            "-map",
            "0:v:0",
            "-vf",
            "thumbnail,scale=-2:360",
            "-frames:v",
            "1",
            "-q:v",
            "3",
        ],
    },
];

pub const DEFAULT_PRESETS: &str = "mp4-720p,thumbnail";

pub fn preset(name: &str) -> Option<&'static Preset> {
    PRESETS.iter().find(|p| p.name == name)
}

/// What the worker needs beyond the object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerSettings {
    pub region: String,
    pub output_bucket: String,
    /// "" or "dir/".
    pub output_prefix: String,
    /// When set, the only ffmpeg tried.
    pub ffmpeg_path: Option<String>,
    /// When set, the only aws CLI tried.
    pub aws_cli_path: Option<String>,
    /// Colon-separated directories searched for ffmpeg and aws.
    pub search_dirs: String,
    pub max_runtime_secs: u64,
    pub presets: Vec<&'static Preset>,
}

pub const DEFAULT_SEARCH_DIRS: &str = "/usr/local/bin:/usr/bin:/opt/bin:/bin";

/// The dead-man switch fires this long after MAX_RUNTIME: time for the
/// download before ffmpeg starts, its 30 s KILL grace, and the uploads.
pub const DEAD_MAN_MARGIN_SECS: u64 = 900;

/// The download, the output uploads (together) and the status.json upload
/// each run under `timeout` with these budgets, so that the worker always
/// reports before the dead-man switch fires (see `budgets_fit_the_margin`).
pub const DOWNLOAD_TIMEOUT_SECS: u64 = 300;
pub const UPLOADS_TIMEOUT_SECS: u64 = 300;
pub const STATUS_UPLOAD_TIMEOUT_SECS: u64 = 60;
/// What `timeout` waits after TERM before KILL, for each bounded step.
pub const KILL_GRACE_SECS: u64 = 30;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    #[error("user data would be {bytes} bytes, over EC2's {USER_DATA_LIMIT}-byte limit")]
    TooLarge { bytes: usize },
    #[error("the object key contains a NUL character, which a shell variable cannot hold")]
    NulInKey,
}

const SOURCE: &str = include_str!("worker.sh");

/// `worker.sh` without its comment lines and blank lines (they are for its
/// readers, and user data has a size limit), but with its first line, which
/// marks where the rendered values end.
static BODY: LazyLock<String> = LazyLock::new(|| {
    let mut lines = SOURCE.lines();
    let mut body = format!("{}\n", lines.next().unwrap_or_default());
    for line in lines.filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#')) {
        body.push_str(line);
        body.push('\n');
    }
    body
});

/// A word bash reads back as exactly `text` (no NUL).
fn single_quoted(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

fn literal(script: &mut String, name: &str, value: &str) {
    script.push_str(&format!("{name}={}\n", single_quoted(value)));
}

fn array<'a>(script: &mut String, name: &str, values: impl IntoIterator<Item = &'a str>) {
    let words: Vec<String> = values.into_iter().map(single_quoted).collect();
    script.push_str(&format!("{name}=({})\n", words.join(" ")));
}

/// Minutes until the dead-man shutdown: MAX_RUNTIME plus the margin, rounded
/// up to `shutdown`'s unit.
pub fn dead_man_minutes(max_runtime_secs: u64) -> u64 {
    max_runtime_secs
        .saturating_add(DEAD_MAN_MARGIN_SECS)
        .div_ceil(60)
}

/// The user data for one job: its values (settings as literals, the
/// object's fields as base64), then worker.sh's fixed text.
pub fn render(
    settings: &WorkerSettings,
    object: &ObjectCreated,
    job_id: &str,
) -> Result<String, RenderError> {
    if object.key.contains('\0') {
        return Err(RenderError::NulInKey);
    }
    let mut script = String::with_capacity(BODY.len() + 2048);
    render_preamble(&mut script, job_id);
    render_settings(&mut script, settings, job_id);
    render_outputs(&mut script, settings, job_id);
    render_object(&mut script, object);
    script.push_str(&BODY);
    if script.len() > USER_DATA_LIMIT {
        return Err(RenderError::TooLarge {
            bytes: script.len(),
        });
    }
    Ok(script)
}

/// `decode VAR TEXT`: VAR is TEXT base64-decoded. printf x keeps trailing
/// newlines, which $(...) would strip. `fail` is defined below, before the
/// first call.
const DECODE: &str = "decode() { # variable, base64 text\n  local v\n  \
     v=$(printf '%s' \"$2\" | base64 -d && printf x) || fail 65 \"could not decode $1 from the user data\"\n  \
     printf -v \"$1\" '%s' \"${v%x}\"\n}\n";

/// The shebang, what the script is for, strict mode and `decode`.
fn render_preamble(script: &mut String, job_id: &str) {
    script.push_str("#!/bin/bash\n");
    script.push_str(&format!(
        "# transcode-launcher worker for job {job_id}: transcode one S3 object, upload the\n\
         # outputs and status.json, then shut down (which terminates the instance).\n"
    ));
    script.push_str("set -euo pipefail\n");
    script.push_str(DECODE);
}

/// The job, the programs, and the watchdog's and each step's time budgets.
fn render_settings(script: &mut String, settings: &WorkerSettings, job_id: &str) {
    script
        .push_str("# Settings are plain literals: reporting and shutting down need no decoding.\n");
    literal(script, "JOB_ID", job_id);
    literal(script, "REGION", &settings.region);
    literal(
        script,
        "FFMPEG_PATH",
        settings.ffmpeg_path.as_deref().unwrap_or_default(),
    );
    literal(
        script,
        "AWS_CLI_PATH",
        settings.aws_cli_path.as_deref().unwrap_or_default(),
    );
    literal(script, "PROGRAM_SEARCH_DIRS", &settings.search_dirs);
    render_watchdog(script, settings.max_runtime_secs);
}

/// MAX_RUNTIME, the dead-man switch, and the bounded steps' timeouts.
fn render_watchdog(script: &mut String, max_runtime_secs: u64) {
    script.push_str(&format!("MAX_RUNTIME={max_runtime_secs}\n"));
    script.push_str(&format!(
        "DEAD_MAN_MINUTES={}\n",
        dead_man_minutes(max_runtime_secs)
    ));
    script.push_str(&format!(
        "DOWNLOAD_TIMEOUT={DOWNLOAD_TIMEOUT_SECS}\nUPLOADS_TIMEOUT={UPLOADS_TIMEOUT_SECS}\n\
         STATUS_UPLOAD_TIMEOUT={STATUS_UPLOAD_TIMEOUT_SECS}\nKILL_GRACE={KILL_GRACE_SECS}\n"
    ));
}

/// Where status.json and each preset's output go, and ffmpeg's arguments.
fn render_outputs(script: &mut String, settings: &WorkerSettings, job_id: &str) {
    let dest = format!("{}{job_id}/", settings.output_prefix);
    // What the aws CLI is given for each upload: JSON from a real encoder,
    // whose values the CLI never reads as file:// or http:// references.
    let put_request = |name: &str| {
        serde_json::json!({"Bucket": settings.output_bucket, "Key": format!("{dest}{name}")})
            .to_string()
    };
    literal(script, "STATUS_REQUEST", &put_request("status.json"));
    let outputs: Vec<&str> = settings.presets.iter().map(|p| p.output).collect();
    array(script, "OUTPUTS", outputs.iter().copied());
    let requests: Vec<String> = outputs.iter().map(|o| put_request(o)).collect();
    array(
        script,
        "OUTPUT_REQUESTS",
        requests.iter().map(String::as_str),
    );
    let keys: Vec<String> = outputs
        .iter()
        .map(|o| serde_json::Value::from(format!("{dest}{o}")).to_string())
        .collect();
    array(script, "OUTPUT_KEYS_JSON", keys.iter().map(String::as_str));
    render_preset_args(script, &settings.presets);
}

/// Each preset's ffmpeg options followed by its output file, in one array.
fn render_preset_args(script: &mut String, presets: &[&Preset]) {
    array(
        script,
        "FFMPEG_ARGS",
        presets
            .iter()
            .flat_map(|p| p.args.iter().chain([&p.output]))
            .copied(),
    );
}

/// The object, from the event: base64, decoded at run time.
fn render_object(script: &mut String, object: &ObjectCreated) {
    let source = serde_json::json!({
        "bucket": object.bucket,
        "key": object.key,
        "versionId": object.version_id,
        "eTag": object.etag,
    });
    script.push_str("# From the event: base64, decoded at run time.\n");
    let uri = format!("s3://{}/{}", object.bucket, object.key);
    literal(script, "ENCODED_SOURCE_URI", &base64::encode(uri));
    literal(
        script,
        "ENCODED_SOURCE_JSON",
        &base64::encode(source.to_string()),
    );
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub fn settings() -> WorkerSettings {
        WorkerSettings {
            region: "us-east-1".into(),
            output_bucket: "out".into(),
            output_prefix: "transcoded/".into(),
            ffmpeg_path: None,
            aws_cli_path: None,
            search_dirs: DEFAULT_SEARCH_DIRS.into(),
            max_runtime_secs: 3600,
            presets: DEFAULT_PRESETS
                .split(',')
                .map(|n| preset(n).unwrap())
                .collect(),
        }
    }

    fn object(key: &str) -> ObjectCreated {
        ObjectCreated {
            bucket: "in".into(),
            key: key.into(),
            size: Some(1),
            etag: None,
            version_id: None,
            sequencer: None,
        }
    }

    #[test]
    fn hostile_keys_never_appear_as_text() {
        let key = "$(touch /tmp/pwned)'\"`id`;\n../x.mp4";
        let script = render(&settings(), &object(key), "tj-1").unwrap();
        assert!(!script.contains("pwned"));
        assert!(!script.contains("eval"));
        assert!(script.contains(&base64::encode(format!("s3://in/{key}"))));
        assert!(script.starts_with("#!/bin/bash\n"));
    }

    #[test]
    fn the_script_is_well_under_the_limit_even_for_the_longest_key() {
        let key = "動".repeat(341); // 1023 bytes: S3's longest key
        let mut all_presets = settings();
        all_presets.presets = PRESETS.iter().collect();
        let short = render(&settings(), &object("a.mp4"), "tj-1").unwrap();
        let script = render(&all_presets, &object(&key), "tj-1").unwrap();
        assert!(short.len() < 8 * 1024, "{} bytes", short.len());
        assert!(script.len() < 11 * 1024, "{} bytes", script.len());
    }

    #[test]
    fn the_dead_man_switch_fires_after_max_runtime_and_the_margin() {
        assert_eq!(dead_man_minutes(3600), 75);
        assert_eq!(dead_man_minutes(1), 16);
        assert_eq!(dead_man_minutes(u64::MAX), u64::MAX.div_ceil(60));
        let script = render(&settings(), &object("a.mp4"), "tj-1").unwrap();
        assert!(script.contains("\nDEAD_MAN_MINUTES=75\n"));
    }

    #[test]
    fn budgets_fit_the_margin() {
        // Each bounded step plus its KILL grace; ffmpeg's own grace is 30 s.
        let bounded = [
            DOWNLOAD_TIMEOUT_SECS,
            UPLOADS_TIMEOUT_SECS,
            STATUS_UPLOAD_TIMEOUT_SECS,
        ];
        let worst: u64 = bounded.iter().map(|t| t + KILL_GRACE_SECS).sum::<u64>() + 30;
        assert!(worst + 120 <= DEAD_MAN_MARGIN_SECS, "{worst} s");
        let script = render(&settings(), &object("a.mp4"), "tj-1").unwrap();
        assert!(script.contains("\nDOWNLOAD_TIMEOUT=300\nUPLOADS_TIMEOUT=300\n"));
    }

    #[test]
    fn oversized_and_nul() {
        let mut s = settings();
        s.search_dirs = "/x".repeat(USER_DATA_LIMIT);
        assert!(matches!(
            render(&s, &object("a.mp4"), "tj-1"),
            Err(RenderError::TooLarge { .. })
        ));
        assert_eq!(
            render(&settings(), &object("a\0.mp4"), "tj-1"),
            Err(RenderError::NulInKey)
        );
    }

    #[test]
    fn quoting() {
        assert_eq!(single_quoted("it's"), r"'it'\''s'");
    }
}
