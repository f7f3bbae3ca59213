//! Rollouts, pure: revision history of Deployments (from their ReplicaSets) and of
//! StatefulSets/DaemonSets (from ControllerRevisions), the pod-template diff between revisions,
//! relative replica counts, and a rollout verdict. No cluster access: the tools layer fetches the
//! objects and the diagnosis uses the same history.

use std::collections::{BTreeMap, BTreeSet};

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{ControllerRevision, Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{Container, PodTemplateSpec, Probe};
use schemars::JsonSchema;
use serde::Serialize;
use serde_json::Value;

/// Annotation holding a Deployment's / ReplicaSet's revision number.
pub const REVISION_ANNOTATION: &str = "deployment.kubernetes.io/revision";
/// Annotation holding the reason of a change (`kubectl annotate … kubernetes.io/change-cause=…`).
pub const CHANGE_CAUSE_ANNOTATION: &str = "kubernetes.io/change-cause";
/// Annotation `kubectl rollout restart` (and `rollout_restart`) sets on the pod template.
pub const RESTARTED_AT_ANNOTATION: &str = "kubectl.kubernetes.io/restartedAt";
/// Label the Deployment controller adds to each ReplicaSet's template.
pub const POD_TEMPLATE_HASH: &str = "pod-template-hash";

/// One revision of a workload.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Revision {
    pub revision: i64,
    /// The ReplicaSet or ControllerRevision that holds it.
    pub source: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub created: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub change_cause: Option<String>,
    /// `container=image` for every container (init containers prefixed `init:`).
    pub images: Vec<String>,
    /// The revision the workload runs now.
    pub current: bool,
    /// Pods of this revision now: desired / ready / available (ReplicaSets only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pods: Option<RevisionPods>,
    /// true: all its replicas are available now; false: it is current and not all are
    /// available; absent: unknown (scaled down, so its health is not on record).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub healthy: Option<bool>,
    /// What changed against the previous revision (image, env names, resources, probes,
    /// command/args, volumes, …). Empty for the first revision.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<String>,
    #[serde(skip)]
    pub template: PodTemplateSpec,
}

#[derive(Debug, Clone, Copy, Serialize, JsonSchema)]
pub struct RevisionPods {
    pub desired: i32,
    pub ready: i32,
    pub available: i32,
}

fn parse_ts(t: &Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>) -> Option<Timestamp> {
    t.as_ref().map(|t| t.0)
}

fn owned_by(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta, uid: &str) -> bool {
    meta.owner_references
        .as_ref()
        .is_some_and(|o| o.iter().any(|r| r.uid == uid && r.controller == Some(true)))
}

fn annotation(
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    key: &str,
) -> Option<String> {
    meta.annotations.as_ref().and_then(|a| a.get(key)).cloned()
}

/// The template without the controller's pod-template-hash label (what an undo copies back).
pub fn clean_template(t: &PodTemplateSpec) -> PodTemplateSpec {
    let mut t = t.clone();
    if let Some(meta) = t.metadata.as_mut() {
        if let Some(labels) = meta.labels.as_mut() {
            labels.remove(POD_TEMPLATE_HASH);
        }
    }
    t
}

/// `container=image` of every container of a template.
pub fn images(t: &PodTemplateSpec) -> Vec<String> {
    let Some(spec) = t.spec.as_ref() else {
        return vec![];
    };
    let init = spec
        .init_containers
        .iter()
        .flatten()
        .map(|c| format!("init:{}={}", c.name, c.image.clone().unwrap_or_default()));
    let main = spec
        .containers
        .iter()
        .map(|c| format!("{}={}", c.name, c.image.clone().unwrap_or_default()));
    init.chain(main).collect()
}

/// Revisions of a Deployment, oldest first, from the ReplicaSets it controls.
pub fn deployment_history(dep: &Deployment, replica_sets: &[ReplicaSet]) -> Vec<Revision> {
    let uid = dep.metadata.uid.clone().unwrap_or_default();
    let current_rev: Option<i64> =
        annotation(&dep.metadata, REVISION_ANNOTATION).and_then(|r| r.parse().ok());
    let mut revs: Vec<Revision> = replica_sets
        .iter()
        .filter(|rs| owned_by(&rs.metadata, &uid))
        .filter_map(|rs| {
            let revision: i64 = annotation(&rs.metadata, REVISION_ANNOTATION)?
                .parse()
                .ok()?;
            let template = clean_template(&rs.spec.template.clone().unwrap_or_default());
            let desired = rs.spec.replicas.unwrap_or(1);
            let st = rs.status.as_ref();
            let ready = st.and_then(|s| s.ready_replicas).unwrap_or(0);
            let available = st.and_then(|s| s.available_replicas).unwrap_or(0);
            Some(Revision {
                revision,
                source: format!(
                    "ReplicaSet/{}",
                    rs.metadata.name.clone().unwrap_or_default()
                ),
                created: parse_ts(&rs.metadata.creation_timestamp),
                change_cause: annotation(&rs.metadata, CHANGE_CAUSE_ANNOTATION),
                images: images(&template),
                current: false,
                pods: Some(RevisionPods {
                    desired,
                    ready,
                    available,
                }),
                healthy: None,
                changes: vec![],
                template,
            })
        })
        .collect();
    revs.sort_by_key(|r| r.revision);
    // The current revision: the Deployment's annotation, else the ReplicaSet whose template
    // equals the Deployment's, else the newest.
    let dep_template = Some(clean_template(&dep.spec.template));
    let cur = current_rev
        .filter(|r| revs.iter().any(|x| x.revision == *r))
        .or_else(|| {
            revs.iter()
                .find(|x| Some(&x.template) == dep_template.as_ref())
                .map(|x| x.revision)
        })
        .or_else(|| revs.last().map(|x| x.revision));
    for r in &mut revs {
        r.current = Some(r.revision) == cur;
        r.healthy = r.pods.and_then(|p| health(p, r.current));
    }
    fill_changes(&mut revs);
    revs
}

