//! Pure diagnosis: a [`Snapshot`] of plain Kubernetes objects (plus a few log tails and rollout
//! histories the caller fetched) in, ranked [`Finding`]s out. Nothing here talks to the cluster.
//!
//! Every row of `failure-catalogue.md` has an analyzer; each finding names the workload that owns
//! the problem (Pod → ReplicaSet → Deployment, StatefulSet, DaemonSet, Job → CronJob), the
//! evidence (status fields, grouped events, a short log excerpt), the cause in plain words and
//! remediation steps that are either calls of our own tools or manual actions.

mod ctx;
mod network;
mod pods;
mod render;
mod workloads;

#[cfg(test)]
mod fixtures;
#[cfg(test)]
mod tests;

use std::collections::BTreeSet;

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{
    Endpoints, Event, Node, PersistentVolumeClaim, Pod, ResourceQuota, Service,
};
use k8s_openapi::api::networking::v1::{Ingress, IngressClass, NetworkPolicy};
use k8s_openapi::api::storage::v1::StorageClass;
use schemars::JsonSchema;
use serde::Serialize;
use serde_json::Value;

pub(crate) use ctx::Ctx;

// ------------------------------------------------------------------------------------ input

/// Everything the analyzers look at, fetched by the caller. Secrets and ConfigMaps carry key
/// names only, never values.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// The time "now" for ages and recency (the fetch time).
    pub now: Timestamp,
    pub pods: Vec<Pod>,
    pub deployments: Vec<Deployment>,
    pub replica_sets: Vec<ReplicaSet>,
    pub stateful_sets: Vec<StatefulSet>,
    pub daemon_sets: Vec<DaemonSet>,
    pub jobs: Vec<Job>,
    pub cron_jobs: Vec<CronJob>,
    pub services: Vec<Service>,
    pub endpoints: Vec<Endpoints>,
    pub ingresses: Vec<Ingress>,
    pub ingress_classes: Vec<IngressClass>,
    pub pvcs: Vec<PersistentVolumeClaim>,
    pub storage_classes: Vec<StorageClass>,
    pub nodes: Vec<Node>,
    pub resource_quotas: Vec<ResourceQuota>,
    pub hpas: Vec<HorizontalPodAutoscaler>,
    pub network_policies: Vec<NetworkPolicy>,
    pub events: Vec<Event>,
    /// ConfigMaps: names and key names only.
    pub config_maps: Vec<KeysOnly>,
    /// Secrets: names and key names only, NEVER values.
    pub secrets: Vec<KeysOnly>,
    /// (namespace, name) of every ServiceAccount.
    pub service_accounts: Vec<(String, String)>,
    /// Last lines of the previous (crashed) instance of crash-looping containers.
    pub previous_logs: Vec<ContainerLog>,
    /// Last lines of running-but-unready (or hanging init) containers.
    pub current_logs: Vec<ContainerLog>,
    /// Rollout history per Deployment/StatefulSet/DaemonSet.
    pub histories: Vec<WorkloadHistory>,
    /// Kinds the fetch layer could not read (forbidden / not served), e.g. `secrets: forbidden`.
    pub blind_spots: Vec<String>,
}

/// A ConfigMap or Secret by name with its key names (never values).
#[derive(Debug, Clone, Default, Serialize)]
pub struct KeysOnly {
    pub namespace: String,
    pub name: String,
    pub keys: Vec<String>,
}

/// The tail of one container's log.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ContainerLog {
    pub namespace: String,
    pub pod: String,
    pub container: String,
    pub lines: Vec<String>,
}

/// The rollout history of one Deployment, StatefulSet or DaemonSet.
#[derive(Debug, Clone, Default, Serialize)]
pub struct WorkloadHistory {
    /// `Deployment`, `StatefulSet` or `DaemonSet`.
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub revisions: Vec<RevisionInfo>,
}

/// One revision of a workload.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RevisionInfo {
    pub revision: i64,
    pub created: Option<Timestamp>,
    /// `container=image`.
    pub images: Vec<String>,
    /// The revision the workload runs now.
    pub current: bool,
    /// Some(true): all its replicas available now; Some(false): current and failing; None: unknown
    /// (scaled down).
    pub healthy: Option<bool>,
    /// Human diff against the previous revision, e.g. `image backend: a:1.0 → a:1.1`.
    pub changes: Vec<String>,
}

// ------------------------------------------------------------------------------------ output

