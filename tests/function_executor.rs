//! The `function-executor` example, for real: built, started as its own process on a free
//! loopback port, invoked through plain HTTP and the Lambda Invoke API, then stopped with
//! SIGINT, which must stop every environment and end the process cleanly.

#![cfg(all(feature = "functions", feature = "process"))]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

const WAIT: Duration = Duration::from_secs(60);

/// Builds the example (a no-op when the test run already built it) and returns its path.
fn build_example() -> PathBuf {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"));
    let args = [
        "-p",
        "hoist",
        "--example",
        "function-executor",
        "--all-features",
    ];
    hoist_core::testing::cargo_build(workspace, &args, "examples/function-executor").unwrap()
}

/// The example process; killed if the test fails before it stops it.
struct Example(Child);

impl Drop for Example {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// One HTTP/1.1 request on a fresh connection; the status and the whole answer, head and body.
async fn request(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\ncontent-length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(body.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(WAIT, stream.read_to_end(&mut answer))
        .await
        .expect("the example answers in time")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {answer:?}"));
    (status, answer)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_serves_both_invoke_apis_and_stops_cleanly() {
    let binary = build_example();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(&binary)
        .env("HOIST_LISTEN", format!("127.0.0.1:{port}"))
        .env_remove("HOIST_LAMBDA_PYTHON")
        .env_remove("LAMBDA_RUNTIME_EXECUTOR")
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .spawn()
        .expect("the example starts");
    let mut example = Example(child);

    let deadline = tokio::time::Instant::now() + WAIT;
    while TcpStream::connect(("127.0.0.1", port)).await.is_err() {
        assert!(
            example.0.try_wait().unwrap().is_none(),
            "the example exited before it listened"
        );
        assert!(
            tokio::time::Instant::now() < deadline,
            "the example did not listen on {port} within {WAIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let (status, body) = request(
        port,
        "POST",
        "/functions/echo",
        &[
            ("content-type", "application/json"),
            ("event-id", "e-1"),
            ("event-type", "test"),
        ],
        r#"{"it-s":"alive"}"#,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains(r#""it-s""#) && body.contains("alive"),
        "{body}"
    );

    let (status, body) = request(
        port,
        "POST",
        "/2015-03-31/functions/hello/invocations",
        &[("content-type", "application/json")],
        "{}",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("hello world"), "{body}");

    let (status, body) = request(
        port,
        "POST",
        "/2015-03-31/functions/nobody/invocations",
        &[],
        "{}",
    )
    .await;
    assert_eq!(status, 404, "{body}");
    assert!(
        body.to_ascii_lowercase()
            .contains("x-amzn-errortype: resourcenotfoundexception"),
        "{body}"
    );

    let environments = descendants(example.0.id());
    assert!(
        environments.len() >= 2,
        "each invoked function keeps a warm environment: {environments:?}"
    );

    let pid = example.0.id() as libc::pid_t;
    // SAFETY: kill(2) on the child this test started and has not yet reaped.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0);
    let deadline = std::time::Instant::now() + WAIT;
    let exit = loop {
        if let Some(exit) = example.0.try_wait().unwrap() {
            break exit;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the example did not stop within {WAIT:?} of SIGINT"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(exit.success(), "the example ended with {exit}");
    let left: Vec<u32> = environments.into_iter().filter(|&pid| alive(pid)).collect();
    assert!(left.is_empty(), "environments left running: {left:?}");
}

/// The parent and state of process `pid`, from `/proc/<pid>/stat`.
fn stat(pid: u32) -> Option<(u32, char)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may hold spaces: the fields follow the last `)`.
    let mut fields = text.rsplit_once(')')?.1.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let parent = fields.next()?.parse().ok()?;
    Some((parent, state))
}

/// Whether `pid` runs (a zombie has ended).
fn alive(pid: u32) -> bool {
    matches!(stat(pid), Some((_, state)) if state != 'Z')
}

/// Every live process below `root`.
fn descendants(root: u32) -> Vec<u32> {
    let parents: Vec<(u32, u32)> = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| Some((pid, stat(pid)?.0)))
        .collect();
    let mut found = vec![root];
    let mut next = 0;
    while next < found.len() {
        let parent = found[next];
        found.extend(
            parents
                .iter()
                .filter(|&&(_, p)| p == parent)
                .map(|&(pid, _)| pid),
        );
        next += 1;
    }
    found.remove(0);
    found.retain(|&pid| alive(pid));
    found
}
