//! The service under test: three routes behind tower-http's `TraceLayer`,
//! with `#[tracing::instrument]` handlers, `#[ferret::measure]` helpers, a
//! simulated database (`tokio::time::sleep`), CPU work, a background task
//! spawned inside a span, and occasional errors (HTTP 500).
//!
//! Spans per request when everything records: `request` (TraceLayer), the
//! handler, two or three measured helpers, and for one request in three a
//! background `notify_shipping` task: about 5.6 (3.3 of them `#[ferret::measure]`).
//! CPU work (`compute_digest`) is sized so that 32 clients keep both cores
//! of the reference machine busy: throughput is bound by CPU, not by the
//! simulated database.

use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use std::time::Duration;
use tower_http::trace::TraceLayer;
use tracing::Instrument;

/// The application, ready to serve.
pub fn router() -> Router {
    Router::new()
        .route("/users/{id}", get(get_user))
        .route("/orders", post(create_order))
        .route("/report", get(report))
        .layer(TraceLayer::new_for_http())
}

/// A handler error: logged as an `ERROR` event inside the handler's span
/// (by `#[instrument(err)]`) and answered with 500.
#[derive(Debug)]
pub struct AppError(String);

impl std::fmt::Display for AppError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        (StatusCode::INTERNAL_SERVER_ERROR, self.0).into_response()
    }
}

#[tracing::instrument(skip_all, fields(user_id = id), err)]
async fn get_user(Path(id): Path<u64>) -> Result<String, AppError> {
    let row = db::fetch_user(id).await;
    if id.is_multiple_of(101) {
        return Err(AppError(format!("user {id} is locked")));
    }
    let page = render_user(id, &row);
    std::hint::black_box(compute_digest(page.as_bytes(), 400));
    Ok(page)
}

#[tracing::instrument(skip_all, fields(bytes = body.len()), err)]
async fn create_order(body: String) -> Result<String, AppError> {
    let digest = compute_digest(body.as_bytes(), 3000);
    let order = db::insert_order(digest).await;
    // Fire and forget: the handler never waits for this task.
    tokio::spawn(notify_shipping(order).instrument(tracing::info_span!("notify_shipping")));
    if digest.is_multiple_of(53) {
        return Err(AppError(format!("order {order} rejected")));
    }
    Ok(format!("{{\"order\":{order}}}"))
}

#[tracing::instrument(skip_all)]
async fn report() -> String {
    let rows = db::fetch_rows(8).await;
    let digest = compute_digest(rows.as_bytes(), 800);
    format!("{{\"rows\":8,\"digest\":{digest}}}")
}

/// The background part of an order: a slower call, then a little work.
async fn notify_shipping(order: u64) {
    tokio::time::sleep(Duration::from_millis(2)).await;
    std::hint::black_box(compute_digest(&order.to_le_bytes(), 64));
}

/// CPU work: an FNV-1a hash of `data`, `rounds` times over.
#[ferret::measure]
fn compute_digest(data: &[u8], rounds: u32) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for r in 0..rounds {
        for &b in data {
            h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
        }
        h ^= u64::from(r);
    }
    h
}

#[ferret::measure]
fn render_user(id: u64, row: &str) -> String {
    let mut s = String::with_capacity(256);
    s.push_str("{\"id\":");
    s.push_str(&id.to_string());
    s.push_str(",\"row\":\"");
    for c in row.chars() {
        if c == '"' {
            s.push('\\');
        }
        s.push(c);
    }
    s.push_str("\"}");
    s
}

/// A simulated database: each call waits like a network round trip.
mod db {
    use std::time::Duration;

    const ROUND_TRIP: Duration = Duration::from_micros(300);

    #[ferret::measure]
    pub async fn fetch_user(id: u64) -> String {
        tokio::time::sleep(ROUND_TRIP).await;
        decode_row(id)
    }

    #[ferret::measure]
    pub async fn insert_order(digest: u64) -> u64 {
        tokio::time::sleep(ROUND_TRIP).await;
        digest >> 16
    }

    #[ferret::measure]
    pub async fn fetch_rows(n: u64) -> String {
        tokio::time::sleep(ROUND_TRIP).await;
        (0..n)
            .map(|i| format!("row-{i}|total={}", i * 17))
            .collect::<Vec<_>>()
            .join(";")
    }

    #[ferret::measure]
    fn decode_row(id: u64) -> String {
        format!(
            "user-{id}|name=\"User {id}\"|plan=pro|region=eu-west-{}",
            id % 4
        )
    }
}
