//! A Rust function on the `lambda_runtime` crate: it echoes its event back, fails when the
//! event says `{"fail": true}`, sleeps `{"sleep_ms": n}` first when asked, and writes
//! `{"log": "text"}` to stdout and stderr. The tests run it
//! inside environments, against hoist's Lambda Runtime API.

use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::{Value, json};

async fn handle(event: LambdaEvent<Value>) -> Result<Value, Error> {
    let (payload, context) = event.into_parts();
    if let Some(text) = payload.get("log").and_then(Value::as_str) {
        println!("out: {text}");
        eprintln!("err: {text}");
    }
    if let Some(ms) = payload.get("sleep_ms").and_then(Value::as_u64) {
        tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
    }
    if payload.get("fail").and_then(Value::as_bool) == Some(true) {
        return Err("asked to fail".into());
    }
    Ok(json!({ "echo": payload, "request_id": context.request_id, "pid": std::process::id() }))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    lambda_runtime::run(service_fn(handle)).await
}