/// Healthy when all desired replicas of the revision are available; for the current revision
/// short of that, not healthy; otherwise (an old revision scaled to 0) unknown.
fn health(p: RevisionPods, current: bool) -> Option<bool> {
    if p.desired > 0 && p.available >= p.desired {
        Some(true)
    } else if current && p.desired > 0 {
        Some(false)
    } else {
        None
    }
}

/// Replica counts of a workload as its status reports them (`kubectl rollout status` reads the
/// same): for a Deployment, ReplicaSet, StatefulSet or DaemonSet given as JSON.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatusCounts {
    pub desired: i32,
    pub current: i32,
    pub updated: i32,
    pub ready: i32,
    pub available: i32,
}

/// [`StatusCounts`] of `obj`, a `kind` (Deployment, ReplicaSet, StatefulSet, DaemonSet).
pub fn status_counts(kind: &str, obj: &Value) -> Option<StatusCounts> {
    let st = &obj["status"];
    let int = |v: &Value| v.as_i64().and_then(|n| i32::try_from(n).ok()).unwrap_or(0);
    let replicas = obj["spec"]["replicas"].as_i64().map_or(1, |n| n as i32);
    Some(match kind {
        "Deployment" | "ReplicaSet" => StatusCounts {
            desired: replicas,
            current: int(&st["replicas"]),
            updated: int(if kind == "ReplicaSet" {
                &st["replicas"]
            } else {
                &st["updatedReplicas"]
            }),
            ready: int(&st["readyReplicas"]),
            available: int(&st["availableReplicas"]),
        },
        "StatefulSet" => {
            // Before 1.22 StatefulSet status has no availableReplicas: ready counts as available.
            let ready = int(&st["readyReplicas"]);
            StatusCounts {
                desired: replicas,
                current: int(&st["replicas"]),
                updated: int(&st["updatedReplicas"]),
                ready,
                available: st.get("availableReplicas").map_or(ready, int),
            }
        }
        "DaemonSet" => StatusCounts {
            desired: int(&st["desiredNumberScheduled"]),
            current: int(&st["currentNumberScheduled"]),
            updated: int(&st["updatedNumberScheduled"]),
            ready: int(&st["numberReady"]),
            available: int(&st["numberAvailable"]),
        },
        _ => return None,
    })
}

/// The pods of a StatefulSet's or DaemonSet's current revision, from its status (as JSON):
/// while a rollout is under way only the updated pods count as the current revision's.
pub fn controller_pods(kind: &str, obj: &Value) -> Option<RevisionPods> {
    if !matches!(kind, "StatefulSet" | "DaemonSet") {
        return None;
    }
    obj.get("status")?;
    let c = status_counts(kind, obj)?;
    let st = &obj["status"];
    // A StatefulSet whose currentRevision caught up runs the current revision everywhere.
    let updated = if kind == "StatefulSet"
        && st["currentRevision"].is_string()
        && st["currentRevision"] == st["updateRevision"]
    {
        c.desired
    } else {
        c.updated
    };
    Some(RevisionPods {
        desired: c.desired,
        ready: c.ready.min(updated),
        available: c.available.min(updated),
    })
}

/// Revisions of a StatefulSet or DaemonSet, oldest first, from its ControllerRevisions.
/// `current_name` is the ControllerRevision the workload runs (StatefulSet
/// `status.updateRevision`); without it the newest is current.
pub fn controller_history(
    owner_uid: &str,
    current_name: Option<&str>,
    current_pods: Option<RevisionPods>,
    revisions: &[ControllerRevision],
) -> Vec<Revision> {
    let mut revs: Vec<Revision> = revisions
        .iter()
        .filter(|cr| owned_by(&cr.metadata, owner_uid))
        .map(|cr| {
            let template = template_from_revision_data(&cr.data.0).unwrap_or_default();
            Revision {
                revision: cr.revision.unwrap_or(0),
                source: format!(
                    "ControllerRevision/{}",
                    cr.metadata.name.clone().unwrap_or_default()
                ),
                created: parse_ts(&cr.metadata.creation_timestamp),
                change_cause: annotation(&cr.metadata, CHANGE_CAUSE_ANNOTATION),
                images: images(&template),
                current: false,
                pods: None,
                healthy: None,
                changes: vec![],
                template,
            }
        })
        .collect();
    revs.sort_by_key(|r| r.revision);
    let newest = revs.last().map(|r| r.revision);
    for r in &mut revs {
        r.current = match current_name {
            Some(n) => r.source.ends_with(&format!("/{n}")),
            None => Some(r.revision) == newest,
        };
        if r.current {
            r.pods = current_pods;
            r.healthy = current_pods.and_then(|p| health(p, true));
        }
    }
    fill_changes(&mut revs);
    revs
}

