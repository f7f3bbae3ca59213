//! Diagnosis tools: `diagnose` and `crashloops_find`. This module only gathers a
//! [`Snapshot`] from the cluster — concurrently, only what the scope needs, tolerant of kinds
//! the server lacks or forbids — and hands it to the pure analyzers in `crate::diagnose`.

use std::collections::{BTreeMap, BTreeSet};

use futures::stream::{self, StreamExt};
use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{
    ControllerRevision, DaemonSet, Deployment, ReplicaSet, StatefulSet,
};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{
    ConfigMap, Endpoints, Event, Node, PersistentVolumeClaim, Pod, ResourceQuota, Secret, Service,
    ServiceAccount,
};
use k8s_openapi::api::networking::v1::{Ingress, IngressClass, NetworkPolicy};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::{Api, ApiResource, DynamicObject, ListParams, LogParams};
use kube::Client;
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::read::{client, ensure_namespace};
use super::util::{check_name, check_namespace_name, ToolError};
use super::{Common, Ctx, Effect, Render, Tool, ToolMeta};
use crate::diagnose::{
    self, ContainerLog, CrashLoop, KeysOnly, Report, RevisionInfo, Snapshot, WorkloadHistory,
};
use crate::rollout::{controller_history, deployment_history, Revision};

/// Lines of a crashed container's previous log read for a finding.
const PREVIOUS_LOG_LINES: i64 = 40;
/// Lines of a running container's log read to spot app-level faults.
const CURRENT_LOG_LINES: i64 = 60;
/// Most container logs read by one diagnosis.
const MAX_LOG_READS: usize = 24;

/// Lists a kind; a forbidden or unserved kind becomes a blind spot instead of an error, and so
/// does a kind the policy denies (--deny-kinds). Objects of namespaces outside the policy's
/// allow-list are dropped (a cluster-wide list returns every namespace).
async fn tolerant<K>(ctx: &Ctx, api: Api<K>, blind: &mut Vec<String>) -> Result<Vec<K>, ToolError>
where
    K: kube::Resource + Clone + DeserializeOwned + std::fmt::Debug,
    K::DynamicType: Default,
{
    tolerant_with(ctx, api, &ListParams::default(), blind).await
}

/// [`tolerant`] with list parameters (a field selector).
async fn tolerant_with<K>(
    ctx: &Ctx,
    api: Api<K>,
    lp: &ListParams,
    blind: &mut Vec<String>,
) -> Result<Vec<K>, ToolError>
where
    K: kube::Resource + Clone + DeserializeOwned + std::fmt::Debug,
    K::DynamicType: Default,
{
    let dt = K::DynamicType::default();
    let (kind, plural) = (K::kind(&dt), K::plural(&dt));
    if ctx.policy.kind_denied(&[&kind, &plural]) {
        blind.push(format!("{kind} (denied by policy)"));
        return Ok(vec![]);
    }
    match api.list(lp).await {
        Ok(l) => Ok(in_allowed_namespaces(ctx, l.items)),
        Err(kube::Error::Api(s)) if s.code == 403 => {
            blind.push(format!("{kind} (forbidden)"));
            Ok(vec![])
        }
        Err(kube::Error::Api(s)) if s.code == 404 => {
            blind.push(format!("{kind} (not served)"));
            Ok(vec![])
        }
        Err(e) => Err(ToolError::from_kube(e, &format!("list {kind}"))),
    }
}

/// The objects in namespaces the policy allows; cluster-scoped objects are kept.
fn in_allowed_namespaces<K: kube::Resource>(ctx: &Ctx, items: Vec<K>) -> Vec<K> {
    if ctx.policy.namespace_filter().is_none() {
        return items;
    }
    items
        .into_iter()
        .filter(|o| {
            o.meta()
                .namespace
                .as_deref()
                .is_none_or(|n| ctx.policy.namespace_allowed(n))
        })
        .collect()
}

/// A namespaced kind's API in one namespace or all.
fn nsapi<K>(client: &Client, ns: Option<&str>) -> Api<K>
where
    K: kube::Resource<Scope = kube::core::NamespaceResourceScope>,
    K::DynamicType: Default,
{
    match ns {
        Some(n) => Api::namespaced(client.clone(), n),
        None => Api::all(client.clone()),
    }
}

