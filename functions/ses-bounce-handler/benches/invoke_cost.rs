//! `make bench`: the handler's own time for the two-recipient bounce, no
//! I/O (an in-memory table), each invoke with a fresh feedbackId so that
//! every one takes the full read-decide-write path.

use lambda_runtime::{Context, LambdaEvent};
use serde_json::Value;
use ses_bounce_handler::fallback::{Disabled, SystemClock};
use ses_bounce_handler::handler::handle;
use ses_bounce_handler::processor::{Processor, Settings};
use ses_bounce_handler::testing::InMemorySuppressions;
use std::time::Instant;

const INVOKES: usize = 2000;

/// The sample, found from the crate: `cargo bench` runs this from the
/// crate's folder.
const SAMPLE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../events/ses-bounce-handler/01-permanent-bounce-two-recipients.json"
);

/// A context whose deadline is a minute away, as Lambda's would be.
fn a_minute_left() -> Context {
    let mut context = Context::default();
    context.deadline = shared::time::now_millis() + 60_000;
    context
}

fn main() {
    // `cargo bench` passes `--bench`; this benchmark takes no arguments.
    // The handler bounds each notification by the deadline: timers needed.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    let sample = std::fs::read_to_string(SAMPLE).expect("the sample event");
    let events: Vec<Value> = (0..INVOKES)
        .map(|i| {
            let text = sample.replace("11111111-2222", &format!("{i:08}-2222"));
            serde_json::from_str(&text).expect("sample is JSON")
        })
        .collect();
    let processor = Processor::new(
        InMemorySuppressions::default(),
        Disabled,
        SystemClock,
        Settings::default(),
    );
    let mut times: Vec<f64> = events
        .into_iter()
        .map(|event| {
            let start = Instant::now();
            runtime
                .block_on(handle(&processor, LambdaEvent::new(event, a_minute_left())))
                .expect("handled");
            start.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    times.sort_by(f64::total_cmp);
    println!(
        "| warm invoke without I/O (in-memory table), 01-permanent-bounce-two-recipients.json (median of {INVOKES}) | {:.3} ms |",
        times[times.len() / 2]
    );
}