/// The pod template stored in a ControllerRevision's data (`{"spec": {"template": …}}`).
pub fn template_from_revision_data(data: &Value) -> Option<PodTemplateSpec> {
    let mut t = data.get("spec")?.get("template")?.clone();
    if let Some(o) = t.as_object_mut() {
        o.remove("$patch");
    }
    serde_json::from_value(t).ok()
}

fn fill_changes(revs: &mut [Revision]) {
    for i in 1..revs.len() {
        let changes = template_changes(&revs[i - 1].template, &revs[i].template);
        revs[i].changes = changes;
    }
}

fn opt_json<T: Serialize>(v: &Option<T>) -> Value {
    v.as_ref()
        .and_then(|x| serde_json::to_value(x).ok())
        .unwrap_or(Value::Null)
}

fn short(s: &str) -> String {
    if s.chars().count() > 60 {
        let cut: String = s.chars().take(57).collect();
        format!("{cut}…")
    } else {
        s.to_string()
    }
}

/// A probe in a few words: `httpGet /health:8000`, `tcp :5432`, `exec [cat /tmp/ok]`, plus the
/// timings that differ from the defaults.
pub fn describe_probe(p: &Probe) -> String {
    let what = if let Some(h) = &p.http_get {
        format!(
            "httpGet {}:{}",
            h.path.clone().unwrap_or_else(|| "/".into()),
            port_str(&h.port)
        )
    } else if let Some(t) = &p.tcp_socket {
        format!("tcp :{}", port_str(&t.port))
    } else if let Some(e) = &p.exec {
        format!(
            "exec {}",
            short(&e.command.clone().unwrap_or_default().join(" "))
        )
    } else if let Some(g) = &p.grpc {
        format!("grpc :{}", g.port)
    } else {
        "no handler".into()
    };
    let mut extra = vec![];
    if let Some(d) = p.initial_delay_seconds.filter(|d| *d != 0) {
        extra.push(format!("delay {d}s"));
    }
    if let Some(d) = p.period_seconds.filter(|d| *d != 10) {
        extra.push(format!("every {d}s"));
    }
    if let Some(d) = p.failure_threshold.filter(|d| *d != 3) {
        extra.push(format!("failures {d}"));
    }
    if let Some(d) = p.timeout_seconds.filter(|d| *d != 1) {
        extra.push(format!("timeout {d}s"));
    }
    if extra.is_empty() {
        what
    } else {
        format!("{what} ({})", extra.join(", "))
    }
}

fn port_str(p: &k8s_openapi::apimachinery::pkg::util::intstr::IntOrString) -> String {
    match p {
        k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(i) => i.to_string(),
        k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String(s) => s.clone(),
    }
}

fn probe_str(p: &Option<Probe>) -> String {
    p.as_ref().map_or_else(|| "none".into(), describe_probe)
}

fn resources_map(c: &Container) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    if let Some(r) = &c.resources {
        for (kind, m) in [("requests", &r.requests), ("limits", &r.limits)] {
            for (k, v) in m.iter().flatten() {
                out.insert(format!("{kind}.{k}"), v.0.clone());
            }
        }
    }
    out
}

fn env_names(c: &Container) -> BTreeMap<String, Value> {
    c.env
        .iter()
        .flatten()
        .map(|e| {
            let v = serde_json::json!({"value": e.value, "from": opt_json(&e.value_from)});
            (e.name.clone(), v)
        })
        .collect()
}

