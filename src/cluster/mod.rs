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
    let opts = KubeConfigOptions {
        context: context.map(str::to_string),
        ..Default::default()
    };
    let config = if kubeconfig.is_some() || context.is_some() {
        let path = kubeconfig
            .map(Path::to_path_buf)
            .unwrap_or_else(default_path);
        let kc = match kubeconfig {
            Some(p) => Kubeconfig::read_from(p),
            None => Kubeconfig::read(),
        }
        .map_err(|source| Error::Kubeconfig { path, source })?;
        check_context(&kc, context)?;
        Config::from_custom_kubeconfig(kc, &opts)
            .await
            .map_err(Error::Config)?
    } else {
        Config::infer().await.map_err(Error::NoConfig)?
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
    let available = kc
        .contexts
        .iter()
        .map(|c| c.name.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    Err(Error::UnknownContext {
        context: ctx.to_string(),
        available,
    })
}

/// Clients per kubeconfig context, created on first use and shared; plus a discovery cache.
#[derive(Clone)]
pub struct Clusters {
    inner: std::sync::Arc<Inner>,
}

struct Inner {
    kubeconfig: Option<PathBuf>,
    default_context: Option<String>,
    clients: tokio::sync::Mutex<std::collections::HashMap<String, Client>>,
    discovery: tokio::sync::Mutex<
        std::collections::HashMap<String, (std::time::Instant, std::sync::Arc<ApiCatalog>)>,
    >,
}

/// What the API server serves, group by group. A group that fails to answer (an aggregated
/// API whose backend is down, a CRD still being established) is left out and named, instead of
/// failing every kind lookup as one whole-cluster discovery would.
pub struct ApiCatalog {
    parts: Vec<kube::Discovery>,
    /// API groups that did not answer discovery, with the error.
    pub unavailable: Vec<String>,
}

impl ApiCatalog {
    pub fn groups(&self) -> impl Iterator<Item = &kube::discovery::ApiGroup> {
        self.parts.iter().flat_map(|d| d.groups())
    }

    async fn discover(client: Client) -> std::result::Result<Self, kube::Error> {
        use futures::stream::{self, StreamExt};
        let mut names: Vec<String> = client
            .list_api_groups()
            .await?
            .groups
            .into_iter()
            .map(|g| g.name)
            .collect();
        names.push(kube::discovery::ApiGroup::CORE_GROUP.to_string());
        let results: Vec<(String, std::result::Result<kube::Discovery, kube::Error>)> =
            stream::iter(names)
                .map(|name| {
                    let client = client.clone();
                    async move {
                        // The client retries 503s with back-off: an aggregated API whose
                        // backend is down would hold every lookup; give each group a deadline.
                        let r = match tokio::time::timeout(
                            GROUP_DISCOVERY_TIMEOUT,
                            kube::Discovery::new(client).filter(&[name.as_str()]).run(),
                        )
                        .await
                        {
                            Ok(r) => r,
                            Err(_) => Err(kube::Error::Discovery(
                                kube::error::DiscoveryError::MissingApiGroup(format!(
                                    "{name}: no answer within {} s",
                                    GROUP_DISCOVERY_TIMEOUT.as_secs()
                                )),
                            )),
                        };
                        (name, r)
                    }
                })
                .buffer_unordered(8)
                .collect()
                .await;
        let mut catalog = ApiCatalog {
            parts: vec![],
            unavailable: vec![],
        };
        for (name, r) in results {
            match r {
                Ok(d) => catalog.parts.push(d),
                // Without the core group nothing works: that is an error, not a gap.
                Err(e) if name.is_empty() => return Err(e),
                Err(e) => {
                    tracing::warn!(group = %name, error = %e, "API group left out of discovery");
                    catalog.unavailable.push(format!("{name} ({e})"));
                }
            }
        }
        catalog.unavailable.sort();
        Ok(catalog)
    }
}

/// A kubeconfig context, without credentials.
#[derive(Debug, Clone, serde::Serialize, schemars::JsonSchema)]
pub struct ContextInfo {
    /// Context name, to pass as `context`.
    pub name: String,
    /// The cluster's API server URL.
    pub server: String,
    /// Default namespace of the context.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// The server uses this context when a tool gets no `context`.
    pub default: bool,
}

const DISCOVERY_TTL: std::time::Duration = std::time::Duration::from_secs(300);
/// Longest wait for one API group's discovery.
const GROUP_DISCOVERY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(4);
/// A catalogue with unavailable groups is asked again soon: most such gaps are transient.
const PARTIAL_DISCOVERY_TTL: std::time::Duration = std::time::Duration::from_secs(10);

impl Clusters {
    pub fn new(kubeconfig: Option<PathBuf>, default_context: Option<String>) -> Self {
        install_crypto_provider();
        Clusters {
            inner: std::sync::Arc::new(Inner {
                kubeconfig,
                default_context,
                clients: Default::default(),
                discovery: Default::default(),
            }),
        }
    }

    fn key(&self, context: Option<&str>) -> String {
        context
            .or(self.inner.default_context.as_deref())
            .unwrap_or("")
            .to_string()
    }

    /// The client for `context` (None = the server's default context).
    pub async fn client(&self, context: Option<&str>) -> Result<Client> {
        let key = self.key(context);
        let mut clients = self.inner.clients.lock().await;
        if let Some(c) = clients.get(&key) {
            return Ok(c.clone());
        }
        let ctx = (!key.is_empty()).then_some(key.as_str());
        let c = client(self.inner.kubeconfig.as_deref(), ctx).await?;
        clients.insert(key, c.clone());
        Ok(c)
    }

    /// API discovery for `context`, cached for 5 minutes.
    pub async fn discovery(
        &self,
        context: Option<&str>,
    ) -> std::result::Result<std::sync::Arc<ApiCatalog>, kube::Error> {
        let key = self.key(context);
        let mut cache = self.inner.discovery.lock().await;
        if let Some((at, d)) = cache.get(&key) {
            let ttl = if d.unavailable.is_empty() {
                DISCOVERY_TTL
            } else {
                PARTIAL_DISCOVERY_TTL
            };
            if at.elapsed() < ttl {
                return Ok(d.clone());
            }
        }
        let client = self
            .client(context)
            .await
            .map_err(|e| kube::Error::Service(Box::new(e)))?;
        let d = std::sync::Arc::new(ApiCatalog::discover(client).await?);
        cache.insert(key, (std::time::Instant::now(), d.clone()));
        Ok(d)
    }

    /// The contexts of the kubeconfig (or the in-cluster one), without credentials.
    pub fn contexts(&self) -> Result<Vec<ContextInfo>> {
        let kc = match &self.inner.kubeconfig {
            Some(p) => Kubeconfig::read_from(p).map_err(|source| Error::Kubeconfig {
                path: p.clone(),
                source,
            })?,
            None => match Kubeconfig::read() {
                Ok(kc) => kc,
                Err(_) => {
                    let server = std::env::var("KUBERNETES_SERVICE_HOST")
                        .map(|h| format!("https://{h}"))
                        .unwrap_or_default();
                    return Ok(vec![ContextInfo {
                        name: "in-cluster".into(),
                        server,
                        namespace: None,
                        default: true,
                    }]);
                }
            },
        };
        let current = self
            .inner
            .default_context
            .clone()
            .or(kc.current_context.clone());
        Ok(kc
            .contexts
            .iter()
            .map(|c| {
                let ctx = c.context.clone().unwrap_or_default();
                let server = kc
                    .clusters
                    .iter()
                    .find(|cl| cl.name == ctx.cluster)
                    .and_then(|cl| cl.cluster.as_ref()?.server.clone())
                    .unwrap_or_default();
                ContextInfo {
                    name: c.name.clone(),
                    server,
                    namespace: ctx.namespace.clone(),
                    default: current.as_deref() == Some(c.name.as_str()),
                }
            })
            .collect())
    }
}
