//! Network namespaces and commands for the tests that run the real `ip` and `iptables`.
//!
//! These tests need root, `iproute2` and `iptables` (CI has them). They never touch the host's
//! own tables: every rule goes into a namespace the test creates and deletes.

#![allow(dead_code)]

use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A name unique to this process and call: `<prefix><pid>x<n>`, at most 15 characters.
pub fn unique(prefix: &str) -> String {
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let name = format!("{prefix}{}x{n}", std::process::id() % 100_000);
    assert!(name.len() <= 15, "{name} is too long for an interface name");
    name
}

/// Runs `argv`, returning its output; panics if it cannot be started.
pub fn run(argv: &[&str]) -> Output {
    Command::new(argv[0])
        .args(&argv[1..])
        .output()
        .unwrap_or_else(|e| {
            panic!("could not run {argv:?} (these tests need iproute2 and iptables): {e}")
        })
}

/// Runs `argv` and panics with its stderr unless it succeeds; returns its stdout.
pub fn ok(argv: &[&str]) -> String {
    let out = run(argv);
    assert!(
        out.status.success(),
        "{argv:?} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A network namespace, deleted (with everything in it) on drop.
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new(prefix: &str) -> Netns {
        let name = unique(prefix);
        ok(&["ip", "netns", "add", &name]);
        ok(&[
            "ip", "netns", "exec", &name, "ip", "link", "set", "lo", "up",
        ]);
        Netns { name }
    }

    /// Runs `argv` inside the namespace.
    pub fn exec(&self, argv: &[&str]) -> Output {
        let mut full = vec!["ip", "netns", "exec", &self.name];
        full.extend_from_slice(argv);
        run(&full)
    }

    /// Runs `argv` inside the namespace and panics unless it succeeds; returns its stdout.
    pub fn ok(&self, argv: &[&str]) -> String {
        let mut full = vec!["ip", "netns", "exec", &self.name];
        full.extend_from_slice(argv);
        ok(&full)
    }

    /// The rules of `chain` in `table`, as `iptables -S` (or `ip6tables -S`) prints them.
    pub fn rules(&self, program: &str, table: &str, chain: &str) -> Vec<String> {
        self.ok(&[program, "-w", "-t", table, "-S", chain])
            .lines()
            .filter(|l| l.starts_with("-A "))
            .map(str::to_owned)
            .collect()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = run(&["ip", "netns", "del", &self.name]);
    }
}

/// A veth pair between two namespaces with an address on each end (`a_addr`, `b_addr` in CIDR
/// form). Deleting either namespace deletes the pair.
pub fn veth(a: &Netns, a_addr: &str, b: &Netns, b_addr: &str) {
    let a_if = unique("va");
    let b_if = unique("vb");
    ok(&[
        "ip", "link", "add", &a_if, "netns", &a.name, "type", "veth", "peer", "name", &b_if,
        "netns", &b.name,
    ]);
    a.ok(&["ip", "addr", "add", a_addr, "dev", &a_if]);
    a.ok(&["ip", "link", "set", &a_if, "up"]);
    b.ok(&["ip", "addr", "add", b_addr, "dev", &b_if]);
    b.ok(&["ip", "link", "set", &b_if, "up"]);
}

impl Netns {
    /// Sends `GET <path>` to `ip:port` from inside the namespace (busybox `nc`, 2 s deadline)
    /// and returns the whole answer, or `None` if no connection could be made.
    pub fn http_get(&self, ip: &str, port: u16, path: &str) -> Option<String> {
        use std::io::Write;
        let mut child = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.name,
                "busybox",
                "nc",
                "-w",
                "2",
                ip,
                &port.to_string(),
            ])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("busybox nc");
        let request = format!("GET {path} HTTP/1.0\r\nHost: {ip}\r\n\r\n");
        let _ = child
            .stdin
            .take()
            .expect("stdin")
            .write_all(request.as_bytes());
        let out = child.wait_with_output().expect("busybox nc");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        (out.status.success() && text.starts_with("HTTP/")).then_some(text)
    }
}

/// A background process, killed and reaped on drop.
pub struct Background(std::process::Child);

impl Background {
    pub fn spawn(argv: &[&str]) -> Background {
        let child = Command::new(argv[0])
            .args(&argv[1..])
            .spawn()
            .unwrap_or_else(|e| panic!("could not start {argv:?}: {e}"));
        Background(child)
    }

    pub fn id(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The next status of `state` (or the first terminal one), within 60 s.
pub async fn until_state(
    statuses: &mut hoist_core::executor::StatusStream,
    state: hoist_core::TaskState,
) -> hoist_core::TaskStatus {
    tokio::time::timeout(std::time::Duration::from_secs(60), async {
        loop {
            let status = statuses.recv().await.expect("the status stream ended");
            if status.state == state || status.state.is_terminal() {
                return status;
            }
        }
    })
    .await
    .expect("no status in time")
}
