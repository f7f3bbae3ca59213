//! Read tools: overview, contexts, namespaces, pods, any resource, events.

use std::collections::BTreeMap;

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Event, Namespace, Node, Pod};
use kube::api::{Api, ApiResource, DynamicObject, ListParams};
use kube::discovery::{ApiCapabilities, Scope};
use kube::Client;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::util::{
    age, check_name, check_namespace_name, close_matches, parse_duration, ToolError,
};
use super::{Common, Ctx, Effect, Render, Tool, ToolMeta};

pub(crate) async fn client(ctx: &Ctx, common: &Common) -> Result<Client, ToolError> {
    ctx.clusters
        .client(common.context.as_deref())
        .await
        .map_err(|e| ToolError::Unreachable {
            message: e.to_string(),
            hint: "contexts_list shows the contexts the server can use".into(),
        })
}

fn ts(t: &Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>) -> Option<Timestamp> {
    t.as_ref().map(|t| t.0)
}

/// A namespace that does not exist becomes NotFound naming the close ones.
pub(crate) async fn ensure_namespace(client: &Client, ns: &str) -> Result<(), ToolError> {
    check_namespace_name(ns)?;
    let api: Api<Namespace> = Api::all(client.clone());
    match api.get_opt(ns).await {
        Ok(Some(_)) => Ok(()),
        Ok(None) => {
            let names: Vec<String> = api
                .list(&ListParams::default())
                .await
                .map(|l| {
                    l.items
                        .into_iter()
                        .filter_map(|n| n.metadata.name)
                        .collect()
                })
                .unwrap_or_default();
            let close = close_matches(ns, names.iter().map(String::as_str));
            let hint = if close.is_empty() {
                "namespaces_list shows the namespaces".to_string()
            } else {
                format!("did you mean {}?", close.join(" or "))
            };
            Err(ToolError::not_found(
                format!("namespace '{ns}' does not exist"),
                hint,
            ))
        }
        // Without permission to read namespaces, let the real call speak.
        Err(kube::Error::Api(s)) if s.code == 403 => Ok(()),
        Err(e) => Err(ToolError::from_kube(e, &format!("get namespace {ns}"))),
    }
}

/// Lists `K` in one namespace (when nothing comes back, a namespace that does not exist is an
/// error naming the close ones) or in every namespace the policy allows. Returns the items and
/// the scope in words.
pub(crate) async fn list_scoped<K>(
    ctx: &Ctx,
    client: &Client,
    namespace: Option<&str>,
    lp: &ListParams,
    plural: &str,
) -> Result<(Vec<K>, String), ToolError>
where
    K: kube::Resource<Scope = kube::core::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
    K::DynamicType: Default,
{
    fold_scoped(
        ctx,
        client,
        namespace,
        lp,
        plural,
        PAGE,
        Vec::new(),
        |v, o| v.push(o),
    )
    .await
}

/// Objects per list request: the API server's chunking, as `kubectl get` does (500), so that
/// a large list is never held whole — [`fold_scoped`] folds a page before fetching the next.
pub const PAGE: u32 = 500;

/// [`list_scoped`] without holding the list: every object (in the namespace, or in every
/// namespace the policy allows) is folded into `acc`, `page` objects per request (a `limit` in
/// `lp` means one request of that size). Returns the accumulator and the scope in words.
#[allow(clippy::too_many_arguments)]
pub async fn fold_scoped<K, A>(
    ctx: &Ctx,
    client: &Client,
    namespace: Option<&str>,
    lp: &ListParams,
    plural: &str,
    page_size: u32,
    mut acc: A,
    mut f: impl FnMut(&mut A, K),
) -> Result<(A, String), ToolError>
where
    K: kube::Resource<Scope = kube::core::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
    K::DynamicType: Default,
{
    if let Some(ns) = namespace {
        check_namespace_name(ns)?;
    }
    let (api, scope) = match namespace {
        Some(ns) => (
            Api::<K>::namespaced(client.clone(), ns),
            format!("namespace {ns}"),
        ),
        None => (Api::<K>::all(client.clone()), "all namespaces".to_string()),
    };
    let what = match namespace {
        Some(ns) => format!("list {plural} in namespace {ns}"),
        None => format!("list {plural} in all namespaces"),
    };
    let mut page = lp.clone();
    if page.limit.is_none() {
        page.limit = Some(page_size.max(1));
    }
    let mut seen = 0usize;
    loop {
        let list = api
            .list(&page)
            .await
            .map_err(|e| ToolError::from_kube(e, &what))?;
        let next = list.metadata.continue_.clone().filter(|c| !c.is_empty());
        for o in list.items {
            if namespace.is_none()
                && !ctx
                    .policy
                    .namespace_allowed(o.meta().namespace.as_deref().unwrap_or_default())
            {
                continue;
            }
            seen += 1;
            f(&mut acc, o);
        }
        // A caller's own `limit` means one page.
        match next {
            Some(c) if lp.limit.is_none() => page.continue_token = Some(c),
            _ => break,
        }
    }
    if seen == 0 {
        if let Some(ns) = namespace {
            ensure_namespace(client, ns).await?;
        }
    }
    Ok((acc, scope))
}

// ------------------------------------------------------------------ pod status, kubectl-style

/// One pod's status the way `kubectl get pods` shows it.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct PodRow {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub name: String,
    /// STATUS column: Running, CrashLoopBackOff, Init:0/1, Pending, ImagePullBackOff, …
    pub status: String,
    /// Ready containers / all containers.
    pub ready: String,
    pub restarts: i32,
    pub age: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// Owning workload, e.g. `Deployment/backend`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// Last termination of a container: reason, exit code, when.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_termination: Option<String>,
    /// Waiting/condition message, shortened.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// A failed container exit this recent keeps a pod unhealthy even while it is Running.
const RECENT_FAILURE_SECS: i64 = 600;

/// (status text, healthy?) like kubectl's printer.
pub fn pod_status(p: &Pod) -> (String, bool) {
    pod_status_at(p, Timestamp::now())
}

/// [`pod_status`] as seen at `now` (a failed exit within 10 minutes of `now` is recent).
pub(crate) fn pod_status_at(p: &Pod, now: Timestamp) -> (String, bool) {
    let st = p.status.clone().unwrap_or_default();
    let phase = st.phase.clone().unwrap_or_else(|| "Unknown".into());
    let mut reason = st.reason.clone().unwrap_or_else(|| phase.clone());
    let mut initializing = false;
    let inits = st.init_container_statuses.clone().unwrap_or_default();
    for (i, c) in inits.iter().enumerate() {
        let state = c.state.clone().unwrap_or_default();
        if let Some(t) = &state.terminated {
            if t.exit_code == 0 {
                continue;
            }
            reason = format!(
                "Init:{}",
                t.reason
                    .clone()
                    .unwrap_or_else(|| format!("ExitCode:{}", t.exit_code))
            );
            initializing = true;
        } else if let Some(w) = state
            .waiting
            .as_ref()
            .and_then(|w| w.reason.clone())
            .filter(|r| r != "PodInitializing")
        {
            reason = format!("Init:{w}");
            initializing = true;
        } else {
            reason = format!("Init:{}/{}", i, inits.len());
            initializing = true;
        }
        break;
    }
    if !initializing {
        let mut has_running = false;
        for c in st
            .container_statuses
            .clone()
            .unwrap_or_default()
            .iter()
            .rev()
        {
            let state = c.state.clone().unwrap_or_default();
            if let Some(w) = state.waiting.as_ref().and_then(|w| w.reason.clone()) {
                reason = w;
            } else if let Some(t) = &state.terminated {
                reason = t
                    .reason
                    .clone()
                    .unwrap_or_else(|| format!("ExitCode:{}", t.exit_code));
            } else if state.running.is_some() && c.ready {
                has_running = true;
            }
        }
        if reason == "Completed" && has_running {
            reason = "Running".into();
        }
    }
    if p.metadata.deletion_timestamp.is_some() {
        reason = "Terminating".into();
    }
    let all_ready = st
        .container_statuses
        .as_ref()
        .is_some_and(|cs| !cs.is_empty() && cs.iter().all(|c| c.ready));
    // A crash-looping container is Running for a moment between restarts: a failed exit in the
    // last 10 minutes still makes the pod unhealthy. One old restart on a stable pod does not.
    let recent_failure = st.container_statuses.iter().flatten().any(|c| {
        c.last_state
            .as_ref()
            .and_then(|l| l.terminated.as_ref())
            .is_some_and(|t| {
                let failed = t.exit_code != 0 || t.reason.as_deref() == Some("OOMKilled");
                let recent = ts(&t.finished_at)
                    .is_none_or(|f| now.duration_since(f).as_secs() < RECENT_FAILURE_SECS);
                failed && recent
            })
    });
    let healthy = (phase == "Running" && reason == "Running" && all_ready && !recent_failure)
        || phase == "Succeeded";
    (reason, healthy)
}

