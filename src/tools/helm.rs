//! Helm releases, natively: list releases, show a release's history with the values diff, and
//! roll back the way `helm rollback` does (re-apply revision N's manifest, remove what N did not
//! have, record revision N+1 "Rollback to N", supersede the previous one), reading and writing
//! Helm v3's own storage (Secrets of type helm.sh/release.v1), so Helm and aiops-mcp share one
//! history.

use std::collections::{BTreeMap, BTreeSet};

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{
    Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams, PropagationPolicy,
};
use kube::Client;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::read::{client, dyn_api, resolve_kind};
use super::rollout::{wait_workload, RolloutState};
use super::util::{age, check_name, check_namespace_name, ToolError};
use super::write::{changed_paths, merge_params, parse_documents, three_way_patch, FIELD_MANAGER};
use super::{Common, Ctx, Effect, Render, Tool, ToolMeta};
use crate::policy::redact::is_sensitive_key;
use crate::stack::helm;

/// One stored revision of a release.
#[derive(Debug, Clone)]
pub(crate) struct Record {
    pub version: u32,
    /// The decoded release JSON (name, info, chart, config, manifest, version, namespace).
    pub release: Value,
    /// Name of the Secret holding it.
    pub secret: String,
}

impl Record {
    fn status(&self) -> &str {
        self.release["info"]["status"].as_str().unwrap_or("unknown")
    }
}

fn secrets_allowed(ctx: &Ctx) -> Result<(), ToolError> {
    ctx.policy.check_kind(&["Secret", "secrets"]).map_err(|_| {
        ToolError::Policy(
            "Helm stores its releases in Secrets and the server runs with --deny-kinds Secret"
                .into(),
        )
    })
}

/// Every stored revision of `release` in `namespace`, oldest first.
pub(crate) async fn records(
    client: &Client,
    namespace: &str,
    release: &str,
) -> Result<Vec<Record>, ToolError> {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let lp = ListParams::default().labels(&format!("owner=helm,name={release}"));
    let list = api.list(&lp).await.map_err(|e| {
        ToolError::from_kube(e, &format!("list Helm release records in {namespace}"))
    })?;
    let mut out = vec![];
    for s in list.items {
        let name = s.metadata.name.clone().unwrap_or_default();
        let Some(data) = s.data.as_ref().and_then(|d| d.get("release")) else {
            continue;
        };
        let rel = helm::decode(&data.0)
            .map_err(|e| ToolError::Api(format!("release record {name}: {e}")))?;
        let version = rel["version"]
            .as_u64()
            .and_then(|v| u32::try_from(v).ok())
            .unwrap_or(0);
        out.push(Record {
            version,
            release: rel,
            secret: name,
        });
    }
    out.sort_by_key(|r| r.version);
    Ok(out)
}

/// Stores a release revision as Helm does.
pub(crate) async fn write_record(
    client: &Client,
    namespace: &str,
    rel: &Value,
) -> Result<(), ToolError> {
    let version = rel["version"].as_u64().unwrap_or(0);
    create_record(client, namespace, rel)
        .await
        .map_err(|e| ToolError::from_kube(e, &format!("write Helm release record v{version}")))
}

/// Creates the record Secret of `rel`; a 409 means that revision exists already.
async fn create_record(client: &Client, namespace: &str, rel: &Value) -> Result<(), kube::Error> {
    let name = rel["name"].as_str().unwrap_or_default();
    let version = rel["version"].as_u64().unwrap_or(0) as u32;
    let status = rel["info"]["status"].as_str().unwrap_or("unknown");
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": helm::secret_name(name, version), "namespace": namespace,
                      "labels": helm::secret_labels(name, version, status, Timestamp::now())},
        "type": "helm.sh/release.v1",
        "stringData": {"release": helm::encode(rel)},
    }))
    .map_err(kube::Error::SerdeError)?;
    Api::<Secret>::namespaced(client.clone(), namespace)
        .create(&PostParams::default(), &secret)
        .await
        .map(|_| ())
}

