//! `make demo`'s stand-in for CloudFormation: receives the responses on
//! 127.0.0.1 and prints each one, as CloudFormation would record it.

use suite_tests::http::{Received, reply, serve};

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let port: u16 = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "0".into())
        .parse()?;
    let (addr, task) = serve(port, |request: Received| async move {
        let body: serde_json::Value = serde_json::from_slice(&request.body).unwrap_or_default();
        println!(
            "CloudFormation received {} bytes, Content-Type {:?}:\n{}",
            request.body.len(),
            request.header("content-type").unwrap_or("(absent)"),
            serde_json::to_string_pretty(&body).unwrap_or_default()
        );
        reply(200, "")
    })
    .await?;
    eprintln!("cfn-response-sink listening on {addr}");
    task.await?;
    Ok(())
}