/// Lists a kind from the first served version of `versions` and reads the items as the typed
/// (newest) version: older versions of CronJob and HPA have the same shape for what we read.
/// Group, kind and plural are the typed kind's.
async fn tolerant_versions<K>(
    ctx: &Ctx,
    client: &Client,
    ns: Option<&str>,
    versions: &[&str],
    blind: &mut Vec<String>,
) -> Vec<K>
where
    K: DeserializeOwned + k8s_openapi::Resource,
{
    let (group, kind, plural) = (K::GROUP, K::KIND, K::URL_PATH_SEGMENT);
    if ctx.policy.kind_denied(&[kind, plural]) {
        blind.push(format!("{kind} (denied by policy)"));
        return vec![];
    }
    for v in versions {
        let ar = ApiResource {
            group: group.into(),
            version: (*v).into(),
            api_version: format!("{group}/{v}"),
            kind: kind.into(),
            plural: plural.into(),
        };
        let api: Api<DynamicObject> = match ns {
            Some(n) => Api::namespaced_with(client.clone(), n, &ar),
            None => Api::all_with(client.clone(), &ar),
        };
        match api.list(&ListParams::default()).await {
            Ok(l) => {
                return in_allowed_namespaces(ctx, l.items)
                    .into_iter()
                    .filter_map(|o| {
                        let mut v = serde_json::to_value(o).ok()?;
                        v["apiVersion"] = K::API_VERSION.into();
                        v["kind"] = K::KIND.into();
                        serde_json::from_value(v).ok()
                    })
                    .collect();
            }
            Err(kube::Error::Api(s)) if s.code == 404 => continue,
            Err(kube::Error::Api(s)) if s.code == 403 => {
                blind.push(format!("{kind} (forbidden)"));
                return vec![];
            }
            Err(_) => continue,
        }
    }
    blind.push(format!("{kind} (not served)"));
    vec![]
}

fn keys_only<'a>(
    items: impl Iterator<Item = (Option<String>, Option<String>, Vec<String>)> + 'a,
) -> Vec<KeysOnly> {
    items
        .map(|(ns, name, keys)| KeysOnly {
            namespace: ns.unwrap_or_default(),
            name: name.unwrap_or_default(),
            keys,
        })
        .collect()
}

fn revision_info(r: &Revision) -> RevisionInfo {
    RevisionInfo {
        revision: r.revision,
        created: r.created,
        images: r.images.clone(),
        current: r.current,
        healthy: r.healthy,
        changes: r.changes.clone(),
    }
}

fn owner_key(p: &Pod) -> String {
    p.metadata
        .owner_references
        .iter()
        .flatten()
        .find(|o| o.controller == Some(true))
        .map(|o| format!("{}/{}", o.kind, o.name))
        .unwrap_or_else(|| format!("Pod/{}", p.metadata.name.clone().unwrap_or_default()))
}

/// Containers whose previous instance failed: (pod, container, init?).
fn crashed_containers(p: &Pod) -> Vec<(String, bool)> {
    let st = p.status.clone().unwrap_or_default();
    let failed = |c: &k8s_openapi::api::core::v1::ContainerStatus| {
        c.restart_count > 0
            && (c
                .state
                .as_ref()
                .and_then(|s| s.waiting.as_ref())
                .and_then(|w| w.reason.as_deref())
                == Some("CrashLoopBackOff")
                || c.last_state
                    .as_ref()
                    .and_then(|l| l.terminated.as_ref())
                    .is_some_and(|t| t.exit_code != 0))
    };
    let init = st
        .init_container_statuses
        .iter()
        .flatten()
        .filter(|c| failed(c))
        .map(|c| (c.name.clone(), true));
    let main = st
        .container_statuses
        .iter()
        .flatten()
        .filter(|c| failed(c))
        .map(|c| (c.name.clone(), false));
    init.chain(main).collect()
}

