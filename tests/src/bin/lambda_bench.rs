//! `make bench`: runs a release function binary under the Runtime API
//! stand-in and prints a Markdown section with the medians of repeated runs.
//!
//! lambda-bench --function NAME --binary PATH --zip PATH --runs N
//!              --event FILE [--event FILE ...] [--env KEY=VALUE ...]
//!              [--warm N] [--dynamodb-latency-ms MS --table NAME:KEY[,KEY]]
//!              [--dynamodb-forget true]
//! lambda-bench report TEMPLATE VALUES_DIR   the template filled from
//!              VALUES_DIR/<placeholder>.md, to stdout; fails if one is missing
//! lambda-bench kinesis-event RECORDS BYTES  a Kinesis batch, to stdout
//!
//! Init is process start to the first poll of `/next`. A custom-resource
//! invoke is timed from the hand-out of the event to the arrival of the
//! CloudFormation response at the local sink (the PUT's round trip is
//! excluded); any other invoke from hand-out to the function's answer.
//! With --dynamodb-latency-ms the function writes to the DynamoDB stand-in,
//! which answers every call after that latency; with --dynamodb-forget it
//! stores nothing, so each invoke takes the first-write path.

use anyhow::{Context, bail};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;
use suite_tests::bench::{fill_template, kinesis_batch};
use suite_tests::dynamodb::{DynamoStandIn, Faults};
use suite_tests::function::FunctionProcess;
use suite_tests::runtime_api::RuntimeApi;
use suite_tests::sink::Sink;

struct Args {
    function: String,
    binary: PathBuf,
    zip: PathBuf,
    runs: usize,
    events: Vec<PathBuf>,
    env: Vec<(String, String)>,
    warm: usize,
    dynamodb_latency: Option<Duration>,
    tables: Vec<(String, Vec<String>)>,
    forget: bool,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut args = std::env::args().skip(1);
    let (mut function, mut binary, mut zip, mut runs) = (None, None, None, 5);
    let (mut events, mut env, mut warm, mut dynamodb_latency, mut tables) =
        (Vec::new(), Vec::new(), 20, None, Vec::new());
    let mut forget = false;
    while let Some(flag) = args.next() {
        let value = args
            .next()
            .with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--function" => function = Some(value),
            "--binary" => binary = Some(PathBuf::from(value)),
            "--zip" => zip = Some(PathBuf::from(value)),
            "--runs" => runs = value.parse()?,
            "--event" => events.push(PathBuf::from(value)),
            "--env" => {
                let (k, v) = value.split_once('=').context("--env takes KEY=VALUE")?;
                env.push((k.to_owned(), v.to_owned()));
            }
            "--warm" => warm = value.parse()?,
            "--dynamodb-latency-ms" => {
                dynamodb_latency = Some(Duration::from_millis(value.parse()?))
            }
            "--table" => {
                let (name, keys) = value
                    .split_once(':')
                    .context("--table takes NAME:KEY[,KEY]")?;
                tables.push((
                    name.to_owned(),
                    keys.split(',').map(str::to_owned).collect(),
                ));
            }
            "--dynamodb-forget" => forget = value.parse()?,
            other => bail!("unknown flag {other}"),
        }
    }
    Ok(Args {
        function: function.context("--function")?,
        binary: binary.context("--binary")?,
        zip: zip.context("--zip")?,
        runs,
        events,
        env,
        warm,
        dynamodb_latency,
        tables,
        forget,
    })
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// What the runs measured, in milliseconds and megabytes.
#[derive(Default)]
struct Samples {
    init: Vec<f64>,
    rss: Vec<f64>,
    /// Per event: cold (first invoke of a process) and warm times.
    cold: Vec<Vec<f64>>,
    warm: Vec<Vec<f64>>,
    /// Per event: a custom-resource event is timed to the response PUT,
    /// any other to the answer.
    to_put: Vec<bool>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("report") => report(&args[1..]),
        Some("kinesis-event") => kinesis_event(&args[1..]),
        _ => bench().await,
    }
}

fn report(args: &[String]) -> anyhow::Result<()> {
    let [template, values] = args else {
        bail!("usage: lambda-bench report TEMPLATE VALUES_DIR");
    };
    let text = std::fs::read_to_string(template).with_context(|| format!("reading {template}"))?;
    let values = read_values(Path::new(values))?;
    let filled = fill_template(&text, &values).map_err(|e| anyhow::anyhow!("{template}: {e}"))?;
    print!("{filled}");
    Ok(())
}

/// VALUES_DIR/<name>.md as name -> text.
fn read_values(dir: &Path) -> anyhow::Result<BTreeMap<String, String>> {
    let mut values = BTreeMap::new();
    let entries = std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))?;
    for entry in entries {
        let path = entry?.path();
        if let (Some(name), Some("md")) = (
            path.file_stem().and_then(|s| s.to_str()),
            path.extension().and_then(|s| s.to_str()),
        ) {
            values.insert(name.to_owned(), std::fs::read_to_string(&path)?);
        }
    }
    Ok(values)
}