/// How bad a finding is; the most severe sorts first.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Something is down or cannot start.
    Critical,
    /// Degraded, or will break soon.
    #[default]
    Warning,
    /// Worth knowing; nothing is broken.
    Info,
}

impl Severity {
    fn label(self) -> &'static str {
        match self {
            Severity::Critical => "CRITICAL",
            Severity::Warning => "WARNING",
            Severity::Info => "INFO",
        }
    }
}

/// The object a finding is about.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, JsonSchema)]
pub struct ObjectRef {
    /// `Deployment`, `StatefulSet`, `DaemonSet`, `Job`, `CronJob`, `Pod`, `Service`, `Ingress`,
    /// `PersistentVolumeClaim`, `Node`, …
    pub kind: String,
    /// Empty for cluster-scoped objects (Node).
    pub namespace: String,
    pub name: String,
}

impl ObjectRef {
    pub fn new(kind: &str, namespace: &str, name: &str) -> Self {
        ObjectRef {
            kind: kind.to_string(),
            namespace: namespace.to_string(),
            name: name.to_string(),
        }
    }
}

impl std::fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.namespace.is_empty() {
            write!(f, "{}/{}", self.kind, self.name)
        } else {
            write!(f, "{} {}/{}", self.kind, self.namespace, self.name)
        }
    }
}

/// One remediation step: a call of one of this server's tools, or something to do by hand.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum Step {
    /// Call this tool with these arguments.
    Tool {
        tool: String,
        arguments: Value,
        why: String,
    },
    /// Do this by hand (edit a manifest, create an object, …).
    Manual { action: String, why: String },
}

impl Step {
    pub(crate) fn tool(tool: &str, arguments: Value, why: impl Into<String>) -> Self {
        Step::Tool {
            tool: tool.to_string(),
            arguments,
            why: why.into(),
        }
    }
    pub(crate) fn manual(action: impl Into<String>, why: impl Into<String>) -> Self {
        Step::Manual {
            action: action.into(),
            why: why.into(),
        }
    }
}

/// The catalogue rows, by number (`failure-catalogue.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Row {
    CrashLoop = 1,
    OomKilled = 2,
    ImagePull = 3,
    ConfigRefMissing = 4,
    StuckCreating = 5,
    BadCommand = 6,
    InitContainer = 7,
    Readiness = 8,
    Liveness = 9,
    Unschedulable = 10,
    PvcPending = 11,
    Evicted = 12,
    RolloutStalled = 13,
    FailedCreate = 14,
    ScaledToZero = 15,
    NoEndpoints = 16,
    TargetPort = 17,
    Ingress = 18,
    NetworkPolicy = 19,
    RbacDenied = 20,
    HpaNotScaling = 21,
    NodeNotReady = 22,
    JobFailed = 23,
    AppFault = 24,
}

impl Row {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Row::CrashLoop => "CrashLoopBackOff",
            Row::OomKilled => "OOMKilled",
            Row::ImagePull => "ImagePullFailure",
            Row::ConfigRefMissing => "ConfigReferenceMissing",
            Row::StuckCreating => "StuckContainerCreating",
            Row::BadCommand => "BadCommand",
            Row::InitContainer => "InitContainerFailing",
            Row::Readiness => "ReadinessProbeFailing",
            Row::Liveness => "LivenessProbeKilling",
            Row::Unschedulable => "Unschedulable",
            Row::PvcPending => "PVCNotBound",
            Row::Evicted => "Evicted",
            Row::RolloutStalled => "RolloutStalled",
            Row::FailedCreate => "FailedCreate",
            Row::ScaledToZero => "ScaledToZeroWhileSelected",
            Row::NoEndpoints => "ServiceWithoutEndpoints",
            Row::TargetPort => "TargetPortMismatch",
            Row::Ingress => "IngressBroken",
            Row::NetworkPolicy => "NetworkPolicyIsolation",
            Row::RbacDenied => "RBACDenied",
            Row::HpaNotScaling => "HPANotScaling",
            Row::NodeNotReady => "NodeNotReady",
            Row::JobFailed => "JobFailed",
            Row::AppFault => "AppFault",
        }
    }
}

/// Most pod names listed in one finding (`pod_count` has them all).
pub const MAX_PODS_LISTED: usize = 5;
/// Most evidence lines kept in one finding.
pub const MAX_EVIDENCE: usize = 10;

