//! `lambda-redrive --queue-url URL --function NAME [--dry-run] [--max N]`:
//! sends the events of a Lambda dead-letter queue or OnFailure destination
//! queue back to the function (synchronous Invoke), deleting each message
//! only once the function returned without a function error.
//!
//! Prints one line per message and a summary. Exit status 0: every message
//! received was redriven (dry run: could be); 1: some were left in the
//! queue; 2: usage error; 3: an SQS call failed and the run stopped early.
//! AWS settings come from the usual environment and profile chain
//! (AWS_ENDPOINT_URL_SQS / _LAMBDA included); the regions in the queue URL
//! and a function ARN win over the profile's.

use aws_config::BehaviorVersion;
use aws_config::Region;
use aws_config::timeout::TimeoutConfig;
use shared::redrive::sdk::{LambdaInvoker, RECEIVE_WAIT, SqsQueue, lambda_client_config};
use shared::redrive::{Options, function_region, queue_region, redrive};
use std::process::ExitCode;
use std::time::Duration;

const USAGE: &str = "usage: lambda-redrive --queue-url URL --function NAME [--dry-run] [--max N]";

struct Args {
    queue_url: String,
    function: String,
    options: Options,
}

fn parse(args: &[String]) -> Result<Args, String> {
    let (mut queue_url, mut function) = (None, None);
    let mut options = Options::default();
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let mut value = |name: &str| {
            args.next()
                .filter(|v| !v.is_empty())
                .cloned()
                .ok_or_else(|| format!("{name}: a value is required"))
        };
        match arg.as_str() {
            "--queue-url" => queue_url = Some(value("--queue-url")?),
            "--function" => function = Some(value("--function")?),
            "--max" => {
                let text = value("--max")?;
                match text.parse::<usize>() {
                    Ok(n) if n > 0 => options.max = Some(n),
                    _ => return Err(format!("--max: {text:?} is not a positive whole number")),
                }
            }
            "--dry-run" => options.dry_run = true,
            other => return Err(format!("{other}: unknown argument")),
        }
    }
    Ok(Args {
        queue_url: queue_url.ok_or("--queue-url is required")?,
        function: function.ok_or("--function is required")?,
        options,
    })
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let raw: Vec<String> = std::env::args().skip(1).collect();
    let args = match parse(&raw) {
        Ok(args) => args,
        Err(e) => {
            eprintln!("lambda-redrive: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let sdk = aws_config::defaults(BehaviorVersion::latest())
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(5))
                .operation_attempt_timeout(RECEIVE_WAIT + Duration::from_secs(20))
                .build(),
        )
        .load()
        .await;
    // The queue's and the function's own regions win over the profile's,
    // so an operator's default region cannot aim the calls elsewhere.
    let queue_region = queue_region(&args.queue_url).map(|r| Region::new(r.to_owned()));
    let function_region = function_region(&args.function)
        .map(|r| Region::new(r.to_owned()))
        .or_else(|| sdk.region().cloned())
        .or_else(|| queue_region.clone());
    let mut sqs_config = aws_sdk_sqs::config::Builder::from(&sdk);
    if let Some(region) = queue_region {
        sqs_config = sqs_config.region(region);
    }
    // One attempt per invoke (an invoke that failed may have run the
    // function: the message waits for the next run, not a second send).
    let lambda_config = lambda_client_config(&sdk, function_region);
    let queue = SqsQueue::new(
        aws_sdk_sqs::Client::from_conf(sqs_config.build()),
        &args.queue_url,
    );
    let invoker = LambdaInvoker::new(aws_sdk_lambda::Client::from_conf(lambda_config));
    let summary = redrive(&queue, &invoker, &args.function, args.options, |line| {
        println!("{line}")
    })
    .await;
    println!("lambda-redrive {}: {summary}", args.function);
    if summary.stopped.is_some() {
        ExitCode::from(3)
    } else if summary.clean() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(args: &[&str]) -> Vec<String> {
        args.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn arguments_parse_and_errors_name_the_flag() {
        let args = parse(&strings(&[
            "--queue-url",
            "http://q",
            "--function",
            "f",
            "--dry-run",
            "--max",
            "3",
        ]))
        .unwrap();
        assert_eq!(
            (args.queue_url.as_str(), args.function.as_str()),
            ("http://q", "f")
        );
        assert_eq!(
            args.options,
            Options {
                max: Some(3),
                dry_run: true
            }
        );
        for (bad, named) in [
            (vec!["--function", "f"], "--queue-url"),
            (vec!["--queue-url", "q"], "--function"),
            (
                vec!["--queue-url", "q", "--function", "f", "--max", "0"],
                "--max",
            ),
            (vec!["--queue-url", "q", "--function"], "--function"),
            (
                vec!["--queue-url", "q", "--function", "f", "--force"],
                "--force",
            ),
        ] {
            let err = parse(&strings(&bad)).err().unwrap();
            assert!(err.contains(named), "{bad:?}: {err}");
        }
    }
}