fn kinesis_event(args: &[String]) -> anyhow::Result<()> {
    let [records, bytes] = args else {
        bail!("usage: lambda-bench kinesis-event RECORDS BYTES");
    };
    println!("{}", kinesis_batch(records.parse()?, bytes.parse()?));
    Ok(())
}

async fn bench() -> anyhow::Result<()> {
    let mut args = parse_args()?;
    let sink = Sink::start(0).await?;
    let dynamodb = start_dynamodb(&mut args).await?;
    let samples = run_all(&args, &sink).await?;
    print_section(&args, samples, dynamodb.as_ref());
    Ok(())
}

/// With --dynamodb-latency-ms, the DynamoDB stand-in, and the function
/// pointed at it.
async fn start_dynamodb(args: &mut Args) -> anyhow::Result<Option<DynamoStandIn>> {
    let Some(latency) = args.dynamodb_latency else {
        return Ok(None);
    };
    let tables: Vec<(&str, Vec<&str>)> = args
        .tables
        .iter()
        .map(|(t, k)| (t.as_str(), k.iter().map(String::as_str).collect()))
        .collect();
    let tables: Vec<(&str, &[&str])> = tables.iter().map(|(t, k)| (*t, k.as_slice())).collect();
    let faults = Faults {
        forget: args.forget,
        ..Faults::none(latency)
    };
    let db = DynamoStandIn::start(&tables, faults).await?;
    args.env
        .push(("AWS_ENDPOINT_URL_DYNAMODB".into(), db.endpoint()));
    Ok(Some(db))
}

/// `--runs` fresh processes, each given every event once cold and
/// `--warm` times warm.
async fn run_all(args: &Args, sink: &Sink) -> anyhow::Result<Samples> {
    let events = args.events.len();
    let mut samples = Samples {
        cold: vec![Vec::new(); events],
        warm: vec![Vec::new(); events],
        to_put: vec![false; events],
        ..Samples::default()
    };
    let mut counter = 0u64;
    for _ in 0..args.runs {
        let api = RuntimeApi::start().await?;
        let process = FunctionProcess::spawn(&args.binary, &api.host_port(), &args.env);
        let first_poll = api
            .first_poll(Duration::from_secs(10))
            .await
            .context("the function never polled")?;
        samples.init.push(ms(first_poll - process.started));
        for (i, path) in args.events.iter().enumerate() {
            let template: Value = serde_json::from_slice(&std::fs::read(path)?)?;
            samples.to_put[i] = template.get("ResponseURL").is_some();
            for round in 0..=args.warm {
                counter += 1;
                let took = invoke_once(&api, sink, path, &template, counter).await?;
                if round == 0 {
                    &mut samples.cold[i]
                } else {
                    &mut samples.warm[i]
                }
                .push(took);
            }
        }
        samples
            .rss
            .push(process.peak_rss_kib().unwrap_or(0) as f64 / 1024.0);
    }
    Ok(samples)
}

/// One invoke of `template` (a custom-resource event pointed at the sink
/// under a fresh request id), in milliseconds.
async fn invoke_once(
    api: &RuntimeApi,
    sink: &Sink,
    path: &Path,
    template: &Value,
    counter: u64,
) -> anyhow::Result<f64> {
    let custom_resource = template.get("ResponseURL").is_some();
    let id = format!("bench-{counter}");
    let mut event = template.clone();
    if custom_resource {
        event["ResponseURL"] = Value::from(sink.url(&id));
        event["RequestId"] = Value::from(id.clone());
    }
    let invocation = api.invoke(event, Duration::from_secs(120)).await?;
    if let Err(error) = &invocation.result {
        bail!("{} failed: {error}", path.display());
    }
    if !custom_resource {
        return Ok(ms(invocation.duration()));
    }
    let put = sink
        .received(&id)
        .into_iter()
        .next()
        .context("no response reached the sink")?;
    Ok(ms(put.at.saturating_duration_since(invocation.handed_out)))
}

fn print_section(args: &Args, samples: Samples, dynamodb: Option<&DynamoStandIn>) {
    let zip_mb = std::fs::metadata(&args.zip)
        .map(|m| m.len() as f64 / 1_048_576.0)
        .unwrap_or(f64::NAN);
    println!("## {}\n", args.function);
    println!("{} runs of a fresh process each; medians.\n", args.runs);
    println!("| measure | value |\n|---|---|");
    println!(
        "| init (process start to first poll of /next) | {:.2} ms |",
        median(samples.init)
    );
    for (i, path) in args.events.iter().enumerate() {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("event");
        let until = if samples.to_put[i] {
            "PUT arrival"
        } else {
            "answer"
        };
        println!(
            "| first invoke, {name} (to {until}) | {:.2} ms |",
            median(samples.cold[i].clone())
        );
        if args.warm > 0 {
            println!(
                "| warm invoke, {name} (to {until}; median of {}) | {:.3} ms |",
                args.warm,
                median(samples.warm[i].clone())
            );
        }
    }
    println!("| peak RSS (VmHWM) | {:.1} MB |", median(samples.rss));
    println!("| zipped bootstrap | {zip_mb:.2} MB |");
    if let Some(db) = dynamodb {
        println!("| DynamoDB calls made (all runs) | {} |", db.calls());
    }
}
