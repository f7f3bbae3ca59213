//! Stack tools: render, deploy (with rollout wait and progress), status, teardown — each deploy
//! recorded as a Helm release so Helm and aiops-mcp see the same history.

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Endpoints, Namespace, Pod, Secret};
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::{Api, DeleteParams, ListParams, PostParams, PropagationPolicy};
use kube::Client;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::helm::{records, supersede, write_record, Record};
use super::read::{client, dyn_api, pod_row, pod_status, resolve_kind};
use super::util::{check_namespace_name, ToolError};
use super::write::{apply_object, FIELD_MANAGER};
use super::{Common, Ctx, Effect, Render, Tool, ToolMeta};
use crate::stack::{
    helm, object_name, render, to_yaml, StackSpec, COMPONENTS, REQUIRED_SECRET_KEYS,
};

/// Which stack: release name and namespace.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Target {
    /// Helm release name of the stack (default `todo`); objects are named `<release>-backend` etc.
    #[serde(default = "default_release")]
    pub release: String,
    /// Namespace of the stack (default `todo-app`).
    #[serde(default = "default_namespace")]
    pub namespace: String,
}

impl Target {
    /// Checks the namespace (name and policy) and returns a client with (release, namespace).
    async fn connect(
        &self,
        ctx: &Ctx,
        common: &Common,
    ) -> Result<(Client, String, String), ToolError> {
        check_namespace_name(&self.namespace)?;
        ctx.policy.check_namespace(&self.namespace)?;
        Ok((
            client(ctx, common).await?,
            self.release.clone(),
            self.namespace.clone(),
        ))
    }
}

fn default_release() -> String {
    "todo".into()
}

fn default_namespace() -> String {
    "todo-app".into()
}

fn spec_from(
    values: &Option<Value>,
    release: &str,
    namespace: &str,
) -> Result<StackSpec, ToolError> {
    check_namespace_name(namespace)?;
    let spec = StackSpec::from_values(values.as_ref().unwrap_or(&Value::Null))
        .map_err(|e| ToolError::invalid(e, "values follow charts/todo-stack/values.yaml, e.g. {\"backend\": {\"tag\": \"1.0.1\", \"replicas\": 3}}"))?;
    spec.validate(release)
        .map_err(|e| ToolError::invalid(e, "fix the value and try again"))?;
    Ok(spec)
}

// ------------------------------------------------------------------ stack_render

/// Renders the todo stack's objects as YAML — exactly what stack_deploy would apply (the
/// Secret is referenced, never rendered). Example: {"values": {"backend": {"tag": "1.0.1"}}}.
pub struct StackRender;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RenderParams {
    #[serde(flatten)]
    pub common: Common,
    #[serde(flatten)]
    pub target: Target,
    /// Overrides of the chart's values.yaml (same shape), e.g. {"frontend": {"replicas": 3}}.
    #[serde(default)]
    pub values: Option<Value>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct RenderOutput {
    pub release: String,
    pub namespace: String,
    /// `Kind/name` of every object, in apply order.
    pub objects: Vec<String>,
    /// The objects as a YAML stream.
    pub yaml: String,
}

impl Tool for StackRender {
    type Params = RenderParams;
    type Output = RenderOutput;
    const META: ToolMeta = ToolMeta {
        name: "stack_render",
        title: "Render the todo stack",
        description: "Render the todo stack (ConfigMap, frontend/backend/mcp Deployments and Services, Ingress) as YAML for the given values — what stack_deploy would apply. No cluster access.",
        effect: Effect::Read,
        idempotent: true,
    };