/// One problem of one workload (or Service, Ingress, PVC, Node), with its evidence and fix.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Finding {
    pub severity: Severity,
    /// Short name of the catalogue row, e.g. `CrashLoopBackOff`.
    pub category: String,
    /// Row number in the failure catalogue (1–24).
    pub row: u8,
    /// What owns the problem: the workload (Deployment, StatefulSet, DaemonSet, Job, CronJob), a
    /// bare Pod, or the Service/Ingress/PVC/Node at fault.
    pub object: ObjectRef,
    /// Affected pods (at most 5 names; `pod_count` counts them all).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pods: Vec<String>,
    pub pod_count: usize,
    /// Services and Ingresses that route to the affected pods (the blast radius).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exposed_by: Vec<String>,
    /// One line: what is wrong.
    pub summary: String,
    /// Short facts: `field.path = value`, grouped events, up to 5 log lines (`log| …`).
    pub evidence: Vec<String>,
    /// The cause in plain words.
    pub cause: String,
    /// Every affected pod name (for counting; only `pods` is serialized).
    #[serde(skip)]
    all_pods: std::collections::BTreeSet<String>,
    /// When it started, as far as the status shows (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub since: Option<Timestamp>,
    /// What to do, first step first.
    pub remediation: Vec<Step>,
}

impl Finding {
    pub(crate) fn new(row: Row, severity: Severity, object: ObjectRef) -> Self {
        Finding {
            severity,
            category: row.name().to_string(),
            row: row as u8,
            object,
            pods: vec![],
            pod_count: 0,
            all_pods: Default::default(),
            exposed_by: vec![],
            summary: String::new(),
            evidence: vec![],
            cause: String::new(),
            since: None,
            remediation: vec![],
        }
    }

    pub(crate) fn summary(mut self, s: impl Into<String>) -> Self {
        self.summary = s.into();
        self
    }
    pub(crate) fn cause(mut self, s: impl Into<String>) -> Self {
        self.cause = s.into();
        self
    }
    pub(crate) fn since(mut self, t: Option<Timestamp>) -> Self {
        self.since = t;
        self
    }
    pub(crate) fn pod(mut self, name: &str) -> Self {
        self.add_pod(name);
        self
    }
    pub(crate) fn evidence(mut self, e: impl Into<String>) -> Self {
        self.add_evidence(e.into());
        self
    }
    pub(crate) fn evidence_all(mut self, es: impl IntoIterator<Item = String>) -> Self {
        es.into_iter().for_each(|e| self.add_evidence(e));
        self
    }
    pub(crate) fn step(mut self, s: Step) -> Self {
        if !self.remediation.contains(&s) {
            self.remediation.push(s);
        }
        self
    }
    pub(crate) fn steps(mut self, ss: impl IntoIterator<Item = Step>) -> Self {
        for s in ss {
            self = self.step(s);
        }
        self
    }

    fn add_pod(&mut self, name: &str) {
        if !self.all_pods.insert(name.to_string()) {
            return;
        }
        self.pod_count = self.all_pods.len();
        if self.pods.len() < MAX_PODS_LISTED {
            self.pods.push(name.to_string());
        }
    }

    fn add_evidence(&mut self, e: String) {
        if !e.is_empty() && self.evidence.len() < MAX_EVIDENCE && !self.evidence.contains(&e) {
            self.evidence.push(e);
        }
    }

    fn row_enum_key(&self) -> (u8, ObjectRef) {
        (self.row, self.object.clone())
    }

    /// Folds another finding of the same row and object into this one.
    fn absorb(&mut self, other: Finding) {
        self.severity = self.severity.min(other.severity);
        for p in &other.all_pods {
            self.add_pod(p);
        }
        // the same fact from another pod (another count, another age) adds nothing
        for e in other.evidence {
            let k = evidence_key(&e);
            if !self.evidence.iter().any(|x| evidence_key(x) == k) {
                self.add_evidence(e);
            }
        }
        self.since = match (self.since, other.since) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if self.cause.is_empty() {
            self.cause = other.cause;
        }
        for s in other.remediation {
            // One step per tool and purpose: the same call for a sibling pod adds nothing.
            let same_purpose = |a: &Step| match (a, &s) {
                (
                    Step::Tool {
                        tool: t1, why: w1, ..
                    },
                    Step::Tool {
                        tool: t2, why: w2, ..
                    },
                ) => t1 == t2 && w1 == w2,
                _ => false,
            };
            if !self.remediation.contains(&s) && !self.remediation.iter().any(same_purpose) {
                self.remediation.push(s);
            }
        }
    }

