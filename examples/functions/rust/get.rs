//! A function that answers every call with "hello world", served by the runtime contract.
//!
//! Run with `FUNC_PORT=8080 cargo run -p hoist-runtimes --example function-get`, then
//! `curl localhost:8080/`.

use std::convert::Infallible;

use hoist_runtimes::contract::{Context, Event, serve_from_env};

async fn foo(_event: Event, _context: Context) -> Result<&'static str, Infallible> {
    Ok("hello world")
}

#[tokio::main]
async fn main() {
    if let Err(e) = serve_from_env(foo).await {
        eprintln!("function-get: {e}");
        std::process::exit(1);
    }
}