/// Reads log tails concurrently (bounded), skipping logs that cannot be read.
async fn read_logs(
    client: &Client,
    wanted: Vec<(String, String, String, bool)>,
) -> Vec<ContainerLog> {
    stream::iter(wanted)
        .map(|(ns, pod, container, previous)| {
            let client = client.clone();
            async move {
                let lp = LogParams {
                    container: Some(container.clone()),
                    previous,
                    tail_lines: Some(if previous {
                        PREVIOUS_LOG_LINES
                    } else {
                        CURRENT_LOG_LINES
                    }),
                    limit_bytes: Some(32 * 1024),
                    ..Default::default()
                };
                let text = Api::<Pod>::namespaced(client, &ns)
                    .logs(&pod, &lp)
                    .await
                    .ok()?;
                Some(ContainerLog {
                    namespace: ns,
                    pod,
                    container,
                    lines: text.lines().map(String::from).collect(),
                })
            }
        })
        .buffer_unordered(8)
        .filter_map(|x| async move { x })
        .collect()
        .await
}

/// What to diagnose.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Scope {
    /// Namespace to diagnose; omit for the whole cluster (every namespace the policy allows).
    #[serde(default)]
    pub namespace: Option<String>,
    /// Only this workload (with `namespace`): its name, e.g. `todo-backend`.
    #[serde(default)]
    pub name: Option<String>,
    /// Kind of `name`: Deployment (default), StatefulSet, DaemonSet, Job, CronJob, Pod, Service.
    #[serde(default)]
    pub kind: Option<String>,
}

/// Rollout history of every Deployment (from its ReplicaSets), StatefulSet and DaemonSet (from
/// ControllerRevisions).
fn histories_of(
    deployments: &[Deployment],
    replica_sets: &[ReplicaSet],
    stateful_sets: &[StatefulSet],
    daemon_sets: &[DaemonSet],
    revisions: &[ControllerRevision],
) -> Vec<WorkloadHistory> {
    let mut histories = vec![];
    for d in deployments {
        histories.push(WorkloadHistory {
            kind: "Deployment".into(),
            namespace: d.metadata.namespace.clone().unwrap_or_default(),
            name: d.metadata.name.clone().unwrap_or_default(),
            revisions: deployment_history(d, replica_sets)
                .iter()
                .map(revision_info)
                .collect(),
        });
    }
    for (kind, meta, current, obj) in stateful_sets
        .iter()
        .map(|s| {
            (
                "StatefulSet",
                &s.metadata,
                s.status.as_ref().and_then(|st| st.update_revision.clone()),
                serde_json::to_value(s).unwrap_or_default(),
            )
        })
        .chain(daemon_sets.iter().map(|d| {
            (
                "DaemonSet",
                &d.metadata,
                None,
                serde_json::to_value(d).unwrap_or_default(),
            )
        }))
    {
        let uid = meta.uid.clone().unwrap_or_default();
        histories.push(WorkloadHistory {
            kind: kind.into(),
            namespace: meta.namespace.clone().unwrap_or_default(),
            name: meta.name.clone().unwrap_or_default(),
            revisions: controller_history(
                &uid,
                current.as_deref(),
                crate::rollout::controller_pods(kind, &obj),
                revisions,
            )
            .iter()
            .map(revision_info)
            .collect(),
        });
    }
    histories
}

