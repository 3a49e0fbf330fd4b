//! The control API (HTTP+JSON, axum) and `/metrics` (OpenMetrics). It
//! binds to loopback unless configured otherwise; every `/v1` route needs
//! `Authorization: Bearer <token>` with the token from `<data>/api.token`.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use axum::Json;
use axum::Router;
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use super::api::{ErrorResponse, LogsResponse, SubmitRequest, SubmitResponse};
use super::client::{ADDR_FILE, TOKEN_FILE};
use super::runtime::Runtime;
use super::store::write_atomic;

/// Largest request body (a job with its module, base64).
const MAX_BODY: usize = 6 << 20;

#[derive(Clone)]
struct App {
    runtime: Arc<Runtime>,
    token: Arc<str>,
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (
        status,
        Json(ErrorResponse {
            error: message.into(),
        }),
    )
        .into_response()
}

/// Creates the token file if missing and returns the token.
pub(crate) fn load_or_create_token(dir: &std::path::Path) -> anyhow::Result<String> {
    let path = dir.join(TOKEN_FILE);
    match std::fs::read_to_string(&path) {
        Ok(t) if !t.trim().is_empty() => Ok(t.trim().to_owned()),
        _ => {
            let token = hex::encode(rand::random::<[u8; 24]>());
            write_atomic(&path, token.as_bytes())?;
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
            }
            Ok(token)
        }
    }
}

/// Binds the API, writes `<data>/api.addr` and serves until shutdown.
pub(crate) async fn serve(runtime: Arc<Runtime>) -> anyhow::Result<()> {
    let dir = runtime.config().data_dir.clone();
    let token = load_or_create_token(&dir)?;
    let listener = tokio::net::TcpListener::bind(runtime.config().api)
        .await
        .with_context(|| format!("binding the control API on {}", runtime.config().api))?;
    let addr: SocketAddr = listener.local_addr()?;
    write_atomic(&dir.join(ADDR_FILE), addr.to_string().as_bytes())?;
    tracing::info!(%addr, "control API listening");
    let app = App {
        runtime: Arc::clone(&runtime),
        token: token.into(),
    };
    let v1 = Router::new()
        .route("/status", get(status))
        .route("/jobs", get(jobs).post(submit))
        .route("/jobs/{id}", get(job).delete(cancel))
        .route("/jobs/{id}/logs", get(logs))
        .route("/shutdown", post(shutdown))
        .route_layer(middleware::from_fn_with_state(app.clone(), auth));
    let router = Router::new()
        .nest("/v1", v1)
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok" }))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(app);
    let mut stop = runtime.shutdown_signal();
    axum::serve(listener, router)
        .with_graceful_shutdown(async move {
            let _ = stop.wait_for(|s| *s).await;
        })
        .await
        .context("serving the control API")
}

async fn auth(
    State(app): State<App>,
    headers: HeaderMap,
    request: Request,
    next: Next,
) -> Response {
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if !constant_time_eq(given.as_bytes(), app.token.as_bytes()) {
        return error(
            StatusCode::UNAUTHORIZED,
            "missing or wrong bearer token (see api.token in the node's data directory)",
        );
    }
    next.run(request).await
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn status(State(app): State<App>) -> Response {
    Json(app.runtime.status().await).into_response()
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    limit: Option<usize>,
}

async fn jobs(State(app): State<App>, Query(q): Query<ListQuery>) -> Response {
    Json(app.runtime.jobs(q.limit.unwrap_or(1000).min(10_000))).into_response()
}

async fn job(State(app): State<App>, Path(id): Path<String>) -> Response {
    match app.runtime.job(&id) {
        Some(view) => Json(view).into_response(),
        None => error(StatusCode::NOT_FOUND, format!("no job {id}")),
    }
}

async fn logs(State(app): State<App>, Path(id): Path<String>) -> Response {
    match app.runtime.logs(&id) {
        None => error(StatusCode::NOT_FOUND, format!("no job {id}")),
        Some(Err(why)) => error(StatusCode::CONFLICT, why),
        Some(Ok(r)) => Json(LogsResponse {
            id,
            stdout: String::from_utf8_lossy(&r.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&r.stderr).into_owned(),
            exit_code: r.exit_code,
            fuel: r.fuel,
        })
        .into_response(),
    }
}

async fn submit(State(app): State<App>, body: axum::body::Bytes) -> Response {
    let request: SubmitRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("invalid job document: {e}"),
            );
        }
    };
    match app.runtime.submit(request) {
        Ok(id) => (StatusCode::CREATED, Json(SubmitResponse { id })).into_response(),
        Err(e) => error(StatusCode::BAD_REQUEST, format!("{e:#}")),
    }
}

async fn cancel(State(app): State<App>, Path(id): Path<String>) -> Response {
    match app.runtime.cancel(&id).await {
        Ok(true) => StatusCode::NO_CONTENT.into_response(),
        Ok(false) => error(StatusCode::NOT_FOUND, format!("no job {id}")),
        Err(e) => error(StatusCode::CONFLICT, format!("{e:#}")),
    }
}

async fn shutdown(State(app): State<App>) -> Response {
    app.runtime.request_shutdown();
    StatusCode::ACCEPTED.into_response()
}

async fn metrics(State(app): State<App>) -> Response {
    // Refreshes the gauges read on demand.
    let _ = app.runtime.status().await;
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        app.runtime.metrics.render(),
    )
        .into_response()
}
