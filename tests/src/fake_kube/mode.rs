//! Puts a test cluster in Kubernetes mode on a fake API server: the
//! registry section of its config and a kubeconfig pointing at the fake.

use super::FakeKube;
use crate::Cluster;

impl FakeKube {
    /// Makes `cluster` (not started yet) read this API server:
    /// `registry.kind: kubernetes`, with `registry_extra` (YAML lines,
    /// indented by two spaces, such as `  namespaces: [demo]\n`) added to
    /// the registry section, and `KUBECONFIG` naming a file for this server.
    ///
    /// # Panics
    /// When the cluster's files cannot be read or written.
    pub fn serve(&self, cluster: &mut Cluster, registry_extra: &str) {
        let config = std::fs::read_to_string(&cluster.config).expect("read config");
        cluster.write_config(&format!(
            "{config}registry:\n  kind: kubernetes\n{registry_extra}"
        ));
        let kubeconfig = cluster.dir.join("kubeconfig");
        std::fs::write(&kubeconfig, self.kubeconfig()).expect("write kubeconfig");
        cluster
            .env
            .push(("KUBECONFIG".into(), kubeconfig.display().to_string()));
    }
}
