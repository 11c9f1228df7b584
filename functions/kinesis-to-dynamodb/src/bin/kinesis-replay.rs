//! kinesis-replay: the operator's tool for what the function set aside.
//!
//!   kinesis-replay failures --queue-url URL [--dry-run] [--max N] [--accept-loss]
//!   kinesis-replay rejects list [--limit N]
//!   kinesis-replay rejects replay [--dry-run]
//!   kinesis-replay rejects delete --id SHARD/SEQUENCE/SUB [--id ...]
//!
//! It reads the function's own configuration (TABLE_NAME, PARTITION_KEY,
//! REJECTS_TABLE_NAME, MODE, ...) from the environment and writes through
//! the function's pipeline; the variables that decide how items are keyed
//! must all be set (empty: the function's default), and the configuration
//! is printed (stderr) before anything else. Exit code 0: nothing left; 1: something stays
//! (listed); 2: bad usage or configuration; 3: an AWS call failed.

use kinesis_to_dynamodb::aws::dynamodb::{DynamoRejects, DynamoTable};
use kinesis_to_dynamodb::aws::kinesis::KinesisShards;
use kinesis_to_dynamodb::aws::sqs::SqsQueue;
use kinesis_to_dynamodb::config::Config;
use kinesis_to_dynamodb::ports::ReplayError;
use kinesis_to_dynamodb::replay::{
    FailureOptions, RejectId, Summary, delete_rejects, describe_config, list_rejects,
    replay_failures, replay_rejects,
};
use shared::aws::{ClientPolicy, load_sdk_config, with_policy};
use shared::config::EnvReader;
use std::process::ExitCode;
use std::time::Duration;

const USAGE: &str = "usage:
  kinesis-replay failures --queue-url URL [--dry-run] [--max N] [--accept-loss]
  kinesis-replay rejects list [--limit N]
  kinesis-replay rejects replay [--dry-run]
  kinesis-replay rejects delete --id SHARD/SEQUENCE/SUB [--id ...]
