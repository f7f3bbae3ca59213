//! MCP resources: a namespace's health (the `diagnose` text) and a todo stack's status (the
//! `stack_status` text), read through the registry so the policy applies; subscriptions that
//! watch the namespace and tell the client when the text changes; and MCP logging.
//!
//! URIs: `k8s://{context}/namespaces/{namespace}/health` and
//! `k8s://{context}/namespaces/{namespace}/stack/{release}`, where `{context}` is a kubeconfig
//! context name, or `-` for the server's default context.
#![allow(deprecated)] // MCP logging and resources/subscribe are legacy in rmcp, current in 2025-11-25.

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::stream::{self, BoxStream, StreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Event, Pod};
use kube::runtime::watcher::{self, metadata_watcher};
use kube::runtime::WatchStreamExt;
use kube::Api;
use rmcp::model::{
    LoggingLevel, LoggingMessageNotificationParam, ResourceUpdatedNotificationParam,
};
use rmcp::service::RoleServer;
use rmcp::{ErrorData as McpError, Peer};
use serde_json::{json, Value};
use tokio::time::Instant;

use crate::tools::{Ctx, Registry, ToolError};

pub const HEALTH_TEMPLATE: &str = "k8s://{context}/namespaces/{namespace}/health";
pub const STACK_TEMPLATE: &str = "k8s://{context}/namespaces/{namespace}/stack/{release}";

/// Most subscriptions one session may hold.
pub const MAX_SUBSCRIPTIONS: usize = 16;
/// Most namespaces `resources/list` shows a health resource for.
pub const MAX_LISTED: usize = 50;
/// Quiet time after a change before the resource is re-rendered.
const DEBOUNCE: Duration = Duration::from_secs(2);
/// Longest a busy namespace (e.g. a crash loop's events) delays a re-render.
const MAX_DELAY: Duration = Duration::from_secs(10);
/// Re-render this often anyway: the text also depends on kinds that are not watched.
const RECHECK: Duration = Duration::from_secs(60);
/// How often a subscription checks that its client is still connected.
const CLOSED_CHECK: Duration = Duration::from_secs(5);

/// What a resource URI shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum View {
    Health,
    Stack { release: String },
}

/// A parsed resource URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceUri {
    /// None = the server's default context (`-`).
    pub context: Option<String>,
    pub namespace: String,
    pub view: View,
}

fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '@' | ':'))
}

/// Parses `k8s://{context}/namespaces/{namespace}/health|stack/{release}`.
pub fn parse(uri: &str) -> Result<ResourceUri, String> {
    let usage = format!("expected {HEALTH_TEMPLATE} or {STACK_TEMPLATE} (context `-` = the server's default context)");
    let rest = uri
        .strip_prefix("k8s://")
        .ok_or_else(|| format!("unknown resource '{uri}': {usage}"))?;
    let parts: Vec<&str> = rest.split('/').collect();
    let (context, namespace, view) = match parts.as_slice() {
        [c, "namespaces", ns, "health"] => (*c, *ns, View::Health),
        [c, "namespaces", ns, "stack", r] if is_name(r) => (
            *c,
            *ns,
            View::Stack {
                release: r.to_string(),
            },
        ),
        _ => return Err(format!("unknown resource '{uri}': {usage}")),
    };
    if !is_name(context) || !is_name(namespace) {
        return Err(format!("bad resource '{uri}': {usage}"));
    }
    Ok(ResourceUri {
        context: (context != "-").then(|| context.to_string()),
        namespace: namespace.to_string(),
        view,
    })
}

impl ResourceUri {
    /// The tool call that renders this resource.
    fn call(&self, ctx: &Ctx) -> (&'static str, Value) {
        let (tool, mut args) = match &self.view {
            View::Health => ("diagnose", json!({"namespace": self.namespace})),
            View::Stack { release } => (
                "stack_status",
                json!({"namespace": self.namespace, "release": release}),
            ),
        };
        if let Some(c) = self.explicit_context(ctx) {
            args["context"] = json!(c);
        }
        (tool, args)
    }