    async fn call(&self, _ctx: &Ctx, p: RenderParams) -> Result<RenderOutput, ToolError> {
        let spec = spec_from(&p.values, &p.target.release, &p.target.namespace)?;
        let objs = render(&spec, &p.target.release, &p.target.namespace);
        Ok(RenderOutput {
            objects: objs
                .iter()
                .map(|o| {
                    format!(
                        "{}/{}",
                        o["kind"].as_str().unwrap_or_default(),
                        o["metadata"]["name"].as_str().unwrap_or_default()
                    )
                })
                .collect(),
            yaml: to_yaml(&objs),
            release: p.target.release,
            namespace: p.target.namespace,
        })
    }
}

impl Render for RenderOutput {
    fn render(&self) -> String {
        format!(
            "# release {} in namespace {}: {}\n{}",
            self.release,
            self.namespace,
            self.objects.join(", "),
            self.yaml
        )
    }
}

// ------------------------------------------------------------------ release records

/// The newest release revision stored in the namespace.
async fn latest_release(
    client: &Client,
    release: &str,
    namespace: &str,
) -> Result<Option<Record>, ToolError> {
    Ok(records(client, namespace, release).await?.pop())
}

/// Writes revision N+1 and marks the previous deployed one superseded.
async fn record_release(
    client: &Client,
    release: &str,
    namespace: &str,
    values: &Value,
    manifest: String,
    previous: Option<Record>,
) -> Result<u32, ToolError> {
    let now = Timestamp::now();
    let (version, first, description) = match &previous {
        Some(r) => {
            let first = r.release["info"]["first_deployed"]
                .as_str()
                .and_then(|t| t.parse().ok())
                .unwrap_or(now);
            (r.version + 1, first, "Upgrade complete".to_string())
        }
        None => (1, now, "Install complete".to_string()),
    };
    let rel = helm::release_json(&helm::Revision {
        release,
        namespace,
        version,
        values,
        manifest,
        status: "deployed",
        description,
        first_deployed: first,
        now,
    });
    write_record(client, namespace, &rel).await?;
    if let Some(prev) = previous {
        supersede(client, namespace, &[prev], version).await?;
    }
    Ok(version)
}

// ------------------------------------------------------------------ stack_deploy

/// Deploys the todo stack: server-side apply in dependency order (namespace, Secret check,
/// ConfigMap, Deployments, Services, Ingress), records a Helm release revision, then waits for
/// every rollout with progress notifications. Secret values never pass through the model: name
/// an existing Secret (values.secret.name) or pass secrets_from="server-env".
pub struct StackDeploy;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeployParams {
    #[serde(flatten)]
    pub common: Common,
    #[serde(flatten)]
    pub target: Target,
    /// Overrides of the chart's values.yaml, e.g. {"backend": {"tag": "1.0.1"}}.
    #[serde(default)]
    pub values: Option<Value>,
    /// `existing` (default): the Secret named by values.secret.name must exist with DATABASE_URL,
    /// BETTER_AUTH_SECRET, BETTER_AUTH_URL, OPENAI_API_KEY. `server-env`: the server creates or
    /// updates it from its own environment variables of those names.
    #[serde(default)]
    pub secrets_from: Option<String>,
    /// Validate and show what would change without changing anything.
    #[serde(default)]
    pub dry_run: bool,
    /// Wait for the rollouts (default true).
    #[serde(default = "yes")]
    pub wait: bool,
    /// Longest wait in seconds (default 300).
    #[serde(default)]
    pub timeout_seconds: Option<u64>,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct ObjectChange {
    /// `Kind/name`.
    pub object: String,
    /// created, configured, unchanged (prefixed `would be` in a dry run).
    pub result: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changed: Vec<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct DeployOutput {
    pub release: String,
    pub namespace: String,
    pub dry_run: bool,
    /// Names of the Secret keys that are set (never their values).
    pub secret_keys: Vec<String>,
    pub changes: Vec<ObjectChange>,
    /// Helm release revision written by this deploy (none when nothing changed or dry run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<u32>,
    /// `unchanged`, `ready`, `not waited`, `stalled` or `timed out`.
    pub outcome: String,
    /// State of each component when the call returned.
    pub components: Vec<ComponentStatus>,
    /// What to look at when the rollout did not finish.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_step: Option<String>,
}

async fn check_secret(
    client: &Client,
    spec: &StackSpec,
    namespace: &str,
    mode: &str,
    dry_run: bool,
    release: &str,
) -> Result<Vec<String>, ToolError> {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    match mode {
        "existing" => {
            let name = &spec.secret.name;
            let s = api.get_opt(name).await.map_err(|e| ToolError::from_kube(e, &format!("get Secret {name}")))?.ok_or_else(|| {
                ToolError::not_found(
                    format!("Secret '{name}' does not exist in namespace {namespace}"),
                    format!("create it with keys {} (kubectl create secret generic {name} --from-literal=…), or pass secrets_from=\"server-env\" to build it from the server's environment", REQUIRED_SECRET_KEYS.join(", ")),
                )
            })?;
            let mut keys: Vec<String> = s
                .data
                .unwrap_or_default()
                .into_keys()
                .chain(s.string_data.unwrap_or_default().into_keys())
                .collect();
            keys.sort();
            keys.dedup();
            let missing: Vec<&str> = REQUIRED_SECRET_KEYS
                .iter()
                .copied()
                .filter(|k| !keys.iter().any(|x| x == k))
                .collect();
            if !missing.is_empty() {
                return Err(ToolError::invalid(
                    format!("Secret '{name}' in namespace {namespace} lacks key {}", missing.join(", ")),
                    format!("add it (kubectl -n {namespace} patch secret {name} --type merge -p '{{\"stringData\":{{\"{}\":\"…\"}}}}'); nothing was applied", missing[0]),
                ));
            }
            Ok(keys)
        }
        "server-env" => {
            let mut data = BTreeMap::new();
            let mut missing = vec![];
            for k in REQUIRED_SECRET_KEYS {
                match std::env::var(k) {
                    Ok(v) if !v.is_empty() => {
                        data.insert(k.to_string(), v);
                    }
                    _ => missing.push(k),
                }
            }
            if !missing.is_empty() {
                return Err(ToolError::invalid(
                    format!("the server's environment lacks {}", missing.join(", ")),
                    "set them in the environment of the aiops-mcp process (not in the chat), or create the Secret yourself and use secrets_from=\"existing\"; nothing was applied",
                ));
            }
            // Core v1 Secret: no discovery needed (and none against another context's server).
            let ar = kube::api::ApiResource::erase::<Secret>(&());
            let dyn_secrets: Api<kube::api::DynamicObject> =
                Api::namespaced_with(client.clone(), namespace, &ar);
            let doc = json!({
                "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                "metadata": {"name": spec.secret.name, "namespace": namespace,
                    "labels": {"app.kubernetes.io/name": "todo", "app.kubernetes.io/instance": release, "app.kubernetes.io/managed-by": FIELD_MANAGER}},
                "stringData": data,
            });
            apply_object(
                &dyn_secrets,
                "Secret",
                &spec.secret.name,
                doc,
                dry_run,
                true,
            )
            .await?;
            Ok(data.into_keys().collect())
        }
        other => Err(ToolError::invalid(
            format!("secrets_from '{other}' is not valid"),
            "use \"existing\" (a Secret named by values.secret.name) or \"server-env\"",
        )),
    }
}

impl Tool for StackDeploy {
    type Params = DeployParams;
    type Output = DeployOutput;
    const META: ToolMeta = ToolMeta {
        name: "stack_deploy",
        title: "Deploy the todo stack",
        description: "Deploy or update the todo stack (frontend, backend with Alembic migrations, MCP server, ConfigMap, Services, Ingress) with server-side apply, record it as a Helm release revision, and wait for the rollouts with progress. Idempotent: an unchanged spec changes nothing. Secret values never pass through the model (existing Secret, or secrets_from=server-env). On a stalled rollout it returns the failing pods instead of hanging.",
        effect: Effect::Write,
        idempotent: true,
    };

