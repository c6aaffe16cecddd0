//! A function that never returns: the contract server answers 408 after `FUNC_TIMEOUT`
//! seconds and cancels the call.
//!
//! Run with `FUNC_PORT=8080 FUNC_TIMEOUT=3 cargo run -p hoist-runtimes --example function-endless`.

use hoist_runtimes::contract::{Context, Event, serve_from_env};

async fn forever(_event: Event, _context: Context) -> Result<String, String> {
    std::future::pending().await
}

#[tokio::main]
async fn main() {
    if let Err(e) = serve_from_env(forever).await {
        eprintln!("function-endless: {e}");
        std::process::exit(1);
    }
}