fn owner(p: &Pod) -> Option<String> {
    let o = p
        .metadata
        .owner_references
        .as_ref()?
        .iter()
        .find(|o| o.controller == Some(true))?;
    if o.kind == "ReplicaSet" {
        if let Some(hash) = p
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get("pod-template-hash"))
        {
            if let Some(dep) = o.name.strip_suffix(&format!("-{hash}")) {
                return Some(format!("Deployment/{dep}"));
            }
        }
    }
    Some(format!("{}/{}", o.kind, o.name))
}

fn shorten(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(n).collect::<String>())
    }
}

pub fn pod_row(p: &Pod, now: Timestamp, with_ns: bool) -> PodRow {
    let (status, _) = pod_status(p);
    let st = p.status.clone().unwrap_or_default();
    let cs = st.container_statuses.clone().unwrap_or_default();
    let ready = cs.iter().filter(|c| c.ready).count();
    let total = p.spec.as_ref().map_or(cs.len(), |s| s.containers.len());
    let restarts = cs.iter().map(|c| c.restart_count).sum::<i32>()
        + st.init_container_statuses
            .iter()
            .flatten()
            .map(|c| c.restart_count)
            .sum::<i32>();
    let last_termination = st
        .init_container_statuses
        .iter()
        .flatten()
        .chain(cs.iter())
        .find_map(|c| {
            let t = c.last_state.as_ref()?.terminated.as_ref()?;
            let when = age(ts(&t.finished_at), now);
            Some(format!(
                "{}: {} exit {} ({} ago)",
                c.name,
                t.reason.clone().unwrap_or_default(),
                t.exit_code,
                when
            ))
        });
    let message = st
        .init_container_statuses
        .iter()
        .flatten()
        .chain(cs.iter())
        .find_map(|c| c.state.as_ref()?.waiting.as_ref()?.message.clone())
        .or_else(|| {
            st.conditions
                .iter()
                .flatten()
                .find(|c| c.type_ == "PodScheduled" && c.status == "False")
                .and_then(|c| c.message.clone())
        })
        .or(st.message.clone())
        .filter(|m| !m.starts_with("back-off "))
        .map(|m| shorten(&m, 160));
    PodRow {
        namespace: with_ns.then(|| p.metadata.namespace.clone().unwrap_or_default()),
        name: p.metadata.name.clone().unwrap_or_default(),
        status,
        ready: format!("{ready}/{total}"),
        restarts,
        age: age(ts(&p.metadata.creation_timestamp), now),
        node: p.spec.as_ref().and_then(|s| s.node_name.clone()),
        owner: owner(p),
        last_termination,
        message,
    }
}

// ------------------------------------------------------------------ pods_list

/// Lists pods health-first: counts by status, then every unhealthy pod with its reason, restarts,
/// age, node, owner and last termination. Healthy pods are only counted unless `show_healthy`.
/// Example: {"namespace": "todo-app"} or {"label_selector": "app=backend", "namespace": "todo-app"}.
pub struct PodsList;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PodsListParams {
    #[serde(flatten)]
    pub common: Common,
    /// Namespace to list; omit for all namespaces the server may see.
    #[serde(default)]
    pub namespace: Option<String>,
    /// Label selector, e.g. `app=backend,tier!=cache`.
    #[serde(default)]
    pub label_selector: Option<String>,
    /// Field selector, e.g. `spec.nodeName=node-1` or `status.phase=Pending`.
    #[serde(default)]
    pub field_selector: Option<String>,
    /// Also list healthy pods (default false: they are only counted).
    #[serde(default)]
    pub show_healthy: bool,
    /// Most pods to list (default 50).
    #[serde(default)]
    pub limit: Option<usize>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct PodsListOutput {
    /// What was listed, e.g. `namespace todo-app`.
    pub scope: String,
    pub total: usize,
    /// Pods per STATUS.
    pub by_status: BTreeMap<String, usize>,
    pub unhealthy: Vec<PodRow>,
    pub healthy_count: usize,
    /// Healthy pods (only with show_healthy).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub healthy: Vec<PodRow>,
    /// Pods not listed because of `limit`.
    pub not_shown: usize,
}

impl Tool for PodsList {
    type Params = PodsListParams;
    type Output = PodsListOutput;
    const META: ToolMeta = ToolMeta {
        name: "pods_list",
        title: "List pods (unhealthy first)",
        description: "List pods health-first: counts by status, every unhealthy pod (CrashLoopBackOff, Pending, ImagePullBackOff, not ready, …) with reason, restarts, age, node, owning workload and last termination; healthy pods are counted, listed only with show_healthy. Omit namespace for all namespaces.",
        effect: Effect::Read,
        idempotent: true,
    };

