//! Scaling and rollouts: workload_scale, rollout_status, rollout_history, rollout_undo,
//! rollout_restart, rollout_pause, rollout_resume — kubectl's verbs, done through kube-rs, with
//! structured results that say what changed and why a rollout is stuck.

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{ControllerRevision, Deployment, ReplicaSet};
use k8s_openapi::api::autoscaling::v1::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use kube::api::{Api, ListParams, Patch};
use kube::Client;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::read::{get_object, pod_row, pod_status, resolve_object, ObjectRef, ResolvedObject};
use super::util::{age, workload_selector, ToolError};
use super::write::{merge_diff, merge_params};
use super::{Common, Ctx, Effect, Render, Tool, ToolMeta};
use crate::rollout::{
    self, controller_history, deployment_history, parse_replicas, template_changes, ReplicaForm,
    Revision, RolloutFacts, Verdict, CHANGE_CAUSE_ANNOTATION, RESTARTED_AT_ANNOTATION,
};

/// Which workload.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
pub struct WorkloadTarget {
    /// Workload name, e.g. `todo-backend`.
    pub name: String,
    /// Namespace (default `default`).
    #[serde(default)]
    pub namespace: Option<String>,
    /// `Deployment` (default), `StatefulSet` or `DaemonSet` (short names deploy, sts, ds work).
    #[serde(default = "default_kind")]
    pub kind: String,
}

fn default_kind() -> String {
    "Deployment".into()
}

fn default_timeout() -> u64 {
    180
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Deployment,
    StatefulSet,
    DaemonSet,
    ReplicaSet,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Deployment => "Deployment",
            Kind::StatefulSet => "StatefulSet",
            Kind::DaemonSet => "DaemonSet",
            Kind::ReplicaSet => "ReplicaSet",
        }
    }
}

/// A workload read from the cluster.
struct Loaded {
    client: Client,
    target: ResolvedObject,
    kind: Kind,
    namespace: String,
    name: String,
    obj: Value,
}

