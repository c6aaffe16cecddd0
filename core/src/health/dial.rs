//! Reaching a container's own port: directly, or from inside its network namespace.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
#[cfg(target_os = "linux")]
use std::path::Path;

use tokio::net::TcpStream;

use super::ProbeTarget;
use super::deadline::Deadline;

/// A connection to the container's port.
#[derive(Debug)]
pub(super) struct Dialed {
    /// The connected stream.
    pub(super) stream: TcpStream,
    /// The address connected to (inside the namespace when there is one).
    pub(super) addr: SocketAddr,
}

/// Where a probe of `port` on `target` connects: the target's address, or with a network
/// namespace the loopback of the same family inside it.
pub(super) fn addr(target: &ProbeTarget, port: u16) -> SocketAddr {
    let ip = match (&target.netns, target.address) {
        (None, ip) => ip,
        (Some(_), IpAddr::V4(_)) => Ipv4Addr::LOCALHOST.into(),
        (Some(_), IpAddr::V6(_)) => Ipv6Addr::LOCALHOST.into(),
    };
    SocketAddr::new(ip, port)
}

/// How the place a probe connects to reads in reasons (`127.0.0.1:8080`, or
/// `127.0.0.1:8080 in network namespace /var/run/netns/web`).
pub(super) fn place(target: &ProbeTarget, addr: SocketAddr) -> String {
    match &target.netns {
        None => addr.to_string(),
        Some(netns) => format!("{addr} in network namespace {}", netns.display()),
    }
}

/// Connects to `port` on `target` before `deadline`. With a network namespace, the socket is
/// made inside it (see [`socket_in`]) and connects to the namespace's loopback.
pub(super) async fn dial(
    target: &ProbeTarget,
    port: u16,
    deadline: &Deadline,
) -> Result<Dialed, String> {
    let addr = addr(target, port);
    let step = || format!("connecting to {}", place(target, addr));
    let failed = |e| format!("connecting to {} failed: {e}", place(target, addr));
    let stream = match &target.netns {
        None => {
            let connect = async { TcpStream::connect(addr).await.map_err(failed) };
            deadline.run(step, connect).await?
        }
        Some(netns) => {
            let connect = async {
                let socket = socket_in(netns, addr).await.map_err(|e| {
                    format!("cannot open a socket for {}: {e}", place(target, addr))
                })?;
                socket.connect(addr).await.map_err(failed)
            };
            deadline.run(step, connect).await?
        }
    };
    Ok(Dialed { stream, addr })
}

/// A fresh TCP socket that belongs to the network namespace at `netns`.
///
/// A socket stays in the namespace it was made in, whatever thread uses it later. So a dedicated
/// OS thread enters the namespace (`setns`), makes the socket and ends; the connect, the TLS
/// handshake and the request then run on the runtime like any other I/O, under the probe's
/// deadline. Tokio's worker threads never change namespace.
#[cfg(target_os = "linux")]
async fn socket_in(netns: &Path, addr: SocketAddr) -> std::io::Result<tokio::net::TcpSocket> {
    let netns = netns.to_owned();
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("hoist-netns-probe".into())
        .spawn(move || {
            // The receiver is gone only when the probe was dropped; the socket then closes here.
            let _ = tx.send(socket_in_namespace(&netns, addr));
        })?;
    let socket = rx.await.map_err(|_| {
        std::io::Error::other("the thread that enters the namespace ended without a socket")
    })??;
    Ok(tokio::net::TcpSocket::from_std_stream(socket))
}

/// Runs on the dedicated thread: enters the namespace, then makes a non-blocking socket there.
#[cfg(target_os = "linux")]
fn socket_in_namespace(netns: &Path, addr: SocketAddr) -> std::io::Result<std::net::TcpStream> {
    use nix::sched::{CloneFlags, setns};
    use socket2::{Domain, Protocol, Socket, Type};

    let file = std::fs::File::open(netns).map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!("opening network namespace {}: {e}", netns.display()),
        )
    })?;
    setns(&file, CloneFlags::CLONE_NEWNET).map_err(|e| {
        std::io::Error::other(format!(
            "entering network namespace {} (setns): {e}",
            netns.display()
        ))
    })?;
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

#[cfg(not(target_os = "linux"))]
async fn socket_in(
    netns: &std::path::Path,
    _: SocketAddr,
) -> std::io::Result<tokio::net::TcpSocket> {
    Err(std::io::Error::new(
        std::io::ErrorKind::Unsupported,
        format!("entering network namespace {} needs Linux", netns.display()),
    ))
}

/// Probes through network namespaces the tests create (`ip netns add`); they need root.
#[cfg(all(test, feature = "testing", target_os = "linux"))]
mod netns_tests {
    use std::net::Ipv4Addr;
    use std::path::PathBuf;
    use std::process::Command;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::time::Duration;

    use nix::sched::{CloneFlags, setns};
    use tokio::net::TcpListener;

    use crate::health::http::socket_tests::{Answer, serve_on};
    use crate::health::{
        HealthChecker, HttpChecker, HttpProbe, ProbeOutcome, Scheme, TcpChecker, test_target,
    };

