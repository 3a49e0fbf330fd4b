//! The collector: one task per monitored node polls its `/v1/status` and
//! sends what it got (or why it got nothing) to the model over a bounded
//! channel. A node that does not answer is a message, never a failure.

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;

use super::app::Msg;
use crate::node::api::StatusSnapshot;
use crate::node::client::ApiClient;

/// Where a monitored node's control API is found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Source {
    /// A node data directory (`api.addr` and `api.token` in it, read again
    /// after every failure, so a restarted node on a new port is found).
    DataDir(PathBuf),
    /// An address and the file holding the token.
    Api {
        /// `host:port`.
        addr: String,
        /// File holding the bearer token.
        token_file: PathBuf,
    },
}

/// One node to monitor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Target {
    /// Its name until it answers with its own.
    pub(crate) label: String,
    /// Where its API is.
    pub(crate) source: Source,
}

impl Target {
    /// The node whose data directory is `dir`, labelled with the
    /// directory's name.
    pub(crate) fn data_dir(dir: PathBuf) -> Self {
        let label = dir.file_name().map_or_else(
            || dir.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        Self {
            label,
            source: Source::DataDir(dir),
        }
    }

    /// The node at `addr` whose token is in `token_file`.
    pub(crate) fn api(addr: String, token_file: PathBuf) -> Self {
        Self {
            label: addr.clone(),
            source: Source::Api { addr, token_file },
        }
    }

    fn client(&self) -> anyhow::Result<ApiClient> {
        match &self.source {
            Source::DataDir(dir) => ApiClient::from_data_dir(dir),
            Source::Api { addr, token_file } => {
                let token = std::fs::read_to_string(token_file)
                    .with_context(|| format!("reading {}", token_file.display()))?;
                ApiClient::new(addr, &token)
            }
        }
    }
}

/// Unix milliseconds now.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// An error in one line: the outermost context and the root cause (the
/// layers in between are reqwest's and hyper's wording of the same thing).
fn one_line(error: &anyhow::Error) -> String {
    let outer = error.to_string();
    let root = error.root_cause().to_string();
    if outer == root {
        outer
    } else {
        format!("{outer}: {root}")
    }
}

/// A node's API client, kept between polls and dropped after a failure.
#[derive(Debug)]
pub(crate) struct Poller {
    target: Target,
    client: Option<ApiClient>,
    timeout: Duration,
}

impl Poller {
    /// A poller of `target` that gives up on an answer after `timeout`.
    pub(crate) fn new(target: Target, timeout: Duration) -> Self {
        Self {
            target,
            client: None,
            timeout,
        }
    }

    /// Asks the node for its status once.
    pub(crate) async fn poll(&mut self) -> Result<StatusSnapshot, String> {
        let client = match self.client.take() {
            Some(client) => client,
            None => self.target.client().map_err(|e| one_line(&e))?,
        };
        let error = match tokio::time::timeout(self.timeout, client.status()).await {
            Ok(Ok(status)) => {
                self.client = Some(client);
                return Ok(status);
            }
            Ok(Err(error)) => one_line(&error),
            Err(_) => format!(
                "no answer from {} within {:.1}s",
                client.base(),
                self.timeout.as_secs_f64()
            ),
        };
        Err(error)
    }
}

/// The running collector tasks; dropping it stops them.
#[derive(Debug)]
pub(crate) struct Collector {
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Collector {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Starts one polling task per target; target `i` reports as node `i`.
/// Each task waits when the channel is full, so a model that falls behind
/// slows the polling down instead of queueing answers.
pub(crate) fn spawn(targets: &[Target], every: Duration, tx: &mpsc::Sender<Msg>) -> Collector {
    let timeout = every.max(Duration::from_secs(2));
    let tasks = targets
        .iter()
        .enumerate()
        .map(|(node, target)| {
            let mut poller = Poller::new(target.clone(), timeout);
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut ticker = tokio::time::interval(every);
                ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
                loop {
                    ticker.tick().await;
                    let result = poller.poll().await.map(Box::new);
                    let msg = Msg::Status {
                        node,
                        at_ms: now_ms(),
                        result,
                    };
                    if tx.send(msg).await.is_err() {
                        return;
                    }
                }
            })
        })
        .collect();
    Collector { tasks }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tui::fixture;

    #[tokio::test]
    async fn a_missing_data_dir_is_an_error_message() {
        let dir = tempfile::tempdir().unwrap();
        let mut poller = Poller::new(
            Target::data_dir(dir.path().join("node-0")),
            Duration::from_secs(2),
        );
        let error = poller.poll().await.unwrap_err();
        assert!(error.contains("api.addr"), "{error}");
    }

    #[tokio::test]
    async fn a_closed_port_is_an_error_message() {
        // Bind then drop a listener: nothing listens on that port now.
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("token");
        std::fs::write(&token, "secret\n").unwrap();
        let mut poller = Poller::new(
            Target::api(format!("127.0.0.1:{port}"), token),
            Duration::from_secs(2),
        );
        let error = poller.poll().await.unwrap_err();
        assert!(error.contains("/v1/status"), "{error}");
    }

    #[tokio::test]
    async fn a_node_answer_is_decoded_and_the_token_sent() {
        use axum::http::{HeaderMap, StatusCode, header};

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let router = axum::Router::new().route(
            "/v1/status",
            axum::routing::get(|headers: HeaderMap| async move {
                let auth = headers
                    .get(header::AUTHORIZATION)
                    .and_then(|v| v.to_str().ok());
                if auth == Some("Bearer secret") {
                    Ok(axum::Json(fixture::snapshot()))
                } else {
                    Err(StatusCode::UNAUTHORIZED)
                }
            }),
        );
        let server = tokio::spawn(async move { axum::serve(listener, router).await });
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("api.addr"), format!("{addr}\n")).unwrap();
        std::fs::write(dir.path().join("api.token"), "secret\n").unwrap();
        let mut poller = Poller::new(Target::data_dir(dir.path().into()), Duration::from_secs(5));
        assert_eq!(poller.poll().await.unwrap(), fixture::snapshot());

        std::fs::write(dir.path().join("api.token"), "wrong").unwrap();
        let mut poller = Poller::new(Target::data_dir(dir.path().into()), Duration::from_secs(5));
        let error = poller.poll().await.unwrap_err();
        assert!(error.contains("401"), "{error}");
        server.abort();
    }

    #[tokio::test]
    async fn the_collector_reports_every_target_through_the_channel() {
        let dir = tempfile::tempdir().unwrap();
        let targets = vec![
            Target::data_dir(dir.path().join("a")),
            Target::data_dir(dir.path().join("b")),
        ];
        let (tx, mut rx) = mpsc::channel(4);
        let collector = spawn(&targets, Duration::from_millis(100), &tx);
        let mut seen = [false; 2];
        while !seen.iter().all(|s| *s) {
            match rx.recv().await.unwrap() {
                Msg::Status {
                    node,
                    result: Err(_),
                    ..
                } => seen[node] = true,
                other => panic!("unexpected {other:?}"),
            }
        }
        drop(collector);
    }
}