fn container_changes(who: &str, a: &Container, b: &Container, out: &mut Vec<String>) {
    if a.image != b.image {
        out.push(format!(
            "image {who}: {} → {}",
            a.image.clone().unwrap_or_default(),
            b.image.clone().unwrap_or_default()
        ));
    }
    if a.command != b.command {
        out.push(format!(
            "command {who}: {} → {}",
            short(&a.command.clone().unwrap_or_default().join(" ")),
            short(&b.command.clone().unwrap_or_default().join(" "))
        ));
    }
    if a.args != b.args {
        out.push(format!(
            "args {who}: {} → {}",
            short(&a.args.clone().unwrap_or_default().join(" ")),
            short(&b.args.clone().unwrap_or_default().join(" "))
        ));
    }
    // Env: names only (values may be secret).
    let (ea, eb) = (env_names(a), env_names(b));
    let added: Vec<&String> = eb.keys().filter(|k| !ea.contains_key(*k)).collect();
    let removed: Vec<&String> = ea.keys().filter(|k| !eb.contains_key(*k)).collect();
    let changed: Vec<&String> = ea
        .iter()
        .filter(|(k, v)| eb.get(*k).is_some_and(|w| w != *v))
        .map(|(k, _)| k)
        .collect();
    for (what, names) in [("added", added), ("removed", removed), ("changed", changed)] {
        if !names.is_empty() {
            let names: Vec<&str> = names.iter().map(|s| s.as_str()).collect();
            out.push(format!("env {who} {what}: {}", names.join(", ")));
        }
    }
    if opt_json(&a.env_from) != opt_json(&b.env_from) {
        let refs = |c: &Container| -> String {
            c.env_from
                .iter()
                .flatten()
                .map(|e| {
                    if let Some(cm) = &e.config_map_ref {
                        format!("configmap/{}", cm.name)
                    } else if let Some(s) = &e.secret_ref {
                        format!("secret/{}", s.name)
                    } else {
                        "?".into()
                    }
                })
                .collect::<Vec<_>>()
                .join(",")
        };
        out.push(format!("envFrom {who}: [{}] → [{}]", refs(a), refs(b)));
    }
    let (ra, rb) = (resources_map(a), resources_map(b));
    let keys: BTreeSet<&String> = ra.keys().chain(rb.keys()).collect();
    for k in keys {
        let (x, y) = (ra.get(k), rb.get(k));
        if x != y {
            out.push(format!(
                "{k} {who}: {} → {}",
                x.map_or("unset", |s| s.as_str()),
                y.map_or("unset", |s| s.as_str())
            ));
        }
    }
    for (name, pa, pb) in [
        ("readiness probe", &a.readiness_probe, &b.readiness_probe),
        ("liveness probe", &a.liveness_probe, &b.liveness_probe),
        ("startup probe", &a.startup_probe, &b.startup_probe),
    ] {
        if opt_json(pa) != opt_json(pb) {
            out.push(format!(
                "{name} {who}: {} → {}",
                probe_str(pa),
                probe_str(pb)
            ));
        }
    }
    if opt_json(&a.ports) != opt_json(&b.ports) {
        let ports = |c: &Container| -> String {
            c.ports
                .iter()
                .flatten()
                .map(|p| match &p.name {
                    Some(n) => format!("{n}:{}", p.container_port),
                    None => p.container_port.to_string(),
                })
                .collect::<Vec<_>>()
                .join(",")
        };
        out.push(format!("ports {who}: [{}] → [{}]", ports(a), ports(b)));
    }
    if opt_json(&a.volume_mounts) != opt_json(&b.volume_mounts) {
        out.push(format!("volumeMounts {who} changed"));
    }
}

fn containers_changes(prefix: &str, a: &[Container], b: &[Container], out: &mut Vec<String>) {
    for cb in b {
        let who = format!("{prefix}{}", cb.name);
        match a.iter().find(|ca| ca.name == cb.name) {
            Some(ca) => container_changes(&who, ca, cb, out),
            None => out.push(format!(
                "container {who} added ({})",
                cb.image.clone().unwrap_or_default()
            )),
        }
    }
    for ca in a {
        if !b.iter().any(|cb| cb.name == ca.name) {
            out.push(format!("container {prefix}{} removed", ca.name));
        }
    }
}

