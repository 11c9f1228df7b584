//! `ses-suppression check <address> [--table NAME]`: whether an address is
//! suppressed, and why. Exit status 0: may send; 1: suppressed; 2: error.
//! The table defaults to $SUPPRESSION_TABLE; AWS settings come from the
//! usual environment and profile chain.

use ses_bounce_handler::aws::dynamodb::DynamoStore;
use ses_bounce_handler::check::check;
use std::process::ExitCode;

const USAGE: &str = "usage: ses-suppression check <address> [--table NAME]";

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (address, table) = match args.as_slice() {
        [command, address] if command == "check" => {
            (address.clone(), std::env::var("SUPPRESSION_TABLE").ok())
        }
        [command, address, flag, table] if command == "check" && flag == "--table" => {
            (address.clone(), Some(table.clone()))
        }
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let Some(table) = table.filter(|t| !t.is_empty()) else {
        eprintln!("no table: pass --table NAME or set SUPPRESSION_TABLE\n{USAGE}");
        return ExitCode::from(2);
    };
    let sdk = shared::aws::load_sdk_config().await;
    let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(&sdk), table);
    match check(&store, &address).await {
        Ok(verdict) => {
            println!("{verdict}");
            ExitCode::from(if verdict.suppressed() { 1 } else { 0 })
        }
        Err(e) => {
            eprintln!("ses-suppression: {e}");
            ExitCode::from(2)
        }
    }
}
