//! Plays CloudFormation's side of the ResponseURL: records every PUT and
//! replies as scripted (default 200), so tests can inject 5xx and 4xx.

use crate::http::{Received, reply, serve};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Default)]
struct State {
    received: Vec<Received>,
    script: VecDeque<u16>,
    delay: Option<Duration>,
}

pub struct Sink {
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Sink {
    pub async fn start(port: u16) -> anyhow::Result<Self> {
        let state = Arc::new(Mutex::new(State::default()));
        let shared = state.clone();
        let (addr, task) = serve(port, move |request: Received| {
            let state = shared.clone();
            async move {
                let (status, delay) = {
                    let mut s = state.lock().unwrap();
                    s.received.push(request);
                    (s.script.pop_front().unwrap_or(200), s.delay)
                };
                if let Some(delay) = delay {
                    tokio::time::sleep(delay).await;
                }
                reply(
                    status,
                    if status == 200 {
                        ""
                    } else {
                        "<Error>scripted</Error>"
                    },
                )
            }
        })
        .await?;
        Ok(Self { addr, state, task })
    }

    /// A ResponseURL on this sink; `id` keeps requests apart.
    pub fn url(&self, id: &str) -> String {
        format!(
            "http://127.0.0.1:{}/responses/{id}?X-Amz-Signature=local",
            self.addr.port()
        )
    }

    /// The next replies' statuses, then 200 again.
    pub fn script(&self, statuses: &[u16]) {
        self.state.lock().unwrap().script.extend(statuses);
    }

    pub fn delay_replies(&self, delay: Duration) {
        self.state.lock().unwrap().delay = Some(delay);
    }

    /// Every request received on the URL with this `id`.
    pub fn received(&self, id: &str) -> Vec<Received> {
        let prefix = format!("/responses/{id}?");
        self.state
            .lock()
            .unwrap()
            .received
            .iter()
            .filter(|r| r.path_and_query.starts_with(&prefix))
            .cloned()
            .collect()
    }

    pub fn all_received(&self) -> Vec<Received> {
        self.state.lock().unwrap().received.clone()
    }
}
