//! A minimal HTTP/1.1 server for stand-ins.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;

/// A request with its body read.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    pub path_and_query: String,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
    /// When the request arrived, for benchmarks.
    pub at: std::time::Instant,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Serves `handler` on 127.0.0.1 (port 0 = any free port) until dropped.
pub async fn serve<F, Fut>(
    port: u16,
    handler: F,
) -> anyhow::Result<(SocketAddr, tokio::task::JoinHandle<()>)>
where
    F: Fn(Received) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    let listener = TcpListener::bind(("127.0.0.1", port)).await?;
    let addr = listener.local_addr()?;
    let handler = Arc::new(handler);
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let handler = handler.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req: Request<Incoming>| {
                    let handler = handler.clone();
                    async move {
                        let (parts, body) = req.into_parts();
                        let body = body
                            .collect()
                            .await
                            .map(|b| b.to_bytes())
                            .unwrap_or_default();
                        let at = std::time::Instant::now();
                        let received = Received {
                            method: parts.method.to_string(),
                            path_and_query: parts
                                .uri
                                .path_and_query()
                                .map(|p| p.to_string())
                                .unwrap_or_default(),
                            headers: parts
                                .headers
                                .iter()
                                .map(|(k, v)| {
                                    (
                                        k.to_string(),
                                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                                    )
                                })
                                .collect(),
                            body,
                            at,
                        };
                        Ok::<_, Infallible>(handler(received).await)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok((addr, task))
}

/// A response with a status and a body.
pub fn reply(status: u16, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() =
        hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    response
}

/// Sends `request` on to `base` (such as moto), for stand-ins that handle
/// some calls themselves and pass the rest through.
pub async fn forward(request: &Received, base: &str) -> Response<Full<Bytes>> {
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::TokioExecutor;
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let mut builder = Request::builder()
        .method(request.method.as_str())
        .uri(format!("{base}{}", request.path_and_query));
    for (name, value) in &request.headers {
        builder = builder.header(name, value);
    }
    let outgoing = builder
        .body(Full::new(request.body.clone()))
        .expect("a request copied from a valid one");
    match client.request(outgoing).await {
        Ok(response) => {
            let (parts, body) = response.into_parts();
            let body = body
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            Response::from_parts(parts, Full::new(body))
        }
        Err(e) => reply(502, format!("forwarding failed: {e}")),
    }
}

/// [`forward`], with the answer's body text passed through `rewrite`: for
/// stand-ins that make the real service's answer say something else.
pub async fn forward_rewriting(
    request: &Received,
    base: &str,
    rewrite: impl FnOnce(String) -> String,
) -> Response<Full<Bytes>> {
    let (mut parts, body) = forward(request, base).await.into_parts();
    // The new body sets its own length.
    parts.headers.remove(hyper::header::CONTENT_LENGTH);
    let text = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let text = rewrite(String::from_utf8_lossy(&text).into_owned());
    Response::from_parts(parts, Full::new(Bytes::from(text)))
}

/// A stand-in that accepts TCP connections on 127.0.0.1 and never answers
/// (it reads and drops whatever arrives): the hung service or the black-hole
/// load balancer a client must time out on. Counts the connections it took.
pub struct SilentServer {
    pub addr: SocketAddr,
    connections: Arc<std::sync::atomic::AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl SilentServer {
    pub async fn start() -> anyhow::Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let connections = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = connections.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                // Reading keeps the client's writes flowing; nothing is sent
                // back, and the connection stays open until the client ends it.
                tokio::spawn(async move {
                    use tokio::io::AsyncReadExt;
                    let mut sink = [0u8; 8192];
                    while matches!(stream.read(&mut sink).await, Ok(n) if n > 0) {}
                });
            }
        });
        Ok(Self {
            addr,
            connections,
            task,
        })
    }

    /// `http://127.0.0.1:<port>`, for `AWS_ENDPOINT_URL*`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// How many connections it accepted so far.
    pub fn connections(&self) -> usize {
        self.connections.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl Drop for SilentServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}
