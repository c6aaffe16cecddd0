//! Interactive exec (`stdin=true`): the fake runs the command as a process on this host, so a
//! shell session is real, and bridges it to the remote-command websocket: channel 0 is its
//! input (`255, 0` closes it, protocol v5), 1 and 2 its output (one stream on a terminal), 3
//! the final `Status`, 4 terminal resizes (`{"Width":..,"Height":..}`, recorded). Closing the
//! websocket kills the process.

use axum::body::Bytes;
use axum::extract::ws::{Message, WebSocket};
use serde_json::json;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::process::Command;

use crate::testing::store::Store;

const STDIN: u8 = 0;
const STDOUT: u8 = 1;
const STDERR: u8 = 2;
const ERROR: u8 = 3;
const RESIZE: u8 = 4;
const CLOSE: u8 = 255;

fn frame(channel: u8, data: &[u8]) -> Message {
    let mut bytes = Vec::with_capacity(data.len() + 1);
    bytes.push(channel);
    bytes.extend_from_slice(data);
    Message::Binary(Bytes::from(bytes))
}

/// The final status frame, as the API server words it.
fn status(argv: &[String], code: Option<i32>) -> serde_json::Value {
    match code {
        Some(0) => json!({ "metadata": {}, "status": "Success" }),
        Some(code) => json!({
            "metadata": {},
            "status": "Failure",
            "message": format!(
                "command terminated with non-zero exit code: error executing command {argv:?}, exit code {code}"
            ),
            "reason": "NonZeroExitCode",
            "details": { "causes": [{ "reason": "ExitCode", "message": code.to_string() }] },
        }),
        None => json!({
            "metadata": {},
            "status": "Failure",
            "message": format!("error executing command {argv:?}: the process was killed"),
        }),
    }
}

pub(super) async fn run(mut socket: WebSocket, argv: Vec<String>, tty: bool, store: Store) {
    let spawned = Command::new(&argv[0])
        .args(&argv[1..])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn();
    let mut child = match spawned {
        Ok(child) => child,
        Err(e) => {
            let message = json!({
                "metadata": {},
                "status": "Failure",
                "message": format!("exec: \"{}\": {e}", argv[0]),
                "reason": "InternalError",
            });
            let _ = socket
                .send(frame(ERROR, message.to_string().as_bytes()))
                .await;
            return;
        }
    };
    let mut stdin = child.stdin.take();
    let (Some(mut stdout), Some(mut stderr)) = (child.stdout.take(), child.stderr.take()) else {
        return;
    };
    // On a terminal the command's two outputs are one stream.
    let err_channel = if tty { STDOUT } else { STDERR };
    let (mut out_open, mut err_open) = (true, true);
    let (mut out_buf, mut err_buf) = (vec![0u8; 8192], vec![0u8; 8192]);
    while out_open || err_open {
        tokio::select! {
            message = socket.recv() => match message {
                Some(Ok(Message::Binary(data))) => match data.first() {
                    Some(&STDIN) => {
                        if let Some(input) = stdin.as_mut()
                            && input.write_all(&data[1..]).await.is_err()
                        {
                            stdin = None;
                        }
                    }
                    Some(&CLOSE) if data.get(1) == Some(&STDIN) => stdin = None,
                    Some(&RESIZE) => {
                        let size: serde_json::Value =
                            serde_json::from_slice(&data[1..]).unwrap_or_default();
                        let get = |k: &str| {
                            size.get(k).and_then(|v| v.as_u64()).and_then(|v| u16::try_from(v).ok())
                        };
                        if let (Some(width), Some(height)) = (get("Width"), get("Height")) {
                            store.lock().resizes.push((height, width));
                        }
                    }
                    _ => {}
                },
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(_)) => {}
            },
            read = stdout.read(&mut out_buf), if out_open => match read {
                Ok(0) | Err(_) => out_open = false,
                Ok(n) => {
                    if socket.send(frame(STDOUT, &out_buf[..n])).await.is_err() {
                        return;
                    }
                }
            },
            read = stderr.read(&mut err_buf), if err_open => match read {
                Ok(0) | Err(_) => err_open = false,
                Ok(n) => {
                    if socket.send(frame(err_channel, &err_buf[..n])).await.is_err() {
                        return;
                    }
                }
            },
        }
    }
    drop(stdin);
    let code = child.wait().await.ok().and_then(|s| s.code());
    let _ = socket
        .send(frame(ERROR, status(&argv, code).to_string().as_bytes()))
        .await;
    let _ = socket.send(Message::Close(None)).await;
    // The closing handshake: read what the client still sends (its end of input, its close)
    // so the connection is not reset under the status it has yet to read.
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), async {
        while let Some(Ok(message)) = socket.recv().await {
            if matches!(message, Message::Close(_)) {
                break;
            }
        }
    })
    .await;
}
