//! The HTTP(S) probe: a `GET` of the probe's path, healthy on an accepted status.

use std::net::SocketAddr;
use std::time::Duration;

use async_trait::async_trait;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::deadline::Deadline;
use super::dial::{dial, place};
use super::{HealthChecker, HttpProbe, ProbeOutcome, ProbeTarget, Scheme, shorten};

/// The longest status line read before the answer is judged not to be HTTP.
const MAX_STATUS_LINE: usize = 8 * 1024;

/// Why an `https` probe fails without the `https` feature.
#[cfg(not(feature = "https"))]
const HTTPS_UNSUPPORTED: &str = "unsupported: https probes need hoist-core's `https` feature";

/// Healthy when an HTTP `GET` of the probe's path answers with an accepted status (by default
/// 200–399). Only the status line is read; the connection is then closed.
///
/// `https` probes skip certificate verification, as Mesos does: the probe asks whether the
/// server answers, not who it is. They need hoist-core's `https` feature (on in the `hoist`
/// crate's default features); without it an `https` probe is unhealthy with a reason saying so.
#[derive(Debug, Clone)]
pub struct HttpChecker {
    probe: HttpProbe,
}

impl HttpChecker {
    /// Probes with `probe`'s scheme, port, path and accepted statuses.
    pub fn new(probe: HttpProbe) -> Self {
        HttpChecker { probe }
    }

    /// The status the server answered, or why there is none.
    async fn status(&self, target: &ProbeTarget, deadline: &Deadline) -> Result<u16, String> {
        #[cfg(not(feature = "https"))]
        if self.probe.scheme == Scheme::Https {
            return Err(HTTPS_UNSUPPORTED.into());
        }
        let dialed = dial(target, self.probe.port, deadline).await?;
        let place = place(target, dialed.addr);
        let request = request(&self.probe, dialed.addr);
        match self.probe.scheme {
            Scheme::Http => {
                let mut stream = dialed.stream;
                exchange(&mut stream, &request, &place, deadline).await
            }
            #[cfg(feature = "https")]
            Scheme::Https => {
                let mut stream =
                    super::tls::handshake(dialed.stream, dialed.addr.ip(), &place, deadline)
                        .await?;
                exchange(&mut stream, &request, &place, deadline).await
            }
            #[cfg(not(feature = "https"))]
            Scheme::Https => Err(HTTPS_UNSUPPORTED.into()),
        }
    }
}

#[async_trait]
impl HealthChecker for HttpChecker {
    async fn check(&self, target: &ProbeTarget, timeout: Duration) -> ProbeOutcome {
        match self.status(target, &Deadline::after(timeout)).await {
            Ok(status) if self.probe.accepts(status) => ProbeOutcome::Healthy,
            Ok(status) => ProbeOutcome::Unhealthy(format!(
                "GET {} answered HTTP {status}, expected {}",
                self.probe.path,
                accepted(&self.probe)
            )),
            Err(reason) => ProbeOutcome::Unhealthy(reason),
        }
    }
}

/// The request: `GET <path> HTTP/1.1` with a Host header naming the address connected to.
fn request(probe: &HttpProbe, addr: SocketAddr) -> Vec<u8> {
    let default_port = match probe.scheme {
        Scheme::Http => 80,
        Scheme::Https => 443,
    };
    let host = match (addr, addr.port() == default_port) {
        (SocketAddr::V4(v4), true) => v4.ip().to_string(),
        (SocketAddr::V6(v6), true) => format!("[{}]", v6.ip()),
        (addr, false) => addr.to_string(), // `[::1]:8080` for IPv6
    };
    format!(
        "GET {} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: hoist-health-check\r\nAccept: */*\r\nConnection: close\r\n\r\n",
        probe.path
    )
    .into_bytes()
}

/// Sends `request` and reads the status of the answer.
async fn exchange<S>(
    stream: &mut S,
    request: &[u8],
    place: &str,
    deadline: &Deadline,
) -> Result<u16, String>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let send = async {
        stream.write_all(request).await?;
        stream.flush().await
    };
    deadline
        .run(|| format!("sending the request to {place}"), async {
            send.await
                .map_err(|e| format!("sending the request to {place} failed: {e}"))
        })
        .await?;
    let line = deadline
        .run(
            || format!("waiting for the answer of {place}"),
            read_status_line(stream, place),
        )
        .await?;
    parse_status_line(&line).map_err(|e| format!("{place} answered {e}"))
}