    async fn call(&self, ctx: &Ctx, p: PodsListParams) -> Result<PodsListOutput, ToolError> {
        let client = client(ctx, &p.common).await?;
        let mut lp = ListParams::default();
        if let Some(l) = &p.label_selector {
            lp = lp.labels(l);
        }
        if let Some(f) = &p.field_selector {
            lp = lp.fields(f);
        }
        let now = Timestamp::now();
        let with_ns = p.namespace.is_none();
        let limit = p.limit.unwrap_or(50).max(1);
        // Folded page by page: only rows are kept, never the whole list of pods.
        #[derive(Default)]
        struct Acc {
            total: usize,
            by_status: BTreeMap<String, usize>,
            unhealthy: Vec<PodRow>,
            healthy_count: usize,
            healthy: Vec<PodRow>,
        }
        let (acc, scope) = fold_scoped::<Pod, _>(
            ctx,
            &client,
            p.namespace.as_deref(),
            &lp,
            "pods",
            PAGE,
            Acc::default(),
            |a, pod| {
                let (status, ok) = pod_status(&pod);
                a.total += 1;
                *a.by_status.entry(status).or_insert(0) += 1;
                if !ok {
                    a.unhealthy.push(pod_row(&pod, now, with_ns));
                } else {
                    a.healthy_count += 1;
                    if p.show_healthy && a.healthy.len() < limit {
                        a.healthy.push(pod_row(&pod, now, with_ns));
                    }
                }
            },
        )
        .await?;
        let scope = match (&p.label_selector, &p.field_selector) {
            (Some(l), _) => format!("{scope}, selector {l}"),
            (_, Some(f)) => format!("{scope}, fields {f}"),
            _ => scope,
        };
        let Acc {
            total,
            by_status,
            mut unhealthy,
            healthy_count,
            mut healthy,
        } = acc;
        // Worst first: most restarts, then oldest.
        unhealthy.sort_by(|a, b| b.restarts.cmp(&a.restarts).then(a.name.cmp(&b.name)));
        let mut not_shown = unhealthy.len().saturating_sub(limit);
        unhealthy.truncate(limit);
        let room = limit.saturating_sub(unhealthy.len());
        if p.show_healthy {
            not_shown += healthy_count.saturating_sub(room);
        }
        healthy.truncate(room);
        Ok(PodsListOutput {
            scope,
            total,
            by_status,
            unhealthy,
            healthy_count,
            healthy,
            not_shown,
        })
    }
}

fn row_line(r: &PodRow) -> String {
    let mut s = String::from("  ");
    if let Some(ns) = &r.namespace {
        s.push_str(ns);
        s.push('/');
    }
    s.push_str(&format!(
        "{} {} ready={} restarts={} age={}",
        r.name, r.status, r.ready, r.restarts, r.age
    ));
    if let Some(n) = &r.node {
        s.push_str(&format!(" node={n}"));
    }
    if let Some(o) = &r.owner {
        s.push_str(&format!(" owner={o}"));
    }
    if let Some(t) = &r.last_termination {
        s.push_str(&format!(" last={t}"));
    }
    if let Some(m) = &r.message {
        s.push_str(&format!(" msg=\"{m}\""));
    }
    s.push('\n');
    s
}

/// Unhealthy pods grouped by owner and status: what they share once, then one short line per pod.
fn render_unhealthy(rows: &[PodRow]) -> String {
    // Group by owning workload: a crash-looping Deployment is one problem, whatever moment of
    // the back-off cycle each of its pods is in.
    let mut groups: Vec<(String, Vec<&PodRow>)> = vec![];
    for r in rows {
        let ns = r
            .namespace
            .as_ref()
            .map(|n| format!("{n}/"))
            .unwrap_or_default();
        let key = format!(
            "{ns}{}",
            r.owner.clone().unwrap_or_else(|| "(no owner)".into())
        );
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, g)) => g.push(r),
            None => groups.push((key, vec![r])),
        }
    }
    let mut s = String::new();
    for (key, g) in groups {
        if g.len() == 1 {
            s.push_str(&row_line(g[0]));
            continue;
        }
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        g.iter()
            .for_each(|r| *counts.entry(r.status.as_str()).or_insert(0) += 1);
        let counts: Vec<String> = counts.iter().map(|(k, v)| format!("{v} {k}")).collect();
        s.push_str(&format!("  {key} x{} ({})", g.len(), counts.join(", ")));
        // What the pods share: the kind of last termination (without its time) and the message.
        let last = g[0]
            .last_termination
            .as_ref()
            .map(|t| t.split(" (").next().unwrap_or(t).to_string());
        if let Some(t) = last.filter(|t| {
            g.iter().all(|r| {
                r.last_termination
                    .as_deref()
                    .is_some_and(|x| x.starts_with(t.as_str()))
            })
        }) {
            s.push_str(&format!(" last={t}"));
        }
        if let Some(m) = g[0]
            .message
            .as_ref()
            .filter(|m| g.iter().all(|r| r.message.as_ref() == Some(*m)))
        {
            s.push_str(&format!(" msg=\"{m}\""));
        }
        s.push_str(":\n");
        for r in g {
            let node = r
                .node
                .as_ref()
                .map(|n| format!(" node={n}"))
                .unwrap_or_default();
            s.push_str(&format!(
                "    {} {} ready={} restarts={} age={}{node}\n",
                r.name, r.status, r.ready, r.restarts, r.age
            ));
        }
    }
    s
}

impl Render for PodsListOutput {
    fn render(&self) -> String {
        let counts: Vec<String> = self
            .by_status
            .iter()
            .map(|(k, v)| format!("{v} {k}"))
            .collect();
        let mut s = format!("{} pods in {}", self.total, self.scope);
        if !counts.is_empty() {
            s.push_str(&format!(": {}", counts.join(", ")));
        }
        s.push('\n');
        if !self.unhealthy.is_empty() {
            s.push_str(&format!("Unhealthy ({}):\n", self.unhealthy.len()));
            s.push_str(&render_unhealthy(&self.unhealthy));
        } else if self.total > 0 {
            s.push_str("All pods healthy.\n");
        }
        if !self.healthy.is_empty() {
            s.push_str(&format!("Healthy ({}):\n", self.healthy.len()));
            self.healthy.iter().for_each(|r| s.push_str(&row_line(r)));
        } else if self.healthy_count > 0 {
            s.push_str(&format!(
                "{} healthy pods not listed (pass show_healthy=true to list them).\n",
                self.healthy_count
            ));
        }
        if self.not_shown > 0 {
            s.push_str(&format!(
                "{} more not shown — pass a larger limit or a selector.\n",
                self.not_shown
            ));
        }
        s
    }
}

// ------------------------------------------------------------------ contexts_list

/// Lists the kubeconfig contexts the server can use (name, API server URL, default namespace),
/// never credentials. Pass a context's name as `context` to any tool.
pub struct ContextsList;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NoParams {
    #[serde(flatten)]
    pub common: Common,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct ContextsOutput {
    pub contexts: Vec<crate::cluster::ContextInfo>,
}

impl Tool for ContextsList {
    type Params = NoParams;
    type Output = ContextsOutput;
    const META: ToolMeta = ToolMeta {
        name: "contexts_list",
        title: "List kubeconfig contexts",
        description: "List the kubeconfig contexts (clusters) the server can use: name, API server URL, default namespace, which one is the default. Pass a name as `context` to any tool. Never shows credentials.",
        effect: Effect::Read,
        idempotent: true,
    };

    async fn call(&self, ctx: &Ctx, _p: NoParams) -> Result<ContextsOutput, ToolError> {
        let contexts = ctx
            .clusters
            .contexts()
            .map_err(|e| ToolError::Unreachable {
                message: e.to_string(),
                hint: "pass --kubeconfig or set KUBECONFIG".into(),
            })?;
        Ok(ContextsOutput { contexts })
    }
}

impl Render for ContextsOutput {
    fn render(&self) -> String {
        let mut s = format!("{} contexts:\n", self.contexts.len());
        for c in &self.contexts {
            s.push_str(&format!(
                "  {}{} server={}{}\n",
                if c.default { "* " } else { "" },
                c.name,
                c.server,
                c.namespace
                    .as_ref()
                    .map(|n| format!(" namespace={n}"))
                    .unwrap_or_default()
            ));
        }
        s
    }
}

// ------------------------------------------------------------------ namespaces_list

/// Lists namespaces with their phase and age (only those the server's policy allows).
pub struct NamespacesList;

#[derive(Debug, Serialize, JsonSchema)]
pub struct NamespaceRow {
    pub name: String,
    pub status: String,
    pub age: String,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct NamespacesOutput {
    pub namespaces: Vec<NamespaceRow>,
}

impl Tool for NamespacesList {
    type Params = NoParams;
    type Output = NamespacesOutput;
    const META: ToolMeta = ToolMeta {
        name: "namespaces_list",
        title: "List namespaces",
        description: "List namespaces with phase (Active/Terminating) and age.",
        effect: Effect::Read,
        idempotent: true,
    };

