//! A client of a node's control API: what `fog job ...`, `fog devnet` and
//! `fog tui` use. It finds the node through its data directory (`api.addr`
//! and `api.token`, written by the node at start).

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, bail};

use super::api::{
    ErrorResponse, JobView, LogsResponse, StatusSnapshot, SubmitRequest, SubmitResponse,
};

/// File in a node's data directory holding the API's `host:port`.
pub(crate) const ADDR_FILE: &str = "api.addr";
/// File in a node's data directory holding the API's bearer token.
pub(crate) const TOKEN_FILE: &str = "api.token";

/// A connection to one node's control API.
#[derive(Debug, Clone)]
pub(crate) struct ApiClient {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl ApiClient {
    /// A client for the API at `addr` (`host:port`) with `token`.
    pub(crate) fn new(addr: &str, token: &str) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .no_proxy()
            .build()
            .context("building the HTTP client")?;
        Ok(Self {
            base: format!("http://{addr}"),
            token: token.trim().to_owned(),
            http,
        })
    }

    /// A client for the node whose data directory is `dir`.
    pub(crate) fn from_data_dir(dir: &Path) -> anyhow::Result<Self> {
        let addr_path = dir.join(ADDR_FILE);
        let addr = std::fs::read_to_string(&addr_path).with_context(|| {
            format!(
                "reading {} (is a node running with this data directory?)",
                addr_path.display()
            )
        })?;
        let token_path = dir.join(TOKEN_FILE);
        let token = std::fs::read_to_string(&token_path)
            .with_context(|| format!("reading {}", token_path.display()))?;
        Self::new(addr.trim(), &token)
    }

    /// The API's base URL.
    pub(crate) fn base(&self) -> &str {
        &self.base
    }

    async fn check(response: reqwest::Response) -> anyhow::Result<reqwest::Response> {
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let text = response.text().await.unwrap_or_default();
        let message = serde_json::from_str::<ErrorResponse>(&text).map_or(text, |e| e.error);
        bail!("the node answered {status}: {message}")
    }

    async fn get<T: serde::de::DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .send()
            .await
            .with_context(|| format!("GET {}{path}", self.base))?;
        let response = Self::check(response).await?;
        response
            .json()
            .await
            .with_context(|| format!("decoding the answer to GET {path}"))
    }

    /// `GET /v1/status`.
    pub(crate) async fn status(&self) -> anyhow::Result<StatusSnapshot> {
        self.get("/v1/status").await
    }

    /// `GET /v1/jobs`.
    pub(crate) async fn jobs(&self) -> anyhow::Result<Vec<JobView>> {
        self.get("/v1/jobs").await
    }

    /// `GET /v1/jobs/{id}`.
    pub(crate) async fn job(&self, id: &str) -> anyhow::Result<JobView> {
        self.get(&format!("/v1/jobs/{id}")).await
    }

    /// `GET /v1/jobs/{id}/logs`.
    pub(crate) async fn logs(&self, id: &str) -> anyhow::Result<LogsResponse> {
        self.get(&format!("/v1/jobs/{id}/logs")).await
    }

    /// `POST /v1/jobs`.
    pub(crate) async fn submit(&self, request: &SubmitRequest) -> anyhow::Result<SubmitResponse> {
        let response = self
            .http
            .post(format!("{}/v1/jobs", self.base))
            .bearer_auth(&self.token)
            .json(request)
            .send()
            .await
            .with_context(|| format!("POST {}/v1/jobs", self.base))?;
        Self::check(response)
            .await?
            .json()
            .await
            .context("decoding the answer to POST /v1/jobs")
    }

    /// `DELETE /v1/jobs/{id}`.
    pub(crate) async fn cancel(&self, id: &str) -> anyhow::Result<()> {
        let response = self
            .http
            .delete(format!("{}/v1/jobs/{id}", self.base))
            .bearer_auth(&self.token)
            .send()
            .await
            .with_context(|| format!("DELETE {}/v1/jobs/{id}", self.base))?;
        Self::check(response).await?;
        Ok(())
    }

    /// `POST /v1/shutdown`: asks the node to stop gracefully.
    pub(crate) async fn shutdown(&self) -> anyhow::Result<()> {
        let response = self
            .http
            .post(format!("{}/v1/shutdown", self.base))
            .bearer_auth(&self.token)
            .send()
            .await
            .with_context(|| format!("POST {}/v1/shutdown", self.base))?;
        Self::check(response).await?;
        Ok(())
    }
}
