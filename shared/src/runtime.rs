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
    // Header values cannot carry newlines; the type is one of our own names.
    let error_type: String = error_type.chars().filter(|c| !c.is_control()).collect();
    let body = serde_json::json!({"errorType": error_type, "errorMessage": message}).to_string();
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

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    #[tokio::test]
    async fn posts_the_error_where_the_runtime_api_expects_it() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let api = listener.local_addr().unwrap().to_string();
        let server = tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut buf = vec![0u8; 4096];
            let n = stream.read(&mut buf).await.unwrap();
            stream
                .write_all(b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n")
                .await
                .unwrap();
            String::from_utf8_lossy(&buf[..n]).into_owned()
        });
        post_init_error(
            &api,
            "InvalidConfig\n",
            "TABLE_NAME is required but not set",
        )
        .await
        .unwrap();
        let request = server.await.unwrap();
        assert!(
            request.starts_with("POST /2018-06-01/runtime/init/error HTTP/1.1\r\n"),
            "{request}"
        );
        assert!(
            request.contains("Lambda-Runtime-Function-Error-Type: InvalidConfig\r\n"),
            "{request}"
        );
        let body = request.split_once("\r\n\r\n").unwrap().1;
        let json: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(json["errorType"], "InvalidConfig");
        assert_eq!(json["errorMessage"], "TABLE_NAME is required but not set");
    }
}