    /// A fresh network namespace with `lo` up, deleted on drop.
    struct Namespace {
        name: String,
        path: PathBuf,
    }

    fn ip(args: &[&str]) {
        let out = Command::new("ip")
            .args(args)
            .output()
            .expect("running `ip` (iproute2 is needed)");
        assert!(
            out.status.success(),
            "ip {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    impl Namespace {
        fn new() -> Self {
            static NEXT: AtomicU32 = AtomicU32::new(0);
            let name = format!(
                "hoist-probe-{}-{}",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::Relaxed)
            );
            ip(&["netns", "add", &name]);
            let ns = Namespace {
                path: PathBuf::from(format!("/var/run/netns/{name}")),
                name,
            };
            ip(&["-n", &ns.name, "link", "set", "lo", "up"]);
            ns
        }

        /// A listener on 127.0.0.1:`port` inside the namespace: a thread enters it and binds,
        /// and the socket stays in the namespace.
        fn listen(&self, port: u16) -> TcpListener {
            let path = self.path.clone();
            let listener = std::thread::spawn(move || {
                setns(
                    std::fs::File::open(&path).unwrap(),
                    CloneFlags::CLONE_NEWNET,
                )
                .unwrap();
                let listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, port)).unwrap();
                listener.set_nonblocking(true).unwrap();
                listener
            })
            .join()
            .unwrap();
            TcpListener::from_std(listener).unwrap()
        }
    }

    impl Drop for Namespace {
        fn drop(&mut self) {
            let _ = Command::new("ip")
                .args(["netns", "del", &self.name])
                .status();
        }
    }

    fn this_threads_netns() -> PathBuf {
        std::fs::read_link("/proc/thread-self/ns/net").unwrap()
    }

    const TIMEOUT: Duration = Duration::from_secs(5);

    #[tokio::test]
    async fn http_probes_reach_the_namespace_loopback_not_the_hosts() {
        let ns = Namespace::new();
        // The same port on both sides, answering differently.
        let host = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
        let port = host.local_addr().unwrap().port();
        let _host_heads = serve_on(
            host,
            Answer::Bytes("HTTP/1.1 503 Service Unavailable\r\n\r\n"),
        );
        let mut inside_heads = serve_on(ns.listen(port), Answer::Bytes("HTTP/1.1 200 OK\r\n\r\n"));

        let checker = HttpChecker::new(HttpProbe {
            scheme: Scheme::Http,
            port,
            path: "/".into(),
            statuses: vec![],
        });
        let before = this_threads_netns();
        let inside = test_target(Ipv4Addr::LOCALHOST.into(), Some(ns.path.clone()));
        assert_eq!(checker.check(&inside, TIMEOUT).await, ProbeOutcome::Healthy);
        assert!(
            inside_heads
                .recv()
                .await
                .unwrap()
                .contains(&format!("Host: 127.0.0.1:{port}"))
        );
        assert_eq!(
            this_threads_netns(),
            before,
            "the runtime's thread changed namespace"
        );

        let outside = test_target(Ipv4Addr::LOCALHOST.into(), None);
        assert_eq!(
            checker.check(&outside, TIMEOUT).await,
            ProbeOutcome::Unhealthy("GET / answered HTTP 503, expected 200-399".into())
        );
    }

    #[tokio::test]
    async fn tcp_probes_reach_a_port_open_only_inside_the_namespace() {
        let ns = Namespace::new();
        let inside = ns.listen(0);
        let port = inside.local_addr().unwrap().port();
        // Make sure the host has nothing on that port.
        drop(
            std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, port))
                .expect("the port is taken on the host"),
        );

        let checker = TcpChecker::new(port);
        let target = test_target(Ipv4Addr::LOCALHOST.into(), Some(ns.path.clone()));
        assert_eq!(checker.check(&target, TIMEOUT).await, ProbeOutcome::Healthy);
        let (_, peer) = inside.accept().await.unwrap();
        assert!(peer.ip().is_loopback());

        let ProbeOutcome::Unhealthy(reason) = checker
            .check(&test_target(Ipv4Addr::LOCALHOST.into(), None), TIMEOUT)
            .await
        else {
            panic!("the port answered on the host");
        };
        assert!(reason.contains("refused"), "{reason}");

        drop(inside);
        let ProbeOutcome::Unhealthy(reason) = checker.check(&target, TIMEOUT).await else {
            panic!("a closed port inside the namespace was healthy");
        };
        let place = format!(
            "127.0.0.1:{port} in network namespace {}",
            ns.path.display()
        );
        assert!(
            reason.starts_with(&format!("connecting to {place} failed: ")),
            "{reason}"
        );
    }

    #[tokio::test]
    async fn a_missing_namespace_is_a_clear_reason() {
        let path = PathBuf::from("/var/run/netns/hoist-no-such-namespace");
        let target = test_target(Ipv4Addr::LOCALHOST.into(), Some(path));
        let ProbeOutcome::Unhealthy(reason) = TcpChecker::new(80).check(&target, TIMEOUT).await
        else {
            panic!("a probe into a missing namespace was healthy");
        };
        assert!(
            reason.contains("opening network namespace /var/run/netns/hoist-no-such-namespace"),
            "{reason}"
        );
    }
}
