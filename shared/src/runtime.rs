//! Reporting an init failure to the Lambda Runtime API.
//!
//! lambda_runtime has no public call for `/runtime/init/error`; without it a
//! bad configuration only shows as "Runtime exited with error".

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Posts the error to `/runtime/init/error`, logs it, and exits with status 1.
pub async fn fail_init(error_type: &str, error: &dyn std::fmt::Display) -> ! {
    let message = error.to_string();
    tracing::error!(error_type, error = %message, "initialisation failed");
    if let Ok(api) = std::env::var("AWS_LAMBDA_RUNTIME_API")
        && let Err(e) = post_init_error(&api, error_type, &message).await
    {
        tracing::error!(error = %e, "could not report the init error to the Runtime API");
    }
    std::process::exit(1)
}

async fn post_init_error(api: &str, error_type: &str, message: &str) -> std::io::Result<()> {
    let body = serde_json::json!({"errorType": error_type, "errorMessage": message}).to_string();
    // Header values cannot carry newlines; the type is one of our own names.
    let error_type: String = error_type.chars().filter(|c| !c.is_control()).collect();
    let request = format!(
        "POST /2018-06-01/runtime/init/error HTTP/1.1\r\nHost: {api}\r\n\
         Lambda-Runtime-Function-Error-Type: {error_type}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let mut stream = TcpStream::connect(api).await?;
    stream.write_all(request.as_bytes()).await?;
    let mut reply = Vec::new();
    stream.read_to_end(&mut reply).await?;
    Ok(())
}
