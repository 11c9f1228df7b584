//! Runtime API details: the invocation deadline, and reporting an init
//! failure.
//!
//! lambda_runtime has no public call for `/runtime/init/error`; without it a
//! bad configuration only shows as "Runtime exited with error".

use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

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

/// 2000-01-01T00:00:00Z in epoch milliseconds.
const EPOCH_2000_MS: u64 = 946_684_800_000;

/// Lambda gives the deadline as epoch milliseconds. `cargo lambda watch`
/// (1.9) sends the function timeout instead (600000): no real deadline lies
/// before 2000, so such a value is read as the time remaining.
pub fn deadline_instant(deadline_ms: u64, now: SystemTime) -> Instant {
    let remaining = if deadline_ms < EPOCH_2000_MS {
        tracing::warn!(
            deadline_ms,
            "the Runtime API sent a duration, not an epoch deadline; reading it as the time remaining"
        );
        Duration::from_millis(deadline_ms)
    } else {
        let now_ms = now
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        Duration::from_millis(deadline_ms.saturating_sub(now_ms))
    };
    Instant::now() + remaining
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    #[test]
    fn epoch_deadlines_and_emulator_durations() {
        let now = UNIX_EPOCH + Duration::from_millis(1_800_000_000_000);
        let remaining = |at: Instant| at.saturating_duration_since(Instant::now());
        let real = deadline_instant(1_800_000_030_000, now);
        assert!(
            remaining(real) > Duration::from_secs(29) && remaining(real) <= Duration::from_secs(30)
        );
        let emulator = deadline_instant(600_000, now);
        assert!(remaining(emulator) > Duration::from_secs(599));
        let past = deadline_instant(1_799_999_000_000, now);
        assert_eq!(remaining(past), Duration::ZERO);
    }

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