    async fn call(&self, ctx: &Ctx, p: NoParams) -> Result<NamespacesOutput, ToolError> {
        let client = client(ctx, &p.common).await?;
        let now = Timestamp::now();
        let list = Api::<Namespace>::all(client)
            .list(&ListParams::default())
            .await
            .map_err(|e| ToolError::from_kube(e, "list namespaces"))?;
        let namespaces = list
            .items
            .into_iter()
            .filter(|n| {
                ctx.policy
                    .namespace_allowed(n.metadata.name.as_deref().unwrap_or_default())
            })
            .map(|n| NamespaceRow {
                age: age(ts(&n.metadata.creation_timestamp), now),
                status: n.status.and_then(|s| s.phase).unwrap_or_default(),
                name: n.metadata.name.unwrap_or_default(),
            })
            .collect();
        Ok(NamespacesOutput { namespaces })
    }
}

impl Render for NamespacesOutput {
    fn render(&self) -> String {
        let mut s = format!("{} namespaces:\n", self.namespaces.len());
        for n in &self.namespaces {
            s.push_str(&format!("  {} {} age={}\n", n.name, n.status, n.age));
        }
        s
    }
}

// ------------------------------------------------------------------ cluster_overview

/// The first call to make: server version, nodes (ready/total, pressure), and one health line
/// per namespace (pods, unhealthy pods, deployments ready). Then call `pods_list` or `diagnose`
/// on what looks wrong.
pub struct ClusterOverview;

#[derive(Debug, Serialize, JsonSchema)]
pub struct NodeSummary {
    pub name: String,
    pub ready: bool,
    /// Conditions other than Ready that are True (MemoryPressure, DiskPressure, PIDPressure, …).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unschedulable: bool,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct NamespaceHealth {
    pub namespace: String,
    pub pods: usize,
    pub unhealthy_pods: usize,
    pub deployments: usize,
    pub deployments_ready: usize,
    /// One line: `ok` or what is wrong.
    pub summary: String,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct OverviewOutput {
    pub server_version: String,
    pub nodes_ready: usize,
    pub nodes_total: usize,
    pub nodes: Vec<NodeSummary>,
    pub namespaces: Vec<NamespaceHealth>,
    /// Parts of the cluster the server's identity could not read.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub blind_spots: Vec<String>,
}

impl Tool for ClusterOverview {
    type Params = NoParams;
    type Output = OverviewOutput;
    const META: ToolMeta = ToolMeta {
        name: "cluster_overview",
        title: "Cluster overview",
        description: "Start here: Kubernetes version, nodes ready/total with pressure conditions, and a one-line health summary per namespace (pods, unhealthy pods, deployments ready). Follow up with pods_list or events_list on namespaces that are not ok.",
        effect: Effect::Read,
        idempotent: true,
    };