    /// The context to pass to tools: None for `-` and for the default context's own name.
    fn explicit_context(&self, ctx: &Ctx) -> Option<String> {
        let c = self.context.as_ref()?;
        let is_default = ctx
            .clusters
            .contexts()
            .map(|l| l.iter().any(|i| i.default && &i.name == c))
            .unwrap_or(false);
        (!is_default).then(|| c.clone())
    }
}

/// Renders a resource through the registry (policy, redaction and caps apply).
pub async fn render(
    registry: &Registry,
    ctx: &Ctx,
    uri: &ResourceUri,
) -> Result<String, ToolError> {
    let (tool, args) = uri.call(ctx);
    registry.call(ctx, tool, args).await.map(|o| o.text)
}

/// A tool error as a protocol error for resources/read and resources/subscribe.
pub fn to_mcp_error(e: &ToolError) -> McpError {
    let msg = crate::policy::redact::redact_text(&e.to_string()).into_owned();
    match e {
        ToolError::NotFound { .. } => McpError::resource_not_found(msg, None),
        ToolError::InvalidInput { .. } | ToolError::Policy(_) | ToolError::Forbidden { .. } => {
            McpError::invalid_params(msg, None)
        }
        _ => McpError::internal_error(msg, None),
    }
}

/// The health resource URI of a namespace in the default context.
pub fn health_uri(namespace: &str) -> String {
    format!("k8s://-/namespaces/{namespace}/health")
}

/// The namespaces whose health `resources/list` shows: the allow-list, or the cluster's
/// namespaces (through `namespaces_list`, so the policy filters them), at most [`MAX_LISTED`].
pub async fn listed_namespaces(registry: &Registry, ctx: &Ctx) -> Vec<String> {
    if let Some(allowed) = ctx.policy.namespace_filter() {
        return allowed.iter().take(MAX_LISTED).cloned().collect();
    }
    match registry.call(ctx, "namespaces_list", json!({})).await {
        Ok(out) => out.structured["namespaces"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|n| n["name"].as_str().map(String::from))
                    .take(MAX_LISTED)
                    .collect()
            })
            .unwrap_or_default(),
        Err(e) => {
            tracing::warn!(error = %e, "resources/list: cannot list namespaces");
            vec![]
        }
    }
}

// ------------------------------------------------------------------ logging

fn rank(l: LoggingLevel) -> u8 {
    match l {
        LoggingLevel::Debug => 0,
        LoggingLevel::Info => 1,
        LoggingLevel::Notice => 2,
        LoggingLevel::Warning => 3,
        LoggingLevel::Error => 4,
        LoggingLevel::Critical => 5,
        LoggingLevel::Alert => 6,
        LoggingLevel::Emergency => 7,
    }
}

/// MCP logging for one session: nothing is sent until the client calls `logging/setLevel`,
/// then every message at or above that level.
#[derive(Clone, Default)]
pub struct McpLog {
    level: Arc<Mutex<Option<LoggingLevel>>>,
}

impl McpLog {
    pub fn set_level(&self, level: LoggingLevel) {
        *self.level.lock().unwrap_or_else(|e| e.into_inner()) = Some(level);
    }

    pub fn enabled(&self, level: LoggingLevel) -> bool {
        self.level
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some_and(|min| rank(level) >= rank(min))
    }

    /// Sends `notifications/message` if the client asked for this level.
    pub async fn send(
        &self,
        peer: &Peer<RoleServer>,
        level: LoggingLevel,
        logger: &str,
        data: Value,
    ) {
        if self.enabled(level) {
            let param = LoggingMessageNotificationParam::new(level, data).with_logger(logger);
            let _ = peer.notify_logging_message(param).await;
        }
    }
}

// ------------------------------------------------------------------ subscriptions

/// The subscriptions of one session: uri → its watch task. Dropping it (the session ended)
/// stops every watch.
#[derive(Default)]
pub struct Subscriptions {
    tasks: Mutex<HashMap<String, tokio::task::AbortHandle>>,
}