/// What changed from template `a` to template `b`, in short phrases a model can act on. Env
/// values are never shown (they may be secret): only which names were added, removed, changed.
pub fn template_changes(a: &PodTemplateSpec, b: &PodTemplateSpec) -> Vec<String> {
    let mut out = vec![];
    let empty = Default::default();
    let sa = a.spec.as_ref().unwrap_or(&empty);
    let sb = b.spec.as_ref().unwrap_or(&empty);
    containers_changes(
        "init:",
        sa.init_containers.as_deref().unwrap_or_default(),
        sb.init_containers.as_deref().unwrap_or_default(),
        &mut out,
    );
    containers_changes("", &sa.containers, &sb.containers, &mut out);
    let vols = |s: &k8s_openapi::api::core::v1::PodSpec| -> BTreeMap<String, Value> {
        s.volumes
            .iter()
            .flatten()
            .map(|v| (v.name.clone(), serde_json::to_value(v).unwrap_or_default()))
            .collect()
    };
    let (va, vb) = (vols(sa), vols(sb));
    for (k, v) in &vb {
        match va.get(k) {
            None => out.push(format!("volume {k} added")),
            Some(w) if w != v => out.push(format!("volume {k} changed")),
            _ => {}
        }
    }
    for k in va.keys().filter(|k| !vb.contains_key(*k)) {
        out.push(format!("volume {k} removed"));
    }
    if sa.service_account_name != sb.service_account_name {
        out.push(format!(
            "serviceAccountName: {} → {}",
            sa.service_account_name
                .clone()
                .unwrap_or_else(|| "default".into()),
            sb.service_account_name
                .clone()
                .unwrap_or_else(|| "default".into())
        ));
    }
    if sa.node_selector != sb.node_selector {
        out.push("nodeSelector changed".into());
    }
    if opt_json(&sa.tolerations) != opt_json(&sb.tolerations) {
        out.push("tolerations changed".into());
    }
    if opt_json(&sa.affinity) != opt_json(&sb.affinity) {
        out.push("affinity changed".into());
    }
    let ann = |t: &PodTemplateSpec, k: &str| {
        t.metadata
            .as_ref()
            .and_then(|m| m.annotations.as_ref())
            .and_then(|a| a.get(k))
            .cloned()
    };
    if ann(a, RESTARTED_AT_ANNOTATION) != ann(b, RESTARTED_AT_ANNOTATION) {
        if let Some(at) = ann(b, RESTARTED_AT_ANNOTATION) {
            out.push(format!("restarted at {at}"));
        }
    }
    // Other annotations (e.g. a Helm chart's checksum/config) and labels, both ways.
    let map = |t: &PodTemplateSpec, labels: bool| {
        t.metadata
            .as_ref()
            .and_then(|m| {
                if labels {
                    m.labels.clone()
                } else {
                    m.annotations.clone()
                }
            })
            .unwrap_or_default()
    };
    for (what, labels, skip) in [
        ("label", true, POD_TEMPLATE_HASH),
        ("annotation", false, RESTARTED_AT_ANNOTATION),
    ] {
        let (ma, mb) = (map(a, labels), map(b, labels));
        for (k, v) in &mb {
            if ma.get(k) != Some(v) && k != skip {
                out.push(format!(
                    "{what} {k}: {} → {}",
                    ma.get(k).map_or("unset", |s| s.as_str()),
                    clip_value(v)
                ));
            }
        }
        for k in ma.keys().filter(|k| !mb.contains_key(*k) && *k != skip) {
            out.push(format!("{what} {k} removed"));
        }
    }
    if out.is_empty() && opt_json(&a.spec) != opt_json(&b.spec) {
        out.push("other pod spec fields changed".into());
    }
    out
}

/// Annotation values can be long (JSON blobs): keep a diff line short.
fn clip_value(v: &str) -> String {
    if v.chars().count() <= 80 {
        v.to_string()
    } else {
        format!("{}…", v.chars().take(80).collect::<String>())
    }
}

/// A replica count as the user wrote it: `5` (absolute), `+2` / `-1` (relative), `x2` / `x0.5`
/// (factor), `50%` / `+50%` / `-50%` (percent of the current count; `50%` means half).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ReplicaForm {
    Absolute(u32),
    Plus(u32),
    Minus(u32),
    Factor(f64),
    /// A signed change in percent of the current count (`+50%`, `-50%`).
    PercentChange(f64),
    /// A share in percent of the current count (`50%`).
    PercentOf(f64),
}

impl ReplicaForm {
    /// Parses the text alone; whether the result is in range depends on the current count
    /// ([`ReplicaForm::apply`]).
    pub fn parse(spec: &str) -> Result<Self, String> {
        let s = spec.trim();
        let bad = || {
            format!(
                "replicas '{spec}' is not understood; use a count (3), a change (+2, -1), a factor (x2, x0.5) or a percentage (-50%, +100%, 50%)"
            )
        };
        // Digits only after the sign: "--2" and "+-2" are typos, not changes.
        let count = |n: &str| -> Result<u32, String> {
            let n = n.trim();
            if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad());
            }
            n.parse::<u32>().map_err(|_| bad())
        };
        let share = |n: &str| -> Result<f64, String> {
            let n = n.trim();
            if !n.starts_with(|c: char| c.is_ascii_digit()) {
                return Err(bad());
            }
            let f: f64 = n.parse().map_err(|_| bad())?;
            if f.is_finite() && f >= 0.0 {
                Ok(f)
            } else {
                Err(bad())
            }
        };
        if let Some(f) = s.strip_prefix(['x', 'X', '*']) {
            Ok(Self::Factor(share(f)?))
        } else if let Some(p) = s.strip_suffix('%') {
            if let Some(n) = p.strip_prefix('+') {
                Ok(Self::PercentChange(share(n)?))
            } else if let Some(n) = p.strip_prefix('-') {
                Ok(Self::PercentChange(-share(n)?))
            } else {
                Ok(Self::PercentOf(share(p)?))
            }
        } else if let Some(n) = s.strip_prefix('+') {
            Ok(Self::Plus(count(n)?))
        } else if let Some(n) = s.strip_prefix('-') {
            Ok(Self::Minus(count(n)?))
        } else {
            Ok(Self::Absolute(count(s)?))
        }
    }

    /// The count this form gives from `current` replicas.
    pub fn apply(self, spec: &str, current: i32) -> Result<i32, String> {
        let cur = f64::from(current.max(0));
        let value = match self {
            Self::Absolute(n) => f64::from(n),
            Self::Plus(n) => cur + f64::from(n),
            Self::Minus(n) => cur - f64::from(n),
            Self::Factor(f) => (cur * f).round(),
            Self::PercentChange(p) => (cur + cur * p / 100.0).round(),
            Self::PercentOf(p) => (cur * p / 100.0).round(),
        };
        if value < 0.0 {
            return Err(format!(
                "replicas '{spec}' from {current} gives {value}, below 0; the smallest count is 0"
            ));
        }
        if value > f64::from(i32::MAX) {
            return Err(format!(
                "replicas '{spec}' from {current} gives {value}, above the largest count {}",
                i32::MAX
            ));
        }
        Ok(value as i32)
    }
}