Configuration: the deployed function's environment variables (TABLE_NAME, PARTITION_KEY,
REJECTS_TABLE_NAME, ...); failures and rejects replay also need PARTITION_KEY_SOURCE,
SORT_KEY, SORT_KEY_SOURCE and MODE set (empty: the function's default), as the function
has them. AWS credentials and region as usual.";

/// How the function keys items. A replay must write as the function does,
/// so these come from the function's environment (its template always sets
/// them), never from a default of the tool's: a forgotten export would
/// write items under other keys, then delete the messages and rejects.
const KEYING: [&str; 4] = [
    "PARTITION_KEY_SOURCE",
    "SORT_KEY",
    "SORT_KEY_SOURCE",
    "MODE",
];

enum Command {
    Failures {
        queue_url: String,
        options: FailureOptions,
    },
    List {
        limit: Option<usize>,
    },
    Replay {
        dry_run: bool,
    },
    Delete {
        ids: Vec<RejectId>,
    },
}

fn parse(args: &[String]) -> Result<Command, ReplayError> {
    let usage = |why: String| ReplayError::Usage(format!("{why}\n{USAGE}"));
    let words: Vec<&str> = args.iter().map(String::as_str).collect();
    let (command, rest) = match words.as_slice() {
        ["failures", rest @ ..] => ("failures", rest),
        ["rejects", "list", rest @ ..] => ("list", rest),
        ["rejects", "replay", rest @ ..] => ("replay", rest),
        ["rejects", "delete", rest @ ..] => ("delete", rest),
        _ => return Err(usage("expected a command".into())),
    };
    let (mut queue_url, mut dry_run, mut accept_loss) = (None, false, false);
    let (mut max, mut limit, mut ids) = (None, None, Vec::new());
    let mut rest = rest.iter();
    let number = |flag: &str, value: Option<&&str>| -> Result<u64, ReplayError> {
        value
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| usage(format!("{flag} needs a whole number")))
    };
    while let Some(&flag) = rest.next() {
        match (command, flag) {
            ("failures", "--queue-url") => {
                queue_url = Some(
                    rest.next()
                        .ok_or_else(|| usage("--queue-url needs a URL".into()))?
                        .to_string(),
                )
            }
            ("failures", "--max") => max = Some(number(flag, rest.next())?),
            ("failures", "--accept-loss") => accept_loss = true,
            ("failures" | "replay", "--dry-run") => dry_run = true,
            ("list", "--limit") => limit = Some(number(flag, rest.next())? as usize),
            ("delete", "--id") => ids.push(RejectId::parse(
                rest.next()
                    .ok_or_else(|| usage("--id needs a reject id".into()))?,
            )?),
            _ => return Err(usage(format!("unexpected argument {flag:?}"))),
        }
    }
    Ok(match command {
        "failures" => Command::Failures {
            queue_url: queue_url.ok_or_else(|| usage("failures needs --queue-url".into()))?,
            options: FailureOptions {
                dry_run,
                max,
                accept_loss,
                ..FailureOptions::default()
            },
        },
        "list" => Command::List { limit },
        "replay" => Command::Replay { dry_run },
        _ if ids.is_empty() => return Err(usage("rejects delete needs --id".into())),
        _ => Command::Delete { ids },
    })
}

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let command = match command(&args) {
        Ok(command) => command,
        Err(exit) => return exit,
    };
    let config = match Config::from_env(EnvReader::from_env()) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("{e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    eprintln!("{}", describe_config(&config));
    match run(command, &config).await {
        Ok((name, summary)) => {
            println!("{}", summary_line(name, &summary));
            if summary.left > 0 {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) => {
            eprintln!("kinesis-replay: {e}");
            ExitCode::from(3)
        }
    }
}

/// The command to run, or how to exit at once (help, usage errors, and
/// replays whose keying is not set).
fn command(args: &[String]) -> Result<Command, ExitCode> {
    if matches!(args.first().map(String::as_str), Some("-h" | "--help")) {
        println!("{USAGE}");
        return Err(ExitCode::SUCCESS);
    }
    let command = parse(args).map_err(|e| {
        eprintln!("{e}");
        ExitCode::from(2)
    })?;
    if matches!(command, Command::Failures { .. } | Command::Replay { .. }) {
        let unset: Vec<&str> = KEYING
            .into_iter()
            .filter(|name| std::env::var_os(name).is_none())
            .collect();
        if !unset.is_empty() {
            eprintln!(
                "kinesis-replay: {} not set: export the deployed function's environment (docs/runbook.md, \
                 The replay tools) so items are keyed as the function keys them; empty means the function's default",
                unset.join(", ")
            );
            return Err(ExitCode::from(2));
        }
    }
    Ok(command)
}

/// Runs `command` against AWS; returns its name and totals.
async fn run(command: Command, config: &Config) -> Result<(&'static str, Summary), ReplayError> {
    let sdk = load_sdk_config().await;
    // The function's own writer client (the pipeline retries its writes).
    let table = DynamoTable::from_sdk(&sdk);
    let rejects = DynamoRejects {
        client: aws_sdk_dynamodb::Client::new(&sdk),
        table: config.rejects_table.clone(),
    };
    let mut print = |line: String| println!("{line}");
    match command {
        Command::Failures { queue_url, options } => {
            let queue = SqsQueue::new(aws_sdk_sqs::Client::new(&sdk), queue_url);
            // A GetRecords page can hold 10 MB: more than the default
            // attempt timeout allows on a slow link. read_range retries
            // throttled and expired reads itself: the SDK must not as well.
            let shards = KinesisShards(aws_sdk_kinesis::Client::new(&with_policy(
                &sdk,
                ClientPolicy {
                    attempt_timeout: Duration::from_secs(120),
                    operation_timeout: Duration::from_secs(300),
                    ..ClientPolicy::default()
                }
                .own_retries(),
            )));
            replay_failures(&queue, &shards, &table, config, options, &mut print)
                .await
                .map(|s| ("failures", s))
        }
        Command::List { limit } => list_rejects(&rejects, limit, &mut print)
            .await
            .map(|s| ("rejects list", s)),
        Command::Replay { dry_run } => {
            replay_rejects(&rejects, &table, config, dry_run, &mut print)
                .await
                .map(|s| ("rejects replay", s))
        }
        Command::Delete { ids } => delete_rejects(&rejects, &ids, &mut print)
            .await
            .map(|s| ("rejects delete", s)),
    }
}

fn summary_line(name: &str, s: &Summary) -> String {
    let c = &s.counts;
    match name {
        "rejects list" => format!("{name}: {} rejects", s.seen),
        "rejects delete" => format!("{name}: {} deleted, {} not found", s.done, s.left),
        "failures" => format!(
            "{name}: {} messages: {} done, {} left; {} records read, {} missing; {} user records: written {}, stale {}, collapsed {}, rejected {}, failed {}",
            s.seen,
            s.done,
            s.left,
            s.records_read,
            s.records_missing,
            c.user_records,
            c.written,
            c.stale_skipped,
            c.collapsed,
            c.rejected,
            c.failed
        ),
        _ => format!(
            "{name}: {} rejects: {} done, {} left; written {}, stale {}",
            s.seen, s.done, s.left, c.written, c.stale_skipped
        ),
    }
}
