//! A small Lambda Runtime API: hands invocations to a real function process
//! and records what it answers and when (first poll, hand-out, reply), for
//! integration tests and for `make bench`.

use crate::http::{Received, reply, serve};
use serde_json::Value;
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::{Notify, oneshot};

const NEXT: &str = "/2018-06-01/runtime/invocation/next";
const INVOCATION: &str = "/2018-06-01/runtime/invocation/";
const INIT_ERROR: &str = "/2018-06-01/runtime/init/error";

/// How an invocation ended.
#[derive(Debug, Clone)]
pub struct Invocation {
    /// `Ok(response)` or `Err(error document)`.
    pub result: Result<Value, Value>,
    /// When the function took the event from `/next`.
    pub handed_out: Instant,
    /// When the function posted its answer.
    pub finished: Instant,
}

impl Invocation {
    pub fn duration(&self) -> Duration {
        self.finished - self.handed_out
    }
}

struct Pending {
    id: String,
    /// Serialized at queueing, so that hand-out times measure the function.
    payload: bytes::Bytes,
    deadline_ms: u64,
}

#[derive(Default)]
struct Inner {
    queue: Mutex<VecDeque<Pending>>,
    queued: Notify,
    waiting: Mutex<HashMap<String, (Instant, oneshot::Sender<Invocation>)>>,
    handed_out: Mutex<HashMap<String, Instant>>,
    first_poll: Mutex<Option<Instant>>,
    init_error: Mutex<Option<Value>>,
    init_error_posted: Notify,
}

pub struct RuntimeApi {
    pub addr: SocketAddr,
    inner: Arc<Inner>,
    task: tokio::task::JoinHandle<()>,
    counter: Mutex<u64>,
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn epoch_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl RuntimeApi {
    pub async fn start() -> anyhow::Result<Self> {
        let inner = Arc::new(Inner::default());
        let shared = inner.clone();
        let (addr, task) = serve(0, move |request: Received| {
            let inner = shared.clone();
            async move { route(&inner, request).await }
        })
        .await?;
        Ok(Self {
            addr,
            inner,
            task,
            counter: Mutex::new(0),
        })
    }

    /// The value for `AWS_LAMBDA_RUNTIME_API`.
    pub fn host_port(&self) -> String {
        self.addr.to_string()
    }

    /// Invokes with `time` left and checks the answer came before that
    /// deadline; panics on a transport error.
    pub async fn invoke_before_deadline(&self, event: Value, time: Duration) -> Invocation {
        let deadline = Instant::now() + time;
        let answer = self
            .invoke(event, time)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(
            answer.finished <= deadline,
            "answered {:?} after the deadline",
            answer.finished - deadline
        );
        answer
    }

    /// Sends `payload` with `timeout` as the function's remaining time and
    /// waits (up to `timeout` plus a grace) for its answer.
    pub async fn invoke(&self, payload: Value, timeout: Duration) -> anyhow::Result<Invocation> {
        let id = {
            let mut n = self.counter.lock().unwrap();
            *n += 1;
            format!("00000000-0000-4000-8000-{:012}", *n)
        };
        let (tx, rx) = oneshot::channel();
        self.inner
            .waiting
            .lock()
            .unwrap()
            .insert(id.clone(), (Instant::now(), tx));
        self.inner.queue.lock().unwrap().push_back(Pending {
            id: id.clone(),
            payload: serde_json::to_vec(&payload)?.into(),
            deadline_ms: epoch_ms() + timeout.as_millis() as u64,
        });
        self.inner.queued.notify_one();
        match tokio::time::timeout(timeout + Duration::from_secs(10), rx).await {
            Ok(Ok(invocation)) => Ok(invocation),
            _ => anyhow::bail!("invocation {id} got no answer"),
        }
    }

    /// When the function first asked for an event, i.e. finished its init.
    pub async fn first_poll(&self, within: Duration) -> Option<Instant> {
        let start = Instant::now();
        while start.elapsed() < within {
            if let Some(at) = *self.inner.first_poll.lock().unwrap() {
                return Some(at);
            }
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
        None
    }

    /// The document posted to `/runtime/init/error`, if any, within `within`.
    pub async fn init_error(&self, within: Duration) -> Option<Value> {
        let _ = tokio::time::timeout(within, self.inner.init_error_posted.notified()).await;
        self.inner.init_error.lock().unwrap().clone()
    }
}

async fn route(
    inner: &Inner,
    request: Received,
) -> hyper::Response<http_body_util::Full<bytes::Bytes>> {
    let path = request.path_and_query.as_str();
    if request.method == "GET" && path == NEXT {
        return hand_out(inner).await;
    }
    if request.method == "POST" && path == INIT_ERROR {
        *inner.init_error.lock().unwrap() =
            Some(serde_json::from_slice(&request.body).unwrap_or(Value::Null));
        inner.init_error_posted.notify_waiters();
        return reply(202, "");
    }
    if request.method == "POST"
        && let Some(rest) = path.strip_prefix(INVOCATION)
        && let Some((id, kind)) = rest.split_once('/')
    {
        let finished = Instant::now();
        let body: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
        finish(inner, id, finished, kind == "response", body);
        return reply(202, "");
    }
    reply(404, "unknown Runtime API path")
}

/// `/next`: waits for a queued event and hands it out with Lambda's headers.
async fn hand_out(inner: &Inner) -> hyper::Response<http_body_util::Full<bytes::Bytes>> {
    inner
        .first_poll
        .lock()
        .unwrap()
        .get_or_insert_with(Instant::now);
    let pending = loop {
        if let Some(p) = inner.queue.lock().unwrap().pop_front() {
            break p;
        }
        inner.queued.notified().await;
    };
    inner
        .handed_out
        .lock()
        .unwrap()
        .insert(pending.id.clone(), Instant::now());
    let mut response = reply(200, pending.payload);
    let headers = response.headers_mut();
    let set = |h: &mut hyper::HeaderMap, k: &'static str, v: String| {
        if let Ok(v) = v.parse() {
            h.insert(k, v);
        }
    };
    set(headers, "lambda-runtime-aws-request-id", pending.id);
    set(
        headers,
        "lambda-runtime-deadline-ms",
        pending.deadline_ms.to_string(),
    );
    set(
        headers,
        "lambda-runtime-invoked-function-arn",
        "arn:aws:lambda:us-east-1:123456789012:function:local".into(),
    );
    set(
        headers,
        "lambda-runtime-trace-id",
        "Root=1-00000000-000000000000000000000000".into(),
    );
    response
}

/// A posted response or error: completes the waiting `invoke`.
fn finish(inner: &Inner, id: &str, finished: Instant, succeeded: bool, body: Value) {
    let result = if succeeded { Ok(body) } else { Err(body) };
    let handed_out = inner
        .handed_out
        .lock()
        .unwrap()
        .remove(id)
        .unwrap_or(finished);
    if let Some((_, tx)) = inner.waiting.lock().unwrap().remove(id) {
        let _ = tx.send(Invocation {
            result,
            handed_out,
            finished,
        });
    }
}