impl Drop for Subscriptions {
    fn drop(&mut self) {
        let tasks = self.tasks.get_mut().unwrap_or_else(|e| e.into_inner());
        for (_, t) in tasks.drain() {
            t.abort();
        }
    }
}

/// What a subscription's watch task needs.
pub struct Watch {
    pub registry: Arc<Registry>,
    pub ctx: Ctx,
    pub uri: String,
    pub parsed: ResourceUri,
    pub peer: Peer<RoleServer>,
    pub log: McpLog,
    /// Hash of the text the client saw when it subscribed.
    pub baseline: u64,
}

/// A hash of what a resource says, blind to relative ages ("12s", "5m ago", "back-off 40s"):
/// a namespace that stays as it is must not be reported as updated because time passed.
pub fn hash_text(text: &str) -> u64 {
    static AGE: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(r"\b\d+(?:\.\d+)?(?:ms|s|m|h|d)\b").expect("static pattern")
    });
    let mut h = DefaultHasher::new();
    AGE.replace_all(text, "~").hash(&mut h);
    h.finish()
}

impl Subscriptions {
    /// Starts watching `w.uri` unless already watched. Errors when the session holds
    /// [`MAX_SUBSCRIPTIONS`] already.
    pub fn start(&self, w: Watch) -> Result<(), String> {
        let mut tasks = self.tasks.lock().unwrap_or_else(|e| e.into_inner());
        tasks.retain(|_, t| !t.is_finished());
        if tasks.contains_key(&w.uri) {
            return Ok(());
        }
        if tasks.len() >= MAX_SUBSCRIPTIONS {
            return Err(format!(
                "this session already holds {MAX_SUBSCRIPTIONS} subscriptions (the most allowed); unsubscribe from one first"
            ));
        }
        let uri = w.uri.clone();
        let task = tokio::spawn(w.run());
        tasks.insert(uri, task.abort_handle());
        Ok(())
    }

    /// Stops watching `uri`; true if it was watched.
    pub fn stop(&self, uri: &str) -> bool {
        let mut tasks = self.tasks.lock().unwrap_or_else(|e| e.into_inner());
        tasks.remove(uri).map(|t| t.abort()).is_some()
    }

