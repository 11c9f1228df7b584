//! The worker script as EC2 would run it: the user data moto stored, run as
//! cloud-init does (`env -i`, a bare PATH, HOME=/root), with Debian's real
//! ffmpeg and an aws CLI pointed at moto S3.

mod common;

use common::{Launcher, notification, start};
use proptest::prelude::*;
use serde_json::Value;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use suite_tests::process::venv_tool;
use transcode_launcher::worker::{
    DEAD_MAN_MARGIN_SECS, DOWNLOAD_TIMEOUT_SECS, UPLOADS_TIMEOUT_SECS,
};

/// cloud-init and SSM run commands with this PATH and nothing else.
const BARE_PATH: &str = "PATH=/usr/sbin:/usr/bin:/sbin:/bin";

struct Sandbox {
    dir: PathBuf,
}

impl Sandbox {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("transcode-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("cwd")).unwrap();
        Self { dir }
    }

    fn executable(&self, name: &str, text: &str) -> String {
        let path = self.dir.join(name);
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path.to_string_lossy().into_owned()
    }

    /// The aws CLI the worker finds: the venv's, pointed at `endpoint`.
    /// On EC2 it is /usr/bin/aws with the instance profile's credentials.
    fn aws_cli(&self, endpoint: &str) -> String {
        self.executable(
            "aws",
            &format!(
                "#!/bin/bash\nexport AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing\n\
                 exec '{}' --endpoint-url '{endpoint}' \"$@\"\n",
                venv_tool("aws").display()
            ),
        )
    }

    /// A test clip from ffmpeg's lavfi sources, with a sine soundtrack.
    fn clip(&self, seconds: u32, size: &str) -> PathBuf {
        let path = self.dir.join("clip.mp4");
        let output = Command::new("ffmpeg")
            .args([
                "-hide_banner",
                "-loglevel",
                "error",
                "-y",
                "-f",
                "lavfi",
                "-i",
            ])
            .arg(format!("testsrc=duration={seconds}:size={size}:rate=25"))
            .args(["-f", "lavfi", "-i"])
            .arg(format!("sine=frequency=440:duration={seconds}"))
            .args([
                "-c:v",
                "libx264",
                "-preset",
                "ultrafast",
                "-c:a",
                "aac",
                "-shortest",
            ])
            .arg(&path)
            .output()
            .expect("ffmpeg (Debian package ffmpeg) is installed");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        path
    }

    /// Runs the user data as cloud-init does; shutdown is a recorder.
    fn run(&self, script: &str) -> Output {
        self.run_with(script, &[], None)
    }

    /// `run` with extra variables and a directory searched before the bare
    /// PATH (to stand in for a system program).
    fn run_with(&self, script: &str, env: &[(&str, &str)], path_first: Option<&Path>) -> Output {
        let path = self.dir.join("user-data");
        std::fs::write(&path, script).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o700)).unwrap();
        let calls = self.dir.join("shutdown-calls");
        let _ = std::fs::remove_file(&calls);
        let shutdown = self.executable(
            "shutdown-recorder",
            &format!(
                "#!/bin/bash\nprintf '%s\\n' \"$*\" >> '{}'\n",
                calls.display()
            ),
        );
        let search = match path_first {
            Some(dir) => format!("{}:{}", dir.display(), &BARE_PATH["PATH=".len()..]),
            None => BARE_PATH["PATH=".len()..].to_owned(),
        };
        Command::new("/usr/bin/env")
            .args(["-i", &format!("PATH={search}"), "HOME=/root"])
            .arg(format!("TRANSCODE_SHUTDOWN_COMMAND={shutdown}"))
            .args(env.iter().map(|(k, v)| format!("{k}={v}")))
            .arg(&path)
            .current_dir(self.dir.join("cwd"))
            .output()
            .unwrap()
    }

    /// The arguments of each shutdown call of the last run, in order.
    fn shutdown_calls(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.join("shutdown-calls"))
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// The last run armed the dead-man switch first and shut down last.
    fn shut_down(&self, max_runtime_secs: u64) -> bool {
        self.shutdown_calls() == [dead_man(max_runtime_secs), "-h now".to_owned()]
    }
}