    fn blast(&self) -> usize {
        let ingresses = self
            .exposed_by
            .iter()
            .filter(|e| e.starts_with("Ingress/"))
            .count();
        self.pod_count + 5 * self.exposed_by.len() + 10 * ingresses
    }
}

/// What an evidence line is about: `restartCount`, `event BackOff`, or a whole log line.
fn evidence_key(e: &str) -> &str {
    if e.starts_with("log|") {
        return e;
    }
    let end = [" = ", " ×", ": "]
        .iter()
        .filter_map(|sep| e.find(sep))
        .min()
        .unwrap_or(e.len());
    &e[..end]
}

/// Result of [`diagnose`].
#[derive(Debug, Clone, Default, Serialize, JsonSchema)]
pub struct Report {
    /// Most severe first, then widest blast radius.
    pub findings: Vec<Finding>,
    /// Workloads looked at (Deployments, StatefulSets, DaemonSets, CronJobs, Jobs and ReplicaSets
    /// without an owner, bare pods).
    pub workloads_checked: usize,
    pub pods_checked: usize,
    /// Kinds that could not be read (forbidden / not served): what this report cannot see.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub blind_spots: Vec<String>,
}

/// One crash-looping container.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct CrashLoop {
    pub namespace: String,
    pub pod: String,
    pub container: String,
    /// An init container.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub init: bool,
    /// Owning workload as `Kind/name`, e.g. `Deployment/backend` (the pod itself when bare).
    pub workload: String,
    pub restarts: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// Termination reason, e.g. `Error`, `OOMKilled`, `StartError`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// When the last instance ended (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub last_termination: Option<Timestamp>,
    /// Current back-off before the next restart, e.g. `5m0s` (from the waiting message).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub back_off: Option<String>,
    /// What the previous instance's log says went wrong (exception, missing env var,
    /// connection refused host:port, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_cause: Option<String>,
    /// Last lines of the previous instance's log (up to 5).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub last_log_lines: Vec<String>,
    /// Whether the crashes began with the workload's current revision (None: no history).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_with_current_revision: Option<bool>,
}

// ------------------------------------------------------------------------------------ entry points

/// Runs every analyzer over the snapshot: findings grouped per workload + category and ranked.
pub fn diagnose(snap: &Snapshot) -> Report {
    let ctx = Ctx::new(snap);
    let analyzers: &[fn(&Ctx) -> Vec<Finding>] = &[
        pods::pod_findings,
        pods::evicted,
        pods::rbac_denied,
        workloads::rollout_stalled,
        workloads::failed_create,
        workloads::scaled_to_zero,
        workloads::hpa_not_scaling,
        workloads::job_failed,
        workloads::pvc_pending,
        workloads::node_not_ready,
        network::service_without_endpoints,
        network::target_port_mismatch,
        network::ingress_broken,
        network::network_policy_isolation,
    ];
    let all: Vec<Finding> = analyzers.iter().flat_map(|a| a(&ctx)).collect();
    let findings = finish(&ctx, all);
    Report {
        findings,
        workloads_checked: ctx.workloads_checked(),
        pods_checked: snap.pods.len(),
        blind_spots: snap.blind_spots.clone(),
    }
}

/// Keeps the findings that concern one object (`kind` is canonical: Deployment, Pod, Service,
/// …): its own; for a pod, its workload's; those of the Services and Ingresses that route to
/// it (a wrong targetPort is why the backend is down); for a Service, the workloads behind it;
/// and Nodes that run its pods. Matching a pod goes through its owner, not the few pod names a
/// finding lists.
pub fn retain_concerning(snap: &Snapshot, report: &mut Report, kind: &str, ns: &str, name: &str) {
    let ctx = Ctx::new(snap);
    let me = ObjectRef::new(kind, ns, name);
    let mut related: BTreeSet<ObjectRef> = BTreeSet::from([me.clone()]);
    let mut pods: Vec<&Pod> = vec![];
    let routed_from = if kind == "Pod" {
        let pod = snap
            .pods
            .iter()
            .find(|p| ctx::ns_of(&p.metadata) == ns && ctx::name_of(&p.metadata) == name);
        match pod {
            Some(p) => {
                pods.push(p);
                let owner = ctx.owner_of(p);
                related.insert(owner.clone());
                owner
            }
            None => me.clone(),
        }
    } else {
        pods.extend(ctx.pods_by_owner.get(&me).into_iter().flatten());
        me.clone()
    };
    for e in ctx.exposure(&routed_from) {
        if let Some((k, n)) = e.split_once('/') {
            related.insert(ObjectRef::new(k, ns, n));
        }
    }
    let nodes: BTreeSet<&str> = pods
        .iter()
        .filter_map(|p| p.spec.as_ref()?.node_name.as_deref())
        .collect();
    let service = format!("Service/{name}");
    report.findings.retain(|f| {
        related.contains(&f.object)
            || (kind == "Pod" && f.pods.iter().any(|p| p == name))
            || (kind == "Service" && f.exposed_by.contains(&service))
            || (f.object.kind == "Node" && nodes.contains(f.object.name.as_str()))
    });
}