/// Gathers everything the analyzers need for a namespace (or the cluster).
pub(crate) async fn snapshot(
    ctx: &Ctx,
    common: &Common,
    namespace: Option<&str>,
    include_logs: bool,
) -> Result<Snapshot, ToolError> {
    if let Some(ns) = namespace {
        check_namespace_name(ns)?;
        ctx.policy.check_namespace(ns)?;
    }
    let client = client(ctx, common).await?;
    if let Some(ns) = namespace {
        ensure_namespace(&client, ns).await?;
    }
    let ns = namespace;
    let c = &client;
    let (mut b1, mut b2, mut b3, mut b4, mut b5, mut b6) =
        (vec![], vec![], vec![], vec![], vec![], vec![]);
    let (mut b7, mut b8, mut b9, mut b10, mut b11, mut b12) =
        (vec![], vec![], vec![], vec![], vec![], vec![]);
    let (mut b13, mut b14, mut b15, mut b16, mut b17, mut b18) =
        (vec![], vec![], vec![], vec![], vec![], vec![]);
    let (mut b19, mut b20, mut b21, mut b22) = (vec![], vec![], vec![], vec![]);
    // Every list at once (three groups only to keep each join's tuple small).
    let (
        (pods, deployments, replica_sets, stateful_sets, daemon_sets, jobs, revisions),
        (services, endpoints, ingresses, ingress_classes, pvcs, storage_classes, nodes),
        (quotas, policies, events, sas, cms, secrets, cron_jobs, hpas),
    ) = tokio::join!(
        async {
            tokio::join!(
                tolerant::<Pod>(ctx, nsapi(c, ns), &mut b1),
                tolerant::<Deployment>(ctx, nsapi(c, ns), &mut b2),
                tolerant::<ReplicaSet>(ctx, nsapi(c, ns), &mut b3),
                tolerant::<StatefulSet>(ctx, nsapi(c, ns), &mut b4),
                tolerant::<DaemonSet>(ctx, nsapi(c, ns), &mut b5),
                tolerant::<Job>(ctx, nsapi(c, ns), &mut b6),
                tolerant::<ControllerRevision>(ctx, nsapi(c, ns), &mut b7),
            )
        },
        async {
            tokio::join!(
                tolerant::<Service>(ctx, nsapi(c, ns), &mut b8),
                tolerant::<Endpoints>(ctx, nsapi(c, ns), &mut b9),
                tolerant::<Ingress>(ctx, nsapi(c, ns), &mut b10),
                tolerant::<IngressClass>(ctx, Api::all(c.clone()), &mut b11),
                tolerant::<PersistentVolumeClaim>(ctx, nsapi(c, ns), &mut b12),
                tolerant::<StorageClass>(ctx, Api::all(c.clone()), &mut b13),
                tolerant::<Node>(ctx, Api::all(c.clone()), &mut b14),
            )
        },
        async {
            tokio::join!(
                tolerant::<ResourceQuota>(ctx, nsapi(c, ns), &mut b15),
                tolerant::<NetworkPolicy>(ctx, nsapi(c, ns), &mut b16),
                tolerant::<Event>(ctx, nsapi(c, ns), &mut b17),
                tolerant::<ServiceAccount>(ctx, nsapi(c, ns), &mut b18),
                tolerant::<ConfigMap>(ctx, nsapi(c, ns), &mut b19),
                tolerant::<Secret>(ctx, nsapi(c, ns), &mut b20),
                tolerant_versions::<k8s_openapi::api::batch::v1::CronJob>(
                    ctx,
                    c,
                    ns,
                    &["v1", "v1beta1"],
                    &mut b21
                ),
                tolerant_versions::<k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler>(
                    ctx,
                    c,
                    ns,
                    &["v2", "v2beta2"],
                    &mut b22,
                ),
            )
        },
    );
    let mut blind_spots: Vec<String> = [
        b1, b2, b3, b4, b5, b6, b7, b8, b9, b10, b11, b12, b13, b14, b15, b16, b17, b18, b19, b20,
        b21, b22,
    ]
    .concat();
    // Secrets: only names and key names survive this line.
    let secrets = keys_only(secrets?.into_iter().map(|s| {
        (
            s.metadata.namespace,
            s.metadata.name,
            s.data.map(|d| d.into_keys().collect()).unwrap_or_default(),
        )
    }));
    let config_maps = keys_only(cms?.into_iter().map(|m| {
        let mut keys: Vec<String> = m.data.map(|d| d.into_keys().collect()).unwrap_or_default();
        keys.extend(m.binary_data.map(|d| d.into_keys()).into_iter().flatten());
        (m.metadata.namespace, m.metadata.name, keys)
    }));
    let (pods, deployments, replica_sets) = (pods?, deployments?, replica_sets?);
    let (stateful_sets, daemon_sets, revisions) = (stateful_sets?, daemon_sets?, revisions?);

    let histories = histories_of(
        &deployments,
        &replica_sets,
        &stateful_sets,
        &daemon_sets,
        &revisions,
    );

    // Logs: the previous instance of crashed containers (two pods per workload), and the current
    // log of one running pod per workload (app-level faults such as RBAC denials show only there).
    let (mut previous_wanted, mut current_wanted) = (vec![], vec![]);
    if include_logs {
        let mut per_owner: BTreeMap<String, usize> = BTreeMap::new();
        let mut running_seen: BTreeSet<String> = BTreeSet::new();
        for p in &pods {
            let ns = p.metadata.namespace.clone().unwrap_or_default();
            let name = p.metadata.name.clone().unwrap_or_default();
            let owner = format!("{ns}/{}", owner_key(p));
            let crashed = crashed_containers(p);
            if !crashed.is_empty() {
                let n = per_owner.entry(owner.clone()).or_default();
                if *n < 2 && previous_wanted.len() < MAX_LOG_READS {
                    *n += 1;
                    for (container, _) in crashed {
                        previous_wanted.push((ns.clone(), name.clone(), container, true));
                    }
                }
            } else if p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
                && namespace.is_some()
                && current_wanted.len() < MAX_LOG_READS
                && running_seen.insert(owner)
            {
                for c in p.spec.iter().flat_map(|s| s.containers.iter()) {
                    current_wanted.push((ns.clone(), name.clone(), c.name.clone(), false));
                }
            }
        }
    }
    let (previous_logs, current_logs) = tokio::join!(
        read_logs(&client, previous_wanted),
        read_logs(&client, current_wanted)
    );
    blind_spots.sort();
    blind_spots.dedup();
    Ok(Snapshot {
        now: Timestamp::now(),
        pods,
        deployments,
        replica_sets,
        stateful_sets,
        daemon_sets,
        jobs: jobs?,
        cron_jobs,
        services: services?,
        endpoints: endpoints?,
        ingresses: ingresses?,
        ingress_classes: ingress_classes?,
        pvcs: pvcs?,
        storage_classes: storage_classes?,
        nodes: nodes?,
        resource_quotas: quotas?,
        hpas,
        network_policies: policies?,
        events: events?,
        config_maps,
        secrets,
        service_accounts: sas?
            .into_iter()
            .map(|s| {
                (
                    s.metadata.namespace.unwrap_or_default(),
                    s.metadata.name.unwrap_or_default(),
                )
            })
            .collect(),
        previous_logs,
        current_logs,
        histories,
        blind_spots,
    })
}