/// [`ReplicaForm::parse`] then [`ReplicaForm::apply`].
pub fn parse_replicas(spec: &str, current: i32) -> Result<i32, String> {
    ReplicaForm::parse(spec)?.apply(spec, current)
}

/// Where a rollout stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Every replica runs the current revision and is available.
    Complete,
    /// Moving and within its deadline.
    Progressing,
    /// Not moving: the new revision's pods fail (crash, image pull, probes) — the deadline has
    /// not passed yet, but waiting will not help.
    Stalled,
    /// The controller gave up: ProgressDeadlineExceeded, or a ReplicaSet cannot create pods.
    Failed,
    /// Paused (`rollout_resume` continues it).
    Paused,
}

/// Counts and conditions a verdict needs (filled from a Deployment, StatefulSet or DaemonSet).
#[derive(Debug, Clone, Default)]
pub struct RolloutFacts {
    pub desired: i32,
    /// Pods in total (old and new revision).
    pub current: i32,
    pub updated: i32,
    pub ready: i32,
    pub available: i32,
    pub generation: i64,
    pub observed_generation: i64,
    pub paused: bool,
    /// Progressing condition (status, reason, message).
    pub progressing: Option<(String, String, String)>,
    /// ReplicaFailure condition message, when True.
    pub replica_failure: Option<String>,
    /// Pods of the new revision that are failing, with their status (e.g. `CrashLoopBackOff`).
    pub failing_new_pods: Vec<(String, String)>,
}