/// Drops Node findings for nodes that run none of the snapshot's pods: diagnosing one namespace
/// should not turn critical because of a node its workloads do not use.
pub fn retain_nodes_in_use(report: &mut Report) {
    report
        .findings
        .retain(|f| f.object.kind != "Node" || f.pod_count > 0);
}

/// Every crash-looping container (regular or init), with exit, back-off, log tail and whether the
/// crashes began with the current revision. Linear in the number of pods.
pub fn crashloops(snap: &Snapshot) -> Vec<CrashLoop> {
    let ctx = Ctx::new(snap);
    pods::crashloops(&ctx)
}

/// Groups findings per (row, object), folds a rollout-stalled finding into the pod-level finding
/// of the same workload (it is the same problem seen from above), adds the blast radius, ranks.
fn finish(ctx: &Ctx, all: Vec<Finding>) -> Vec<Finding> {
    let mut order: Vec<(u8, ObjectRef)> = vec![];
    let mut grouped: std::collections::HashMap<(u8, ObjectRef), Finding> = Default::default();
    for f in all {
        let key = f.row_enum_key();
        match grouped.get_mut(&key) {
            Some(g) => g.absorb(f),
            None => {
                order.push(key.clone());
                grouped.insert(key, f);
            }
        }
    }
    let mut findings: Vec<Finding> = order
        .into_iter()
        .filter_map(|k| grouped.remove(&k))
        .collect();
    // a stalled rollout whose pods already explain it: fold into the pod finding
    let stalled: Vec<usize> = findings
        .iter()
        .enumerate()
        .filter(|(_, f)| f.row == Row::RolloutStalled as u8)
        .map(|(i, _)| i)
        .collect();
    let mut drop = vec![];
    for i in stalled {
        let obj = findings[i].object.clone();
        let target = findings.iter().position(|g| {
            g.object == obj && g.row != Row::RolloutStalled as u8 && g.severity <= Severity::Warning
        });
        if let Some(t) = target {
            let s = findings[i].clone();
            let g = &mut findings[t];
            for e in s.evidence.into_iter().take(3) {
                g.add_evidence(e);
            }
            for st in s.remediation {
                if matches!(&st, Step::Tool { tool, .. } if tool == "rollout_undo")
                    && !g.remediation.contains(&st)
                    && !g
                        .remediation
                        .iter()
                        .any(|r| matches!(r, Step::Tool { tool, .. } if tool == "rollout_undo"))
                {
                    g.remediation.insert(0, st);
                }
            }
            g.severity = g.severity.min(s.severity);
            drop.push(i);
        }
    }
    let mut i = 0;
    findings.retain(|_| {
        let keep = !drop.contains(&i);
        i += 1;
        keep
    });
    for f in &mut findings {
        f.exposed_by = ctx.exposure(&f.object);
        // A workload failure that leaves a Service with no ready endpoint takes the Service down:
        // say so first (the pods are there but unready, or gone).
        if f.object.kind != "Service" {
            let down: Vec<String> = f
                .exposed_by
                .iter()
                .filter_map(|e| e.strip_prefix("Service/"))
                .filter_map(|svc| {
                    let (ready, unready) = ctx.endpoint_counts(&f.object.namespace, svc)?;
                    (ready == 0).then(|| {
                        format!(
                            "Service {svc} has no ready endpoint ({unready} not ready): it is down"
                        )
                    })
                })
                .collect();
            for line in down.into_iter().rev() {
                f.evidence.insert(0, line);
            }
            f.evidence.truncate(MAX_EVIDENCE);
        }
    }
    findings.sort_by(|a, b| {
        a.severity
            .cmp(&b.severity)
            .then(b.blast().cmp(&a.blast()))
            .then(a.row.cmp(&b.row))
            .then(a.object.cmp(&b.object))
    });
    findings
}
