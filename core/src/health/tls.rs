//! TLS for `https` probes (feature `https`): rustls with the ring provider and, as in Mesos,
//! no certificate verification.

use std::net::IpAddr;
use std::sync::{Arc, OnceLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{WebPkiSupportedAlgorithms, ring};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use super::deadline::Deadline;

/// Runs the TLS handshake over `stream` before `deadline`.
pub(super) async fn handshake(
    stream: TcpStream,
    ip: IpAddr,
    place: &str,
    deadline: &Deadline,
) -> Result<TlsStream<TcpStream>, String> {
    let connector = connector().map_err(|e| format!("cannot set up TLS for {place}: {e}"))?;
    deadline
        .run(|| format!("the TLS handshake with {place}"), async {
            connector
                .connect(ServerName::from(ip), stream)
                .await
                .map_err(|e| format!("the TLS handshake with {place} failed: {e}"))
        })
        .await
}

/// The connector every `https` probe shares, made on first use.
fn connector() -> Result<&'static TlsConnector, &'static str> {
    static CONNECTOR: OnceLock<Result<TlsConnector, String>> = OnceLock::new();
    CONNECTOR
        .get_or_init(|| {
            let provider = Arc::new(ring::default_provider());
            let verifier = Arc::new(AnyCertificate {
                algorithms: provider.signature_verification_algorithms,
            });
            let config = ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map_err(|e| e.to_string())?
                .dangerous()
                .with_custom_certificate_verifier(verifier)
                .with_no_client_auth();
            Ok(TlsConnector::from(Arc::new(config)))
        })
        .as_ref()
        .map_err(String::as_str)
}

/// Accepts any certificate, as Mesos's probes do: a probe asks whether the server answers, not
/// who it is. The handshake's signatures are still checked against the certificate presented.
#[derive(Debug)]
struct AnyCertificate {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}