/// The dead-man call: `shutdown -h +MINUTES`, MAX_RUNTIME plus the margin.
fn dead_man(max_runtime_secs: u64) -> String {
    format!(
        "-h +{}",
        (max_runtime_secs + DEAD_MAN_MARGIN_SECS).div_ceil(60)
    )
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Launches a job for `key` and returns its job id and user data.
async fn launch(launcher: &Launcher, bucket: &str, key: &str, sequencer: &str) -> (String, String) {
    let answer = launcher
        .invoke(notification(bucket, key, 1000, sequencer))
        .await
        .unwrap();
    let result = &answer["results"][0];
    assert_eq!(result["outcome"], "launched", "{answer}");
    assert_eq!(result["key"], key);
    let instance = result["instanceId"].as_str().unwrap();
    (
        result["jobId"].as_str().unwrap().to_owned(),
        launcher.user_data(instance).await,
    )
}

fn download(launcher: &Launcher, key: &str, to: &Path) {
    launcher.aws(&[
        "s3api",
        "get-object",
        "--bucket=outputs",
        &format!("--key={key}"),
        &to.to_string_lossy(),
    ]);
}

fn status(launcher: &Launcher, sandbox: &Sandbox, job_id: &str) -> Value {
    let path = sandbox.dir.join("status.json");
    download(launcher, &format!("transcoded/{job_id}/status.json"), &path);
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn upload(launcher: &Launcher, clip: &Path, key: &str) {
    launcher.aws(&[
        "s3api",
        "put-object",
        "--bucket=uploads",
        &format!("--key={key}"),
        "--body",
        &clip.to_string_lossy(),
    ]);
}

fn buckets(launcher: &Launcher) {
    for bucket in ["uploads", "outputs"] {
        launcher.aws(&["s3api", "create-bucket", "--bucket", bucket]);
    }
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_worker_transcodes_under_the_bare_cloud_init_environment() {
    let sandbox = Sandbox::new("e2e");
    // The wrapper's path goes into the launcher's settings; its text needs
    // moto's port, known once the launcher is up.
    let aws_path = sandbox.dir.join("aws").to_string_lossy().into_owned();
    let launcher = start(&[("AWS_CLI_PATH", &aws_path)]).await;
    sandbox.aws_cli(&launcher.moto.endpoint());
    buckets(&launcher);
    let key = "videos/My Holiday+2024 (final).MOV";
    upload(&launcher, &sandbox.clip(2, "960x540"), key);
    let (job_id, script) = launch(&launcher, "uploads", key, "0A1").await;

    let run = sandbox.run(&script);
    assert_eq!(run.status.code(), Some(0), "{}", stderr(&run));
    assert!(
        sandbox.shut_down(3600),
        "the worker arms the dead-man switch and ends by shutting down: {:?}",
        sandbox.shutdown_calls()
    );

    let status = status(&launcher, &sandbox, &job_id);
    assert_eq!(status["status"], "success", "{status}");
    assert_eq!(status["exitCode"], 0);
    assert_eq!(status["source"]["key"], key);
    assert_eq!(status["ffmpeg"], "/usr/bin/ffmpeg");
    assert!(status["durationSeconds"].as_u64().is_some());
    assert!(status["stderrTail"].is_string());
    let prefix = format!("transcoded/{job_id}/");
    assert_eq!(
        status["outputs"],
        serde_json::json!([
            format!("{prefix}video-720p.mp4"),
            format!("{prefix}thumbnail.jpg")
        ])
    );

    let video = sandbox.dir.join("video.mp4");
    download(&launcher, &format!("{prefix}video-720p.mp4"), &video);
    let probe = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "stream=codec_type,codec_name,height",
            "-of",
            "json",
        ])
        .arg(&video)
        .output()
        .unwrap();
    let probe: Value = serde_json::from_slice(&probe.stdout).unwrap();
    let streams = probe["streams"].as_array().unwrap();
    let video_stream = streams.iter().find(|s| s["codec_type"] == "video").unwrap();
    assert_eq!(video_stream["codec_name"], "h264", "{probe}");
    assert_eq!(video_stream["height"], 720, "{probe}");
    let audio = streams.iter().find(|s| s["codec_type"] == "audio").unwrap();
    assert_eq!(audio["codec_name"], "aac", "{probe}");
    let thumbnail = sandbox.dir.join("thumbnail.jpg");
    download(&launcher, &format!("{prefix}thumbnail.jpg"), &thumbnail);
    assert!(
        std::fs::read(&thumbnail)
            .unwrap()
            .starts_with(&[0xFF, 0xD8]),
        "a JPEG"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn without_ffmpeg_on_the_search_paths_the_worker_exits_127_and_says_where_it_looked() {
    let sandbox = Sandbox::new("no-ffmpeg");
    let empty = sandbox.dir.join("empty-bin");
    std::fs::create_dir_all(&empty).unwrap();
    let search = format!("{}:/nonexistent/bin", empty.display());
    let aws_path = sandbox.dir.join("aws").to_string_lossy().into_owned();
    let launcher = start(&[("AWS_CLI_PATH", &aws_path), ("WORKER_SEARCH_DIRS", &search)]).await;
    sandbox.aws_cli(&launcher.moto.endpoint());
    buckets(&launcher);
    upload(&launcher, &sandbox.clip(1, "320x180"), "a.mp4");
    let (job_id, script) = launch(&launcher, "uploads", "a.mp4", "01").await;

    let run = sandbox.run(&script);
    assert_eq!(run.status.code(), Some(127), "{}", stderr(&run));
    assert!(
        sandbox.shut_down(3600),
        "a failed worker still shuts down: {:?}",
        sandbox.shutdown_calls()
    );
    let status = status(&launcher, &sandbox, &job_id);
    assert_eq!(status["status"], "failure", "{status}");
    assert_eq!(status["exitCode"], 127);
    assert_eq!(status["searchedPaths"], search.as_str());
    assert_eq!(status["path"], "/usr/sbin:/usr/bin:/sbin:/bin");
    assert!(
        status["error"]
            .as_str()
            .unwrap()
            .contains("ffmpeg not found"),
        "{status}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_watchdog_kills_a_stuck_ffmpeg_and_reports_it() {
    let sandbox = Sandbox::new("watchdog");
    let stuck = sandbox.executable(
        "ffmpeg",
        "#!/bin/bash\necho 'stuck reading input' >&2\nexec sleep 60\n",
    );
    let aws_path = sandbox.dir.join("aws").to_string_lossy().into_owned();
    let launcher = start(&[
        ("AWS_CLI_PATH", &aws_path),
        ("FFMPEG_PATH", &stuck),
        ("MAX_RUNTIME", "1"),
    ])
    .await;
    sandbox.aws_cli(&launcher.moto.endpoint());
    buckets(&launcher);
    upload(&launcher, &sandbox.clip(1, "320x180"), "a.mp4");
    let (job_id, script) = launch(&launcher, "uploads", "a.mp4", "01").await;

    let run = sandbox.run(&script);
    assert_eq!(run.status.code(), Some(124), "{}", stderr(&run));
    assert!(sandbox.shut_down(1), "{:?}", sandbox.shutdown_calls());
    let status = status(&launcher, &sandbox, &job_id);
    assert_eq!(status["timedOut"], true, "{status}");
    assert_eq!(status["ffmpeg"], stuck.as_str());
    assert_eq!(status["stderrTail"], "stuck reading input");
    assert!(status["error"].as_str().unwrap().contains("MAX_RUNTIME=1s"));
}

/// moto's router cannot match a key containing a newline (real S3 stores
/// it). This stand-in in front of moto swaps %0A for "␤" both ways, so the
/// object lands and is fetched under one name, and records what the worker
/// asked for.
async fn newline_tolerant_s3(moto: String) -> (String, Arc<Mutex<Vec<String>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let (addr, _task) = suite_tests::http::serve(0, move |mut request| {
        let moto = moto.clone();
        log.lock().unwrap().push(request.path_and_query.clone());
        request.path_and_query = request.path_and_query.replace("%0A", "%E2%90%A4");
        async move { suite_tests::http::forward(&request, &moto).await }
    })
    .await
    .unwrap();
    (format!("http://{addr}"), seen)
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_keys_run_as_data_and_the_canary_never_appears() {
    let sandbox = Sandbox::new("injection");
    let canary = sandbox.dir.join("canary");
    let c = canary.display();
    let keys = [
        format!("it's \"quoted\" $(touch {c}) `touch {c}`; touch {c}.mp4"),
        format!("line one\n$(touch {c})\nline three.mp4"),
        format!("../../tmp/$(touch {c})/../x.mp4"),
        format!("-rf --key=evil $IFS ${{PATH}} * && touch {c} | touch {c}.mp4"),
    ];
    let aws_path = sandbox.dir.join("aws").to_string_lossy().into_owned();
    let launcher = start(&[
        ("AWS_CLI_PATH", &aws_path),
        ("PRESETS", "mp4-480p,thumbnail"),
    ])
    .await;
    let (endpoint, seen) = newline_tolerant_s3(launcher.moto.endpoint()).await;
    sandbox.aws_cli(&endpoint);
    buckets(&launcher);
    let clip = sandbox.clip(1, "320x180");
    for (i, key) in keys.iter().enumerate() {
        // Uploaded through the stand-in too, so the newline key lands.
        let upload = Command::new(&aws_path)
            .args(["s3api", "put-object", "--bucket=uploads"])
            .arg(format!("--key={key}"))
            .arg("--body")
            .arg(&clip)
            .output()
            .unwrap();
        assert!(upload.status.success(), "{}", stderr(&upload));
        let (job_id, script) = launch(&launcher, "uploads", key, &format!("0{i}")).await;
        let run = sandbox.run(&script);
        assert_eq!(run.status.code(), Some(0), "{key:?}: {}", stderr(&run));
        assert!(!canary.exists(), "{key:?} ran as code");
        let status = status(&launcher, &sandbox, &job_id);
        assert_eq!(status["status"], "success", "{status}");
        assert_eq!(
            status["source"]["key"],
            key.as_str(),
            "processed under its real key"
        );
    }
    assert!(!canary.exists());
    assert_eq!(
        std::fs::read_dir(sandbox.dir.join("cwd")).unwrap().count(),
        0
    );
    // The worker asked S3 for the newline key itself (%0A), not a mangled one.
    assert!(
        seen.lock()
            .unwrap()
            .iter()
            .any(|p| p.contains("line%20one%0A")),
        "{:?}",
        seen.lock().unwrap()
    );
}

/// Uploads `clip` under exactly `key`: `--key=VALUE` would apply the CLI's
/// parameter-file rules to it.
fn upload_as_is(launcher: &Launcher, clip: &Path, key: &str) {
    let request = serde_json::json!({"Bucket": "uploads", "Key": key}).to_string();
    launcher.aws(&[
        "s3api",
        "put-object",
        "--cli-input-json",
        &request,
        "--body",
        &clip.to_string_lossy(),
    ]);
}

/// A key in a request path as botocore writes it.
fn percent_encoded(key: &str) -> String {
    key.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'/' => {
                (b as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_shaped_like_parameter_files_reach_s3_as_literal_keys() {
    let sandbox = Sandbox::new("paramfile");
    // A file the CLI could read: its text must never reach S3.
    let secret = sandbox.dir.join("secret.mp4");
    std::fs::write(&secret, "leaked-canary").unwrap();
    // CLI v1 fetches http(s) values: this listener must see no connection.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let connections = Arc::new(AtomicUsize::new(0));
    let counter = connections.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            drop(stream);
        }
    });
    let keys = [
        format!("file://{}", secret.display()),
        format!("fileb://{}", secret.display()),
        format!("http://127.0.0.1:{port}/x.mp4"),
        format!("https://127.0.0.1:{port}/x.mp4"),
    ];
    let aws_path = sandbox.dir.join("aws").to_string_lossy().into_owned();
    let launcher = start(&[("AWS_CLI_PATH", &aws_path), ("PRESETS", "thumbnail")]).await;
    let (endpoint, seen) = newline_tolerant_s3(launcher.moto.endpoint()).await;
    sandbox.aws_cli(&endpoint);
    buckets(&launcher);
    let clip = sandbox.clip(1, "320x180");
    for (i, key) in keys.iter().enumerate() {
        upload_as_is(&launcher, &clip, key);
        let (job_id, script) = launch(&launcher, "uploads", key, &format!("0{i}")).await;
        let run = sandbox.run(&script);
        assert_eq!(run.status.code(), Some(0), "{key:?}: {}", stderr(&run));
        let status = status(&launcher, &sandbox, &job_id);
        assert_eq!(status["status"], "success", "{status}");
        assert_eq!(status["source"]["key"], key.as_str());
        let literal = format!("/uploads/{}", percent_encoded(key));
        assert!(
            seen.lock().unwrap().iter().any(|p| p.starts_with(&literal)),
            "{key:?} was asked for as {literal}: {:?}",
            seen.lock().unwrap()
        );
    }
    assert_eq!(
        connections.load(Ordering::SeqCst),
        0,
        "the CLI fetched a key"
    );
    let seen = seen.lock().unwrap();
    assert!(
        !seen.iter().any(|p| p.contains("leaked-canary")),
        "{seen:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_worker_that_fails_before_its_work_begins_still_reports_and_shuts_down() {
    let sandbox = Sandbox::new("early-failure");
    let aws_path = sandbox.dir.join("aws").to_string_lossy().into_owned();
    let launcher = start(&[("AWS_CLI_PATH", &aws_path), ("MAX_RUNTIME", "120")]).await;
    sandbox.aws_cli(&launcher.moto.endpoint());
    buckets(&launcher);
    upload(&launcher, &sandbox.clip(1, "320x180"), "a.mp4");
    let (job_id, script) = launch(&launcher, "uploads", "a.mp4", "01").await;
    let refusing = sandbox.dir.join("refusing-bin");
    std::fs::create_dir_all(&refusing).unwrap();
    sandbox.executable(
        "refusing-bin/base64",
        "#!/bin/sh\necho 'base64: invalid input' >&2\nexit 1\n",
    );

    // A shutdown that cannot schedule: the worker must not start the job.
    let unschedulable = sandbox.executable(
        "unschedulable-shutdown",
        &format!(
            "#!/bin/bash\nprintf '%s\\n' \"$*\" >> '{}'\ncase \"$2\" in +*) exit 1 ;; esac\n",
            sandbox.dir.join("shutdown-calls").display()
        ),
    );
    struct EarlyFailure<'a> {
        case: &'a str,
        env: &'a [(&'a str, &'a str)],
        path_first: Option<&'a Path>,
        reason: &'a str,
    }
    let cases = [
        EarlyFailure {
            case: "decoding fails",
            env: &[],
            path_first: Some(&refusing),
            reason: "could not decode",
        },
        EarlyFailure {
            case: "the dead-man switch cannot be armed",
            env: &[("TRANSCODE_SHUTDOWN_COMMAND", &unschedulable)],
            path_first: None,
            reason: "could not schedule the dead-man shutdown",
        },
        EarlyFailure {
            case: "no work directory",
            env: &[("TRANSCODE_WORK_ROOT", "/nonexistent/work-root")],
            path_first: None,
            reason: "/nonexistent/work-root",
        },
    ];
    for EarlyFailure {
        case,
        env,
        path_first,
        reason,
    } in cases
    {
        let _ = launcher.aws(&[
            "s3api",
            "delete-object",
            "--bucket=outputs",
            &format!("--key=transcoded/{job_id}/status.json"),
        ]);
        let run = sandbox.run_with(&script, env, path_first);
        assert_ne!(run.status.code(), Some(0), "{case}: {}", stderr(&run));
        assert!(
            sandbox.shut_down(120),
            "{case}: the dead-man switch first, the shutdown last: {:?}\n{}",
            sandbox.shutdown_calls(),
            stderr(&run)
        );
        let status = status(&launcher, &sandbox, &job_id);
        assert_eq!(status["status"], "failure", "{case}: {status}");
        assert!(
            status["error"].as_str().unwrap().contains(reason),
            "{case}: {status}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_worker_whose_shutdown_fails_forces_a_power_off_after_reporting() {
    let sandbox = Sandbox::new("shutdown-fails");
    let aws_path = sandbox.dir.join("aws").to_string_lossy().into_owned();
    let launcher = start(&[("AWS_CLI_PATH", &aws_path), ("MAX_RUNTIME", "120")]).await;
    let aws = sandbox.aws_cli(&launcher.moto.endpoint());
    buckets(&launcher);
    upload(&launcher, &sandbox.clip(1, "320x180"), "a.mp4");
    let (job_id, script) = launch(&launcher, "uploads", "a.mp4", "01").await;
    let calls = sandbox.dir.join("shutdown-calls");
    let failing = sandbox.executable(
        "failing-shutdown",
        &format!(
            "#!/bin/bash\nprintf '%s\\n' \"$*\" >> '{}'\nexit 1\n",
            calls.display()
        ),
    );
    // The power-off stand-in records whether status.json was already in S3.
    let poweroff = sandbox.executable(
        "poweroff-recorder",
        &format!(
            "#!/bin/bash\nif '{aws}' s3api head-object --bucket outputs \\\n  \
             --key 'transcoded/{job_id}/status.json' >/dev/null 2>&1; then\n  \
             echo 'poweroff after status.json' >> '{calls}'\nelse\n  \
             echo 'poweroff before status.json' >> '{calls}'\nfi\n",
            calls = calls.display()
        ),
    );

    let run = sandbox.run_with(
        &script,
        &[
            ("TRANSCODE_SHUTDOWN_COMMAND", &failing),
            ("TRANSCODE_POWEROFF_COMMAND", &poweroff),
        ],
        None,
    );
    assert_eq!(run.status.code(), Some(70), "{}", stderr(&run));
    assert_eq!(
        sandbox.shutdown_calls(),
        [
            dead_man(120),
            "-h now".to_owned(),
            "poweroff after status.json".to_owned()
        ],
        "{}",
        stderr(&run)
    );
    let status = status(&launcher, &sandbox, &job_id);
    assert!(
        status["error"]
            .as_str()
            .unwrap()
            .contains("could not schedule the dead-man shutdown"),
        "{status}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hanging_download_is_cut_off_in_time_to_report_before_the_dead_man_switch() {
    let sandbox = Sandbox::new("slow-download");
    let aws_path = sandbox.dir.join("aws").to_string_lossy().into_owned();
    let launcher = start(&[("AWS_CLI_PATH", &aws_path), ("MAX_RUNTIME", "120")]).await;
    sandbox.aws_cli(&launcher.moto.endpoint());
    let real_aws = sandbox.dir.join("aws-real");
    std::fs::rename(&aws_path, &real_aws).unwrap();
    // The download (`aws s3 cp`) hangs; the uploads (`aws s3api`) work.
    sandbox.executable(
        "aws",
        &format!(
            "#!/bin/bash\nif [ \"$1\" = s3 ]; then exec sleep 30; fi\nexec '{}' \"$@\"\n",
            real_aws.display()
        ),
    );
    buckets(&launcher);
    upload(&launcher, &sandbox.clip(1, "320x180"), "a.mp4");
    let (job_id, script) = launch(&launcher, "uploads", "a.mp4", "01").await;
    // The budget as rendered, shortened so the test need not wait for it.
    let script = script.replace(
        &format!("\nDOWNLOAD_TIMEOUT={DOWNLOAD_TIMEOUT_SECS}\n"),
        "\nDOWNLOAD_TIMEOUT=1\n",
    );

    let run = sandbox.run(&script);
    assert_eq!(run.status.code(), Some(3), "{}", stderr(&run));
    assert!(sandbox.shut_down(120), "{:?}", sandbox.shutdown_calls());
    let status = status(&launcher, &sandbox, &job_id);
    assert!(
        status["error"]
            .as_str()
            .unwrap()
            .contains("download of the source object took longer than 1 s"),
        "{status}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hanging_output_upload_is_cut_off_and_the_status_still_uploaded() {
    let sandbox = Sandbox::new("slow-upload");
    let aws_path = sandbox.dir.join("aws").to_string_lossy().into_owned();
    let launcher = start(&[("AWS_CLI_PATH", &aws_path), ("MAX_RUNTIME", "120")]).await;
    sandbox.aws_cli(&launcher.moto.endpoint());
    let real_aws = sandbox.dir.join("aws-real");
    std::fs::rename(&aws_path, &real_aws).unwrap();
    // The video's upload hangs; the download and the other uploads work.
    sandbox.executable(
        "aws",
        &format!(
            "#!/bin/bash\ncase \"$*\" in *video-720p.mp4*) exec sleep 30 ;; esac\n\
             exec '{}' \"$@\"\n",
            real_aws.display()
        ),
    );
    buckets(&launcher);
    upload(&launcher, &sandbox.clip(1, "320x180"), "a.mp4");
    let (job_id, script) = launch(&launcher, "uploads", "a.mp4", "01").await;
    let script = script.replace(
        &format!("\nUPLOADS_TIMEOUT={UPLOADS_TIMEOUT_SECS}\n"),
        "\nUPLOADS_TIMEOUT=2\n",
    );

    let run = sandbox.run(&script);
    assert_eq!(run.status.code(), Some(3), "{}", stderr(&run));
    assert!(sandbox.shut_down(120), "{:?}", sandbox.shutdown_calls());
    let status = status(&launcher, &sandbox, &job_id);
    assert!(
        status["error"]
            .as_str()
            .unwrap()
            .contains("upload of video-720p.mp4 failed or ran past the uploads' 2 s"),
        "{status}"
    );
}

/// The worker's `json_string` run by bash on `bytes` (a bash word holds any
/// bytes but NUL).
fn json_string(bytes: &[u8]) -> Output {
    const BODY: &str = include_str!("../src/worker.sh");
    let start = BODY.find("json_string() {").unwrap();
    let end = start + BODY[start..].find("\n}\n").unwrap() + 3;
    Command::new("/bin/bash")
        .arg("-c")
        .arg(format!(
            "set -euo pipefail\nexport LC_ALL=C\n{}json_string \"$1\"",
            &BODY[start..end]
        ))
        .arg("json_string")
        .arg(OsStr::from_bytes(bytes))
        .env_clear()
        .env("PATH", BARE_PATH.trim_start_matches("PATH="))
        .output()
        .unwrap()
}

fn no_nul(text: String) -> Vec<u8> {
    text.replace('\0', "").into_bytes()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// status.json stays JSON whatever ffmpeg's stderr holds: control
    /// characters escaped, text kept exactly, invalid UTF-8 replaced as
    /// `String::from_utf8_lossy` does.
    #[test]
    fn json_string_encodes_any_bytes(bytes in prop_oneof![
        prop::collection::vec(1u8..=255, 0..48),
        any::<String>().prop_map(no_nul),
        "[\\x01-\\x1f\\x7f\"\\\\/ a\u{e9}\u{fffd}\u{10000}-\u{10ffff}]{0,24}".prop_map(no_nul),
    ]) {
        let output = json_string(&bytes);
        prop_assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        let decoded: Result<String, _> = serde_json::from_slice(&output.stdout);
        prop_assert!(decoded.is_ok(), "{:?} gave {:?}", bytes, String::from_utf8_lossy(&output.stdout));
        prop_assert_eq!(decoded.unwrap(), String::from_utf8_lossy(&bytes));
    }
}

#[test]
fn json_string_edge_cases() {
    let cases: &[&[u8]] = &[
        b"",
        b"tab\there\r\n\x01\x1f\x7f \"q\" \\ / %s %d",
        "é 動 😀 \u{10ffff} \u{fffd}".as_bytes(),
        b"\xe0\x80\x80 overlong",
        b"\xed\xa0\x80 surrogate",
        b"\xf4\x90\x80\x80 past U+10FFFF",
        b"\xc0\x80\xc1\xbf\xf5\xff stray",
        b"\xf0\x9f\x98 cut \xe2\x82",
        b"\x80\xbf lone continuations",
    ];
    for bytes in cases {
        let output = json_string(bytes);
        assert!(output.status.success(), "{}", stderr(&output));
        let decoded: String = serde_json::from_slice(&output.stdout)
            .unwrap_or_else(|e| panic!("{bytes:?}: {e}: {:?}", output.stdout));
        assert_eq!(decoded, String::from_utf8_lossy(bytes), "{bytes:?}");
        assert!(output.stdout.is_ascii());
    }
}
