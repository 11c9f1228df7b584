//! `make bench`: the handler's own time for an upload that launches a
//! worker (decode, filter, job id, user-data render, tags), with an
//! in-memory fleet instead of EC2. Each invoke has a fresh sequencer, so
//! every one is a new job and takes the full path. Takes no arguments (the
//! `--bench` that `cargo bench` passes is ignored).

use lambda_runtime::{Context, LambdaEvent};
use serde_json::Value;
use shared::config::EnvReader;
use std::time::Instant;
use transcode_launcher::handler::handle;
use transcode_launcher::launcher::Launcher;
use transcode_launcher::testing::{InMemoryFleet, InMemoryJobs, InMemoryStatus};

const INVOKES: usize = 2000;
const SAMPLE: &str = "events/transcode-launcher/01-put-holiday-video.json";

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let sample: Value = serde_json::from_str(
        &std::fs::read_to_string(SAMPLE).expect("run from the repository root"),
    )
    .expect("sample is JSON");
    let settings = transcode_launcher::config::Config::from_env(EnvReader::from_map([
        ("AWS_REGION", "us-east-1"),
        ("INPUT_BUCKET", "video-uploads-123456789012"),
        ("INPUT_PREFIX", "videos"),
        ("OUTPUT_BUCKET", "video-uploads-123456789012"),
        ("OUTPUT_PREFIX", "transcoded"),
        ("LAUNCH_TEMPLATE_NAME", "transcode-worker"),
        ("JOBS_TABLE", "transcode-jobs"),
        ("MAX_RUNNING_JOBS", "100000"),
    ]))
    .expect("valid settings")
    .launcher;
    let launcher = Launcher::new(
        InMemoryFleet::default(),
        InMemoryJobs::default(),
        InMemoryStatus::default(),
        settings,
    );
    let mut times: Vec<f64> = (0..INVOKES)
        .map(|i| {
            let mut event = sample.clone();
            event["Records"][0]["s3"]["object"]["sequencer"] = format!("{i:018X}").into();
            let start = Instant::now();
            let answer = runtime
                .block_on(handle(
                    &launcher,
                    LambdaEvent::new(event, Context::default()),
                ))
                .expect("handled");
            let elapsed = start.elapsed().as_secs_f64() * 1000.0;
            let answer = serde_json::to_value(answer).expect("the answer is JSON");
            assert_eq!(answer["results"][0]["outcome"], "launched");
            elapsed
        })
        .collect();
    times.sort_by(f64::total_cmp);
    println!(
        "| warm invoke without I/O (in-memory fleet), {} launching a worker (median of {INVOKES}) | {:.3} ms |",
        SAMPLE.rsplit('/').next().unwrap_or(SAMPLE),
        times[times.len() / 2]
    );
}
