//! The first stage of `fedctl run`: the state store, the cluster CA (from
//! `ca.certFile`/`ca.keyFile`, the store, or new) and its rotation state,
//! the gateway bootstrap token file, and this control plane's own leaf.
//!
//! During a CA rotation the signing root changes while the process runs:
//! [`follow_signer`] rewrites the token file's pin so that a gateway
//! started later pins the root that signs.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, anyhow};
use fedmesh_proto::config::Config;
use fedmesh_proto::identity::LiveCert;
use fedmesh_proto::token::BootstrapToken;
use tracing::info;

use crate::ca::rotation::{CaRotation, CaView};
use crate::ca::{ClusterCa, LEAF_LIFETIME};
use crate::store::Store;

/// Who this control plane is, and where it keeps its state.
pub(super) struct Identity {
    /// The state store.
    pub store: Arc<Store>,
    /// This cluster's CA as it signed at start.
    pub ca: Arc<ClusterCa>,
    /// The CA's rotation state: the root that signs now, the published
    /// roots.
    pub rotation: Arc<CaRotation>,
    /// The gateway bootstrap token.
    pub bootstrap: BootstrapToken,
    /// The control leaf (`spiffe://<td>/control`), renewed in place.
    pub cert: LiveCert,
}

impl Identity {
    /// Opens the store, loads or creates the CA and the token file, and
    /// issues the control leaf.
    pub(super) fn load(config: &Config) -> anyhow::Result<Self> {
        let store =
            Arc::new(Store::open(&config.data_dir).context("while opening the state store")?);
        let ca = load_ca(config, &store)?;
        let external = config.ca.cert_file.is_some();
        let rotation = CaRotation::load(store.clone(), ca, &config.cluster, external)
            .context("while loading the CA rotation state")?;
        let ca = rotation.signer();
        let bootstrap = load_bootstrap(&config.gateway.bootstrap_token_file, &ca)?;
        let leaf = ca
            .issue_control_leaf(LEAF_LIFETIME)
            .context("while issuing the control plane certificate")?;
        let key = leaf.key.ok_or_else(|| anyhow!("control leaf has no key"))?;
        let cert =
            LiveCert::new(leaf.chain, key).context("while loading the control certificate")?;
        Ok(Self {
            store,
            ca,
            rotation: Arc::new(rotation),
            bootstrap,
            cert,
        })
    }
}

fn load_ca(config: &Config, store: &Store) -> anyhow::Result<ClusterCa> {
    let td = &config.trust_domain;
    if let (Some(cert_file), Some(key_file)) = (&config.ca.cert_file, &config.ca.key_file) {
        let cert = std::fs::read_to_string(cert_file)
            .with_context(|| format!("cannot read ca.certFile {}", cert_file.display()))?;
        let key = std::fs::read_to_string(key_file)
            .with_context(|| format!("cannot read ca.keyFile {}", key_file.display()))?;
        return ClusterCa::from_pem(&cert, &key, td).with_context(|| {
            format!(
                "while loading the CA from ca.certFile {}",
                cert_file.display()
            )
        });
    }
    if let Some((cert, key)) = store.ca()? {
        return ClusterCa::from_pem(&cert, &key, td)
            .context("while loading the CA from the state store");
    }
    let ca = ClusterCa::generate(&config.cluster, td).context("while generating the cluster CA")?;
    store.put_ca(ca.cert_pem(), ca.key_pem())?;
    info!(pin = %fedmesh_proto::token::hex(&ca.pin()), "generated a new cluster CA");
    Ok(ca)
}

/// Keeps the bootstrap token file's pin on the root that signs, for the
/// life of the process (the secret stays: running gateways keep working).
pub(super) async fn follow_signer(
    path: std::path::PathBuf,
    mut ca: tokio::sync::watch::Receiver<Arc<CaView>>,
) {
    while ca.changed().await.is_ok() {
        let signer = ca.borrow_and_update().signer.clone();
        let path = path.clone();
        let written = tokio::task::spawn_blocking(move || load_bootstrap(&path, &signer)).await;
        match written {
            Ok(Ok(_)) => {}
            Ok(Err(error)) => {
                tracing::warn!(error = %format!("{error:#}"), "cannot update the bootstrap token's CA pin")
            }
            Err(error) => tracing::warn!(%error, "cannot update the bootstrap token's CA pin"),
        }
    }
}

/// Reads the bootstrap token file, or writes a new one (mode 0600). A file
/// from before a CA change keeps its secret and gets the new CA pin.
fn load_bootstrap(path: &Path, ca: &ClusterCa) -> anyhow::Result<BootstrapToken> {
    let existing = match std::fs::read_to_string(path) {
        Ok(text) => Some(BootstrapToken::decode(&text).with_context(|| {
            format!("gateway.bootstrapTokenFile {} does not hold a bootstrap token; delete it and a new one is written", path.display())
        })?),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e).with_context(|| format!("cannot read gateway.bootstrapTokenFile {}", path.display())),
    };
    let token = match existing {
        Some(t) if t.pin == ca.pin() => return Ok(t),
        Some(t) => BootstrapToken { pin: ca.pin(), ..t },
        None => BootstrapToken::generate(ca.pin()).map_err(|e| anyhow!(e))?,
    };
    write_private(path, &token.encode())
        .with_context(|| format!("cannot write gateway.bootstrapTokenFile {}", path.display()))?;
    info!(path = %path.display(), "wrote the gateway bootstrap token");
    Ok(token)
}

/// Writes a file readable only by its owner, atomically (temp + rename).
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(text.as_bytes())?;
    f.write_all(b"\n")?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}