    async fn call(&self, ctx: &Ctx, p: DeployParams) -> Result<DeployOutput, ToolError> {
        let (release, namespace) = (p.target.release.clone(), p.target.namespace.clone());
        let spec = spec_from(&p.values, &release, &namespace)?;
        ctx.policy.check_namespace(&namespace)?;
        let client = client(ctx, &p.common).await?;
        let mode = p.secrets_from.clone().unwrap_or_else(|| "existing".into());
        let mut changes = vec![];
        // The namespace first: everything else lives in it.
        let ns_api: Api<Namespace> = Api::all(client.clone());
        if ns_api
            .get_opt(&namespace)
            .await
            .map_err(|e| ToolError::from_kube(e, "get namespace"))?
            .is_none()
        {
            if mode == "existing" {
                return Err(ToolError::not_found(
                    format!("namespace {namespace} does not exist, so the Secret '{}' cannot either", spec.secret.name),
                    "create the namespace and the Secret first, or pass secrets_from=\"server-env\"",
                ));
            }
            if !p.dry_run {
                let ns: Namespace =
                    serde_json::from_value(json!({"metadata": {"name": namespace}}))
                        .map_err(|e| ToolError::Internal(e.to_string()))?;
                ns_api
                    .create(&PostParams::default(), &ns)
                    .await
                    .map_err(|e| ToolError::from_kube(e, "create namespace"))?;
            }
            changes.push(ObjectChange {
                object: format!("Namespace/{namespace}"),
                result: if p.dry_run {
                    "would be created"
                } else {
                    "created"
                }
                .into(),
                changed: vec![],
            });
        }
        let secret_keys =
            check_secret(&client, &spec, &namespace, &mode, p.dry_run, &release).await?;
        let objs = render(&spec, &release, &namespace);
        // Resolve every kind before applying anything.
        let mut plan = vec![];
        for o in &objs {
            let (ar, caps) = resolve_kind(
                ctx,
                &p.common,
                o["kind"].as_str().unwrap_or_default(),
                o["apiVersion"].as_str(),
            )
            .await?;
            plan.push((ar, caps, o.clone()));
        }
        let mut any_change = false;
        for (ar, caps, doc) in plan {
            let name = doc["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let api = dyn_api(client.clone(), &ar, &caps, Some(&namespace));
            let (result, changed) =
                apply_object(&api, &ar.kind, &name, doc, p.dry_run, true).await?;
            any_change |= !result.ends_with("unchanged");
            changes.push(ObjectChange {
                object: format!("{}/{name}", ar.kind),
                result,
                changed,
            });
        }
        let previous = latest_release(&client, &release, &namespace).await?;
        let values = p.values.clone().unwrap_or(json!({}));
        let same_values = previous.as_ref().is_some_and(|r| {
            r.release["config"] == values && r.release["info"]["status"] == "deployed"
        });
        let revision = if p.dry_run || (!any_change && same_values) {
            None
        } else {
            Some(
                record_release(
                    &client,
                    &release,
                    &namespace,
                    &values,
                    helm::manifest(&objs),
                    previous,
                )
                .await?,
            )
        };
        let mut out = DeployOutput {
            release: release.clone(),
            namespace: namespace.clone(),
            dry_run: p.dry_run,
            secret_keys,
            changes,
            revision,
            outcome: String::new(),
            components: vec![],
            next_step: None,
        };
        if p.dry_run {
            out.outcome = "dry run".into();
            return Ok(out);
        }
        if !any_change && revision.is_none() {
            out.outcome = "unchanged".into();
            out.components = component_statuses(&client, &release, &namespace, &spec).await?;
            return Ok(out);
        }
        if !p.wait {
            out.outcome = "not waited".into();
            out.components = component_statuses(&client, &release, &namespace, &spec).await?;
            return Ok(out);
        }
        let deadline = tokio::time::Instant::now()
            + Duration::from_secs(p.timeout_seconds.unwrap_or(300).clamp(5, 3600));
        let total = COMPONENTS
            .iter()
            .map(|c| spec.component(c).replicas.max(0) as f64)
            .sum::<f64>();
        loop {
            let comps = component_statuses(&client, &release, &namespace, &spec).await?;
            if let Some(progress) = &ctx.progress {
                let ready: f64 = comps
                    .iter()
                    .map(|c| c.available.min(c.desired) as f64)
                    .sum();
                let msg = comps
                    .iter()
                    .map(|c| {
                        format!(
                            "{} {}/{} updated {}/{} ready {}/{} available",
                            c.component,
                            c.updated,
                            c.desired,
                            c.ready,
                            c.desired,
                            c.available,
                            c.desired
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("; ");
                progress(ready, Some(total), msg);
            }
            let done = comps.iter().all(|c| c.verdict == "healthy");
            let stalled = comps.iter().any(|c| c.verdict == "stalled");
            if done || stalled || tokio::time::Instant::now() >= deadline {
                out.outcome = if done {
                    "ready"
                } else if stalled {
                    "stalled"
                } else {
                    "timed out"
                }
                .into();
                if !done {
                    out.next_step = Some(next_step(&client, &release, &namespace, &comps).await);
                }
                out.components = comps;
                return Ok(out);
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}

/// Points at the cause of an unfinished rollout: the failing pods of the worst component.
async fn next_step(
    client: &Client,
    release: &str,
    namespace: &str,
    comps: &[ComponentStatus],
) -> String {
    let bad: Vec<&ComponentStatus> = comps.iter().filter(|c| c.verdict != "healthy").collect();
    let mut lines = vec![];
    for c in &bad {
        let sel = format!(
            "app.kubernetes.io/instance={release},app.kubernetes.io/component={}",
            c.component
        );
        let pods = Api::<Pod>::namespaced(client.clone(), namespace)
            .list(&ListParams::default().labels(&sel))
            .await
            .map(|l| l.items)
            .unwrap_or_default();
        let now = Timestamp::now();
        for p in pods.iter().filter(|p| !pod_status(p).1).take(2) {
            let r = pod_row(p, now, false);
            lines.push(format!(
                "{} {}{}{}",
                r.name,
                r.status,
                r.last_termination
                    .map(|t| format!(", last {t}"))
                    .unwrap_or_default(),
                r.message.map(|m| format!(", {m}")).unwrap_or_default()
            ));
        }
    }
    let names: Vec<&str> = bad.iter().map(|c| c.component.as_str()).collect();
    format!(
        "{} not ready; failing pods: {}. Old pods keep serving (maxUnavailable 0). Find the cause with diagnose {{\"namespace\": \"{namespace}\"}}; go back with stack_rollback {{\"namespace\": \"{namespace}\", \"release\": \"{release}\"}}.",
        names.join(", "),
        if lines.is_empty() { "none found yet".to_string() } else { lines.join("; ") }
    )
}

impl Render for DeployOutput {
    fn render(&self) -> String {
        let mut s = format!(
            "{}stack {} in {}: {}",
            if self.dry_run { "[dry run] " } else { "" },
            self.release,
            self.namespace,
            self.outcome
        );
        if let Some(r) = self.revision {
            s.push_str(&format!(" (release revision {r})"));
        }
        s.push('\n');
        s.push_str(&format!(
            "secret keys set: {}\n",
            self.secret_keys.join(", ")
        ));
        let (unchanged, changed): (Vec<&ObjectChange>, Vec<&ObjectChange>) = self
            .changes
            .iter()
            .partition(|c| c.result.ends_with("unchanged"));
        for c in changed {
            s.push_str(&format!(
                "  {}: {}{}\n",
                c.object,
                c.result,
                if c.changed.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", c.changed.join(", "))
                }
            ));
        }
        if !unchanged.is_empty() {
            s.push_str(&format!("  {} objects unchanged\n", unchanged.len()));
        }
        for c in &self.components {
            s.push_str(&component_line(c));
        }
        if let Some(n) = &self.next_step {
            s.push_str(&format!("next: {n}\n"));
        }
        s
    }
}

// ------------------------------------------------------------------ stack_status

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ComponentStatus {
    pub component: String,
    pub deployment: String,
    pub desired: i32,
    pub updated: i32,
    pub ready: i32,
    pub available: i32,
    pub image: String,
    /// Deployment revision (deployment.kubernetes.io/revision).
    pub revision: String,
    /// Reason and time of the last Progressing transition.
    pub last_transition: String,
    /// healthy, progressing, degraded, stalled or missing.
    pub verdict: String,
    /// Why, in a few words.
    pub reason: String,
    /// Service endpoints: ready / not ready addresses.
    pub endpoints_ready: usize,
    pub endpoints_not_ready: usize,
}

async fn component_statuses(
    client: &Client,
    release: &str,
    namespace: &str,
    spec: &StackSpec,
) -> Result<Vec<ComponentStatus>, ToolError> {
    let deps: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    let eps: Api<Endpoints> = Api::namespaced(client.clone(), namespace);
    let mut out = vec![];
    for name in COMPONENTS {
        let obj = object_name(release, name);
        let d = deps
            .get_opt(&obj)
            .await
            .map_err(|e| ToolError::from_kube(e, &format!("get Deployment {obj}")))?;
        let (ready_eps, not_ready_eps) = match eps.get_opt(&obj).await.ok().flatten() {
            Some(e) => {
                let subsets = e.subsets.unwrap_or_default();
                (
                    subsets
                        .iter()
                        .map(|s| s.addresses.as_ref().map_or(0, Vec::len))
                        .sum(),
                    subsets
                        .iter()
                        .map(|s| s.not_ready_addresses.as_ref().map_or(0, Vec::len))
                        .sum(),
                )
            }
            None => (0, 0),
        };
        let Some(d) = d else {
            out.push(ComponentStatus {
                component: name.into(),
                deployment: obj,
                desired: spec.component(name).replicas,
                updated: 0,
                ready: 0,
                available: 0,
                image: String::new(),
                revision: String::new(),
                last_transition: String::new(),
                verdict: "missing".into(),
                reason: "Deployment not found".into(),
                endpoints_ready: ready_eps,
                endpoints_not_ready: not_ready_eps,
            });
            continue;
        };
        let desired = d.spec.replicas.unwrap_or(1);
        let st = d.status.clone().unwrap_or_default();
        let (updated, ready, available) = (
            st.updated_replicas.unwrap_or(0),
            st.ready_replicas.unwrap_or(0),
            st.available_replicas.unwrap_or(0),
        );
        let conds = st.conditions.clone().unwrap_or_default();
        let progressing = conds
            .iter()
            .find(|c| c.type_.as_deref() == Some("Progressing"));
        let deadline =
            progressing.is_some_and(|c| c.reason.as_deref() == Some("ProgressDeadlineExceeded"));
        let observed = st.observed_generation.unwrap_or(0) >= d.metadata.generation.unwrap_or(0);
        let total = st.replicas.unwrap_or(0);
        let (verdict, reason) = if deadline {
            (
                "stalled",
                progressing
                    .and_then(|c| c.message.clone())
                    .unwrap_or_default(),
            )
        } else if observed
            && updated == desired
            && ready == desired
            && available == desired
            && total == desired
        {
            (
                "healthy",
                "all replicas updated, ready and available".to_string(),
            )
        } else if available < desired.min(1) {
            ("degraded", format!("{available}/{desired} available"))
        } else {
            (
                "progressing",
                format!("{updated}/{desired} updated, {ready} ready, {total} total"),
            )
        };
        let now = Timestamp::now();
        out.push(ComponentStatus {
            component: name.into(),
            deployment: obj,
            desired,
            updated,
            ready,
            available,
            image: d
                .spec
                .template
                .spec
                .as_ref()
                .and_then(|s| s.containers.first())
                .and_then(|c| c.image.clone())
                .unwrap_or_default(),
            revision: d
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get("deployment.kubernetes.io/revision"))
                .cloned()
                .unwrap_or_default(),
            last_transition: progressing
                .map(|c| {
                    format!(
                        "{} {} ago",
                        c.reason.clone().unwrap_or_default(),
                        super::util::age(c.last_update_time.as_ref().map(|t| t.0), now)
                    )
                })
                .unwrap_or_default(),
            verdict: verdict.into(),
            reason,
            endpoints_ready: ready_eps,
            endpoints_not_ready: not_ready_eps,
        });
    }
    Ok(out)
}

/// The stack's verdict: the worst component's, or "not deployed".
fn stack_verdict(components: &[ComponentStatus]) -> String {
    if components.iter().all(|c| c.verdict == "missing") {
        return "not deployed".into();
    }
    ["stalled", "degraded", "missing", "progressing"]
        .iter()
        .find(|v| components.iter().any(|c| &c.verdict == *v))
        .map_or("healthy".to_string(), |v| v.to_string())
}

fn component_line(c: &ComponentStatus) -> String {
    format!(
        "  {} {}: {}/{} ready, {} updated, {} available; image {} rev {}; endpoints {} ready {} not ready; {}\n",
        c.component, c.verdict, c.ready, c.desired, c.updated, c.available, c.image, c.revision, c.endpoints_ready, c.endpoints_not_ready, c.reason
    )
}

/// Status of a deployed todo stack: per component desired/updated/ready/available, image,
/// revision, last transition and a verdict; the ingress host; the Helm release revision.
pub struct StackStatus;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StatusParams {
    #[serde(flatten)]
    pub common: Common,
    #[serde(flatten)]
    pub target: Target,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct StatusOutput {
    pub release: String,
    pub namespace: String,
    /// healthy, progressing, degraded, stalled, or not deployed.
    pub verdict: String,
    pub components: Vec<ComponentStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress_host: Option<String>,
    /// Helm release revision and status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release_revision: Option<String>,
}

impl Tool for StackStatus {
    type Params = StatusParams;
    type Output = StatusOutput;
    const META: ToolMeta = ToolMeta {
        name: "stack_status",
        title: "Status of the todo stack",
        description: "Health of the deployed todo stack: per component (frontend, backend, mcp) desired/updated/ready/available replicas, image, revision, last transition, endpoints and a verdict; ingress host; Helm release revision.",
        effect: Effect::Read,
        idempotent: true,
    };

    async fn call(&self, ctx: &Ctx, p: StatusParams) -> Result<StatusOutput, ToolError> {
        let (client, release, namespace) = p.target.connect(ctx, &p.common).await?;
        let rel = latest_release(&client, &release, &namespace).await?;
        let spec = match &rel {
            Some(r) => StackSpec::from_values(&r.release["config"]).unwrap_or_default(),
            None => StackSpec::default(),
        };
        let components = component_statuses(&client, &release, &namespace, &spec).await?;
        let ingress_host = Api::<Ingress>::namespaced(client.clone(), &namespace)
            .get_opt(&release)
            .await
            .ok()
            .flatten()
            .and_then(|i| i.spec?.rules?.first()?.host.clone());
        let verdict = stack_verdict(&components);
        Ok(StatusOutput {
            release,
            namespace,
            verdict,
            components,
            ingress_host,
            release_revision: rel.map(|r| {
                format!(
                    "{} ({})",
                    r.version,
                    r.release["info"]["status"].as_str().unwrap_or_default()
                )
            }),
        })
    }
}

impl Render for StatusOutput {
    fn render(&self) -> String {
        let mut s = format!(
            "stack {} in {}: {}",
            self.release, self.namespace, self.verdict
        );
        if let Some(r) = &self.release_revision {
            s.push_str(&format!(", release revision {r}"));
        }
        if let Some(h) = &self.ingress_host {
            s.push_str(&format!(", ingress host {h}"));
        }
        s.push('\n');
        self.components
            .iter()
            .for_each(|c| s.push_str(&component_line(c)));
        s
    }
}

// ------------------------------------------------------------------ stack_teardown

/// Removes what the stack owns — its Deployments, Services, ConfigMap, Ingress, Helm release
/// records, and a Secret the server created from its environment — and nothing else (not the
/// namespace, not a Secret you created). Destructive.
pub struct StackTeardown;

#[derive(Debug, Serialize, JsonSchema)]
pub struct TeardownOutput {
    pub release: String,
    pub namespace: String,
    pub dry_run: bool,
    /// `Kind/name` of what was (or would be) deleted.
    pub deleted: Vec<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TeardownParams {
    #[serde(flatten)]
    pub common: Common,
    #[serde(flatten)]
    pub target: Target,
    /// List what would be deleted without deleting.
    #[serde(default)]
    pub dry_run: bool,
}

impl Tool for StackTeardown {
    type Params = TeardownParams;
    type Output = TeardownOutput;
    const META: ToolMeta = ToolMeta {
        name: "stack_teardown",
        title: "Tear down the todo stack",
        description: "Delete everything the todo stack release owns (Deployments, Services, ConfigMap, Ingress, Helm release records, a server-created Secret) and nothing else. Destructive; dry_run=true lists what would go.",
        effect: Effect::Destructive,
        idempotent: false,
    };

    async fn call(&self, ctx: &Ctx, p: TeardownParams) -> Result<TeardownOutput, ToolError> {
        let (client, release, namespace) = p.target.connect(ctx, &p.common).await?;
        let owned = format!("app.kubernetes.io/name=todo,app.kubernetes.io/instance={release}");
        let dp = DeleteParams {
            dry_run: p.dry_run,
            propagation_policy: Some(PropagationPolicy::Background),
            ..Default::default()
        };
        let mut deleted = vec![];
        for kind in ["Ingress", "Service", "Deployment", "ConfigMap", "Secret"] {
            let (ar, caps) = resolve_kind(ctx, &p.common, kind, None).await?;
            let api = dyn_api(client.clone(), &ar, &caps, Some(&namespace));
            let items = api
                .list(&ListParams::default().labels(&owned))
                .await
                .map_err(|e| ToolError::from_kube(e, &format!("list {kind}s of the stack")))?
                .items;
            for o in items {
                let name = o.metadata.name.clone().unwrap_or_default();
                // Only Secrets the server itself created from its environment belong to the stack.
                if kind == "Secret"
                    && o.metadata
                        .labels
                        .as_ref()
                        .and_then(|l| l.get("app.kubernetes.io/managed-by"))
                        .map(String::as_str)
                        != Some(FIELD_MANAGER)
                {
                    continue;
                }
                api.delete(&name, &dp)
                    .await
                    .map_err(|e| ToolError::from_kube(e, &format!("delete {kind} {name}")))?;
                deleted.push(format!("{kind}/{name}"));
            }
        }
        let secrets: Api<Secret> = Api::namespaced(client.clone(), &namespace);
        let records = secrets
            .list(&ListParams::default().labels(&format!("owner=helm,name={release}")))
            .await
            .map_err(|e| ToolError::from_kube(e, "list Helm release records"))?
            .items;
        for s in records {
            let name = s.metadata.name.clone().unwrap_or_default();
            secrets
                .delete(&name, &dp)
                .await
                .map_err(|e| ToolError::from_kube(e, &format!("delete release record {name}")))?;
            deleted.push(format!("Secret/{name}"));
        }
        if deleted.is_empty() {
            return Err(ToolError::not_found(
                format!("no todo stack release '{release}' in namespace {namespace}"),
                "stack_status shows what is deployed; check release and namespace",
            ));
        }
        Ok(TeardownOutput {
            release,
            namespace,
            dry_run: p.dry_run,
            deleted,
        })
    }
}

impl Render for TeardownOutput {
    fn render(&self) -> String {
        format!(
            "{}stack {} in {}: {} {} objects: {}\n",
            if self.dry_run { "[dry run] " } else { "" },
            self.release,
            self.namespace,
            if self.dry_run {
                "would delete"
            } else {
                "deleted"
            },
            self.deleted.len(),
            self.deleted.join(", ")
        )
    }
}

// ------------------------------------------------------------------ stack_rollback

/// Rolls the todo stack back to an earlier release revision (helm_rollback on the stack's
/// release), waits for the components and reports the stack's status.
pub struct StackRollback;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StackRollbackParams {
    #[serde(flatten)]
    pub common: Common,
    #[serde(flatten)]
    pub target: Target,
    /// Release revision to return to (helm_history lists them); default the one before the latest.
    #[serde(default)]
    pub to_revision: Option<u32>,
    /// List the changes without making them.
    #[serde(default)]
    pub dry_run: bool,
    /// Wait for every component to be rolled out (default true).
    #[serde(default = "yes")]
    pub wait: bool,
    /// Longest wait in seconds (default 300).
    #[serde(default)]
    pub timeout_seconds: Option<u64>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct StackRollbackOutput {
    pub rollback: super::helm::HelmRollbackOutput,
    /// healthy, progressing, stalled, degraded … after the rollback.
    pub verdict: String,
    pub components: Vec<ComponentStatus>,
}

impl Tool for StackRollback {
    type Params = StackRollbackParams;
    type Output = StackRollbackOutput;
    const META: ToolMeta = ToolMeta {
        name: "stack_rollback",
        title: "Roll back the todo stack",
        description: "Rolls the todo stack back to an earlier Helm release revision (default: the one before the latest) — helm_rollback on the stack's release — then waits for frontend, backend and mcp and reports each component's status. dry_run lists the changes. Example: {\"to_revision\": 1}",
        effect: Effect::Write,
        idempotent: false,
    };

    async fn call(
        &self,
        ctx: &Ctx,
        p: StackRollbackParams,
    ) -> Result<StackRollbackOutput, ToolError> {
        let (client, release, namespace) = p.target.connect(ctx, &p.common).await?;
        let hp = super::helm::HelmRollbackParams {
            common: p.common.clone(),
            target: super::helm::ReleaseTarget {
                release: release.clone(),
                namespace: namespace.clone(),
            },
            to_revision: p.to_revision,
            dry_run: p.dry_run,
            wait: p.wait,
            timeout_seconds: p.timeout_seconds,
        };
        let rollback = super::helm::rollback(ctx, &p.common, &hp).await?;
        let spec = latest_release(&client, &release, &namespace)
            .await?
            .and_then(|r| StackSpec::from_values(&r.release["config"]).ok())
            .unwrap_or_default();
        let components = component_statuses(&client, &release, &namespace, &spec).await?;
        let verdict = stack_verdict(&components);
        Ok(StackRollbackOutput {
            rollback,
            verdict,
            components,
        })
    }
}

impl Render for StackRollbackOutput {
    fn render(&self) -> String {
        let mut s = self.rollback.render();
        s.push_str(&format!("stack {}:\n", self.verdict));
        for c in &self.components {
            s.push_str(&component_line(c));
        }
        s
    }
}
