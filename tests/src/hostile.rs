//! Clients that attack a cluster: an anonymous TLS client (no client
//! certificate, any server certificate accepted) for load on the TLS
//! ports, and (see `tests/e2e/hostile.rs`) a peer that joined with a real
//! token and sends what no honest peer sends.

use std::sync::Arc;
use std::time::Duration;

use fedmesh_control::ca::ClusterCa;
use fedmesh_proto::identity::{LiveCert, client_config};
use fedmesh_proto::token::JoinToken;
use fedmesh_proto::transport::connect;
use fedmesh_proto::v1;
use fedmesh_proto::v1::peering_client::PeeringClient;
use fedmesh_proto::v1::sync_message::Msg;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};

/// Accepts any server certificate: an attacker does not care whom it
/// talks to, it wants the handshake done.
#[derive(Debug)]
pub struct AnyServerCert;

impl ServerCertVerifier for AnyServerCert {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn verify_tls13_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        rustls::crypto::ring::default_provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// A TLS client config with no client certificate that trusts any server
/// and offers ALPN `h2`.
pub fn anonymous_tls() -> Arc<rustls::ClientConfig> {
    crate::init_crypto();
    let mut tls = rustls::ClientConfig::builder()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyServerCert))
        .with_no_client_auth();
    tls.alpn_protocols = vec![b"h2".to_vec()];
    Arc::new(tls)
}

/// How long a hostile peer's dial, join or send may take.
const HOSTILE_TIMEOUT: Duration = Duration::from_secs(10);

/// A peer that joined with a real token (so its certificate chains to a CA
/// the victim stores) and speaks the real peering protocol, but sends
/// whatever a test tells it to: the victim's defenses are tested against
/// what passes authentication.
#[derive(Debug)]
pub struct HostilePeer {
    /// What it said it is at join (and says in its Hello).
    pub info: v1::ClusterInfo,
    tx: mpsc::Sender<v1::SyncMessage>,
    /// What the victim sends back on the stream.
    pub inbound: tonic::Streaming<v1::SyncMessage>,
}

impl HostilePeer {
    /// The honest description of a cluster `name` with `ca`'s root.
    pub fn describe(name: &str, ca: &ClusterCa) -> v1::ClusterInfo {
        v1::ClusterInfo {
            name: name.to_string(),
            trust_domain: format!("{name}.fedmesh"),
            locality: Some(v1::Locality {
                region: "evil-region".into(),
                zone: "evil-zone".into(),
            }),
            gateway_address: "127.0.0.1:9".into(),
            dns_zone: "clusterset.local".into(),
            ca_roots_pem: vec![ca.cert_pem().to_string()],
            peering_endpoint: "127.0.0.1:9".into(),
        }
    }

    /// Joins the issuer of `token` as cluster `name`, opens the sync
    /// stream with a certificate of its own CA and sends a Hello with its
    /// description as `tamper` changed it after the join.
    ///
    /// # Panics
    /// When the join or the stream is refused: the test needs a peer that
    /// got in.
    pub async fn join(token: &str, name: &str, tamper: impl FnOnce(&mut v1::ClusterInfo)) -> Self {
        crate::init_crypto();
        let token = JoinToken::decode(token.trim()).expect("a join token");
        let ca = ClusterCa::generate(name, &format!("{name}.fedmesh")).expect("a CA");
        let info = Self::describe(name, &ca);
        let anonymous = anonymous_tls();
        let channel = connect(&token.address, anonymous, HOSTILE_TIMEOUT)
            .await
            .expect("dial the issuer");
        PeeringClient::new(channel)
            .join(v1::JoinRequest {
                secret: token.secret.to_vec(),
                joiner: Some(info.clone()),
                taken_names: Vec::new(),
            })
            .await
            .expect("the issuer accepts the join");
        let leaf = ca
            .issue_control_leaf(Duration::from_secs(3600))
            .expect("a leaf");
        let cert = LiveCert::new(leaf.chain, leaf.key.expect("a generated key")).expect("a cert");
        let mut tls =
            client_config(Some(&cert), Arc::new(AnyServerCert), &[b"h2"]).expect("client TLS");
        tls.alpn_protocols = vec![b"h2".to_vec()];
        let channel = connect(&token.address, Arc::new(tls), HOSTILE_TIMEOUT)
            .await
            .expect("dial the sync stream");
        let (tx, rx) = mpsc::channel(1024);
        let mut said = info.clone();
        tamper(&mut said);
        let hello = v1::Hello {
            info: Some(said),
            acked_version: 0,
            epoch: 1,
        };
        tx.send(v1::SyncMessage {
            msg: Some(Msg::Hello(hello)),
        })
        .await
        .expect("queue the hello");
        let inbound = PeeringClient::new(channel)
            .max_decoding_message_size(64 << 20)
            .max_encoding_message_size(64 << 20)
            .sync(ReceiverStream::new(rx))
            .await
            .expect("the stream opens")
            .into_inner();
        Self { info, tx, inbound }
    }

    /// Sends one message; false once the victim closed the stream.
    pub async fn send(&self, msg: Msg) -> bool {
        let send = self.tx.send(v1::SyncMessage { msg: Some(msg) });
        matches!(
            tokio::time::timeout(HOSTILE_TIMEOUT, send).await,
            Ok(Ok(()))
        )
    }

    /// Reads what the victim sends until it closes the stream or `wait`
    /// passes; the messages read.
    pub async fn drain(&mut self, wait: Duration) -> Vec<v1::SyncMessage> {
        let mut out = Vec::new();
        let deadline = tokio::time::Instant::now() + wait;
        while let Ok(Ok(Some(m))) = tokio::time::timeout_at(deadline, self.inbound.message()).await
        {
            out.push(m);
            if out.len() > 10_000 {
                break;
            }
        }
        out
    }
}