// ------------------------------------------------------------------ diagnose

/// Finds what is wrong in a namespace, a workload or the whole cluster, and why: every failure
/// of the catalogue (CrashLoopBackOff, OOMKilled, image pull, missing config, probes,
/// scheduling, PVCs, rollouts, Services, Ingress, Jobs, nodes, …) grouped per workload with
/// evidence, the probable cause and remediation steps as tool calls.
pub struct Diagnose;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DiagnoseParams {
    #[serde(flatten)]
    pub common: Common,
    #[serde(flatten)]
    pub scope: Scope,
    /// Read the previous logs of crashed containers (and one running pod per workload) for the
    /// cause (default true).
    #[serde(default = "yes")]
    pub include_logs: bool,
    /// Most findings to return (default 10; the rest are counted).
    #[serde(default)]
    pub max_findings: Option<usize>,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct DiagnoseOutput {
    /// What was diagnosed, e.g. `namespace todo-app` or `Deployment todo-app/todo-backend`.
    pub scope: String,
    #[serde(flatten)]
    pub report: Report,
    /// Findings left out by max_findings.
    #[serde(skip_serializing_if = "is_zero")]
    pub more_findings: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

impl Tool for Diagnose {
    type Params = DiagnoseParams;
    type Output = DiagnoseOutput;
    const META: ToolMeta = ToolMeta {
        name: "diagnose",
        title: "Diagnose problems",
        description: "Finds what is wrong and why, in one call: CrashLoopBackOff, OOMKilled, image pull errors, missing ConfigMap/Secret keys, stuck volumes, bad commands, failing init containers and probes, unschedulable pods, unbound PVCs, stalled rollouts, quota/FailedCreate, Services without endpoints or with a wrong targetPort, broken Ingress, failed Jobs, HPAs, nodes. One finding per workload with evidence (status fields, events, last log lines), the cause in plain words, what changed since the last healthy revision, and remediation as tool calls (e.g. rollout_undo). Scope: a namespace, a workload (namespace+name[+kind]) or the cluster (no namespace). Example: {\"namespace\": \"todo-app\"}",
        effect: Effect::Read,
        idempotent: true,
    };

    async fn call(&self, ctx: &Ctx, p: DiagnoseParams) -> Result<DiagnoseOutput, ToolError> {
        let s = &p.scope;
        if s.name.is_some() && s.namespace.is_none() {
            return Err(ToolError::invalid(
                "name needs a namespace",
                "pass {\"namespace\": \"todo-app\", \"name\": \"todo-backend\"}",
            ));
        }
        if let Some(n) = &s.name {
            check_name("name", n)?;
        }
        let snap = snapshot(ctx, &p.common, s.namespace.as_deref(), p.include_logs).await?;
        let mut report = diagnose::diagnose(&snap);
        let scope = match (&s.namespace, &s.name) {
            (Some(ns), Some(name)) => {
                let kind = s.kind.clone().unwrap_or_else(|| "Deployment".into());
                let exists = match kind.to_ascii_lowercase().as_str() {
                    "deployment" | "deploy" => snap.deployments.iter().any(|d| d.metadata.name.as_deref() == Some(name)),
                    "pod" | "po" => snap.pods.iter().any(|d| d.metadata.name.as_deref() == Some(name)),
                    "statefulset" | "sts" => snap.stateful_sets.iter().any(|d| d.metadata.name.as_deref() == Some(name)),
                    "daemonset" | "ds" => snap.daemon_sets.iter().any(|d| d.metadata.name.as_deref() == Some(name)),
                    "job" => snap.jobs.iter().any(|d| d.metadata.name.as_deref() == Some(name)),
                    "cronjob" | "cj" => snap.cron_jobs.iter().any(|d| d.metadata.name.as_deref() == Some(name)),
                    "service" | "svc" => snap.services.iter().any(|d| d.metadata.name.as_deref() == Some(name)),
                    _ => {
                        return Err(ToolError::invalid(
                            format!("kind '{kind}' cannot be diagnosed on its own"),
                            "use Deployment, StatefulSet, DaemonSet, Job, CronJob, Pod or Service, or diagnose the namespace",
                        ))
                    }
                };
                if !exists {
                    return Err(ToolError::not_found(
                        format!("{kind} '{name}' not found in namespace {ns}"),
                        "diagnose the namespace, or list the workloads with pods_list",
                    ));
                }
                let canonical = match kind.to_ascii_lowercase().as_str() {
                    "deploy" => "Deployment",
                    "po" => "Pod",
                    "sts" => "StatefulSet",
                    "ds" => "DaemonSet",
                    "cj" => "CronJob",
                    "svc" => "Service",
                    _ => kind.as_str(),
                }
                .to_string();
                diagnose::retain_concerning(&snap, &mut report, &canonical, ns, name);
                format!("{canonical} {ns}/{name}")
            }
            (Some(ns), None) => {
                diagnose::retain_nodes_in_use(&mut report);
                format!("namespace {ns}")
            }
            _ => "cluster".into(),
        };
        let max = p.max_findings.unwrap_or(10).max(1);
        let more_findings = report.findings.len().saturating_sub(max);
        report.findings.truncate(max);
        Ok(DiagnoseOutput {
            scope,
            report,
            more_findings,
        })
    }
}

impl Render for DiagnoseOutput {
    fn render(&self) -> String {
        let mut s = format!("Diagnosis of {}:\n{}", self.scope, self.report.render());
        if self.more_findings > 0 {
            s.push_str(&format!(
                "… {} more finding(s) not shown; pass max_findings or a narrower scope\n",
                self.more_findings
            ));
        }
        s
    }
}

// ------------------------------------------------------------------ crashloops_find

/// Every crash-looping container in a namespace or the cluster: workload, restarts, exit
/// code/reason, last termination, back-off, last log lines, and whether the crashes started
/// with the workload's current revision.
pub struct CrashloopsFind;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CrashloopsParams {
    #[serde(flatten)]
    pub common: Common,
    /// Namespace to search; omit for every namespace.
    #[serde(default)]
    pub namespace: Option<String>,
    /// Read the last lines of each crashed container's previous log (default true; two pods per workload).
    #[serde(default = "yes")]
    pub include_logs: bool,
    /// Most containers to list (default 30; the rest are counted).
    #[serde(default)]
    pub limit: Option<usize>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct CrashloopsOutput {
    pub scope: String,
    pub pods_checked: usize,
    /// Crash-looping containers in total.
    pub total: usize,
    /// Workloads with crash-looping containers, e.g. `Deployment todo-app/todo-backend (3)`.
    pub workloads: Vec<String>,
    pub crashloops: Vec<CrashLoop>,
}

impl Tool for CrashloopsFind {
    type Params = CrashloopsParams;
    type Output = CrashloopsOutput;
    const META: ToolMeta = ToolMeta {
        name: "crashloops_find",
        title: "Find crash-looping containers",
        description: "Every CrashLoopBackOff container (init containers too) in a namespace or the whole cluster: workload, restarts, exit code and reason, last termination, back-off, the previous instance's last log lines and whether the crashes started with the workload's current revision. Fast on large clusters. Example: {\"namespace\": \"todo-app\"}",
        effect: Effect::Read,
        idempotent: true,
    };

    async fn call(&self, ctx: &Ctx, p: CrashloopsParams) -> Result<CrashloopsOutput, ToolError> {
        let ns = p.namespace.as_deref();
        if let Some(ns) = ns {
            check_namespace_name(ns)?;
            ctx.policy.check_namespace(ns)?;
        }
        let client = client(ctx, &p.common).await?;
        if let Some(ns) = ns {
            ensure_namespace(&client, ns).await?;
        }
        // Only what crash loops need: pods, then the owners' history.
        let mut blind = vec![];
        let pods: Vec<Pod> = tolerant::<Pod>(ctx, nsapi(&client, ns), &mut blind).await?;
        if let Some(b) = blind.first() {
            return Err(ToolError::Forbidden {
                message: format!("cannot list pods: {b}"),
                hint: "use a context whose identity may list pods".into(),
            });
        }
        let crashing: Vec<&Pod> = pods
            .iter()
            .filter(|p| !crashed_containers(p).is_empty())
            .collect();
        let mut snap = Snapshot {
            now: Timestamp::now(),
            ..Default::default()
        };
        if !crashing.is_empty() {
            // The owners' history, and the first BackOff of each pod (when the crashes began,
            // so that a revision that ran fine for hours is not blamed).
            let (mut b1, mut b2, mut b3, mut b4, mut b5, mut b6) =
                (vec![], vec![], vec![], vec![], vec![], vec![]);
            let backoffs = ListParams::default().fields("type=Warning,reason=BackOff");
            let (deps, rss, stss, dss, revs, events) = tokio::join!(
                tolerant::<Deployment>(ctx, nsapi(&client, ns), &mut b1),
                tolerant::<ReplicaSet>(ctx, nsapi(&client, ns), &mut b2),
                tolerant::<StatefulSet>(ctx, nsapi(&client, ns), &mut b3),
                tolerant::<DaemonSet>(ctx, nsapi(&client, ns), &mut b4),
                tolerant::<ControllerRevision>(ctx, nsapi(&client, ns), &mut b5),
                tolerant_with::<Event>(ctx, nsapi(&client, ns), &backoffs, &mut b6),
            );
            let (deps, rss, stss, dss, revs) = (deps?, rss?, stss?, dss?, revs?);
            snap.histories = histories_of(&deps, &rss, &stss, &dss, &revs);
            snap.deployments = deps;
            snap.replica_sets = rss;
            snap.stateful_sets = stss;
            snap.daemon_sets = dss;
            snap.events = events?;
            if p.include_logs {
                let mut per_owner: BTreeMap<String, usize> = BTreeMap::new();
                let mut wanted = vec![];
                for pod in &crashing {
                    let pns = pod.metadata.namespace.clone().unwrap_or_default();
                    let n = per_owner
                        .entry(format!("{pns}/{}", owner_key(pod)))
                        .or_default();
                    if *n >= 2 || wanted.len() >= MAX_LOG_READS {
                        continue;
                    }
                    *n += 1;
                    for (c, _) in crashed_containers(pod) {
                        wanted.push((
                            pns.clone(),
                            pod.metadata.name.clone().unwrap_or_default(),
                            c,
                            true,
                        ));
                    }
                }
                snap.previous_logs = read_logs(&client, wanted).await;
            }
        }
        let pods_checked = pods.len();
        snap.pods = pods;
        let mut all = diagnose::crashloops(&snap);
        let mut per_workload: BTreeMap<String, usize> = BTreeMap::new();
        for c in &all {
            *per_workload
                .entry(format!(
                    "{} {}/{}",
                    c.workload.split('/').next().unwrap_or(""),
                    c.namespace,
                    c.workload.split('/').nth(1).unwrap_or(&c.workload)
                ))
                .or_default() += 1;
        }
        let total = all.len();
        all.truncate(p.limit.unwrap_or(30).max(1));
        Ok(CrashloopsOutput {
            scope: ns.map_or("all namespaces".into(), |n| format!("namespace {n}")),
            pods_checked,
            total,
            workloads: per_workload
                .into_iter()
                .map(|(w, n)| format!("{w} ({n})"))
                .collect(),
            crashloops: all,
        })
    }
}

/// Up to two log lines that say most: error-looking lines first (exception, panic, fatal,
/// refused …), else the last two.
fn telling_lines(lines: &[String]) -> Vec<&String> {
    const WORDS: &[&str] = &[
        "error",
        "exception",
        "panic",
        "fatal",
        "refused",
        "denied",
        "forbidden",
        "failed",
        "not found",
        "missing",
        "killed",
    ];
    let telling: Vec<&String> = lines
        .iter()
        .filter(|l| {
            let l = l.to_ascii_lowercase();
            WORDS.iter().any(|w| l.contains(w))
        })
        .collect();
    let pick = if telling.is_empty() {
        lines.iter().collect::<Vec<_>>()
    } else {
        telling
    };
    pick[pick.len().saturating_sub(2)..].to_vec()
}

impl Render for CrashloopsOutput {
    fn render(&self) -> String {
        if self.total == 0 {
            return format!(
                "No crash-looping containers in {} ({} pods checked).\n",
                self.scope, self.pods_checked
            );
        }
        let mut s = format!(
            "{} crash-looping container(s) in {} ({} pods checked); workloads: {}\n",
            self.total,
            self.scope,
            self.pods_checked,
            self.workloads.join(", ")
        );
        let now = Timestamp::now();
        for c in &self.crashloops {
            s.push_str(&format!(
                "  {}/{} [{}{}] {} restarts {}{}{}{}{}\n",
                c.namespace,
                c.pod,
                if c.init { "init:" } else { "" },
                c.container,
                c.workload,
                c.restarts,
                match (&c.reason, c.exit_code) {
                    (Some(r), Some(e)) => format!(", last {r} exit {e}"),
                    (None, Some(e)) => format!(", last exit {e}"),
                    (Some(r), None) => format!(", last {r}"),
                    _ => String::new(),
                },
                c.last_termination
                    .map(|t| format!(" {} ago", super::util::age(Some(t), now)))
                    .unwrap_or_default(),
                c.back_off
                    .as_ref()
                    .map(|b| format!(", back-off {b}"))
                    .unwrap_or_default(),
                match c.started_with_current_revision {
                    Some(true) => ", started with the current revision",
                    Some(false) => ", predates the current revision",
                    None => "",
                }
            ));
            if let Some(cause) = &c.log_cause {
                s.push_str(&format!("      cause: {cause}\n"));
            }
            for l in telling_lines(&c.last_log_lines) {
                s.push_str(&format!("      | {l}\n"));
            }
        }
        if self.total > self.crashloops.len() {
            s.push_str(&format!(
                "  … {} more; pass limit or a namespace\n",
                self.total - self.crashloops.len()
            ));
        }
        s
    }
}