/// The verdict and its reason in one sentence.
pub fn verdict(f: &RolloutFacts) -> (Verdict, String) {
    // Paused is the spec's own word: nothing rolls while it holds, whether or not the
    // controller has caught up with the pause yet.
    if f.paused {
        return (
            Verdict::Paused,
            format!(
                "paused with {}/{} updated; rollout_resume continues it",
                f.updated, f.desired
            ),
        );
    }
    if f.observed_generation < f.generation {
        return (
            Verdict::Progressing,
            format!(
                "the controller has not yet seen generation {} (observed {})",
                f.generation, f.observed_generation
            ),
        );
    }
    if let Some((st, reason, msg)) = &f.progressing {
        if st == "False" && reason == "ProgressDeadlineExceeded" {
            let mut why = format!("ProgressDeadlineExceeded: {msg}");
            if let Some((pod, status)) = f.failing_new_pods.first() {
                why.push_str(&format!("; new pod {pod} is {status}"));
            }
            return (Verdict::Failed, why);
        }
    }
    if let Some(msg) = &f.replica_failure {
        return (Verdict::Failed, format!("ReplicaFailure: {msg}"));
    }
    let done = f.updated >= f.desired
        && f.current <= f.desired
        && f.available >= f.desired
        && f.ready >= f.desired;
    if done {
        return (
            Verdict::Complete,
            format!(
                "{}/{} replicas updated and available",
                f.available, f.desired
            ),
        );
    }
    if !f.failing_new_pods.is_empty() {
        let list: Vec<String> = f
            .failing_new_pods
            .iter()
            .take(3)
            .map(|(p, s)| format!("{p} {s}"))
            .collect();
        return (
            Verdict::Stalled,
            format!(
                "{} new pod(s) failing ({}); {}/{} updated, {} available",
                f.failing_new_pods.len(),
                list.join(", "),
                f.updated,
                f.desired,
                f.available
            ),
        );
    }
    let why = if f.updated < f.desired {
        format!("{}/{} replicas updated", f.updated, f.desired)
    } else if f.current > f.desired {
        format!(
            "{} old replica(s) pending termination",
            f.current - f.desired
        )
    } else {
        format!("{}/{} replicas available", f.available, f.desired)
    };
    (Verdict::Progressing, why)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn dep(uid: &str, rev: i64, image: &str) -> Deployment {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "ns", "uid": uid,
                          "annotations": {REVISION_ANNOTATION: rev.to_string()}},
            "spec": {"selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"containers": [{"name": "web", "image": image}]}}}
        }))
        .unwrap()
    }

    fn rs(
        owner: &str,
        name: &str,
        rev: i64,
        container: Value,
        desired: i32,
        avail: i32,
    ) -> ReplicaSet {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "ns",
                          "annotations": {REVISION_ANNOTATION: rev.to_string()},
                          "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": owner, "controller": true}]},
            "spec": {"replicas": desired, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web", POD_TEMPLATE_HASH: name}},
                                  "spec": {"containers": [container]}}},
            "status": {"replicas": desired, "readyReplicas": avail, "availableReplicas": avail}
        }))
        .unwrap()
    }

    #[test]
    fn deployment_history_orders_revisions_marks_current_and_health_and_diffs_images() {
        let d = dep("u1", 3, "app:3");
        let rss = vec![
            rs(
                "u1",
                "web-c",
                3,
                json!({"name": "web", "image": "app:3", "env": [{"name": "A", "value": "1"}, {"name": "NEW", "value": "x"}]}),
                2,
                0,
            ),
            rs(
                "u1",
                "web-a",
                1,
                json!({"name": "web", "image": "app:1"}),
                0,
                0,
            ),
            rs(
                "u1",
                "web-b",
                2,
                json!({"name": "web", "image": "app:2", "env": [{"name": "A", "value": "0"}]}),
                2,
                2,
            ),
            rs(
                "other",
                "x-a",
                1,
                json!({"name": "x", "image": "x:1"}),
                1,
                1,
            ),
        ];
        let h = deployment_history(&d, &rss);
        assert_eq!(
            h.iter().map(|r| r.revision).collect::<Vec<_>>(),
            vec![1, 2, 3]
        );
        assert!(h[2].current && !h[1].current);
        assert_eq!(h[0].healthy, None, "scaled down: unknown");
        assert_eq!(h[1].healthy, Some(true));
        assert_eq!(h[2].healthy, Some(false));
        assert!(h[2]
            .changes
            .contains(&"image web: app:2 → app:3".to_string()));
        assert!(h[2].changes.contains(&"env web added: NEW".to_string()));
        assert!(h[2].changes.contains(&"env web changed: A".to_string()));
        assert!(
            h[1].changes.iter().all(|c| !c.contains('0')),
            "env values never shown: {:?}",
            h[1].changes
        );
        let labels = h[2]
            .template
            .metadata
            .as_ref()
            .unwrap()
            .labels
            .as_ref()
            .unwrap();
        assert!(!labels.contains_key(POD_TEMPLATE_HASH));
    }

    #[test]
    fn template_diff_names_resources_probes_and_command() {
        let a: PodTemplateSpec = serde_json::from_value(json!({"spec": {"containers": [{
            "name": "api", "image": "a:1", "command": ["run"],
            "resources": {"limits": {"memory": "512Mi"}},
            "readinessProbe": {"httpGet": {"path": "/health", "port": 8000}}}]}}))
        .unwrap();
        let b: PodTemplateSpec = serde_json::from_value(json!({"spec": {"containers": [{
            "name": "api", "image": "a:1", "command": ["serve"],
            "resources": {"limits": {"memory": "64Mi"}},
            "readinessProbe": {"httpGet": {"path": "/ready", "port": 8000}, "initialDelaySeconds": 5}}],
            "volumes": [{"name": "cache", "emptyDir": {}}]}}))
        .unwrap();
        let c = template_changes(&a, &b);
        assert!(c.contains(&"command api: run → serve".to_string()), "{c:?}");
        assert!(
            c.contains(&"limits.memory api: 512Mi → 64Mi".to_string()),
            "{c:?}"
        );
        assert!(
            c.contains(
                &"readiness probe api: httpGet /health:8000 → httpGet /ready:8000 (delay 5s)"
                    .to_string()
            ),
            "{c:?}"
        );
        assert!(c.contains(&"volume cache added".to_string()), "{c:?}");
    }

    #[test]
    fn template_diff_sees_annotation_and_removed_label_changes() {
        // A Helm chart that changed only its config checksum: an undo must not think it is
        // already there.
        let a: PodTemplateSpec = serde_json::from_value(json!({"metadata": {
            "labels": {"app": "api", "track": "canary", POD_TEMPLATE_HASH: "abc"},
            "annotations": {"checksum/config": "111"}},
            "spec": {"containers": [{"name": "api", "image": "a:1"}]}}))
        .unwrap();
        let b: PodTemplateSpec = serde_json::from_value(json!({"metadata": {
            "labels": {"app": "api", POD_TEMPLATE_HASH: "def"},
            "annotations": {"checksum/config": "222", "note": "x".repeat(200)}},
            "spec": {"containers": [{"name": "api", "image": "a:1"}]}}))
        .unwrap();
        let c = template_changes(&a, &b);
        assert_eq!(
            c,
            vec![
                "label track removed".to_string(),
                "annotation checksum/config: 111 → 222".to_string(),
                format!("annotation note: unset → {}…", "x".repeat(80)),
            ]
        );
    }

    #[test]
    fn statefulset_history_comes_from_controller_revisions() {
        let cr = |name: &str, rev: i64, image: &str| -> ControllerRevision {
            serde_json::from_value(json!({
                "metadata": {"name": name, "ownerReferences": [{"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "db", "uid": "s1", "controller": true}]},
                "revision": rev,
                "data": {"spec": {"template": {"$patch": "replace", "metadata": {"labels": {"app": "db"}}, "spec": {"containers": [{"name": "db", "image": image}]}}}}
            }))
            .unwrap()
        };
        let sts = json!({"kind": "StatefulSet", "spec": {"replicas": 3},
            "status": {"readyReplicas": 3, "currentRevision": "db-1", "updateRevision": "db-1"}});
        let h = controller_history(
            "s1",
            Some("db-1"),
            controller_pods("StatefulSet", &sts),
            &[cr("db-2", 2, "pg:16"), cr("db-1", 1, "pg:15")],
        );
        assert_eq!(h.len(), 2);
        assert!(h[0].current && !h[1].current);
        assert_eq!(
            h[0].healthy,
            Some(true),
            "all 3 ready on the current revision"
        );
        assert_eq!(h[1].healthy, None);
        // Mid-rollout with the one updated pod not ready: the current revision is not healthy.
        let rolling = json!({"kind": "StatefulSet", "spec": {"replicas": 3},
            "status": {"readyReplicas": 2, "updatedReplicas": 1, "currentRevision": "db-1", "updateRevision": "db-2"}});
        let p = controller_pods("StatefulSet", &rolling).unwrap();
        assert_eq!((p.desired, p.ready, p.available), (3, 1, 1));
        let ds = json!({"kind": "DaemonSet", "status": {"desiredNumberScheduled": 2, "updatedNumberScheduled": 2, "numberReady": 2, "numberAvailable": 2}});
        assert_eq!(
            controller_pods("DaemonSet", &ds).map(|p| p.available),
            Some(2)
        );
        assert_eq!(h[1].changes, vec!["image db: pg:15 → pg:16".to_string()]);
    }

    #[test]
    fn relative_replica_forms_are_understood() {
        assert_eq!(parse_replicas("5", 2), Ok(5));
        assert_eq!(parse_replicas("+2", 3), Ok(5));
        assert_eq!(parse_replicas("-1", 3), Ok(2));
        assert_eq!(parse_replicas("x2", 3), Ok(6));
        assert_eq!(parse_replicas("x0.5", 4), Ok(2));
        assert_eq!(parse_replicas("-50%", 4), Ok(2));
        assert_eq!(parse_replicas("+100%", 3), Ok(6));
        assert_eq!(parse_replicas("50%", 6), Ok(3));
        assert!(parse_replicas("-5", 3).unwrap_err().contains("below 0"));
        assert!(parse_replicas("lots", 3)
            .unwrap_err()
            .contains("not understood"));
        assert!(parse_replicas("x-1", 3).is_err());
    }

    #[test]
    fn a_relative_decrease_is_checked_against_the_current_count_not_before() {
        // The syntax alone is valid whatever the count; only applying it can go below 0.
        assert_eq!(ReplicaForm::parse("-2"), Ok(ReplicaForm::Minus(2)));
        assert_eq!(parse_replicas("-2", 4), Ok(2));
        assert_eq!(parse_replicas("-4", 4), Ok(0));
        let e = parse_replicas("-5", 4).unwrap_err();
        assert!(e.contains("from 4 gives -1"), "{e}");
    }

    #[test]
    fn doubled_or_mixed_signs_are_not_understood() {
        for bad in [
            "--2", "+-2", "-+2", "x-1", "x", "+", "-", "%", "-x2", "2.5", "1e3", "+inf%",
        ] {
            let e = ReplicaForm::parse(bad).unwrap_err();
            assert!(e.contains("not understood"), "{bad}: {e}");
        }
    }

    #[test]
    fn verdict_separates_complete_progressing_stalled_failed_and_paused() {
        let base = RolloutFacts {
            desired: 2,
            current: 2,
            updated: 2,
            ready: 2,
            available: 2,
            generation: 2,
            observed_generation: 2,
            ..Default::default()
        };
        assert_eq!(verdict(&base).0, Verdict::Complete);
        let moving = RolloutFacts {
            updated: 1,
            current: 3,
            ..base.clone()
        };
        assert_eq!(verdict(&moving).0, Verdict::Progressing);
        let stalled = RolloutFacts {
            failing_new_pods: vec![("web-x".into(), "CrashLoopBackOff".into())],
            ..moving.clone()
        };
        let (v, why) = verdict(&stalled);
        assert_eq!(v, Verdict::Stalled);
        assert!(why.contains("web-x CrashLoopBackOff"));
        let failed = RolloutFacts {
            progressing: Some((
                "False".into(),
                "ProgressDeadlineExceeded".into(),
                "ReplicaSet \"web-x\" has timed out progressing.".into(),
            )),
            ..stalled
        };
        assert_eq!(verdict(&failed).0, Verdict::Failed);
        let paused = RolloutFacts {
            paused: true,
            ..moving
        };
        assert_eq!(verdict(&paused).0, Verdict::Paused);
        // Just paused, before the controller has seen the new generation: still paused.
        let just_paused = RolloutFacts {
            paused: true,
            generation: 3,
            ..base.clone()
        };
        assert_eq!(verdict(&just_paused).0, Verdict::Paused);
        let unobserved = RolloutFacts {
            generation: 3,
            ..base
        };
        assert_eq!(verdict(&unobserved).0, Verdict::Progressing);
    }
}
