//! `make bench`: runs a release function binary under the Runtime API
//! stand-in and prints a Markdown section with the medians of repeated runs.
//!
//! lambda-bench --function NAME --binary PATH --zip PATH --runs N
//!              --event FILE [--event FILE ...] [--env KEY=VALUE ...]
//!
//! Init is process start to the first poll of `/next`. An invoke is timed
//! from the hand-out of the event to the arrival of the CloudFormation
//! response at the local sink, so the PUT's own round trip is excluded.

use anyhow::{Context, bail};
use serde_json::Value;
use std::path::PathBuf;
use std::time::Duration;
use suite_tests::function::FunctionProcess;
use suite_tests::runtime_api::RuntimeApi;
use suite_tests::sink::Sink;

const WARM_INVOKES: usize = 20;

struct Args {
    function: String,
    binary: PathBuf,
    zip: PathBuf,
    runs: usize,
    events: Vec<PathBuf>,
    env: Vec<(String, String)>,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut args = std::env::args().skip(1);
    let (mut function, mut binary, mut zip, mut runs) = (None, None, None, 5);
    let (mut events, mut env) = (Vec::new(), Vec::new());
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
    })
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    let sink = Sink::start(0).await?;
    let mut init = Vec::new();
    let mut rss = Vec::new();
    // Per event: cold (first invoke of a process) and warm times.
    let mut cold = vec![Vec::new(); args.events.len()];
    let mut warm = vec![Vec::new(); args.events.len()];
    let mut counter = 0u64;

    for _ in 0..args.runs {
        let api = RuntimeApi::start().await?;
        let process = FunctionProcess::spawn(&args.binary, &api.host_port(), &args.env);
        let first_poll = api
            .first_poll(Duration::from_secs(10))
            .await
            .context("the function never polled")?;
        init.push(ms(first_poll - process.started));
        for (i, path) in args.events.iter().enumerate() {
            let template: Value = serde_json::from_slice(&std::fs::read(path)?)?;
            for round in 0..=WARM_INVOKES {
                counter += 1;
                let id = format!("bench-{counter}");
                let mut event = template.clone();
                event["ResponseURL"] = Value::from(sink.url(&id));
                event["RequestId"] = Value::from(id.clone());
                let invocation = api.invoke(event, Duration::from_secs(30)).await?;
                let put = sink
                    .received(&id)
                    .into_iter()
                    .next()
                    .context("no response reached the sink")?;
                let before_put = ms(put.at.saturating_duration_since(invocation.handed_out));
                if round == 0 {
                    &mut cold[i]
                } else {
                    &mut warm[i]
                }
                .push(before_put);
            }
        }
        rss.push(process.peak_rss_kib().unwrap_or(0) as f64 / 1024.0);
    }

    let zip_mb = std::fs::metadata(&args.zip)
        .map(|m| m.len() as f64 / 1_048_576.0)
        .unwrap_or(f64::NAN);
    println!("## {}\n", args.function);
    println!("{} runs of a fresh process each; medians.\n", args.runs);
    println!("| measure | value |\n|---|---|");
    println!(
        "| init (process start to first poll of /next) | {:.2} ms |",
        median(init)
    );
    for (i, path) in args.events.iter().enumerate() {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("event");
        println!(
            "| first invoke, {name} (to PUT arrival) | {:.2} ms |",
            median(cold[i].clone())
        );
        println!(
            "| warm invoke, {name} (to PUT arrival; median of {WARM_INVOKES}) | {:.3} ms |",
            median(warm[i].clone())
        );
    }
    println!("| peak RSS (VmHWM) | {:.1} MB |", median(rss));
    println!("| zipped bootstrap | {zip_mb:.2} MB |");
    Ok(())
}
