//! Plays Lambda's Invoke API (`POST /2015-03-31/functions/{name}/invocations`):
//! records every invocation and answers 200, with `X-Amz-Function-Error:
//! Unhandled` for payloads that contain a chosen marker, as Lambda answers
//! when the function itself failed.

use crate::http::{Received, reply, serve};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

const PREFIX: &str = "/2015-03-31/functions/";
const SUFFIX: &str = "/invocations";

/// One invoke as the stand-in received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invoke {
    pub function: String,
    /// `X-Amz-Invocation-Type` (absent means RequestResponse).
    pub invocation_type: Option<String>,
    pub payload: String,
    /// Whether the stand-in answered with a function error.
    pub failed: bool,
}

#[derive(Default)]
struct State {
    invokes: Vec<Invoke>,
    fail_marker: Option<String>,
}

pub struct InvokeStandIn {
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for InvokeStandIn {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl InvokeStandIn {
    /// Starts on a free port; payloads containing `fail_marker` get a
    /// function error.
    pub async fn start(fail_marker: Option<&str>) -> anyhow::Result<Self> {
        let state = Arc::new(Mutex::new(State {
            invokes: Vec::new(),
            fail_marker: fail_marker.map(str::to_owned),
        }));
        let shared = state.clone();
        let (addr, task) = serve(0, move |request: Received| {
            let state = shared.clone();
            async move { answer(&state, request) }
        })
        .await?;
        Ok(Self { addr, state, task })
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn invokes(&self) -> Vec<Invoke> {
        self.state.lock().unwrap().invokes.clone()
    }
}

fn answer(
    state: &Mutex<State>,
    request: Received,
) -> hyper::Response<http_body_util::Full<bytes::Bytes>> {
    let path = request.path_and_query.split('?').next().unwrap_or_default();
    let Some(function) = path
        .strip_prefix(PREFIX)
        .and_then(|rest| rest.strip_suffix(SUFFIX))
    else {
        return reply(404, r#"{"message":"not an Invoke call"}"#);
    };
    let payload = String::from_utf8_lossy(&request.body).into_owned();
    let mut state = state.lock().unwrap();
    let failed = state
        .fail_marker
        .as_deref()
        .is_some_and(|marker| payload.contains(marker));
    state.invokes.push(Invoke {
        function: function.to_owned(),
        invocation_type: request.header("x-amz-invocation-type").map(str::to_owned),
        payload,
        failed,
    });
    let mut response = if failed {
        reply(
            200,
            r#"{"errorType":"StandInFailure","errorMessage":"the stand-in refused this payload"}"#,
        )
    } else {
        reply(200, "null")
    };
    let headers = response.headers_mut();
    headers.insert("x-amz-executed-version", "$LATEST".parse().unwrap());
    if failed {
        headers.insert("x-amz-function-error", "Unhandled".parse().unwrap());
    }
    response
}
