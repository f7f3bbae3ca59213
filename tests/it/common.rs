//! Shared helpers: a client for the sandbox, throw-away namespaces, polling.

use std::future::Future;
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, DeleteParams, PostParams};
use kube::Client;
use serde::de::DeserializeOwned;

/// Held (shared) by tests whose tools do whole-cluster discovery and fail on any gap (real
/// Helm); taken exclusively by a test that makes an API group unavailable on purpose.
pub static DISCOVERY_GAP: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

/// A client for the sandbox. Fails loudly when the suite runs without one.
pub async fn client() -> Client {
    assert!(
        std::env::var_os("KUBECONFIG").is_some(),
        "KUBECONFIG is not set: run the suite with tests/run, which starts the sandbox"
    );
    aiops_mcp::cluster::client(None, None)
        .await
        .expect("sandbox client")
}

/// A namespace that exists for one test and is deleted when dropped.
pub struct TestNs {
    pub client: Client,
    pub name: String,
}

impl TestNs {
    pub async fn new(prefix: &str) -> TestNs {
        let client = client().await;
        let suffix: u32 = rand_suffix();
        let name = format!("it-{prefix}-{suffix:x}");
        let ns: Namespace =
            serde_json::from_value(serde_json::json!({"metadata": {"name": name}})).unwrap();
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &ns)
            .await
            .expect("create namespace");
        // The service-account controller creates `default` shortly after and the token controller
        // gives it a token secret (1.20); pods are refused until both exist.
        let sas: Api<k8s_openapi::api::core::v1::ServiceAccount> =
            Api::namespaced(client.clone(), &name);
        wait_for(
            "default service account with its token",
            Duration::from_secs(60),
            || async {
                let sa = sas.get_opt("default").await.ok().flatten()?;
                sa.secrets.filter(|s| !s.is_empty()).map(|_| ())
            },
        )
        .await;
        TestNs { client, name }
    }

    pub fn api<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = kube::core::NamespaceResourceScope>
            + Clone
            + DeserializeOwned
            + std::fmt::Debug,
        K::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), &self.name)
    }

    /// Creates objects from YAML documents (separated by `---`) in this namespace.
    pub async fn apply_yaml(&self, yaml: &str) {
        for doc in yaml.split("\n---\n") {
            if doc.trim().is_empty() {
                continue;
            }
            let value: serde_json::Value = serde_norway::from_str(doc).expect("test YAML");
            let kind = value["kind"].as_str().expect("kind").to_string();
            let obj: kube::api::DynamicObject = serde_json::from_value(value).unwrap();
            let gvk = kube::api::GroupVersionKind::try_from(obj.types.as_ref().unwrap()).unwrap();
            let (ar, _) = kube::discovery::pinned_kind(&self.client, &gvk)
                .await
                .expect("kind served");
            let api: Api<kube::api::DynamicObject> =
                Api::namespaced_with(self.client.clone(), &self.name, &ar);
            api.create(&PostParams::default(), &obj)
                .await
                .unwrap_or_else(|e| panic!("create {kind}: {e}"));
        }
    }
}

impl Drop for TestNs {
    fn drop(&mut self) {
        // The test's runtime is shutting down: delete from a runtime of our own, and wait for
        // the request (not for the namespace to be gone).
        let name = self.name.clone();
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            rt.block_on(async {
                let c = aiops_mcp::cluster::client(None, None).await.ok()?;
                Api::<Namespace>::all(c)
                    .delete(&name, &DeleteParams::background())
                    .await
                    .ok()
            })
        })
        .join();
    }
}

fn rand_suffix() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos(),
    );
    h.finish() as u32
}

/// Polls `f` every 200 ms until it returns Some, or panics after `timeout` naming `what`.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Runs kubectl against the sandbox; returns (success, stdout + stderr).
pub fn kubectl(args: &[&str]) -> (bool, String) {
    let out = std::process::Command::new("kubectl")
        .args(args)
        .output()
        .expect("kubectl runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}
