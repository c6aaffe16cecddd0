//! How the proxy reaches the function's process: TCP on loopback, or the Unix socket the proxy
//! names in `HOIST_UPSTREAM_SOCKET` when the process listens there too (the shims do). A Unix
//! socket spares each call the loopback TCP stack (and its packet filter), which on a busy
//! function costs as much as the proxy's own work.

use std::future::Future;
use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use hyper::Uri;
use hyper::rt::{Read, ReadBufCursor, Write};
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpStream, UnixStream};

/// The host of the URIs that go to the Unix socket (`.invalid` is never a real name).
pub(crate) const UNIX_HOST: &str = "hoist-upstream.invalid";

/// The environment variable naming the Unix socket the process may listen on.
pub const SOCKET_VARIABLE: &str = "HOIST_UPSTREAM_SOCKET";

/// Connects to the Unix socket for [`UNIX_HOST`], over TCP otherwise.
#[derive(Clone)]
pub(crate) struct Connector {
    tcp: HttpConnector,
    socket: Arc<PathBuf>,
}

impl Connector {
    pub(crate) fn new(socket: PathBuf) -> Self {
        let mut tcp = HttpConnector::new();
        // Headers and a streamed body may go in separate writes: no Nagle delay between them.
        tcp.set_nodelay(true);
        Connector {
            tcp,
            socket: Arc::new(socket),
        }
    }
}

/// A connection to the process.
pub(crate) enum Stream {
    Tcp(TokioIo<TcpStream>),
    Unix(TokioIo<UnixStream>),
}

impl Read for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Unix(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl Write for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Unix(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_flush(cx),
            Stream::Unix(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Unix(s) => Pin::new(s).poll_shutdown(cx),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Stream::Tcp(s) => s.is_write_vectored(),
            Stream::Unix(s) => s.is_write_vectored(),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Stream::Unix(s) => Pin::new(s).poll_write_vectored(cx, bufs),
        }
    }
}

impl Connection for Stream {
    fn connected(&self) -> Connected {
        match self {
            Stream::Tcp(s) => s.connected(),
            Stream::Unix(s) => s.connected(),
        }
    }
}

type Connecting = Pin<Box<dyn Future<Output = Result<Stream, io::Error>> + Send>>;

impl tower::Service<Uri> for Connector {
    type Response = Stream;
    type Error = io::Error;
    type Future = Connecting;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.tcp.poll_ready(cx).map_err(io::Error::other)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        if uri.host() == Some(UNIX_HOST) {
            let socket = self.socket.clone();
            Box::pin(async move {
                Ok(Stream::Unix(TokioIo::new(
                    UnixStream::connect(&*socket).await?,
                )))
            })
        } else {
            let connecting = self.tcp.call(uri);
            Box::pin(async move { Ok(Stream::Tcp(connecting.await.map_err(io::Error::other)?)) })
        }
    }
}
