//! A function that logs the event's fields and answers with its data.
//!
//! Run with `FUNC_PORT=8080 cargo run -p hoist-runtimes --example function-post`, then
//! `curl -H 'content-type: application/json' -d '{"it-s":"alive"}' localhost:8080/`.

use std::convert::Infallible;

use hoist_runtimes::contract::axum::Json;
use hoist_runtimes::contract::axum::response::IntoResponse;
use hoist_runtimes::contract::{Context, Event, serve_from_env};

async fn handler(event: Event, _context: Context) -> Result<impl IntoResponse, Infallible> {
    let fields = event.to_json();
    println!("{fields}");
    Ok(Json(fields["data"].clone()))
}

#[tokio::main]
async fn main() {
    if let Err(e) = serve_from_env(handler).await {
        eprintln!("function-post: {e}");
        std::process::exit(1);
    }
}