impl Loaded {
    fn resource_version(&self) -> String {
        self.obj["metadata"]["resourceVersion"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }
    fn typed<T: serde::de::DeserializeOwned>(&self) -> Result<T, ToolError> {
        serde_json::from_value(self.obj.clone())
            .map_err(|e| ToolError::Internal(format!("{} {}: {e}", self.kind.name(), self.name)))
    }
    fn describe(&self) -> String {
        format!(
            "{} {} in namespace {}",
            self.kind.name(),
            self.name,
            self.namespace
        )
    }
    async fn reload(&mut self) -> Result<(), ToolError> {
        let o = get_object(&self.target, &self.name).await?;
        self.obj = serde_json::to_value(o).map_err(|e| ToolError::Internal(e.to_string()))?;
        Ok(())
    }
}

async fn load(
    ctx: &Ctx,
    common: &Common,
    t: &WorkloadTarget,
    allowed: &[Kind],
) -> Result<Loaded, ToolError> {
    let target = resolve_object(
        ctx,
        common,
        &ObjectRef {
            kind: t.kind.clone(),
            name: t.name.clone(),
            namespace: t.namespace.clone(),
            api_version: None,
        },
    )
    .await?;
    let kind = match target.ar.kind.as_str() {
        "Deployment" => Kind::Deployment,
        "StatefulSet" => Kind::StatefulSet,
        "DaemonSet" => Kind::DaemonSet,
        "ReplicaSet" => Kind::ReplicaSet,
        other => {
            return Err(ToolError::invalid(
                format!("kind {other} has no rollouts or replicas"),
                format!(
                    "use one of: {}",
                    allowed
                        .iter()
                        .map(|k| k.name())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ))
        }
    };
    if !allowed.contains(&kind) {
        return Err(ToolError::invalid(
            format!("this tool does not work on a {}", kind.name()),
            format!(
                "it works on: {}",
                allowed
                    .iter()
                    .map(|k| k.name())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }
    let obj = get_object(&target, &t.name).await?;
    let obj = serde_json::to_value(obj).map_err(|e| ToolError::Internal(e.to_string()))?;
    Ok(Loaded {
        client: target.client.clone(),
        namespace: target.namespace.clone().unwrap_or_default(),
        name: t.name.clone(),
        kind,
        target,
        obj,
    })
}

/// The workload's revisions, oldest first.
async fn history(l: &Loaded) -> Result<Vec<Revision>, ToolError> {
    let ns = &l.namespace;
    match l.kind {
        Kind::Deployment => {
            let d: Deployment = l.typed()?;
            let rss = Api::<ReplicaSet>::namespaced(l.client.clone(), ns)
                .list(&ListParams::default())
                .await
                .map_err(|e| ToolError::from_kube(e, &format!("list ReplicaSets in {ns}")))?;
            Ok(deployment_history(&d, &rss.items))
        }
        Kind::StatefulSet | Kind::DaemonSet => {
            let crs = Api::<ControllerRevision>::namespaced(l.client.clone(), ns)
                .list(&ListParams::default())
                .await
                .map_err(|e| {
                    ToolError::from_kube(e, &format!("list ControllerRevisions in {ns}"))
                })?;
            let uid = l.obj["metadata"]["uid"].as_str().unwrap_or_default();
            let current = l.obj["status"]["updateRevision"].as_str();
            Ok(controller_history(
                uid,
                current,
                rollout::controller_pods(l.kind.name(), &l.obj),
                &crs.items,
            ))
        }
        Kind::ReplicaSet => Ok(vec![]),
    }
}

/// Whether a pod's status is a failure (not merely starting).
fn failing(status: &str) -> bool {
    const BAD: &[&str] = &[
        "CrashLoopBackOff",
        "Error",
        "ErrImagePull",
        "ImagePullBackOff",
        "InvalidImageName",
        "ErrImageNeverPull",
        "CreateContainerConfigError",
        "CreateContainerError",
        "RunContainerError",
        "StartError",
        "OOMKilled",
        "Evicted",
        "ContainerStatusUnknown",
    ];
    let s = status.strip_prefix("Init:").unwrap_or(status);
    BAD.contains(&s) || s.starts_with("ExitCode:")
}

/// A pod that is not well, in one line.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct FailingPod {
    pub name: String,
    pub status: String,
    pub restarts: i32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_termination: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Pods of the workload's current revision that fail.
async fn failing_new_pods(l: &Loaded) -> Vec<FailingPod> {
    // Without a selector every pod of the namespace would match: nothing to say then.
    let Some(selector) = workload_selector(&l.obj) else {
        return vec![];
    };
    let pods = Api::<Pod>::namespaced(l.client.clone(), &l.namespace)
        .list(&ListParams::default().labels(&selector))
        .await
        .map(|p| p.items)
        .unwrap_or_default();
    // The label that marks the current revision's pods.
    let (label, value) = match l.kind {
        Kind::Deployment => {
            let rs = Api::<ReplicaSet>::namespaced(l.client.clone(), &l.namespace)
                .list(&ListParams::default().labels(&selector))
                .await
                .map(|r| r.items)
                .unwrap_or_default();
            let rev = l.obj["metadata"]["annotations"][rollout::REVISION_ANNOTATION].as_str();
            let cur = rs.iter().find(|r| {
                r.metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get(rollout::REVISION_ANNOTATION))
                    .map(String::as_str)
                    == rev
                    && rev.is_some()
            });
            (
                rollout::POD_TEMPLATE_HASH,
                cur.and_then(|r| r.metadata.labels.as_ref())
                    .and_then(|l| l.get(rollout::POD_TEMPLATE_HASH))
                    .cloned(),
            )
        }
        Kind::StatefulSet => (
            "controller-revision-hash",
            l.obj["status"]["updateRevision"].as_str().map(String::from),
        ),
        // A DaemonSet's pods carry the hash of its newest ControllerRevision (`<name>-<hash>`).
        Kind::DaemonSet => (
            "controller-revision-hash",
            history(l).await.ok().and_then(|h| {
                let newest = h.into_iter().rfind(|r| r.current)?;
                let cr = newest.source.strip_prefix("ControllerRevision/")?;
                cr.strip_prefix(&format!("{}-", l.name)).map(String::from)
            }),
        ),
        Kind::ReplicaSet => ("", None),
    };
    let now = Timestamp::now();
    pods.iter()
        .filter(|p| {
            value.is_none()
                || p.metadata
                    .labels
                    .as_ref()
                    .and_then(|m| m.get(label))
                    .is_some_and(|v| Some(v) == value.as_ref())
        })
        .filter_map(|p| {
            let (status, healthy) = pod_status(p);
            let row = pod_row(p, now, false);
            let recently_failed = !healthy && row.restarts > 0 && row.last_termination.is_some();
            (failing(&status) || recently_failed).then_some(FailingPod {
                name: row.name,
                status,
                restarts: row.restarts,
                last_termination: row.last_termination,
                message: row.message,
            })
        })
        .collect()
}

/// One status condition.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ConditionRow {
    #[serde(rename = "type")]
    pub type_: String,
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// How long ago it last changed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
}

/// Where a rollout stands.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct RolloutState {
    pub kind: String,
    pub name: String,
    pub namespace: String,
    pub desired: i32,
    /// Pods of any revision.
    pub current: i32,
    pub updated: i32,
    pub ready: i32,
    pub available: i32,
    /// The revision being rolled out (Deployment revision number or ControllerRevision).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    pub paused: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<ConditionRow>,
    pub verdict: Verdict,
    pub reason: String,
    /// Failing pods of the current revision.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub failing_pods: Vec<FailingPod>,
}

async fn rollout_state(l: &Loaded) -> RolloutState {
    let o = &l.obj;
    let st = &o["status"];
    let now = Timestamp::now();
    let conditions: Vec<ConditionRow> = st["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| ConditionRow {
            type_: c["type"].as_str().unwrap_or_default().into(),
            status: c["status"].as_str().unwrap_or_default().into(),
            reason: c["reason"].as_str().map(String::from),
            message: c["message"].as_str().map(String::from),
            since: c["lastTransitionTime"]
                .as_str()
                .or(c["lastUpdateTime"].as_str())
                .and_then(|t| t.parse::<Timestamp>().ok())
                .map(|t| age(Some(t), now)),
        })
        .collect();
    let rollout::StatusCounts {
        desired,
        current,
        updated,
        ready,
        available,
    } = rollout::status_counts(l.kind.name(), o).unwrap_or_default();
    let revision = match l.kind {
        Kind::Deployment | Kind::ReplicaSet => o["metadata"]["annotations"]
            [rollout::REVISION_ANNOTATION]
            .as_str()
            .map(String::from),
        Kind::StatefulSet => st["updateRevision"].as_str().map(String::from),
        Kind::DaemonSet => None,
    };
    let progressing = conditions
        .iter()
        .find(|c| c.type_ == "Progressing")
        .map(|c| {
            (
                c.status.clone(),
                c.reason.clone().unwrap_or_default(),
                c.message.clone().unwrap_or_default(),
            )
        });
    let replica_failure = conditions
        .iter()
        .find(|c| c.type_ == "ReplicaFailure" && c.status == "True")
        .map(|c| c.message.clone().unwrap_or_default());
    let failing_pods = failing_new_pods(l).await;
    let facts = RolloutFacts {
        desired,
        current,
        updated,
        ready,
        available,
        generation: o["metadata"]["generation"].as_i64().unwrap_or(0),
        observed_generation: st["observedGeneration"].as_i64().unwrap_or(0),
        paused: o["spec"]["paused"].as_bool().unwrap_or(false),
        progressing,
        replica_failure,
        failing_new_pods: failing_pods
            .iter()
            .map(|p| (p.name.clone(), p.status.clone()))
            .collect(),
    };
    let (verdict, reason) = rollout::verdict(&facts);
    RolloutState {
        kind: l.kind.name().into(),
        name: l.name.clone(),
        namespace: l.namespace.clone(),
        desired,
        current,
        updated,
        ready,
        available,
        revision,
        paused: facts.paused,
        conditions,
        verdict,
        reason,
        failing_pods,
    }
}

/// Polls until the rollout is complete, failed or stalled for `grace` polls, or the timeout
/// passes; reports progress on the way.
async fn wait_rollout(
    ctx: &Ctx,
    l: &mut Loaded,
    timeout_seconds: u64,
) -> Result<(RolloutState, &'static str), ToolError> {
    let deadline =
        tokio::time::Instant::now() + Duration::from_secs(timeout_seconds.clamp(1, 3600));
    // A failing pod right after a change may be an old pod still shutting down; require the
    // stall to persist for a few polls before giving up early.
    let mut stalled_polls = 0;
    loop {
        l.reload().await?;
        let s = rollout_state(l).await;
        if let Some(p) = &ctx.progress {
            p(
                f64::from(s.available.min(s.desired)),
                Some(f64::from(s.desired.max(0))),
                format!(
                    "{} {}: {}/{} updated, {} ready, {} available — {}",
                    l.kind.name(),
                    l.name,
                    s.updated,
                    s.desired,
                    s.ready,
                    s.available,
                    s.reason
                ),
            );
        }
        stalled_polls = if s.verdict == Verdict::Stalled {
            stalled_polls + 1
        } else {
            0
        };
        let outcome = match s.verdict {
            Verdict::Complete => Some("complete"),
            Verdict::Failed => Some("failed"),
            Verdict::Paused => Some("paused"),
            Verdict::Stalled if stalled_polls >= 5 => Some("stalled"),
            _ if tokio::time::Instant::now() >= deadline => Some("timed out"),
            _ => None,
        };
        if let Some(o) = outcome {
            return Ok((s, o));
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// After a change: waits for the rollout and appends its outcome (`scaled, complete`).
async fn after_write_wait(
    ctx: &Ctx,
    l: &mut Loaded,
    timeout_seconds: u64,
    outcome: &mut String,
    status: &mut Option<RolloutState>,
) -> Result<(), ToolError> {
    let (state, how) = wait_rollout(ctx, l, timeout_seconds).await?;
    *outcome = format!("{outcome}, {how}");
    *status = Some(state);
    Ok(())
}

/// Waits for one workload's rollout (used by helm_rollback and stack_rollback).
pub(crate) async fn wait_workload(
    ctx: &Ctx,
    common: &Common,
    kind: &str,
    namespace: &str,
    name: &str,
    timeout_seconds: u64,
) -> Result<(RolloutState, &'static str), ToolError> {
    let t = WorkloadTarget {
        name: name.into(),
        namespace: Some(namespace.into()),
        kind: kind.into(),
    };
    let mut l = load(
        ctx,
        common,
        &t,
        &[Kind::Deployment, Kind::StatefulSet, Kind::DaemonSet],
    )
    .await?;
    wait_rollout(ctx, &mut l, timeout_seconds).await
}

fn render_state(s: &RolloutState) -> String {
    let mut out = format!(
        "{} {}/{}: {} — {}\n  desired {} · updated {} · ready {} · available {} · total {}{}{}\n",
        s.kind,
        s.namespace,
        s.name,
        serde_json::to_value(s.verdict)
            .ok()
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_default(),
        s.reason,
        s.desired,
        s.updated,
        s.ready,
        s.available,
        s.current,
        s.revision
            .as_ref()
            .map(|r| format!(" · revision {r}"))
            .unwrap_or_default(),
        if s.paused { " · PAUSED" } else { "" }
    );
    for c in &s.conditions {
        out.push_str(&format!(
            "  {}={}{}{}{}\n",
            c.type_,
            c.status,
            c.reason
                .as_ref()
                .map(|r| format!(" {r}"))
                .unwrap_or_default(),
            c.since
                .as_ref()
                .map(|a| format!(" ({a} ago)"))
                .unwrap_or_default(),
            c.message
                .as_ref()
                .map(|m| format!(": {m}"))
                .unwrap_or_default()
        ));
    }
    for p in s.failing_pods.iter().take(5) {
        out.push_str(&format!(
            "  failing pod {} {} restarts {}{}{}\n",
            p.name,
            p.status,
            p.restarts,
            p.last_termination
                .as_ref()
                .map(|t| format!(", last {t}"))
                .unwrap_or_default(),
            p.message
                .as_ref()
                .map(|m| format!(", {m}"))
                .unwrap_or_default()
        ));
    }
    if s.failing_pods.len() > 5 {
        out.push_str(&format!(
            "  … {} more failing pods\n",
            s.failing_pods.len() - 5
        ));
    }
    out
}

// ------------------------------------------------------------------ workload_scale

/// Scales a Deployment, StatefulSet or ReplicaSet: an absolute count or a change relative to
/// now (`+2`, `-1`, `x2`, `-50%`). Reports from → to; with wait=true waits until the ready
/// replicas match, with progress. Refuses a workload an HPA controls (names the HPA).
/// Example: {"name": "todo-backend", "namespace": "todo-app", "replicas": "+1", "wait": true}.
pub struct WorkloadScale;

/// A replica count: a number, or text such as "3", "+2", "-1", "x2", "-50%".
#[derive(Debug, Clone, JsonSchema)]
#[serde(untagged)]
pub enum ReplicasArg {
    Count(i64),
    Text(String),
}

impl<'de> Deserialize<'de> for ReplicasArg {
    /// By hand, so that a wrong value is explained instead of serde's "did not match any
    /// variant of untagged enum".
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        match Value::deserialize(d)? {
            Value::Number(n) => n.as_i64().map(Self::Count).ok_or_else(|| {
                D::Error::custom(format!(
                    "replicas {n} is not a whole number; use a count such as 3, or text such as \"x1.5\" or \"+50%\" for a relative change"
                ))
            }),
            Value::String(t) => Ok(Self::Text(t)),
            other => Err(D::Error::custom(format!(
                "replicas {other} is neither a number nor text; use a count (3), a change (\"+2\", \"-1\"), a factor (\"x2\") or a percentage (\"-50%\")"
            ))),
        }
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ScaleParams {
    #[serde(flatten)]
    pub common: Common,
    #[serde(flatten)]
    pub target: WorkloadTarget,
    /// New replica count: `3`, or relative `+2`, `-1`, `x2`, `x0.5`, `-50%`, `+100%`.
    pub replicas: ReplicasArg,
    /// Validate on the server and report from → to without changing anything.
    #[serde(default)]
    pub dry_run: bool,
    /// Wait until the ready replicas match the new count (default false).
    #[serde(default)]
    pub wait: bool,
    /// Longest wait in seconds (default 180).
    #[serde(default = "default_timeout")]
    pub timeout_seconds: u64,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct ScaleOutput {
    pub kind: String,
    pub name: String,
    pub namespace: String,
    pub from: i32,
    pub to: i32,
    pub dry_run: bool,
    /// scaled, unchanged, would scale (dry run), then complete / stalled / timed out when waited.
    pub outcome: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<RolloutState>,
    /// A caveat, e.g. that HorizontalPodAutoscalers could not be checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// The HPA that scales the workload, or why HPAs could not be checked.
async fn hpa_for(l: &Loaded) -> Result<Option<HorizontalPodAutoscaler>, String> {
    let hpas = Api::<HorizontalPodAutoscaler>::namespaced(l.client.clone(), &l.namespace)
        .list(&ListParams::default())
        .await
        .map_err(|e| {
            let why = match e {
                kube::Error::Api(s) if s.code == 403 => "forbidden".to_string(),
                e => e.to_string(),
            };
            format!("HorizontalPodAutoscalers could not be checked ({why}): if one scales this workload it will override the new count")
        })?;
    Ok(hpas.items.into_iter().find(|h| {
        h.spec.scale_target_ref.kind == l.kind.name() && h.spec.scale_target_ref.name == l.name
    }))
}

impl Tool for WorkloadScale {
    type Params = ScaleParams;
    type Output = ScaleOutput;
    const META: ToolMeta = ToolMeta {
        name: "workload_scale",
        title: "Scale a workload",
        description: "Scales a Deployment, StatefulSet or ReplicaSet to an absolute count or relative to now (+2, -1, x2, -50%); reports from → to and optionally waits until the ready replicas match (progress notifications). Refuses workloads an HorizontalPodAutoscaler controls, naming the HPA. dry_run validates without changing anything. Example: {\"name\": \"todo-backend\", \"namespace\": \"todo-app\", \"replicas\": \"+1\", \"wait\": true}",
        effect: Effect::Write,
        idempotent: false,
    };

    async fn call(&self, ctx: &Ctx, p: ScaleParams) -> Result<ScaleOutput, ToolError> {
        if let ReplicasArg::Text(t) = &p.replicas {
            ReplicaForm::parse(t).map_err(|e| {
                ToolError::invalid(e, "e.g. \"replicas\": 3 or \"replicas\": \"+1\"")
            })?;
        }
        let mut l = load(
            ctx,
            &p.common,
            &p.target,
            &[Kind::Deployment, Kind::StatefulSet, Kind::ReplicaSet],
        )
        .await
        .map_err(|e| match e {
            ToolError::InvalidInput { message, .. } if message.contains("DaemonSet") => ToolError::invalid(
                message,
                "a DaemonSet runs one pod per matching node and has no replica count; change its nodeSelector instead",
            ),
            other => other,
        })?;
        if l.kind == Kind::ReplicaSet {
            if let Some(owner) = l.obj["metadata"]["ownerReferences"]
                .as_array()
                .and_then(|o| o.iter().find(|r| r["controller"] == true))
            {
                return Err(ToolError::invalid(
                    format!(
                        "ReplicaSet {} is managed by {} {}; the controller would undo a scale",
                        l.name,
                        owner["kind"].as_str().unwrap_or_default(),
                        owner["name"].as_str().unwrap_or_default()
                    ),
                    format!(
                        "scale the {} instead: {{\"kind\": \"{}\", \"name\": \"{}\"}}",
                        owner["kind"].as_str().unwrap_or_default(),
                        owner["kind"].as_str().unwrap_or_default(),
                        owner["name"].as_str().unwrap_or_default()
                    ),
                ));
            }
        }
        let (hpa, hpa_note) = match hpa_for(&l).await {
            Ok(h) => (h, None),
            Err(note) => (None, Some(note)),
        };
        if let Some(h) = hpa {
            let spec = h.spec;
            return Err(ToolError::invalid(
                format!(
                    "{} is scaled by HorizontalPodAutoscaler {} (min {}, max {}); a manual scale would be overridden",
                    l.describe(),
                    h.metadata.name.unwrap_or_default(),
                    spec.min_replicas.unwrap_or(1),
                    spec.max_replicas
                ),
                "change the HPA's minReplicas/maxReplicas (resources_apply) or remove the HPA, then scale",
            ));
        }
        let api = l.target.api.clone();
        let what = format!("scale {}", l.describe());
        let mut attempts = 0;
        let (from, to) = loop {
            attempts += 1;
            let scale = api
                .get_scale(&l.name)
                .await
                .map_err(|e| ToolError::from_kube(e, &what))?;
            let from = scale.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0);
            let to = match &p.replicas {
                ReplicasArg::Count(n) => {
                    i32::try_from(*n).ok().filter(|n| *n >= 0).ok_or_else(|| {
                        ToolError::invalid(
                            format!("replicas {n} is out of range"),
                            "use a count from 0 up",
                        )
                    })?
                }
                ReplicasArg::Text(t) => parse_replicas(t, from).map_err(|e| {
                    ToolError::invalid(e, "e.g. \"replicas\": 3 or \"replicas\": \"+1\"")
                })?,
            };
            if let Some(max) = ctx.policy.max_replicas {
                if to > max {
                    return Err(ToolError::Policy(format!(
                        "{to} replicas is above the server's --max-replicas={max} ({} has {from})",
                        l.describe()
                    )));
                }
            }
            if to == from {
                break (from, to);
            }
            let rv = scale.metadata.resource_version.clone();
            let patch = json!({"metadata": {"resourceVersion": rv}, "spec": {"replicas": to}});
            let pp = merge_params(p.dry_run);
            match api.patch_scale(&l.name, &pp, &Patch::Merge(&patch)).await {
                Ok(_) => break (from, to),
                Err(kube::Error::Api(s)) if s.code == 409 && attempts < 4 => continue,
                Err(e) => return Err(ToolError::from_kube(e, &what)),
            }
        };
        let mut out = ScaleOutput {
            kind: l.kind.name().into(),
            name: l.name.clone(),
            namespace: l.namespace.clone(),
            from,
            to,
            dry_run: p.dry_run,
            outcome: if from == to {
                "unchanged"
            } else if p.dry_run {
                "would scale"
            } else {
                "scaled"
            }
            .into(),
            status: None,
            note: hpa_note,
        };
        if p.wait && !p.dry_run {
            after_write_wait(
                ctx,
                &mut l,
                p.timeout_seconds,
                &mut out.outcome,
                &mut out.status,
            )
            .await?;
        }
        Ok(out)
    }
}

impl Render for ScaleOutput {
    fn render(&self) -> String {
        let mut s = format!(
            "{}{} {}/{}: {} → {} replicas ({})\n",
            if self.dry_run { "[dry run] " } else { "" },
            self.kind,
            self.namespace,
            self.name,
            self.from,
            self.to,
            self.outcome
        );
        if let Some(n) = &self.note {
            s.push_str(&format!("note: {n}\n"));
        }
        if let Some(st) = &self.status {
            s.push_str(&render_state(st));
        }
        s
    }
}

// ------------------------------------------------------------------ rollout_status

/// Where a rollout stands, like `kubectl rollout status` but structured: desired / updated /
/// ready / available, the revision, conditions (Progressing, Available,
/// ProgressDeadlineExceeded), paused, the failing pods of the new revision and a verdict
/// (complete, progressing, stalled, failed, paused) with the reason.
pub struct RolloutStatus;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StatusParams {
    #[serde(flatten)]
    pub common: Common,
    #[serde(flatten)]
    pub target: WorkloadTarget,
    /// Wait until the rollout completes, fails or stalls (default false: answer now).
    #[serde(default)]
    pub wait: bool,
    /// Longest wait in seconds (default 180).
    #[serde(default = "default_timeout")]
    pub timeout_seconds: u64,
}

impl Tool for RolloutStatus {
    type Params = StatusParams;
    type Output = RolloutState;
    const META: ToolMeta = ToolMeta {
        name: "rollout_status",
        title: "Rollout status",
        description: "Where a Deployment/StatefulSet/DaemonSet rollout stands: desired/updated/ready/available, revision, conditions, paused, the new revision's failing pods (status, restarts, last exit) and a verdict — complete, progressing, stalled (new pods fail; waiting will not help), failed (ProgressDeadlineExceeded) or paused — with the reason. wait=true waits for an outcome. Example: {\"name\": \"todo-backend\", \"namespace\": \"todo-app\"}",
        effect: Effect::Read,
        idempotent: true,
    };

    async fn call(&self, ctx: &Ctx, p: StatusParams) -> Result<RolloutState, ToolError> {
        let mut l = load(
            ctx,
            &p.common,
            &p.target,
            &[Kind::Deployment, Kind::StatefulSet, Kind::DaemonSet],
        )
        .await?;
        if p.wait {
            return Ok(wait_rollout(ctx, &mut l, p.timeout_seconds).await?.0);
        }
        Ok(rollout_state(&l).await)
    }
}

impl Render for RolloutState {
    fn render(&self) -> String {
        render_state(self)
    }
}

// ------------------------------------------------------------------ rollout_history

/// Every revision of a Deployment (from its ReplicaSets) or StatefulSet/DaemonSet (from
/// ControllerRevisions): number, age, change-cause, images, what changed against the previous
/// revision (image, env names, resources, probes, command, volumes), which one is current and
/// which are healthy — to see what changed when it broke.
pub struct RolloutHistory;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HistoryParams {
    #[serde(flatten)]
    pub common: Common,
    #[serde(flatten)]
    pub target: WorkloadTarget,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct HistoryOutput {
    pub kind: String,
    pub name: String,
    pub namespace: String,
    /// The object's resourceVersion now; pass it to rollout_undo as a precondition.
    pub resource_version: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current_revision: Option<i64>,
    pub revisions: Vec<Revision>,
}

impl Tool for RolloutHistory {
    type Params = HistoryParams;
    type Output = HistoryOutput;
    const META: ToolMeta = ToolMeta {
        name: "rollout_history",
        title: "Rollout history",
        description: "Revisions of a Deployment/StatefulSet/DaemonSet, oldest first: number, age, change-cause, images, what changed against the previous revision (image, env names, resources, probes, command/args, volumes), current and healthy marks, and the resourceVersion to pass to rollout_undo. Example: {\"name\": \"todo-backend\", \"namespace\": \"todo-app\"}",
        effect: Effect::Read,
        idempotent: true,
    };

    async fn call(&self, ctx: &Ctx, p: HistoryParams) -> Result<HistoryOutput, ToolError> {
        let l = load(
            ctx,
            &p.common,
            &p.target,
            &[Kind::Deployment, Kind::StatefulSet, Kind::DaemonSet],
        )
        .await?;
        let revisions = history(&l).await?;
        Ok(HistoryOutput {
            kind: l.kind.name().into(),
            name: l.name.clone(),
            namespace: l.namespace.clone(),
            resource_version: l.resource_version(),
            current_revision: revisions.iter().find(|r| r.current).map(|r| r.revision),
            revisions,
        })
    }
}

fn revision_line(r: &Revision, now: Timestamp) -> String {
    let mut marks = vec![];
    if r.current {
        marks.push("current".to_string());
    }
    match r.healthy {
        Some(true) => marks.push("healthy".into()),
        Some(false) => marks.push("not available".into()),
        None => {}
    }
    if let Some(p) = r.pods {
        marks.push(format!("{}/{} available", p.available, p.desired));
    }
    let mut s = format!(
        "  rev {} {} ago{} {}{}\n",
        r.revision,
        age(r.created, now),
        if marks.is_empty() {
            String::new()
        } else {
            format!(" [{}]", marks.join(", "))
        },
        r.images.join(" "),
        r.change_cause
            .as_ref()
            .map(|c| format!(" — {c}"))
            .unwrap_or_default()
    );
    for c in r.changes.iter().take(8) {
        s.push_str(&format!("      {c}\n"));
    }
    if r.changes.len() > 8 {
        s.push_str(&format!("      … {} more changes\n", r.changes.len() - 8));
    }
    s
}

impl Render for HistoryOutput {
    fn render(&self) -> String {
        let now = Timestamp::now();
        let mut s = format!(
            "{} {}/{}: {} revision(s), current {} (resourceVersion {})\n",
            self.kind,
            self.namespace,
            self.name,
            self.revisions.len(),
            self.current_revision
                .map_or("?".to_string(), |r| r.to_string()),
            self.resource_version
        );
        for r in &self.revisions {
            s.push_str(&revision_line(r, now));
        }
        s
    }
}

// ------------------------------------------------------------------ rollout_undo

/// Rolls a Deployment, StatefulSet or DaemonSet back to the previous revision or a given one,
/// as `kubectl rollout undo` does (the revision's pod template is copied back; the controller
/// then rolls out a new revision). Guarded by the object's resourceVersion: a concurrent change
/// is reported, never clobbered. dry_run shows the template diff it would apply.
pub struct RolloutUndo;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UndoParams {
    #[serde(flatten)]
    pub common: Common,
    #[serde(flatten)]
    pub target: WorkloadTarget,
    /// Revision to go back to (rollout_history lists them); default the one before the current.
    #[serde(default)]
    pub to_revision: Option<i64>,
    /// Only undo if the object's resourceVersion is still exactly this (as rollout_history
    /// reported it; any change counts, status updates included). Without it, a change to the
    /// object between this call's read and write is still detected and reported.
    #[serde(default)]
    pub resource_version: Option<String>,
    /// Validate on the server and show the diff without changing anything.
    #[serde(default)]
    pub dry_run: bool,
    /// Wait until the rolled-back revision is available (default false).
    #[serde(default)]
    pub wait: bool,
    /// Longest wait in seconds (default 180).
    #[serde(default = "default_timeout")]
    pub timeout_seconds: u64,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct UndoOutput {
    pub kind: String,
    pub name: String,
    pub namespace: String,
    pub from_revision: i64,
    pub to_revision: i64,
    /// The template changes the undo applies (current → target).
    pub changes: Vec<String>,
    pub dry_run: bool,
    /// rolled back, would roll back, already at revision — then complete / stalled / … when waited.
    pub outcome: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<RolloutState>,
}

impl Tool for RolloutUndo {
    type Params = UndoParams;
    type Output = UndoOutput;
    const META: ToolMeta = ToolMeta {
        name: "rollout_undo",
        title: "Roll back a workload",
        description: "Rolls a Deployment/StatefulSet/DaemonSet back to the previous revision or to_revision (kubectl rollout undo): copies that revision's pod template back. Refuses a revision that does not exist (lists those that do) and a paused Deployment; a concurrent change is reported, not overwritten (pass resource_version from rollout_history to pin the state you saw). dry_run shows the diff; wait=true waits until available. Example: {\"name\": \"todo-backend\", \"namespace\": \"todo-app\", \"to_revision\": 1, \"wait\": true}",
        effect: Effect::Write,
        idempotent: false,
    };

    async fn call(&self, ctx: &Ctx, p: UndoParams) -> Result<UndoOutput, ToolError> {
        let mut l = load(
            ctx,
            &p.common,
            &p.target,
            &[Kind::Deployment, Kind::StatefulSet, Kind::DaemonSet],
        )
        .await?;
        let rv = l.resource_version();
        if let Some(want) = &p.resource_version {
            if want != &rv {
                return Err(ToolError::Api(format!(
                    "conflict: {} changed since resourceVersion {want} (now {rv}); nothing was rolled back",
                    l.describe()
                )));
            }
        }
        if l.obj["spec"]["paused"] == true {
            return Err(ToolError::invalid(
                format!(
                    "{} is paused; a rollback of a paused Deployment would not roll out",
                    l.describe()
                ),
                "resume it first with rollout_resume, then undo",
            ));
        }
        let revs = history(&l).await?;
        let list = || {
            revs.iter()
                .map(|r| r.revision.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let Some(current) = revs.iter().find(|r| r.current) else {
            return Err(ToolError::not_found(
                format!("{} has no recorded revisions", l.describe()),
                "a workload that was never rolled out has nothing to undo",
            ));
        };
        let target = match p.to_revision {
            Some(n) if n > 0 => revs.iter().find(|r| r.revision == n).ok_or_else(|| {
                ToolError::not_found(
                    format!("{} has no revision {n}", l.describe()),
                    format!(
                        "revisions on record: {} (older ones were pruned by revisionHistoryLimit)",
                        list()
                    ),
                )
            })?,
            _ => revs
                .iter()
                .rev()
                .find(|r| r.revision < current.revision)
                .ok_or_else(|| {
                    ToolError::not_found(
                        format!(
                            "{} has no revision before the current one ({})",
                            l.describe(),
                            current.revision
                        ),
                        format!("revisions on record: {}", list()),
                    )
                })?,
        };
        let cur_template: PodTemplateSpec =
            serde_json::from_value(l.obj["spec"]["template"].clone()).unwrap_or_default();
        let changes = template_changes(&cur_template, &target.template);
        let mut out = UndoOutput {
            kind: l.kind.name().into(),
            name: l.name.clone(),
            namespace: l.namespace.clone(),
            from_revision: current.revision,
            to_revision: target.revision,
            changes,
            dry_run: p.dry_run,
            outcome: String::new(),
            status: None,
        };
        if target.current || out.changes.is_empty() {
            out.outcome = format!("already at revision {}'s template", target.revision);
            return Ok(out);
        }
        let template = serde_json::to_value(&target.template)
            .map_err(|e| ToolError::Internal(e.to_string()))?;
        // A merge patch that turns the current template into the target one (removed keys set
        // to null), pinned to the resourceVersion we read: the server refuses it with 409 if the
        // object changed meanwhile. Controllers write status all the time (which also bumps the
        // resourceVersion), so a conflict is retried when only status moved — same generation,
        // labels, annotations and template — and reported when anyone changed the object itself.
        let mut meta = json!({});
        if l.kind == Kind::Deployment {
            let cause = target
                .change_cause
                .clone()
                .unwrap_or_else(|| format!("rollout_undo to revision {}", target.revision));
            meta["annotations"] = json!({ CHANGE_CAUSE_ANNOTATION: cause });
        }
        let template_patch = merge_diff(&l.obj["spec"]["template"], &template);
        let pp = merge_params(p.dry_run);
        let what = format!("roll back {}", l.describe());
        let identity = |o: &Value| {
            json!([
                o["metadata"]["generation"],
                o["metadata"]["labels"],
                o["metadata"]["annotations"],
                o["spec"]
            ])
        };
        let read = identity(&l.obj);
        let mut pinned = rv.clone();
        let mut attempt = 0;
        loop {
            attempt += 1;
            meta["resourceVersion"] = json!(pinned);
            let patch = json!({"metadata": meta, "spec": {"template": template_patch}});
            match l
                .target
                .api
                .patch(&l.name, &pp, &Patch::Merge(&patch))
                .await
            {
                Ok(_) => break,
                Err(kube::Error::Api(s)) if s.code == 409 => {
                    let now = get_object(&l.target, &l.name).await?;
                    let now = serde_json::to_value(now)
                        .map_err(|e| ToolError::Internal(e.to_string()))?;
                    if attempt < 6 && identity(&now) == read {
                        pinned = now["metadata"]["resourceVersion"]
                            .as_str()
                            .unwrap_or_default()
                            .to_string();
                        continue;
                    }
                    return Err(ToolError::Api(format!(
                        "conflict: {} changed between reading it (resourceVersion {rv}) and the rollback; nothing was changed. Read rollout_history again and retry",
                        l.describe()
                    )));
                }
                Err(e) => return Err(ToolError::from_kube(e, &what)),
            }
        }
        out.outcome = if p.dry_run {
            "would roll back".into()
        } else {
            "rolled back".into()
        };
        if p.wait && !p.dry_run {
            after_write_wait(
                ctx,
                &mut l,
                p.timeout_seconds,
                &mut out.outcome,
                &mut out.status,
            )
            .await?;
        }
        Ok(out)
    }
}

impl Render for UndoOutput {
    fn render(&self) -> String {
        let mut s = format!(
            "{}{} {}/{}: revision {} → {} ({})\n",
            if self.dry_run { "[dry run] " } else { "" },
            self.kind,
            self.namespace,
            self.name,
            self.from_revision,
            self.to_revision,
            self.outcome
        );
        for c in &self.changes {
            s.push_str(&format!("  {c}\n"));
        }
        if let Some(st) = &self.status {
            s.push_str(&render_state(st));
        }
        s
    }
}

// ------------------------------------------------------------------ restart, pause, resume

/// Restarts every pod of a Deployment/StatefulSet/DaemonSet with a rolling update, like
/// `kubectl rollout restart` (sets the restartedAt annotation on the pod template).
pub struct RolloutRestart;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RestartParams {
    #[serde(flatten)]
    pub common: Common,
    #[serde(flatten)]
    pub target: WorkloadTarget,
    /// Validate on the server without changing anything.
    #[serde(default)]
    pub dry_run: bool,
    /// Wait until the restarted pods are available (default false).
    #[serde(default)]
    pub wait: bool,
    /// Longest wait in seconds (default 180).
    #[serde(default = "default_timeout")]
    pub timeout_seconds: u64,
}

/// The result of restart, pause and resume.
#[derive(Debug, Serialize, JsonSchema)]
pub struct RolloutActionOutput {
    pub kind: String,
    pub name: String,
    pub namespace: String,
    pub action: String,
    pub dry_run: bool,
    pub outcome: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<RolloutState>,
}

impl Render for RolloutActionOutput {
    fn render(&self) -> String {
        let mut s = format!(
            "{}{} {}/{}: {} — {}\n",
            if self.dry_run { "[dry run] " } else { "" },
            self.kind,
            self.namespace,
            self.name,
            self.action,
            self.outcome
        );
        if let Some(st) = &self.status {
            s.push_str(&render_state(st));
        }
        s
    }
}

async fn merge_patch(
    l: &Loaded,
    patch: &Value,
    dry_run: bool,
    what: &str,
) -> Result<(), ToolError> {
    let pp = merge_params(dry_run);
    l.target
        .api
        .patch(&l.name, &pp, &Patch::Merge(patch))
        .await
        .map(|_| ())
        .map_err(|e| ToolError::from_kube(e, &format!("{what} {}", l.describe())))
}

impl Tool for RolloutRestart {
    type Params = RestartParams;
    type Output = RolloutActionOutput;
    const META: ToolMeta = ToolMeta {
        name: "rollout_restart",
        title: "Restart a workload's pods",
        description: "Restarts all pods of a Deployment/StatefulSet/DaemonSet with a rolling update (kubectl rollout restart: sets kubectl.kubernetes.io/restartedAt on the pod template). Refuses a paused Deployment. wait=true waits until available. Example: {\"name\": \"todo-frontend\", \"namespace\": \"todo-app\"}",
        effect: Effect::Write,
        idempotent: false,
    };

    async fn call(&self, ctx: &Ctx, p: RestartParams) -> Result<RolloutActionOutput, ToolError> {
        let mut l = load(
            ctx,
            &p.common,
            &p.target,
            &[Kind::Deployment, Kind::StatefulSet, Kind::DaemonSet],
        )
        .await?;
        if l.obj["spec"]["paused"] == true {
            return Err(ToolError::invalid(
                format!("{} is paused; a restart would not roll out", l.describe()),
                "resume it first with rollout_resume",
            ));
        }
        let at = Timestamp::now().to_string();
        let patch = json!({"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT_ANNOTATION: at}}}}});
        merge_patch(&l, &patch, p.dry_run, "restart").await?;
        let mut out = RolloutActionOutput {
            kind: l.kind.name().into(),
            name: l.name.clone(),
            namespace: l.namespace.clone(),
            action: "restart".into(),
            dry_run: p.dry_run,
            outcome: format!(
                "{} at {at}",
                if p.dry_run {
                    "would restart"
                } else {
                    "restarted"
                }
            ),
            status: None,
        };
        if p.wait && !p.dry_run {
            after_write_wait(
                ctx,
                &mut l,
                p.timeout_seconds,
                &mut out.outcome,
                &mut out.status,
            )
            .await?;
        }
        Ok(out)
    }
}

/// Pauses a Deployment's rollout (changes to its template wait until resumed).
pub struct RolloutPause;
/// Resumes a paused Deployment's rollout.
pub struct RolloutResume;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PauseParams {
    #[serde(flatten)]
    pub common: Common,
    #[serde(flatten)]
    pub target: WorkloadTarget,
    /// Validate on the server without changing anything.
    #[serde(default)]
    pub dry_run: bool,
}

async fn set_paused(
    ctx: &Ctx,
    p: PauseParams,
    paused: bool,
) -> Result<RolloutActionOutput, ToolError> {
    let l = load(ctx, &p.common, &p.target, &[Kind::Deployment]).await?;
    let action = if paused { "pause" } else { "resume" };
    let was = l.obj["spec"]["paused"] == true;
    let outcome = if was == paused {
        format!(
            "already {}",
            if paused {
                "paused"
            } else {
                "running (not paused)"
            }
        )
    } else {
        merge_patch(&l, &json!({"spec": {"paused": paused}}), p.dry_run, action).await?;
        format!(
            "{}{}",
            if p.dry_run { "would be " } else { "" },
            if paused { "paused" } else { "resumed" }
        )
    };
    Ok(RolloutActionOutput {
        kind: l.kind.name().into(),
        name: l.name.clone(),
        namespace: l.namespace.clone(),
        action: action.into(),
        dry_run: p.dry_run,
        outcome,
        status: None,
    })
}

impl Tool for RolloutPause {
    type Params = PauseParams;
    type Output = RolloutActionOutput;
    const META: ToolMeta = ToolMeta {
        name: "rollout_pause",
        title: "Pause a rollout",
        description: "Pauses a Deployment's rollout (kubectl rollout pause): template changes are held until rollout_resume. Example: {\"name\": \"todo-backend\", \"namespace\": \"todo-app\"}",
        effect: Effect::Write,
        idempotent: true,
    };
    async fn call(&self, ctx: &Ctx, p: PauseParams) -> Result<RolloutActionOutput, ToolError> {
        set_paused(ctx, p, true).await
    }
}

impl Tool for RolloutResume {
    type Params = PauseParams;
    type Output = RolloutActionOutput;
    const META: ToolMeta = ToolMeta {
        name: "rollout_resume",
        title: "Resume a rollout",
        description: "Resumes a paused Deployment's rollout (kubectl rollout resume). Example: {\"name\": \"todo-backend\", \"namespace\": \"todo-app\"}",
        effect: Effect::Write,
        idempotent: true,
    };
    async fn call(&self, ctx: &Ctx, p: PauseParams) -> Result<RolloutActionOutput, ToolError> {
        set_paused(ctx, p, false).await
    }
}
