//! The functions' local environments (`[package.metadata.lambda.env]`) for
//! the scripts:
//!   lambda-env all            one `PACKAGE KEY=VALUE` line per variable
//!   lambda-env sam-env-json   env.json for `sam local invoke --env-vars`

use anyhow::bail;
use suite_tests::lambda_env::{lambda_packages, sam_env_json_text};
use suite_tests::process::{sam_template, workspace_root};

fn main() -> anyhow::Result<()> {
    let packages = lambda_packages(&workspace_root())?;
    match std::env::args().nth(1).as_deref() {
        Some("all") => {
            for package in &packages {
                for (key, value) in &package.env {
                    println!("{} {key}={value}", package.name);
                }
            }
        }
        Some("sam-env-json") => print!("{}", sam_env_json_text(&sam_template(), &packages)?),
        _ => bail!("usage: lambda-env all | sam-env-json"),
    }
    Ok(())
}