/// Reads up to the end of the first line (or EOF, or [`MAX_STATUS_LINE`] bytes).
async fn read_status_line<S: AsyncRead + Unpin>(
    stream: &mut S,
    place: &str,
) -> Result<Vec<u8>, String> {
    let mut line = Vec::with_capacity(64);
    let mut buf = [0u8; 512];
    loop {
        let n = stream
            .read(&mut buf)
            .await
            .map_err(|e| format!("reading the answer of {place} failed: {e}"))?;
        if n == 0 {
            if line.is_empty() {
                return Err(format!("{place} closed the connection without answering"));
            }
            return Ok(line);
        }
        let chunk = &buf[..n];
        if let Some(end) = chunk.iter().position(|&b| b == b'\n') {
            line.extend_from_slice(&chunk[..end]);
            return Ok(line);
        }
        line.extend_from_slice(chunk);
        if line.len() >= MAX_STATUS_LINE {
            return Ok(line);
        }
    }
}

/// The status code of an HTTP/1 status line (`HTTP/1.1 200 OK`).
fn parse_status_line(line: &[u8]) -> Result<u16, String> {
    let text = String::from_utf8_lossy(line);
    let text = text.trim_end_matches('\r');
    let mut parts = text.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    let code = parts.next().unwrap_or_default();
    if version.starts_with("HTTP/1.")
        && code.len() == 3
        && let Ok(status @ 100..=999) = code.parse::<u16>()
    {
        return Ok(status);
    }
    Err(format!(
        "something that is not HTTP: {:?}",
        shorten(text, 64)
    ))
}