    async fn call(&self, ctx: &Ctx, p: NoParams) -> Result<OverviewOutput, ToolError> {
        let client = client(ctx, &p.common).await?;
        let lp = ListParams::default();
        let (node_api, ns_api, pod_api, dep_api) = (
            Api::<Node>::all(client.clone()),
            Api::<Namespace>::all(client.clone()),
            Api::<Pod>::all(client.clone()),
            Api::<Deployment>::all(client.clone()),
        );
        let (version, nodes, namespaces, pods, deps) = tokio::join!(
            client.apiserver_version(),
            node_api.list(&lp),
            ns_api.list(&lp),
            pod_api.list(&lp),
            dep_api.list(&lp)
        );
        let version = version.map_err(|e| ToolError::from_kube(e, "get server version"))?;
        let mut blind_spots = vec![];
        let mut blind = |what: &str, e: kube::Error| {
            blind_spots.push(format!("{what}: {}", ToolError::from_kube(e, what)));
        };
        let nodes = nodes.map(|l| l.items).unwrap_or_else(|e| {
            blind("nodes", e);
            vec![]
        });
        let ns_names: Vec<String> = namespaces
            .map(|l| {
                l.items
                    .into_iter()
                    .filter_map(|n| n.metadata.name)
                    .collect()
            })
            .unwrap_or_else(|e| {
                blind("namespaces", e);
                vec![]
            });
        let pods = pods.map(|l| l.items).unwrap_or_else(|e| {
            blind("pods", e);
            vec![]
        });
        let deps = deps.map(|l| l.items).unwrap_or_else(|e| {
            blind("deployments", e);
            vec![]
        });
        let node_rows: Vec<NodeSummary> = nodes
            .iter()
            .map(|n| {
                let conds = n
                    .status
                    .as_ref()
                    .and_then(|s| s.conditions.clone())
                    .unwrap_or_default();
                NodeSummary {
                    name: n.metadata.name.clone().unwrap_or_default(),
                    ready: conds
                        .iter()
                        .any(|c| c.type_ == "Ready" && c.status == "True"),
                    problems: conds
                        .iter()
                        .filter(|c| c.type_ != "Ready" && c.status != "False")
                        .map(|c| format!("{}={}", c.type_, c.status))
                        .collect(),
                    unschedulable: n
                        .spec
                        .as_ref()
                        .and_then(|s| s.unschedulable)
                        .unwrap_or(false),
                }
            })
            .collect();
        let mut per_ns: BTreeMap<String, NamespaceHealth> = ns_names
            .iter()
            .chain(pods.iter().filter_map(|p| p.metadata.namespace.as_ref()))
            .filter(|n| ctx.policy.namespace_allowed(n))
            .map(|n| {
                (
                    n.clone(),
                    NamespaceHealth {
                        namespace: n.clone(),
                        pods: 0,
                        unhealthy_pods: 0,
                        deployments: 0,
                        deployments_ready: 0,
                        summary: String::new(),
                    },
                )
            })
            .collect();
        let mut problems: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for p in &pods {
            let ns = p.metadata.namespace.clone().unwrap_or_default();
            let Some(h) = per_ns.get_mut(&ns) else {
                continue;
            };
            h.pods += 1;
            let (status, ok) = pod_status(p);
            if !ok {
                h.unhealthy_pods += 1;
                problems.entry(ns).or_default().push(status);
            }
        }
        let mut unready_deps: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for d in &deps {
            let ns = d.metadata.namespace.clone().unwrap_or_default();
            let Some(h) = per_ns.get_mut(&ns) else {
                continue;
            };
            h.deployments += 1;
            let want = d.spec.replicas.unwrap_or(1);
            let st = d.status.clone().unwrap_or_default();
            let avail = st.available_replicas.unwrap_or(0);
            if avail >= want && st.unavailable_replicas.unwrap_or(0) == 0 {
                h.deployments_ready += 1;
            } else {
                unready_deps.entry(ns).or_default().push(format!(
                    "{} {}/{}",
                    d.metadata.name.clone().unwrap_or_default(),
                    avail,
                    want
                ));
            }
        }
        for (ns, h) in per_ns.iter_mut() {
            let mut parts = vec![];
            if let Some(st) = problems.get(ns) {
                let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
                st.iter()
                    .for_each(|s| *counts.entry(s.as_str()).or_insert(0) += 1);
                let c: Vec<String> = counts.iter().map(|(k, v)| format!("{v} {k}")).collect();
                parts.push(format!("unhealthy pods: {}", c.join(", ")));
            }
            if let Some(d) = unready_deps.get(ns) {
                parts.push(format!("deployments not available: {}", d.join(", ")));
            }
            h.summary = if parts.is_empty() {
                format!("ok ({} pods, {} deployments)", h.pods, h.deployments)
            } else {
                parts.join("; ")
            };
        }
        Ok(OverviewOutput {
            server_version: version.git_version,
            nodes_ready: node_rows.iter().filter(|n| n.ready).count(),
            nodes_total: node_rows.len(),
            nodes: node_rows,
            namespaces: per_ns.into_values().collect(),
            blind_spots,
        })
    }
}

impl Render for OverviewOutput {
    fn render(&self) -> String {
        let mut s = format!(
            "Kubernetes {}; nodes ready {}/{}\n",
            self.server_version, self.nodes_ready, self.nodes_total
        );
        for n in self
            .nodes
            .iter()
            .filter(|n| !n.ready || !n.problems.is_empty() || n.unschedulable)
        {
            s.push_str(&format!(
                "  node {}: ready={} {}{}\n",
                n.name,
                n.ready,
                n.problems.join(" "),
                if n.unschedulable { " cordoned" } else { "" }
            ));
        }
        let (bad, good): (Vec<_>, Vec<_>) = self
            .namespaces
            .iter()
            .partition(|n| !n.summary.starts_with("ok"));
        for n in &bad {
            s.push_str(&format!("  {}: {}\n", n.namespace, n.summary));
        }
        if !good.is_empty() {
            s.push_str(&format!(
                "  ok: {}\n",
                good.iter()
                    .map(|n| n.namespace.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        for b in &self.blind_spots {
            s.push_str(&format!("  blind spot: {b}\n"));
        }
        s
    }
}

// ------------------------------------------------------------------ kind resolution

/// Common short names (discovery on old servers does not always carry them).
const SHORT_NAMES: &[(&str, &str)] = &[
    ("po", "pods"),
    ("svc", "services"),
    ("deploy", "deployments"),
    ("rs", "replicasets"),
    ("sts", "statefulsets"),
    ("ds", "daemonsets"),
    ("cm", "configmaps"),
    ("ns", "namespaces"),
    ("no", "nodes"),
    ("pvc", "persistentvolumeclaims"),
    ("pv", "persistentvolumes"),
    ("sa", "serviceaccounts"),
    ("ing", "ingresses"),
    ("hpa", "horizontalpodautoscalers"),
    ("ep", "endpoints"),
    ("ev", "events"),
    ("cj", "cronjobs"),
    ("netpol", "networkpolicies"),
    ("sc", "storageclasses"),
    ("crd", "customresourcedefinitions"),
    ("pdb", "poddisruptionbudgets"),
    ("quota", "resourcequotas"),
    ("limits", "limitranges"),
];

/// Finds a kind by Kind, plural, singular or short name (any case), optionally pinned to an apiVersion.
pub(crate) async fn resolve_kind(
    ctx: &Ctx,
    common: &Common,
    kind: &str,
    api_version: Option<&str>,
) -> Result<(ApiResource, ApiCapabilities), ToolError> {
    let disc = ctx
        .clusters
        .discovery(common.context.as_deref())
        .await
        .map_err(|e| ToolError::from_kube(e, "API discovery"))?;
    let want = kind.to_lowercase();
    let want = SHORT_NAMES
        .iter()
        .find(|(s, _)| *s == want)
        .map_or(want.clone(), |(_, p)| p.to_string());
    let mut found: Vec<(ApiResource, ApiCapabilities)> = vec![];
    let mut all_names = vec![];
    for group in disc.groups() {
        // Preferred version first, then others: a kind is matched once per group.
        for (ar, caps) in group.recommended_resources() {
            all_names.push(ar.kind.clone());
            let matches = ar.kind.to_lowercase() == want
                || ar.plural == want
                || ar.plural.trim_end_matches('s') == want;
            let version_ok = api_version.is_none_or(|v| v == ar.api_version || v == ar.group);
            if matches && version_ok {
                found.push((ar, caps));
            }
        }
        if let Some(v) = api_version {
            // An explicit non-preferred version.
            for ver in group.versions() {
                if found.is_empty()
                    && (format!("{}/{}", group.name(), ver) == v
                        || (group.name().is_empty() && ver == v))
                {
                    for (ar, caps) in group.versioned_resources(ver) {
                        if ar.kind.to_lowercase() == want || ar.plural == want {
                            found.push((ar, caps));
                        }
                    }
                }
            }
        }
    }
    // Core and apps first when a name exists in several groups (e.g. events, ingresses).
    found.sort_by_key(|(ar, _)| match ar.group.as_str() {
        "" => 0,
        "apps" => 1,
        "networking.k8s.io" => 2,
        "batch" => 3,
        _ => 9,
    });
    match found.into_iter().next() {
        Some(x) => Ok(x),
        None => {
            all_names.sort();
            all_names.dedup();
            let close = close_matches(kind, all_names.iter().map(String::as_str));
            let mut hint = if close.is_empty() {
                "resources_list accepts Kind (Deployment), plural (deployments) or short name (deploy)".to_string()
            } else {
                format!("did you mean {}?", close.join(" or "))
            };
            if !disc.unavailable.is_empty() {
                hint.push_str(&format!(
                    " (API groups that did not answer discovery just now: {})",
                    disc.unavailable.join(", ")
                ));
            }
            let what = match api_version {
                Some(v) => {
                    format!("kind '{kind}' in apiVersion '{v}' is not served by this cluster")
                }
                None => format!("kind '{kind}' is not served by this cluster"),
            };
            Err(ToolError::not_found(what, hint))
        }
    }
}

pub(crate) fn dyn_api(
    client: Client,
    ar: &ApiResource,
    caps: &ApiCapabilities,
    namespace: Option<&str>,
) -> Api<DynamicObject> {
    match (caps.scope.clone(), namespace) {
        (Scope::Namespaced, Some(ns)) => Api::namespaced_with(client, ns, ar),
        _ => Api::all_with(client, ar),
    }
}

// ------------------------------------------------------------------ resources_list

/// Lists any kind (Deployment, svc, ingresses, a CRD kind, …) with compact columns: name,
/// namespace, age and a status summary (ready replicas, phase, type/ports, keys).
/// Example: {"kind": "deploy", "namespace": "todo-app"}.
pub struct ResourcesList;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ResourcesListParams {
    #[serde(flatten)]
    pub common: Common,
    /// Kind, plural or short name: `Deployment`, `deployments`, `deploy`, `ingress`, a CRD kind.
    pub kind: String,
    /// apiVersion to pin when a kind exists in several groups, e.g. `networking.k8s.io/v1`.
    #[serde(default)]
    pub api_version: Option<String>,
    /// Namespace; omit for all namespaces (ignored for cluster-scoped kinds).
    #[serde(default)]
    pub namespace: Option<String>,
    /// Label selector, e.g. `app.kubernetes.io/name=todo`.
    #[serde(default)]
    pub label_selector: Option<String>,
    /// Field selector, e.g. `metadata.name=backend`.
    #[serde(default)]
    pub field_selector: Option<String>,
    /// Most items to return (default 100).
    #[serde(default)]
    pub limit: Option<u32>,
    /// Continue token from a previous call's `continue`.
    #[serde(default, rename = "continue")]
    pub continue_token: Option<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct ResourceRow {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub name: String,
    pub age: String,
    /// Kind-specific summary: `ready 2/2`, `Running`, `ClusterIP 10.96.0.10 80/TCP`, `3 keys`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub summary: String,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct ResourcesListOutput {
    pub kind: String,
    pub api_version: String,
    pub items: Vec<ResourceRow>,
    /// Pass as `continue` to get the next page.
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "continue")]
    pub continue_token: Option<String>,
    /// Items left after this page, when the server says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remaining: Option<i64>,
}

fn summary(kind: &str, v: &Value) -> String {
    let s = |p: &str| {
        v.pointer(p)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let n = |p: &str| v.pointer(p).and_then(Value::as_i64);
    match kind {
        "Deployment" | "StatefulSet" | "ReplicaSet" => {
            format!(
                "ready {}/{}",
                n("/status/readyReplicas").unwrap_or(0),
                n("/spec/replicas").unwrap_or(1)
            )
        }
        "DaemonSet" => format!(
            "ready {}/{}",
            n("/status/numberReady").unwrap_or(0),
            n("/status/desiredNumberScheduled").unwrap_or(0)
        ),
        "Pod" => {
            let pod: Result<Pod, _> = serde_json::from_value(v.clone());
            pod.map(|p| pod_status(&p).0).unwrap_or_default()
        }
        "Service" => {
            let ports: Vec<String> = v
                .pointer("/spec/ports")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(|p| format!("{}/{}", p["port"], p["protocol"].as_str().unwrap_or("TCP")))
                .collect();
            format!(
                "{} {} {}",
                s("/spec/type"),
                s("/spec/clusterIP"),
                ports.join(",")
            )
        }
        "ConfigMap" | "Secret" => {
            let keys = ["/data", "/binaryData", "/stringData"]
                .iter()
                .filter_map(|p| v.pointer(p).and_then(Value::as_object))
                .map(|o| o.len())
                .sum::<usize>();
            format!("{keys} keys")
        }
        "Job" => format!(
            "succeeded {} failed {}",
            n("/status/succeeded").unwrap_or(0),
            n("/status/failed").unwrap_or(0)
        ),
        "PersistentVolumeClaim" | "PersistentVolume" | "Namespace" => s("/status/phase"),
        "Ingress" => {
            let hosts: Vec<String> = v
                .pointer("/spec/rules")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|r| r["host"].as_str().map(str::to_string))
                .collect();
            format!(
                "class={} hosts={}",
                s("/spec/ingressClassName"),
                hosts.join(",")
            )
        }
        _ => {
            if let Some(phase) = v.pointer("/status/phase").and_then(Value::as_str) {
                return phase.to_string();
            }
            let conds: Vec<String> = v
                .pointer("/status/conditions")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter(|c| {
                    matches!(
                        c["type"].as_str(),
                        Some("Ready" | "Available" | "Established" | "Complete" | "Failed")
                    )
                })
                .map(|c| {
                    format!(
                        "{}={}",
                        c["type"].as_str().unwrap_or_default(),
                        c["status"].as_str().unwrap_or_default()
                    )
                })
                .collect();
            conds.join(" ")
        }
    }
}

impl Tool for ResourcesList {
    type Params = ResourcesListParams;
    type Output = ResourcesListOutput;
    const META: ToolMeta = ToolMeta {
        name: "resources_list",
        title: "List resources of any kind",
        description: "List objects of any kind served by the cluster (by Kind, plural or short name; apiVersion optional) with name, namespace, age and a status summary. Supports label/field selectors, limit and continue for paging.",
        effect: Effect::Read,
        idempotent: true,
    };

    async fn call(
        &self,
        ctx: &Ctx,
        p: ResourcesListParams,
    ) -> Result<ResourcesListOutput, ToolError> {
        let client = client(ctx, &p.common).await?;
        let (ar, caps) = resolve_kind(ctx, &p.common, &p.kind, p.api_version.as_deref()).await?;
        ctx.policy.check_kind(&[&ar.kind, &ar.plural])?;
        if let Some(ns) = &p.namespace {
            check_namespace_name(ns)?;
        }
        let api = dyn_api(client.clone(), &ar, &caps, p.namespace.as_deref());
        let mut lp = ListParams::default().limit(p.limit.unwrap_or(100).clamp(1, 1000));
        if let Some(l) = &p.label_selector {
            lp = lp.labels(l);
        }
        if let Some(f) = &p.field_selector {
            lp = lp.fields(f);
        }
        if let Some(c) = &p.continue_token {
            lp = lp.continue_token(c);
        }
        let what = format!(
            "list {} {}",
            ar.plural,
            p.namespace
                .as_ref()
                .map(|n| format!("in namespace {n}"))
                .unwrap_or_else(|| "in all namespaces".into())
        );
        let list = api
            .list(&lp)
            .await
            .map_err(|e| ToolError::from_kube(e, &what))?;
        if list.items.is_empty() {
            if let (Some(ns), Scope::Namespaced) = (&p.namespace, &caps.scope) {
                ensure_namespace(&client, ns).await?;
            }
        }
        let now = Timestamp::now();
        let namespaced = matches!(caps.scope, Scope::Namespaced);
        let items = list
            .items
            .iter()
            .filter(|o| {
                !namespaced
                    || ctx
                        .policy
                        .namespace_allowed(o.metadata.namespace.as_deref().unwrap_or_default())
            })
            .map(|o| {
                let v = serde_json::to_value(o).unwrap_or(Value::Null);
                ResourceRow {
                    namespace: (namespaced && p.namespace.is_none())
                        .then(|| o.metadata.namespace.clone().unwrap_or_default()),
                    name: o.metadata.name.clone().unwrap_or_default(),
                    age: age(ts(&o.metadata.creation_timestamp), now),
                    summary: summary(&ar.kind, &v).trim().to_string(),
                }
            })
            .collect();
        Ok(ResourcesListOutput {
            kind: ar.kind.clone(),
            api_version: ar.api_version.clone(),
            items,
            continue_token: list.metadata.continue_.filter(|c| !c.is_empty()),
            remaining: list.metadata.remaining_item_count,
        })
    }
}

impl Render for ResourcesListOutput {
    fn render(&self) -> String {
        let mut s = format!(
            "{} {} ({}):\n",
            self.items.len(),
            self.kind,
            self.api_version
        );
        for r in &self.items {
            let ns = r
                .namespace
                .as_ref()
                .map(|n| format!("{n}/"))
                .unwrap_or_default();
            s.push_str(&format!("  {ns}{} age={} {}\n", r.name, r.age, r.summary));
        }
        if let Some(c) = &self.continue_token {
            let more = self
                .remaining
                .map(|r| format!("{r} more"))
                .unwrap_or_else(|| "more".into());
            s.push_str(&format!(
                "{more} — pass continue=\"{c}\" for the next page.\n"
            ));
        }
        s
    }
}

// ------------------------------------------------------------------ one object

/// One object: kind, name, namespace, optional apiVersion.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
pub struct ObjectRef {
    /// Kind, plural or short name, e.g. `Deployment`, `svc`, `cm`.
    pub kind: String,
    /// Object name.
    pub name: String,
    /// Namespace of a namespaced object (default `default`; ignored for cluster-scoped kinds).
    #[serde(default)]
    pub namespace: Option<String>,
    /// apiVersion to pin, e.g. `apps/v1`.
    #[serde(default)]
    pub api_version: Option<String>,
}

/// An object reference resolved against discovery and checked against the policy.
pub(crate) struct ResolvedObject {
    pub client: Client,
    pub ar: ApiResource,
    pub api: Api<DynamicObject>,
    pub namespace: Option<String>,
}

impl ResolvedObject {
    /// `Kind name in namespace ns`, for messages.
    pub fn describe(&self, name: &str) -> String {
        format!(
            "{} '{name}'{}",
            self.ar.kind,
            self.namespace
                .as_ref()
                .map(|n| format!(" in namespace {n}"))
                .unwrap_or_default()
        )
    }
}

pub(crate) async fn resolve_object(
    ctx: &Ctx,
    common: &Common,
    r: &ObjectRef,
) -> Result<ResolvedObject, ToolError> {
    check_name("name", &r.name)?;
    let client = client(ctx, common).await?;
    let (ar, caps) = resolve_kind(ctx, common, &r.kind, r.api_version.as_deref()).await?;
    ctx.policy.check_kind(&[&ar.kind, &ar.plural])?;
    let namespace = match caps.scope {
        Scope::Namespaced => {
            let ns = r.namespace.clone().unwrap_or_else(|| "default".into());
            check_namespace_name(&ns)?;
            ctx.policy.check_namespace(&ns)?;
            Some(ns)
        }
        Scope::Cluster => {
            if ar.kind == "Namespace" {
                ctx.policy.check_namespace(&r.name)?;
            }
            None
        }
    };
    let api = dyn_api(client.clone(), &ar, &caps, namespace.as_deref());
    Ok(ResolvedObject {
        client,
        ar,
        api,
        namespace,
    })
}

/// Gets the object, or a NotFound that names a missing namespace or the closest names.
pub(crate) async fn get_object(t: &ResolvedObject, name: &str) -> Result<DynamicObject, ToolError> {
    let what = format!("get {}", t.describe(name));
    if let Some(o) = t
        .api
        .get_opt(name)
        .await
        .map_err(|e| ToolError::from_kube(e, &what))?
    {
        return Ok(o);
    }
    if let Some(ns) = &t.namespace {
        ensure_namespace(&t.client, ns).await?;
    }
    let names: Vec<String> = t
        .api
        .list(&ListParams::default().limit(500))
        .await
        .map(|l| {
            l.items
                .into_iter()
                .filter_map(|o| o.metadata.name)
                .collect()
        })
        .unwrap_or_default();
    let close = close_matches(name, names.iter().map(String::as_str));
    let hint = if close.is_empty() {
        format!("resources_list kind={} lists what exists", t.ar.kind)
    } else {
        format!("did you mean {}?", close.join(" or "))
    };
    Err(ToolError::not_found(
        format!("{} not found", t.describe(name)),
        hint,
    ))
}

// ------------------------------------------------------------------ resources_get

/// One object as YAML (managedFields and last-applied annotations dropped, Secret values
/// redacted), optionally with its recent events. Example: {"kind": "deploy", "name": "backend", "namespace": "todo-app", "events": true}.
pub struct ResourcesGet;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ResourcesGetParams {
    #[serde(flatten)]
    pub common: Common,
    #[serde(flatten)]
    pub object: ObjectRef,
    /// Also return the object's recent events (default false).
    #[serde(default)]
    pub events: bool,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct ResourcesGetOutput {
    pub kind: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// The object as YAML.
    pub yaml: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<EventRow>,
}

/// Removes what no reader needs: managedFields and the last-applied annotation.
pub(crate) fn slim(v: &mut Value) {
    if let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("managedFields");
        if let Some(ann) = meta.get_mut("annotations").and_then(Value::as_object_mut) {
            ann.remove("kubectl.kubernetes.io/last-applied-configuration");
            if ann.is_empty() {
                meta.remove("annotations");
            }
        }
    }
}

impl Tool for ResourcesGet {
    type Params = ResourcesGetParams;
    type Output = ResourcesGetOutput;
    const META: ToolMeta = ToolMeta {
        name: "resources_get",
        title: "Get one object",
        description: "Get one object of any kind as YAML (without managedFields/last-applied noise; Secret values redacted, keys kept), optionally with its recent events.",
        effect: Effect::Read,
        idempotent: true,
    };

    async fn call(
        &self,
        ctx: &Ctx,
        p: ResourcesGetParams,
    ) -> Result<ResourcesGetOutput, ToolError> {
        let target = resolve_object(ctx, &p.common, &p.object).await?;
        let obj = get_object(&target, &p.object.name).await?;
        let (ar, namespace, client) = (target.ar, target.namespace, target.client);
        let mut v = serde_json::to_value(&obj).map_err(|e| ToolError::Internal(e.to_string()))?;
        if v.get("apiVersion").is_none() {
            v["apiVersion"] = Value::String(ar.api_version.clone());
            v["kind"] = Value::String(ar.kind.clone());
        }
        slim(&mut v);
        crate::policy::redact::redact_value(&mut v);
        let yaml = serde_norway::to_string(&v).map_err(|e| ToolError::Internal(e.to_string()))?;
        let events = if p.events {
            let uid = obj.metadata.uid.clone().unwrap_or_default();
            let ev_api: Api<Event> = match &namespace {
                Some(ns) => Api::namespaced(client, ns),
                None => Api::all(client),
            };
            let lp = ListParams::default().fields(&format!("involvedObject.uid={uid}"));
            let evs = ev_api.list(&lp).await.map(|l| l.items).unwrap_or_default();
            group_events(evs, None, Timestamp::now(), 20, false).0
        } else {
            vec![]
        };
        Ok(ResourcesGetOutput {
            kind: ar.kind,
            name: p.object.name,
            namespace,
            yaml,
            events,
        })
    }
}

impl Render for ResourcesGetOutput {
    fn render(&self) -> String {
        let mut s = self.yaml.clone();
        if !self.events.is_empty() {
            s.push_str("# events (newest first):\n");
            self.events
                .iter()
                .for_each(|e| s.push_str(&format!("#{}", event_line(e))));
        }
        s
    }
}

// ------------------------------------------------------------------ events_list

/// Events of a namespace or one object, Warnings first, deduplicated by object + reason with
/// counts, newest first. Example: {"namespace": "todo-app", "since": "30m"} or
/// {"namespace": "todo-app", "kind": "Pod", "name": "backend-7c9-x2x"}.
pub struct EventsList;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EventsListParams {
    #[serde(flatten)]
    pub common: Common,
    /// Namespace; omit for all namespaces the server may see.
    #[serde(default)]
    pub namespace: Option<String>,
    /// Only events about objects of this kind (e.g. `Pod`, `Deployment`).
    #[serde(default)]
    pub kind: Option<String>,
    /// Only events about the object with this name.
    #[serde(default)]
    pub name: Option<String>,
    /// Only events seen within this duration, e.g. `30m`, `2h` (default: all the server kept, about 1 h).
    #[serde(default)]
    pub since: Option<String>,
    /// Only Warning events (default false).
    #[serde(default)]
    pub warnings_only: bool,
    /// Most grouped events to return (default 30).
    #[serde(default)]
    pub limit: Option<usize>,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct EventRow {
    /// Normal or Warning.
    #[serde(rename = "type")]
    pub type_: String,
    pub reason: String,
    /// `Kind/name` of the object, with namespace when listing all namespaces.
    pub object: String,
    /// The newest message of the group.
    pub message: String,
    /// Occurrences summed over the group.
    pub count: i32,
    pub first_seen: String,
    pub last_seen: String,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct EventsListOutput {
    pub scope: String,
    pub events: Vec<EventRow>,
    /// Groups left out because of `limit`.
    pub not_shown: usize,
}

fn event_time(e: &Event) -> Option<Timestamp> {
    e.series
        .as_ref()
        .and_then(|s| s.last_observed_time.as_ref().map(|t| t.0))
        .or(e.last_timestamp.as_ref().map(|t| t.0))
        .or(e.event_time.as_ref().map(|t| t.0))
        .or(e.metadata.creation_timestamp.as_ref().map(|t| t.0))
}

/// Groups events by object + reason (summing counts, newest message kept); Warnings first, newest first.
pub(crate) fn group_events(
    events: Vec<Event>,
    since: Option<Timestamp>,
    now: Timestamp,
    limit: usize,
    with_ns: bool,
) -> (Vec<EventRow>, usize) {
    struct G {
        warning: bool,
        reason: String,
        object: String,
        message: String,
        count: i32,
        first: Option<Timestamp>,
        last: Option<Timestamp>,
    }
    let mut groups: BTreeMap<(String, String), G> = BTreeMap::new();
    for e in events {
        let last = event_time(&e);
        if let (Some(s), Some(l)) = (since, last) {
            if l < s {
                continue;
            }
        }
        let first = e
            .first_timestamp
            .as_ref()
            .map(|t| t.0)
            .or(e.event_time.as_ref().map(|t| t.0))
            .or(last);
        let o = &e.involved_object;
        let ns = if with_ns {
            o.namespace
                .as_ref()
                .map(|n| format!("{n}/"))
                .unwrap_or_default()
        } else {
            String::new()
        };
        let object = format!(
            "{ns}{}/{}",
            o.kind.clone().unwrap_or_default(),
            o.name.clone().unwrap_or_default()
        );
        let reason = e.reason.clone().unwrap_or_default();
        let count = e
            .series
            .as_ref()
            .and_then(|s| s.count)
            .or(e.count)
            .unwrap_or(1);
        let g = groups.entry((object.clone(), reason.clone())).or_insert(G {
            warning: false,
            reason,
            object,
            message: String::new(),
            count: 0,
            first,
            last,
        });
        g.warning |= e.type_.as_deref() == Some("Warning");
        g.count += count;
        if first < g.first || g.first.is_none() {
            g.first = first;
        }
        if last >= g.last {
            g.last = last;
            g.message = e.message.clone().unwrap_or_default();
        }
    }
    let mut rows: Vec<G> = groups.into_values().collect();
    rows.sort_by(|a, b| b.warning.cmp(&a.warning).then(b.last.cmp(&a.last)));
    let not_shown = rows.len().saturating_sub(limit);
    let rows = rows
        .into_iter()
        .take(limit)
        .map(|g| EventRow {
            type_: if g.warning { "Warning" } else { "Normal" }.into(),
            reason: g.reason,
            object: g.object,
            message: shorten(&g.message, 300),
            count: g.count,
            first_seen: format!("{} ago", age(g.first, now)),
            last_seen: format!("{} ago", age(g.last, now)),
        })
        .collect();
    (rows, not_shown)
}

fn event_line(e: &EventRow) -> String {
    format!(
        "  {} {} {} x{} (last {}): {}\n",
        e.type_, e.reason, e.object, e.count, e.last_seen, e.message
    )
}

impl Tool for EventsList {
    type Params = EventsListParams;
    type Output = EventsListOutput;
    const META: ToolMeta = ToolMeta {
        name: "events_list",
        title: "List events",
        description: "List events of a namespace (or all) or of one object: Warnings first, grouped by object + reason with summed counts, newest first; filter by kind/name, since (e.g. 30m) or warnings_only.",
        effect: Effect::Read,
        idempotent: true,
    };

    async fn call(&self, ctx: &Ctx, p: EventsListParams) -> Result<EventsListOutput, ToolError> {
        let client = client(ctx, &p.common).await?;
        let since = p
            .since
            .as_deref()
            .map(parse_duration)
            .transpose()?
            .map(|s| Timestamp::now() - jiff::SignedDuration::from_secs(s));
        let mut fields = vec![];
        if let Some(k) = &p.kind {
            fields.push(format!("involvedObject.kind={k}"));
        }
        if let Some(n) = &p.name {
            check_name("name", n)?;
            fields.push(format!("involvedObject.name={n}"));
        }
        if p.warnings_only {
            fields.push("type=Warning".into());
        }
        let mut lp = ListParams::default();
        if !fields.is_empty() {
            lp = lp.fields(&fields.join(","));
        }
        let (events, scope) =
            list_scoped::<Event>(ctx, &client, p.namespace.as_deref(), &lp, "events").await?;
        let (rows, not_shown) = group_events(
            events,
            since,
            Timestamp::now(),
            p.limit.unwrap_or(30).max(1),
            p.namespace.is_none(),
        );
        Ok(EventsListOutput {
            scope,
            events: rows,
            not_shown,
        })
    }
}

impl Render for EventsListOutput {
    fn render(&self) -> String {
        let warnings = self.events.iter().filter(|e| e.type_ == "Warning").count();
        let mut s = format!(
            "{} event groups in {} ({} Warning):\n",
            self.events.len(),
            self.scope,
            warnings
        );
        self.events.iter().for_each(|e| s.push_str(&event_line(e)));
        if self.not_shown > 0 {
            s.push_str(&format!(
                "{} more groups not shown — pass a larger limit, warnings_only or since.\n",
                self.not_shown
            ));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(status: Value) -> Pod {
        serde_json::from_value(json_pod(status)).unwrap()
    }

    fn json_pod(status: Value) -> Value {
        serde_json::json!({
            "metadata": {"name": "p", "namespace": "n", "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"containers": [{"name": "c"}]},
            "status": status,
        })
    }

    fn ago(secs: i64) -> String {
        (Timestamp::now() - jiff::SignedDuration::from_secs(secs)).to_string()
    }

    #[test]
    fn crash_loop_between_restarts_is_unhealthy_even_while_running() {
        let p = pod(
            serde_json::json!({"phase": "Running", "containerStatuses": [{
                "name": "c", "image": "x", "imageID": "", "ready": true, "restartCount": 9,
                "state": {"running": {"startedAt": ago(1)}},
                "lastState": {"terminated": {"exitCode": 2, "reason": "Error", "finishedAt": ago(2)}}
            }]}),
        );
        assert_eq!(pod_status(&p), ("Running".to_string(), false));
    }

    #[test]
    fn one_old_restart_on_a_stable_pod_is_healthy() {
        let p = pod(
            serde_json::json!({"phase": "Running", "containerStatuses": [{
                "name": "c", "image": "x", "imageID": "", "ready": true, "restartCount": 1,
                "state": {"running": {"startedAt": ago(7200)}},
                "lastState": {"terminated": {"exitCode": 1, "reason": "Error", "finishedAt": ago(7200)}}
            }]}),
        );
        assert_eq!(pod_status(&p), ("Running".to_string(), true));
    }

    #[test]
    fn status_column_matches_kubectl_for_waiting_and_init_states() {
        let p = pod(
            serde_json::json!({"phase": "Running", "containerStatuses": [{
                "name": "c", "image": "x", "imageID": "", "ready": false, "restartCount": 3,
                "state": {"waiting": {"reason": "CrashLoopBackOff"}}
            }]}),
        );
        assert_eq!(pod_status(&p).0, "CrashLoopBackOff");
        let p = pod(serde_json::json!({"phase": "Pending",
            "initContainerStatuses": [{"name": "migrate", "image": "x", "imageID": "", "ready": false, "restartCount": 2,
                "state": {"waiting": {"reason": "CrashLoopBackOff"}}}],
            "containerStatuses": [{"name": "c", "image": "x", "imageID": "", "ready": false, "restartCount": 0,
                "state": {"waiting": {"reason": "PodInitializing"}}}]}));
        assert_eq!(pod_status(&p), ("Init:CrashLoopBackOff".to_string(), false));
        let p = pod(serde_json::json!({"phase": "Succeeded"}));
        assert!(pod_status(&p).1);
    }

    #[test]
    fn deployment_pods_name_their_deployment_as_owner() {
        let mut v = json_pod(serde_json::json!({"phase": "Running"}));
        v["metadata"]["labels"] = serde_json::json!({"pod-template-hash": "5d8c7f9b6"});
        v["metadata"]["ownerReferences"] = serde_json::json!([{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-5d8c7f9b6", "uid": "u", "controller": true}]);
        let p: Pod = serde_json::from_value(v).unwrap();
        assert_eq!(owner(&p).as_deref(), Some("Deployment/web"));
    }

    #[test]
    fn events_group_by_object_and_reason_with_warnings_first() {
        let ev = |reason: &str, ty: &str, count: i32, last: i64| -> Event {
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": format!("e{reason}{last}"), "namespace": "n"},
                "involvedObject": {"kind": "Pod", "name": "p", "namespace": "n"},
                "reason": reason, "type": ty, "message": format!("{reason} at {last}"), "count": count,
                "firstTimestamp": ago(last + 10), "lastTimestamp": ago(last)
            }))
            .unwrap()
        };
        let (rows, more) = group_events(
            vec![
                ev("Started", "Normal", 1, 1),
                ev("BackOff", "Warning", 3, 50),
                ev("BackOff", "Warning", 2, 5),
            ],
            None,
            Timestamp::now(),
            10,
            false,
        );
        assert_eq!(more, 0);
        assert_eq!(rows[0].reason, "BackOff");
        assert_eq!(rows[0].count, 5);
        assert_eq!(rows[0].message, "BackOff at 5");
        assert_eq!(rows[1].reason, "Started");
    }
}
