//! Connections to Kubernetes clusters.
//!
//! kube-rs and (later) async-openai both link rustls; rustls refuses to pick a crypto provider
//! when more than one is compiled in, so the process installs `ring` exactly once, here, before
//! the first client is built.

use std::path::{Path, PathBuf};
use std::sync::Once;

use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

/// Errors while connecting to a cluster.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The kubeconfig file could not be read or parsed.
    #[error("cannot read kubeconfig {path}: {source}")]
    Kubeconfig {
        path: PathBuf,
        #[source]
        source: kube::config::KubeconfigError,
    },
    /// No kubeconfig was given or found, and the process is not running in a pod.
    #[error("no cluster configured: set KUBECONFIG, pass --kubeconfig, or run inside a pod ({0})")]
    NoConfig(#[source] kube::config::InferConfigError),
    /// The named context does not exist in the kubeconfig.
    #[error("context '{context}' is not in the kubeconfig (contexts: {available})")]
    UnknownContext { context: String, available: String },
    /// The kubeconfig is valid but the client could not be built from it.
    #[error("cannot use context: {0}")]
    Config(#[source] kube::config::KubeconfigError),
    /// Building the HTTP client failed (TLS, proxy).
    #[error("cannot build a Kubernetes client: {0}")]
    Client(#[source] kube::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

static CRYPTO: Once = Once::new();

/// Installs the process-wide rustls crypto provider (ring). Safe to call many times.
pub fn install_crypto_provider() {
    CRYPTO.call_once(|| {
        // Err means another provider was installed first by the embedding program: keep it.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// Builds a client: from `kubeconfig` (or `$KUBECONFIG` / `~/.kube/config`) and `context`
/// (or the current context), falling back to the in-cluster service account.
pub async fn client(kubeconfig: Option<&Path>, context: Option<&str>) -> Result<Client> {
    install_crypto_provider();
    let opts = KubeConfigOptions { context: context.map(str::to_string), ..Default::default() };
    let config = match kubeconfig {
        Some(path) => {
            let kc = Kubeconfig::read_from(path).map_err(|source| Error::Kubeconfig { path: path.to_path_buf(), source })?;
            check_context(&kc, context)?;
            Config::from_custom_kubeconfig(kc, &opts).await.map_err(Error::Config)?
        }
        None if context.is_some() => {
            let kc = Kubeconfig::read().map_err(|source| Error::Kubeconfig { path: default_path(), source })?;
            check_context(&kc, context)?;
            Config::from_custom_kubeconfig(kc, &opts).await.map_err(Error::Config)?
        }
        None => Config::infer().await.map_err(Error::NoConfig)?,
    };
    Client::try_from(config).map_err(Error::Client)
}

fn default_path() -> PathBuf {
    std::env::var_os("KUBECONFIG")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("~/.kube/config"))
}

fn check_context(kc: &Kubeconfig, context: Option<&str>) -> Result<()> {
    let Some(ctx) = context else { return Ok(()) };
    if kc.contexts.iter().any(|c| c.name == ctx) {
        return Ok(());
    }
    let available = kc.contexts.iter().map(|c| c.name.as_str()).collect::<Vec<_>>().join(", ");
    Err(Error::UnknownContext { context: ctx.to_string(), available })
}