/// Rewrites an existing release record: the stored release and its status label.
async fn rewrite_record(api: &Api<Secret>, secret: &str, rel: &Value) -> Result<(), kube::Error> {
    let status = rel["info"]["status"].as_str().unwrap_or("unknown");
    let patch = json!({"metadata": {"labels": {"status": status}}, "stringData": {"release": helm::encode(rel)}});
    api.patch(secret, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map(|_| ())
}

/// Marks every `deployed` record except `keep` superseded (label and stored status).
pub(crate) async fn supersede(
    client: &Client,
    namespace: &str,
    recs: &[Record],
    keep: u32,
) -> Result<(), ToolError> {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    for r in recs
        .iter()
        .filter(|r| r.version != keep && r.status() == "deployed")
    {
        let mut rel = r.release.clone();
        rel["info"]["status"] = json!("superseded");
        rewrite_record(&api, &r.secret, &rel).await.map_err(|e| {
            ToolError::from_kube(e, &format!("mark release v{} superseded", r.version))
        })?;
    }
    Ok(())
}

fn chart_of(rel: &Value) -> String {
    let m = &rel["chart"]["metadata"];
    format!(
        "{}-{}",
        m["name"].as_str().unwrap_or("?"),
        m["version"].as_str().unwrap_or("?")
    )
}

fn ts_of(v: &Value) -> Option<Timestamp> {
    v.as_str().and_then(|s| s.parse().ok())
}

fn check_release_name(release: &str) -> Result<(), ToolError> {
    if release.len() > 53 || release.contains('.') {
        return Err(ToolError::invalid(
            format!("release '{release}' is not a valid Helm release name"),
            "release names are lowercase letters, digits and '-', at most 53 characters",
        ));
    }
    check_name("release", release)
}

// ------------------------------------------------------------------ helm_releases

/// Helm releases in one namespace or all: name, namespace, revision, status, chart, app
/// version, last deployed — read from Helm's own storage.
pub struct HelmReleases;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReleasesParams {
    #[serde(flatten)]
    pub common: Common,
    /// Namespace to look in; omit for all namespaces.
    #[serde(default)]
    pub namespace: Option<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct ReleaseRow {
    pub name: String,
    pub namespace: String,
    pub revision: u32,
    /// deployed, failed, superseded, pending-install, pending-upgrade, pending-rollback, uninstalling …
    pub status: String,
    pub chart: String,
    pub app_version: String,
    /// How long ago the latest revision was deployed.
    pub updated: String,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct ReleasesOutput {
    pub releases: Vec<ReleaseRow>,
}

impl Tool for HelmReleases {
    type Params = ReleasesParams;
    type Output = ReleasesOutput;
    const META: ToolMeta = ToolMeta {
        name: "helm_releases",
        title: "Helm releases",
        description: "Lists Helm releases (one namespace or all): name, namespace, latest revision, status (deployed, failed, pending-*), chart, app version and when it was last deployed. Example: {\"namespace\": \"todo-app\"}",
        effect: Effect::Read,
        idempotent: true,
    };

    async fn call(&self, ctx: &Ctx, p: ReleasesParams) -> Result<ReleasesOutput, ToolError> {
        secrets_allowed(ctx)?;
        if let Some(ns) = &p.namespace {
            check_namespace_name(ns)?;
        }
        let client = client(ctx, &p.common).await?;
        let api: Api<Secret> = match &p.namespace {
            Some(ns) => Api::namespaced(client.clone(), ns),
            None => Api::all(client.clone()),
        };
        // Metadata first (labels carry name and version), then decode only the newest records.
        let metas = api
            .list_metadata(&ListParams::default().labels("owner=helm"))
            .await
            .map_err(|e| ToolError::from_kube(e, "list Helm release records"))?;
        let mut newest: BTreeMap<(String, String), (u32, String)> = BTreeMap::new();
        for m in metas.items {
            let ns = m.metadata.namespace.clone().unwrap_or_default();
            if !ctx.policy.namespace_allowed(&ns) {
                continue;
            }
            let labels = m.metadata.labels.clone().unwrap_or_default();
            let (Some(name), Some(v)) = (
                labels.get("name"),
                labels.get("version").and_then(|v| v.parse::<u32>().ok()),
            ) else {
                continue;
            };
            let e = newest
                .entry((ns, name.clone()))
                .or_insert((0, String::new()));
            if v > e.0 {
                *e = (v, m.metadata.name.clone().unwrap_or_default());
            }
        }
        let now = Timestamp::now();
        let mut releases = vec![];
        for ((ns, name), (version, secret)) in newest {
            let s = Api::<Secret>::namespaced(client.clone(), &ns)
                .get(&secret)
                .await
                .map_err(|e| ToolError::from_kube(e, &format!("read release record {secret}")))?;
            let Some(data) = s.data.as_ref().and_then(|d| d.get("release")) else {
                continue;
            };
            let rel = helm::decode(&data.0)
                .map_err(|e| ToolError::Api(format!("release record {secret}: {e}")))?;
            releases.push(ReleaseRow {
                name,
                namespace: ns,
                revision: version,
                status: rel["info"]["status"].as_str().unwrap_or("unknown").into(),
                chart: chart_of(&rel),
                app_version: rel["chart"]["metadata"]["appVersion"]
                    .as_str()
                    .unwrap_or_default()
                    .into(),
                updated: age(ts_of(&rel["info"]["last_deployed"]), now),
            });
        }
        Ok(ReleasesOutput { releases })
    }
}

impl Render for ReleasesOutput {
    fn render(&self) -> String {
        if self.releases.is_empty() {
            return "No Helm releases found.\n".into();
        }
        let mut s = format!("{} Helm release(s):\n", self.releases.len());
        for r in &self.releases {
            s.push_str(&format!(
                "  {}/{} rev {} {} chart {} app {} (deployed {} ago)\n",
                r.namespace, r.name, r.revision, r.status, r.chart, r.app_version, r.updated
            ));
        }
        s
    }
}

// ------------------------------------------------------------------ helm_history

/// A Helm release's revisions: chart and app version, status, description, and what changed in
/// the values against the previous revision (secret-looking values never shown).
pub struct HelmHistory;

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReleaseTarget {
    /// Helm release name, e.g. `todo`.
    pub release: String,
    /// Namespace of the release (default `default`).
    #[serde(default = "default_ns")]
    pub namespace: String,
}

fn default_ns() -> String {
    "default".into()
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HelmHistoryParams {
    #[serde(flatten)]
    pub common: Common,
    #[serde(flatten)]
    pub target: ReleaseTarget,
    /// Newest revisions to show (default 10).
    #[serde(default)]
    pub max: Option<usize>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct HelmRevision {
    pub revision: u32,
    pub updated: String,
    pub status: String,
    pub chart: String,
    pub app_version: String,
    pub description: String,
    /// Values changes against the previous revision: `backend.tag: 1.0.0 → 1.0.1`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub values_changes: Vec<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct HelmHistoryOutput {
    pub release: String,
    pub namespace: String,
    /// Revisions, oldest first.
    pub revisions: Vec<HelmRevision>,
    /// Older revisions not shown.
    #[serde(skip_serializing_if = "is_zero")]
    pub omitted: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

fn flatten(v: &Value, prefix: &str, out: &mut BTreeMap<String, Value>) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, c) in m {
                let p = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(c, &p, out);
            }
        }
        other => {
            out.insert(prefix.to_string(), other.clone());
        }
    }
}

fn show(path: &str, v: Option<&Value>) -> String {
    let key = path.rsplit('.').next().unwrap_or(path);
    match v {
        None => "unset".into(),
        Some(_) if is_sensitive_key(key) => "<redacted>".into(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => {
            let s = other.to_string();
            if s.len() > 60 {
                format!(
                    "{}…",
                    &s[..s.char_indices().nth(57).map_or(s.len(), |c| c.0)]
                )
            } else {
                s
            }
        }
    }
}

/// What changed between two values documents, one line per leaf path.
pub fn values_changes(before: &Value, after: &Value) -> Vec<String> {
    let (mut a, mut b) = (BTreeMap::new(), BTreeMap::new());
    flatten(before, "", &mut a);
    flatten(after, "", &mut b);
    let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    keys.into_iter()
        .filter(|k| a.get(*k) != b.get(*k))
        .map(|k| {
            let shown = if k.is_empty() { "(values)" } else { k.as_str() };
            format!("{shown}: {} → {}", show(k, a.get(k)), show(k, b.get(k)))
        })
        .collect()
}

impl Tool for HelmHistory {
    type Params = HelmHistoryParams;
    type Output = HelmHistoryOutput;
    const META: ToolMeta = ToolMeta {
        name: "helm_history",
        title: "Helm release history",
        description: "Revisions of a Helm release, oldest first: status, chart and app version, description (e.g. \"Upgrade complete\", \"Rollback to 1\") and the values changed against the previous revision (secret-looking values masked). Example: {\"release\": \"todo\", \"namespace\": \"todo-app\"}",
        effect: Effect::Read,
        idempotent: true,
    };

    async fn call(&self, ctx: &Ctx, p: HelmHistoryParams) -> Result<HelmHistoryOutput, ToolError> {
        secrets_allowed(ctx)?;
        check_release_name(&p.target.release)?;
        check_namespace_name(&p.target.namespace)?;
        let client = client(ctx, &p.common).await?;
        let recs = load_release(&client, &p.target).await?;
        let now = Timestamp::now();
        let mut revisions: Vec<HelmRevision> = recs
            .iter()
            .enumerate()
            .map(|(i, r)| HelmRevision {
                revision: r.version,
                updated: age(ts_of(&r.release["info"]["last_deployed"]), now),
                status: r.status().into(),
                chart: chart_of(&r.release),
                app_version: r.release["chart"]["metadata"]["appVersion"]
                    .as_str()
                    .unwrap_or_default()
                    .into(),
                description: r.release["info"]["description"]
                    .as_str()
                    .unwrap_or_default()
                    .into(),
                values_changes: if i == 0 {
                    vec![]
                } else {
                    values_changes(&recs[i - 1].release["config"], &r.release["config"])
                },
            })
            .collect();
        let max = p.max.unwrap_or(10).max(1);
        let omitted = revisions.len().saturating_sub(max);
        revisions.drain(..omitted);
        Ok(HelmHistoryOutput {
            release: p.target.release,
            namespace: p.target.namespace,
            revisions,
            omitted,
        })
    }
}

async fn load_release(client: &Client, t: &ReleaseTarget) -> Result<Vec<Record>, ToolError> {
    let recs = records(client, &t.namespace, &t.release).await?;
    if recs.is_empty() {
        return Err(ToolError::not_found(
            format!(
                "no Helm release '{}' in namespace {}",
                t.release, t.namespace
            ),
            "helm_releases lists the releases in every namespace",
        ));
    }
    Ok(recs)
}

impl Render for HelmHistoryOutput {
    fn render(&self) -> String {
        let mut s = format!(
            "Helm release {}/{}: {} revision(s){}\n",
            self.namespace,
            self.release,
            self.revisions.len(),
            if self.omitted > 0 {
                format!(" shown, {} older omitted", self.omitted)
            } else {
                String::new()
            }
        );
        for r in &self.revisions {
            s.push_str(&format!(
                "  rev {} {} ago {} {} app {} — {}\n",
                r.revision, r.updated, r.status, r.chart, r.app_version, r.description
            ));
            for c in r.values_changes.iter().take(10) {
                s.push_str(&format!("      {c}\n"));
            }
            if r.values_changes.len() > 10 {
                s.push_str(&format!(
                    "      … {} more values changed\n",
                    r.values_changes.len() - 10
                ));
            }
        }
        s
    }
}

// ------------------------------------------------------------------ helm_rollback

/// Rolls a Helm release back to an earlier revision, natively, with the outcome `helm rollback`
/// produces: revision N's manifest re-applied, objects N did not have removed, a new revision
/// "Rollback to N" deployed and the previous one superseded.
pub struct HelmRollback;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HelmRollbackParams {
    #[serde(flatten)]
    pub common: Common,
    #[serde(flatten)]
    pub target: ReleaseTarget,
    /// Revision to return to (helm_history lists them); default the one before the latest.
    #[serde(default)]
    pub to_revision: Option<u32>,
    /// Validate every change on the server and list it without changing anything.
    #[serde(default)]
    pub dry_run: bool,
    /// Wait until the release's Deployments, StatefulSets and DaemonSets are rolled out (default false).
    #[serde(default)]
    pub wait: bool,
    /// Longest wait in seconds (default 300).
    #[serde(default)]
    pub timeout_seconds: Option<u64>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct RollbackObject {
    /// `Kind/name`.
    pub object: String,
    /// created, patched, unchanged, deleted (prefixed `would be` in a dry run).
    pub result: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub changed: Vec<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct HelmRollbackOutput {
    pub release: String,
    pub namespace: String,
    pub from_revision: u32,
    pub to_revision: u32,
    /// The revision this rollback recorded (none in a dry run).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new_revision: Option<u32>,
    pub dry_run: bool,
    pub objects: Vec<RollbackObject>,
    /// Values that differ between the latest revision and the target.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub values_changes: Vec<String>,
    /// rolled back / would roll back, then complete / stalled / timed out when waited.
    pub outcome: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub workloads: Vec<RolloutState>,
}

/// Identity of a manifest object: (apiVersion group, kind, namespace, name).
fn key_of(v: &Value, default_ns: &str) -> (String, String, String, String) {
    let api = v["apiVersion"].as_str().unwrap_or_default();
    let group = api.rsplit_once('/').map_or("", |g| g.0).to_string();
    (
        group,
        v["kind"].as_str().unwrap_or_default().to_string(),
        v["metadata"]["namespace"]
            .as_str()
            .unwrap_or(default_ns)
            .to_string(),
        v["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    )
}

fn manifest_docs(rel: &Value) -> Result<Vec<Value>, ToolError> {
    let text = rel["manifest"].as_str().unwrap_or_default();
    if text.trim().is_empty() {
        return Ok(vec![]);
    }
    parse_documents(text)
}

/// A manifest object's kind, name and API, checked against the policy (kind and namespace).
async fn resolve_doc(
    ctx: &Ctx,
    common: &Common,
    client: &Client,
    doc: &Value,
    ns: &str,
) -> Result<(String, String, Api<DynamicObject>), ToolError> {
    let (_, kind, _, name) = key_of(doc, ns);
    let (ar, caps) = resolve_kind(ctx, common, &kind, doc["apiVersion"].as_str()).await?;
    ctx.policy.check_kind(&[&ar.kind, &ar.plural])?;
    let obj_ns = (caps.scope == kube::discovery::Scope::Namespaced).then(|| {
        doc["metadata"]["namespace"]
            .as_str()
            .unwrap_or(ns)
            .to_string()
    });
    if let Some(n) = &obj_ns {
        ctx.policy.check_namespace(n)?;
    }
    Ok((
        kind,
        name,
        dyn_api(client.clone(), &ar, &caps, obj_ns.as_deref()),
    ))
}

/// The rollback itself, shared by helm_rollback and stack_rollback.
pub(crate) async fn rollback(
    ctx: &Ctx,
    common: &Common,
    p: &HelmRollbackParams,
) -> Result<HelmRollbackOutput, ToolError> {
    secrets_allowed(ctx)?;
    let t = &p.target;
    check_release_name(&t.release)?;
    check_namespace_name(&t.namespace)?;
    ctx.policy.check_namespace(&t.namespace)?;
    let client = client(ctx, common).await?;
    let recs = load_release(&client, t).await?;
    let latest = recs
        .last()
        .cloned()
        .ok_or_else(|| ToolError::Internal("no records".into()))?;
    let versions = || {
        recs.iter()
            .map(|r| format!("{} ({})", r.version, r.status()))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let to = match p.to_revision {
        Some(n) if n > 0 => n,
        _ => latest.version.saturating_sub(1),
    };
    let Some(target) = recs.iter().find(|r| r.version == to).cloned() else {
        return Err(ToolError::not_found(
            format!(
                "release {} in {} has no revision {to}",
                t.release, t.namespace
            ),
            format!("revisions on record: {}", versions()),
        ));
    };
    let wanted = manifest_docs(&target.release)?;
    let current = manifest_docs(&latest.release)?;
    let ns = t.namespace.as_str();
    // Resolve every object first: nothing is written when one kind is unknown or denied.
    let mut planned = vec![];
    for doc in &wanted {
        let (kind, name, api) = resolve_doc(ctx, common, &client, doc, ns).await?;
        planned.push((doc.clone(), kind, name, api));
    }
    let wanted_keys: BTreeSet<_> = wanted.iter().map(|d| key_of(d, ns)).collect();
    let mut removals = vec![];
    let mut kept = vec![];
    for doc in current
        .iter()
        .filter(|d| !wanted_keys.contains(&key_of(d, ns)))
    {
        let (kind, name, api) = resolve_doc(ctx, common, &client, doc, ns).await?;
        // Helm leaves objects annotated helm.sh/resource-policy: keep in place.
        if doc["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep" {
            kept.push(RollbackObject {
                object: format!("{kind}/{name}"),
                result: "kept (helm.sh/resource-policy: keep)".into(),
                changed: vec![],
            });
            continue;
        }
        removals.push((kind, name, api));
    }

    // Helm's order: revision N+1 is recorded as pending-rollback before anything is applied, so
    // a concurrent upgrade or rollback that took the number first stops this one untouched.
    let new_version = latest.version + 1;
    let now = Timestamp::now();
    let mut rel = target.release.clone();
    rel["version"] = json!(new_version);
    rel["info"]["first_deployed"] = latest.release["info"]["first_deployed"].clone();
    rel["info"]["last_deployed"] = json!(now.to_string());
    rel["info"]["deleted"] = json!("");
    rel["info"]["status"] = json!("pending-rollback");
    rel["info"]["description"] = json!(format!("Rollback to {to}"));
    if !p.dry_run {
        create_record(&client, ns, &rel).await.map_err(|e| match e {
            kube::Error::Api(s) if s.code == 409 => ToolError::invalid(
                format!(
                    "release {} changed while rolling back: revision {new_version} was written by someone else; nothing was applied",
                    t.release
                ),
                "read helm_history again and retry the rollback",
            ),
            e => ToolError::from_kube(e, &format!("write Helm release record v{new_version}")),
        })?;
    }

    let prefix = if p.dry_run { "would be " } else { "" };
    let mut objects = vec![];
    let mut failure: Option<ToolError> = None;
    for (doc, kind, name, api) in &planned {
        let res = apply_one(
            api,
            doc,
            current.iter().find(|c| key_of(c, ns) == key_of(doc, ns)),
            p.dry_run,
        )
        .await;
        match res {
            Ok((result, changed)) => objects.push(RollbackObject {
                object: format!("{kind}/{name}"),
                result: format!("{prefix}{result}"),
                changed,
            }),
            Err(e) => {
                failure = Some(ToolError::from_kube(e, &format!("apply {kind}/{name}")));
                break;
            }
        }
    }
    if failure.is_none() {
        let dp = DeleteParams {
            dry_run: p.dry_run,
            propagation_policy: Some(PropagationPolicy::Background),
            ..Default::default()
        };
        for (kind, name, api) in &removals {
            match api.delete(name, &dp).await {
                Ok(_) => objects.push(RollbackObject {
                    object: format!("{kind}/{name}"),
                    result: format!("{prefix}deleted"),
                    changed: vec![],
                }),
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => {
                    failure = Some(ToolError::from_kube(e, &format!("delete {kind}/{name}")));
                    break;
                }
            }
        }
    }
    objects.extend(kept);
    let mut out = HelmRollbackOutput {
        release: t.release.clone(),
        namespace: t.namespace.clone(),
        from_revision: latest.version,
        to_revision: to,
        new_revision: None,
        dry_run: p.dry_run,
        objects,
        values_changes: values_changes(&latest.release["config"], &target.release["config"]),
        outcome: String::new(),
        workloads: vec![],
    };
    if p.dry_run {
        if let Some(e) = failure {
            return Err(e);
        }
        out.outcome = "would roll back".into();
        return Ok(out);
    }
    // The outcome goes into the record: deployed, or failed when applying failed part-way.
    match &failure {
        None => rel["info"]["status"] = json!("deployed"),
        Some(e) => {
            rel["info"]["status"] = json!("failed");
            rel["info"]["description"] = json!(format!("Rollback \"{to}\" failed: {e}"));
        }
    }
    let records: Api<Secret> = Api::namespaced(client.clone(), ns);
    rewrite_record(&records, &helm::secret_name(&t.release, new_version), &rel)
        .await
        .map_err(|e| ToolError::from_kube(e, &format!("record release revision {new_version}")))?;
    if let Some(e) = failure {
        return Err(e);
    }
    supersede(&client, ns, &recs, new_version).await?;
    out.new_revision = Some(new_version);
    out.outcome = "rolled back".into();
    if p.wait {
        let timeout = p.timeout_seconds.unwrap_or(300);
        let mut verdicts = vec![];
        let mut unwatched = vec![];
        for (doc, kind, name, _) in &planned {
            if matches!(kind.as_str(), "Deployment" | "StatefulSet" | "DaemonSet") {
                let wns = doc["metadata"]["namespace"].as_str().unwrap_or(ns);
                // The rollback is done and recorded: a workload that cannot be watched is
                // reported, not turned into a failed call.
                match wait_workload(ctx, common, kind, wns, name, timeout).await {
                    Ok((state, outcome)) => {
                        verdicts.push(outcome);
                        out.workloads.push(state);
                    }
                    Err(e) => unwatched.push(format!("{kind}/{name} ({e})")),
                }
            }
        }
        let worst = ["failed", "stalled", "timed out", "paused"]
            .into_iter()
            .find(|w| verdicts.contains(w))
            .unwrap_or("complete");
        out.outcome = if unwatched.is_empty() {
            format!("rolled back, {worst}")
        } else {
            format!(
                "rolled back, {worst}; could not watch {}",
                unwatched.join(", ")
            )
        };
    }
    Ok(out)
}

/// Creates an object or patches it from the latest revision's version (`original`) to the
/// target's, removing fields the target no longer has — Helm's merge, without touching fields
/// other managers added (replicas set by an HPA, annotations added by controllers).
async fn apply_one(
    api: &Api<DynamicObject>,
    doc: &Value,
    original: Option<&Value>,
    dry_run: bool,
) -> Result<(&'static str, Vec<String>), kube::Error> {
    let name = doc["metadata"]["name"].as_str().unwrap_or_default();
    let live = api.get_opt(name).await?;
    let Some(live) = live else {
        let obj: DynamicObject =
            serde_json::from_value(doc.clone()).map_err(kube::Error::SerdeError)?;
        let pp = PostParams {
            dry_run,
            field_manager: Some(FIELD_MANAGER.into()),
        };
        api.create(&pp, &obj).await?;
        return Ok(("created", vec![]));
    };
    let strip = |v: &Value| {
        let mut v = v.clone();
        if let Some(o) = v.as_object_mut() {
            o.remove("status");
        }
        v
    };
    let before = serde_json::to_value(&live).unwrap_or_default();
    let patch = three_way_patch(
        &original.map(strip).unwrap_or(Value::Null),
        &strip(doc),
        &strip(&before),
    );
    if patch.as_object().is_some_and(|o| o.is_empty()) {
        return Ok(("unchanged", vec![]));
    }
    let pp = merge_params(dry_run);
    let after = api.patch(name, &pp, &Patch::Merge(&patch)).await?;
    let after = serde_json::to_value(&after).unwrap_or_default();
    let mut changed = vec![];
    for part in ["spec", "data", "metadata"] {
        changed_paths(&before[part], &after[part], part, &mut changed);
    }
    changed.retain(|c| {
        !c.starts_with("metadata.resourceVersion")
            && !c.starts_with("metadata.managedFields")
            && !c.starts_with("metadata.generation")
    });
    changed.truncate(20);
    Ok((
        if changed.is_empty() {
            "unchanged"
        } else {
            "patched"
        },
        changed,
    ))
}

impl Tool for HelmRollback {
    type Params = HelmRollbackParams;
    type Output = HelmRollbackOutput;
    const META: ToolMeta = ToolMeta {
        name: "helm_rollback",
        title: "Roll back a Helm release",
        description: "Rolls a Helm release back to revision to_revision (default: the one before the latest), natively and compatible with Helm: re-applies that revision's manifest, removes objects it did not have, records a new revision \"Rollback to N\" (status deployed) and marks the previous one superseded — `helm history` shows the same. dry_run lists the changes; wait=true waits for the workloads. Example: {\"release\": \"todo\", \"namespace\": \"todo-app\", \"to_revision\": 1, \"wait\": true}",
        effect: Effect::Write,
        idempotent: false,
    };

    async fn call(
        &self,
        ctx: &Ctx,
        p: HelmRollbackParams,
    ) -> Result<HelmRollbackOutput, ToolError> {
        rollback(ctx, &p.common, &p).await
    }
}

impl Render for HelmRollbackOutput {
    fn render(&self) -> String {
        let mut s = format!(
            "{}Helm release {}/{}: revision {} → {}{} ({})\n",
            if self.dry_run { "[dry run] " } else { "" },
            self.namespace,
            self.release,
            self.from_revision,
            self.to_revision,
            self.new_revision
                .map(|n| format!(", recorded as revision {n}"))
                .unwrap_or_default(),
            self.outcome
        );
        for c in &self.values_changes {
            s.push_str(&format!("  values {c}\n"));
        }
        for o in &self.objects {
            if o.result.ends_with("unchanged") {
                continue;
            }
            s.push_str(&format!("  {} {}", o.object, o.result));
            if !o.changed.is_empty() {
                s.push_str(&format!(": {}", o.changed.join(", ")));
            }
            s.push('\n');
        }
        let unchanged = self
            .objects
            .iter()
            .filter(|o| o.result.ends_with("unchanged"))
            .count();
        if unchanged > 0 {
            s.push_str(&format!("  {unchanged} object(s) unchanged\n"));
        }
        for w in &self.workloads {
            s.push_str(&super::Render::render(w));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_changes_list_leaf_paths_and_mask_secret_keys() {
        let a =
            json!({"backend": {"tag": "1.0.0", "replicas": 2}, "auth": {"password": "hunter2"}});
        let b = json!({"backend": {"tag": "1.0.4"}, "auth": {"password": "s3cret"}, "frontend": {"replicas": 3}});
        let c = values_changes(&a, &b);
        assert!(
            c.contains(&"backend.tag: 1.0.0 → 1.0.4".to_string()),
            "{c:?}"
        );
        assert!(
            c.contains(&"backend.replicas: 2 → unset".to_string()),
            "{c:?}"
        );
        assert!(
            c.contains(&"frontend.replicas: unset → 3".to_string()),
            "{c:?}"
        );
        assert!(
            c.contains(&"auth.password: <redacted> → <redacted>".to_string()),
            "{c:?}"
        );
        assert!(c
            .iter()
            .all(|l| !l.contains("hunter2") && !l.contains("s3cret")));
    }

    #[test]
    fn manifest_objects_are_keyed_by_group_kind_namespace_and_name() {
        let d = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}});
        assert_eq!(
            key_of(&d, "ns"),
            (
                "apps".into(),
                "Deployment".into(),
                "ns".into(),
                "web".into()
            )
        );
        let s = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "x"}});
        assert_eq!(key_of(&s, "ns").0, "");
        assert_eq!(key_of(&s, "ns").2, "x");
    }
}
