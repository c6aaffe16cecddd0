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

/// Where a probe of `port` on `target` connects, and how that place reads in reasons
/// (`127.0.0.1:8080`, or `127.0.0.1:8080 in network namespace /var/run/netns/web`).
pub(super) fn place(target: &ProbeTarget, port: u16) -> (SocketAddr, String) {
    match &target.netns {
        None => {
            let addr = SocketAddr::new(target.address, port);
            (addr, addr.to_string())
        }
        Some(netns) => {
            let loopback: IpAddr = match target.address {
                IpAddr::V4(_) => Ipv4Addr::LOCALHOST.into(),
                IpAddr::V6(_) => Ipv6Addr::LOCALHOST.into(),
            };
            let addr = SocketAddr::new(loopback, port);
            (
                addr,
                format!("{addr} in network namespace {}", netns.display()),
            )
        }
    }
}

/// Connects to `port` on `target` before `deadline`. With a network namespace, the socket is
/// made inside it (see [`socket_in`]) and connects to the namespace's loopback.
pub(super) async fn dial(
    target: &ProbeTarget,
    port: u16,
    deadline: &Deadline,
) -> Result<Dialed, String> {
    let (addr, place) = place(target, port);
    let step = || format!("connecting to {place}");
    let stream = match &target.netns {
        None => {
            deadline
                .run(step, async {
                    TcpStream::connect(addr)
                        .await
                        .map_err(|e| format!("connecting to {place} failed: {e}"))
                })
                .await?
        }
        Some(netns) => {
            deadline
                .run(step, async {
                    let socket = socket_in(netns, addr)
                        .await
                        .map_err(|e| format!("cannot open a socket for {place}: {e}"))?;
                    socket
                        .connect(addr)
                        .await
                        .map_err(|e| format!("connecting to {place} failed: {e}"))
                })
                .await?
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