/// How the accepted statuses read in a reason.
fn accepted(probe: &HttpProbe) -> String {
    if probe.statuses.is_empty() {
        "200-399".into()
    } else {
        let list: Vec<String> = probe.statuses.iter().map(u16::to_string).collect();
        list.join(" or ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines() {
        assert_eq!(parse_status_line(b"HTTP/1.1 200 OK\r"), Ok(200));
        assert_eq!(
            parse_status_line(b"HTTP/1.0 503 Service Unavailable"),
            Ok(503)
        );
        assert_eq!(parse_status_line(b"HTTP/1.1 204"), Ok(204));
        let err = parse_status_line(b"SSH-2.0-OpenSSH_9.6\r").unwrap_err();
        assert_eq!(err, r#"something that is not HTTP: "SSH-2.0-OpenSSH_9.6""#);
        assert!(parse_status_line(b"HTTP/1.1 2000 OK").is_err());
        assert!(parse_status_line(b"HTTP/1.1 abc OK").is_err());
        assert!(parse_status_line(b"HTTP/2 200").is_err());
        let long = parse_status_line(&[b'x'; 200]).unwrap_err();
        assert!(long.ends_with("…\""), "{long}");
    }

    #[test]
    fn the_host_header_names_the_address_and_brackets_ipv6() {
        let probe = |scheme| HttpProbe {
            scheme,
            port: 0,
            path: "/ready?x=1".into(),
            statuses: vec![],
        };
        let head = |scheme, addr: &str| {
            String::from_utf8(request(&probe(scheme), addr.parse().unwrap())).unwrap()
        };
        let v4 = head(Scheme::Http, "127.0.0.1:8080");
        assert!(
            v4.starts_with("GET /ready?x=1 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n"),
            "{v4}"
        );
        assert!(v4.ends_with("Connection: close\r\n\r\n"), "{v4}");
        assert!(head(Scheme::Http, "[::1]:8080").contains("\r\nHost: [::1]:8080\r\n"));
        assert!(head(Scheme::Http, "[::1]:80").contains("\r\nHost: [::1]\r\n"));
        assert!(head(Scheme::Https, "10.0.0.2:443").contains("\r\nHost: 10.0.0.2\r\n"));
        assert!(head(Scheme::Https, "10.0.0.2:80").contains("\r\nHost: 10.0.0.2:80\r\n"));
    }
}

/// The HTTP checker against real servers on loopback.
#[cfg(all(test, feature = "testing"))]
pub(super) mod socket_tests {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
    use std::time::Instant;

    use tokio::net::{TcpListener, TcpStream};
    use tokio::sync::mpsc;

    use super::*;
    use crate::health::test_target;

    /// How the test server answers each connection.
    #[derive(Clone, Copy)]
    pub(crate) enum Answer {
        /// Reads the request, writes these bytes, closes.
        Bytes(&'static str),
        /// Writes these bytes without reading anything, closes.
        Blurt(&'static str),
        /// Closes without reading or writing.
        Close,
        /// Reads the request and never answers.
        Silent,
    }

    /// A server on a free port of `ip`; returns the port and the request heads it receives.
    async fn serve(ip: IpAddr, answer: Answer) -> (u16, mpsc::UnboundedReceiver<String>) {
        let listener = TcpListener::bind((ip, 0)).await.unwrap();
        let port = listener.local_addr().unwrap().port();
        (port, serve_on(listener, answer))
    }

    /// Serves `answer` on `listener`; returns the request heads it receives.
    pub(crate) fn serve_on(
        listener: TcpListener,
        answer: Answer,
    ) -> mpsc::UnboundedReceiver<String> {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                tokio::spawn(answer_one(stream, answer, tx.clone()));
            }
        });
        rx
    }

    /// Reads a request head from `stream`, if the answer reads one.
    async fn read_head<S: AsyncRead + Unpin>(stream: &mut S) -> String {
        let mut head = Vec::new();
        let mut buf = [0u8; 1024];
        while !head.ends_with(b"\r\n\r\n") {
            let n = stream.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            head.extend_from_slice(&buf[..n]);
        }
        String::from_utf8(head).unwrap()
    }

    async fn answer_one(
        mut stream: TcpStream,
        answer: Answer,
        heads: mpsc::UnboundedSender<String>,
    ) {
        match answer {
            Answer::Close => {}
            Answer::Blurt(bytes) => stream.write_all(bytes.as_bytes()).await.unwrap(),
            Answer::Bytes(bytes) => {
                let _ = heads.send(read_head(&mut stream).await);
                stream.write_all(bytes.as_bytes()).await.unwrap();
            }
            Answer::Silent => {
                let _ = heads.send(read_head(&mut stream).await);
                std::future::pending::<()>().await;
            }
        }
    }

    fn probe(port: u16, path: &str, statuses: &[u16]) -> HttpChecker {
        HttpChecker::new(HttpProbe {
            scheme: Scheme::Http,
            port,
            path: path.into(),
            statuses: statuses.to_vec(),
        })
    }

    /// Probes `/health` on a fresh local server answering `answer`; returns its port and the
    /// outcome.
    async fn probe_server(answer: Answer, statuses: &[u16]) -> (u16, ProbeOutcome) {
        let (port, _) = serve(LOCAL, answer).await;
        let outcome = probe(port, "/health", statuses)
            .check(&test_target(LOCAL, None), TIMEOUT)
            .await;
        (port, outcome)
    }

    const LOCAL: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
    const TIMEOUT: Duration = Duration::from_secs(5);

    #[tokio::test]
    async fn http_200_is_healthy_and_the_request_is_well_formed() {
        let (port, mut heads) = serve(
            LOCAL,
            Answer::Bytes("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"),
        )
        .await;
        let outcome = probe(port, "/health", &[])
            .check(&test_target(LOCAL, None), TIMEOUT)
            .await;
        assert_eq!(outcome, ProbeOutcome::Healthy);
        let head = heads.recv().await.unwrap();
        assert!(head.starts_with("GET /health HTTP/1.1\r\n"), "{head}");
        assert!(
            head.contains(&format!("\r\nHost: 127.0.0.1:{port}\r\n")),
            "{head}"
        );
    }

    #[tokio::test]
    async fn http_503_is_unhealthy_with_the_status_in_the_reason() {
        let (_, outcome) = probe_server(
            Answer::Bytes("HTTP/1.1 503 Service Unavailable\r\n\r\n"),
            &[],
        )
        .await;
        let expected = "GET /health answered HTTP 503, expected 200-399";
        assert_eq!(outcome, ProbeOutcome::Unhealthy(expected.into()));
    }

    #[tokio::test]
    async fn custom_statuses_replace_the_default_range() {
        let (_, outcome) = probe_server(
            Answer::Bytes("HTTP/1.1 503 Service Unavailable\r\n\r\n"),
            &[503, 418],
        )
        .await;
        assert_eq!(outcome, ProbeOutcome::Healthy);
        let (_, outcome) =
            probe_server(Answer::Bytes("HTTP/1.0 200 OK\r\n\r\n"), &[503, 418]).await;
        let expected = "GET /health answered HTTP 200, expected 503 or 418";
        assert_eq!(outcome, ProbeOutcome::Unhealthy(expected.into()));
    }

    #[tokio::test]
    async fn a_redirect_is_healthy_by_default() {
        let (_, outcome) = probe_server(
            Answer::Bytes("HTTP/1.1 302 Found\r\nLocation: /x\r\n\r\n"),
            &[],
        )
        .await;
        assert_eq!(outcome, ProbeOutcome::Healthy);
    }

    #[tokio::test]
    async fn garbage_is_unhealthy_with_a_quote_of_it() {
        let (port, outcome) = probe_server(Answer::Blurt("SSH-2.0-OpenSSH_9.6\r\n"), &[]).await;
        let expected = format!(
            r#"127.0.0.1:{port} answered something that is not HTTP: "SSH-2.0-OpenSSH_9.6""#
        );
        assert_eq!(outcome, ProbeOutcome::Unhealthy(expected));
    }

    #[tokio::test]
    async fn a_server_that_closes_early_is_unhealthy() {
        let (port, ProbeOutcome::Unhealthy(reason)) = probe_server(Answer::Close, &[]).await else {
            panic!("a closed connection was healthy");
        };
        // Closing before reading may reach the prober as an EOF or as a reset.
        let eof = format!("127.0.0.1:{port} closed the connection without answering");
        assert!(reason == eof || reason.contains("reset"), "{reason}");
    }

    #[tokio::test]
    async fn a_server_that_hangs_past_the_timeout_is_unhealthy_in_time() {
        let (port, mut heads) = serve(LOCAL, Answer::Silent).await;
        let started = Instant::now();
        let outcome = probe(port, "/", &[])
            .check(&test_target(LOCAL, None), Duration::from_millis(300))
            .await;
        let took = started.elapsed();
        assert_eq!(
            outcome,
            ProbeOutcome::Unhealthy(format!(
                "waiting for the answer of 127.0.0.1:{port} timed out (probe timeout 300ms)"
            ))
        );
        assert!(
            heads.recv().await.is_some(),
            "the request never reached the server"
        );
        assert!(
            took >= Duration::from_millis(300) && took < Duration::from_secs(3),
            "took {took:?}"
        );
    }

    #[tokio::test]
    async fn a_refused_connection_is_unhealthy() {
        let listener = TcpListener::bind((LOCAL, 0)).await.unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let ProbeOutcome::Unhealthy(reason) = probe(port, "/", &[])
            .check(&test_target(LOCAL, None), TIMEOUT)
            .await
        else {
            panic!("a refused connection was healthy");
        };
        assert!(
            reason.starts_with(&format!("connecting to 127.0.0.1:{port} failed: ")),
            "{reason}"
        );
        assert!(reason.contains("refused"), "{reason}");
    }

    #[tokio::test]
    async fn ipv6_works() {
        let v6 = IpAddr::V6(Ipv6Addr::LOCALHOST);
        let (port, mut heads) = serve(v6, Answer::Bytes("HTTP/1.1 204 No Content\r\n\r\n")).await;
        assert_eq!(
            probe(port, "/", &[])
                .check(&test_target(v6, None), TIMEOUT)
                .await,
            ProbeOutcome::Healthy
        );
        assert!(
            heads
                .recv()
                .await
                .unwrap()
                .contains(&format!("\r\nHost: [::1]:{port}\r\n"))
        );
    }

    #[cfg(not(feature = "https"))]
    #[tokio::test]
    async fn https_without_the_feature_is_unsupported() {
        let (port, _) = serve(LOCAL, Answer::Bytes("HTTP/1.1 200 OK\r\n\r\n")).await;
        let checker = HttpChecker::new(HttpProbe {
            scheme: Scheme::Https,
            port,
            path: "/".into(),
            statuses: vec![],
        });
        let outcome = checker.check(&test_target(LOCAL, None), TIMEOUT).await;
        assert_eq!(
            outcome,
            ProbeOutcome::Unhealthy(
                "unsupported: https probes need hoist-core's `https` feature".into()
            )
        );
    }

    #[cfg(feature = "https")]
    mod https {
        use std::sync::Arc;

        use rustls::ServerConfig;
        use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
        use tokio_rustls::TlsAcceptor;

        use super::*;

        /// An HTTPS server with a fresh self-signed certificate, answering `answer` to every
        /// request; returns its port and the request heads it receives.
        async fn serve_tls(answer: &'static str) -> (u16, mpsc::UnboundedReceiver<String>) {
            let key =
                rcgen::generate_simple_self_signed(vec!["not-the-probed-name.example".into()])
                    .unwrap();
            let private =
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.signing_key.serialize_der()));
            let config = ServerConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![key.cert.der().clone()], private)
            .unwrap();
            let acceptor = TlsAcceptor::from(Arc::new(config));
            let listener = TcpListener::bind((LOCAL, 0)).await.unwrap();
            let port = listener.local_addr().unwrap().port();
            let (tx, rx) = mpsc::unbounded_channel();
            tokio::spawn(async move {
                loop {
                    let (stream, _) = listener.accept().await.unwrap();
                    let acceptor = acceptor.clone();
                    let tx = tx.clone();
                    tokio::spawn(async move {
                        let Ok(mut tls) = acceptor.accept(stream).await else {
                            return;
                        };
                        let _ = tx.send(read_head(&mut tls).await);
                        tls.write_all(answer.as_bytes()).await.unwrap();
                        tls.shutdown().await.unwrap();
                    });
                }
            });
            (port, rx)
        }

        fn https_probe(port: u16, statuses: &[u16]) -> HttpChecker {
            HttpChecker::new(HttpProbe {
                scheme: Scheme::Https,
                port,
                path: "/tls".into(),
                statuses: statuses.to_vec(),
            })
        }

        #[tokio::test]
        async fn https_accepts_a_self_signed_certificate_for_another_name() {
            let (port, mut heads) = serve_tls("HTTP/1.1 200 OK\r\n\r\n").await;
            assert_eq!(
                https_probe(port, &[])
                    .check(&test_target(LOCAL, None), TIMEOUT)
                    .await,
                ProbeOutcome::Healthy
            );
            assert!(
                heads
                    .recv()
                    .await
                    .unwrap()
                    .starts_with("GET /tls HTTP/1.1\r\n")
            );
        }

        #[tokio::test]
        async fn https_reads_the_status() {
            let (port, _) = serve_tls("HTTP/1.1 500 Internal Server Error\r\n\r\n").await;
            assert_eq!(
                https_probe(port, &[])
                    .check(&test_target(LOCAL, None), TIMEOUT)
                    .await,
                ProbeOutcome::Unhealthy("GET /tls answered HTTP 500, expected 200-399".into())
            );
        }

        #[tokio::test]
        async fn https_against_a_plain_http_server_fails_the_handshake() {
            let (port, _) = serve(LOCAL, Answer::Blurt("HTTP/1.1 400 Bad Request\r\n\r\n")).await;
            let ProbeOutcome::Unhealthy(reason) = https_probe(port, &[])
                .check(&test_target(LOCAL, None), TIMEOUT)
                .await
            else {
                panic!("a plain HTTP server passed an https probe");
            };
            assert!(
                reason.starts_with(&format!("the TLS handshake with 127.0.0.1:{port} failed: ")),
                "{reason}"
            );
        }
    }
}