    pub fn len(&self) -> usize {
        let mut tasks = self.tasks.lock().unwrap_or_else(|e| e.into_inner());
        tasks.retain(|_, t| !t.is_finished());
        tasks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Changes of one kind in a namespace as a stream of "something changed" (Ok) or watch
/// failures (Err). The initial listing counts once, when it is complete.
fn changes<K>(api: Api<K>, what: &'static str) -> BoxStream<'static, Result<(), String>>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
    K::DynamicType: Default,
{
    metadata_watcher(api, watcher::Config::default())
        .default_backoff()
        .filter_map(move |ev| async move {
            match ev {
                Ok(watcher::Event::Init | watcher::Event::InitApply(_)) => None,
                Ok(_) => Some(Ok(())),
                Err(e) => Some(Err(format!("watch {what}: {e}"))),
            }
        })
        .boxed()
}

impl Watch {
    async fn warn(&self, error: &str) {
        tracing::warn!(uri = %self.uri, %error, "subscription watch failing");
        self.log
            .send(
                &self.peer,
                LoggingLevel::Warning,
                "aiops-mcp.subscriptions",
                json!({"event": "subscription watch failing", "uri": self.uri, "error": error}),
            )
            .await;
    }

    /// Watches the namespace's pods, deployments and events; after a change (debounced),
    /// re-renders the resource and notifies the client when the text differs from what it
    /// last had. Also re-renders every [`RECHECK`]. Ends when the client disconnects.
    async fn run(self) {
        let client = match self
            .ctx
            .clusters
            .client(self.parsed.explicit_context(&self.ctx).as_deref())
            .await
        {
            Ok(c) => c,
            Err(e) => {
                self.warn(&format!("no cluster client: {e}")).await;
                return;
            }
        };
        let ns = self.parsed.namespace.clone();
        let mut triggers = stream::select_all(vec![
            changes(Api::<Pod>::namespaced(client.clone(), &ns), "pods"),
            changes(
                Api::<Deployment>::namespaced(client.clone(), &ns),
                "deployments",
            ),
            changes(Api::<Event>::namespaced(client, &ns), "events"),
        ]);
        let mut last = self.baseline;
        let mut recheck = tokio::time::interval_at(Instant::now() + RECHECK, RECHECK);
        let mut closed = tokio::time::interval(CLOSED_CHECK);
        // (first change not yet rendered, latest change)
        let mut pending: Option<(Instant, Instant)> = None;
        let mut failing = false;
        loop {
            let due = pending.map(|(first, latest)| (latest + DEBOUNCE).min(first + MAX_DELAY));
            let debounce = async {
                match due {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                ev = triggers.next() => match ev {
                    Some(Ok(())) => {
                        failing = false;
                        let now = Instant::now();
                        pending = Some((pending.map_or(now, |(f, _)| f), now));
                    }
                    Some(Err(e)) => {
                        if !failing {
                            failing = true;
                            self.warn(&e).await;
                        }
                    }
                    None => {
                        self.warn("the watch ended; subscribe again").await;
                        return;
                    }
                },
                _ = recheck.tick() => {
                    let now = Instant::now();
                    pending = Some((pending.map_or(now, |(f, _)| f), now - DEBOUNCE));
                }
                _ = closed.tick() => {
                    if self.peer.is_transport_closed() {
                        return;
                    }
                }
                _ = debounce => {
                    pending = None;
                    let text = match render(&self.registry, &self.ctx, &self.parsed).await {
                        Ok(t) => t,
                        Err(e) => format!("error: {e}"),
                    };
                    let h = hash_text(&text);
                    if h != last {
                        last = h;
                        let sent = self
                            .peer
                            .notify_resource_updated(ResourceUpdatedNotificationParam::new(&self.uri))
                            .await;
                        if sent.is_err() {
                            return;
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_update_hash_ignores_ages_but_not_content() {
        use super::hash_text;
        let a = "CRITICAL Deployment x/api crash-looping since 12s, back-off 10s; event BackOff ×3 (last 5s ago)";
        let b = "CRITICAL Deployment x/api crash-looping since 3m, back-off 40s; event BackOff ×3 (last 1h ago)";
        assert_eq!(hash_text(a), hash_text(b));
        let c = b.replace("×3", "×4");
        assert_ne!(hash_text(b), hash_text(&c));
        assert_ne!(hash_text(a), hash_text(&a.replace("api", "web")));
        // Numbers that are not ages still count: ports, images.
        assert_ne!(hash_text("port 8000"), hash_text("port 8080"));
    }

    use super::*;

    #[test]
    fn uris_parse_with_default_and_named_contexts() {
        assert_eq!(
            parse("k8s://-/namespaces/todo-app/health").unwrap(),
            ResourceUri {
                context: None,
                namespace: "todo-app".into(),
                view: View::Health
            }
        );
        assert_eq!(
            parse("k8s://prod/namespaces/shop/stack/todo").unwrap(),
            ResourceUri {
                context: Some("prod".into()),
                namespace: "shop".into(),
                view: View::Stack {
                    release: "todo".into()
                }
            }
        );
        for bad in [
            "k8s://-/namespaces/shop",
            "k8s://-/namespaces//health",
            "k8s://-/namespaces/shop/health/x",
            "file:///etc/passwd",
            "k8s://-/namespaces/a b/health",
            "k8s://-/namespaces/shop/stack/",
        ] {
            let e = parse(bad).unwrap_err();
            assert!(e.contains(HEALTH_TEMPLATE), "{bad}: {e}");
        }
    }

    #[test]
    fn logging_is_off_until_a_level_is_set_then_filters_below_it() {
        let log = McpLog::default();
        assert!(!log.enabled(LoggingLevel::Emergency));
        log.set_level(LoggingLevel::Notice);
        assert!(log.enabled(LoggingLevel::Notice) && log.enabled(LoggingLevel::Warning));
        assert!(!log.enabled(LoggingLevel::Info));
    }
}
