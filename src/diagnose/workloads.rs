//! Workload- and cluster-level rows: PVC pending (11), rollout stalled (13), FailedCreate (14),
//! scaled to zero while selected (15), HPA not scaling (21), node not ready (22), Job failed (23).

use std::collections::HashMap;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::json;

use super::ctx::{clip, fmt_labels, look_steps, name_of, ns_of, service_selects};
use super::{Ctx, Finding, ObjectRef, Row, Severity, Step};

/// Pods this young (seconds) mean a rollout or scale-up has just begun.
const YOUNG_SECS: i64 = 120;

struct Cond<'a> {
    type_: &'a str,
    status: &'a str,
    reason: &'a str,
    message: &'a str,
}

impl Cond<'_> {
    fn line(&self) -> String {
        format!(
            "condition {} = {} ({}){}",
            self.type_,
            self.status,
            self.reason,
            if self.message.is_empty() {
                String::new()
            } else {
                format!(": {}", clip(self.message, 140))
            }
        )
    }
}

/// Condition fields are `String` on some kinds and `Option<String>` on others.
trait AsText {
    fn text(&self) -> &str;
}

impl AsText for String {
    fn text(&self) -> &str {
        self
    }
}

impl AsText for Option<String> {
    fn text(&self) -> &str {
        self.as_deref().unwrap_or_default()
    }
}

macro_rules! conds {
    ($list:expr) => {
        $list
            .iter()
            .flatten()
            .map(|c| Cond {
                type_: c.type_.text(),
                status: c.status.text(),
                reason: c.reason.as_deref().unwrap_or_default(),
                message: c.message.as_deref().unwrap_or_default(),
            })
            .collect::<Vec<Cond>>()
    };
}

fn history_steps(ctx: &Ctx, obj: &ObjectRef) -> (Vec<String>, Vec<Step>) {
    let Some(v) = ctx.verdict(obj) else {
        return (vec![], vec![]);
    };
    let mut ev = vec![];
    let mut steps = vec![];
    if v.started_with_current {
        if let Some(t) = &v.target {
            ev.push(format!(
                "history: revision {} is failing{}; revision {} {}",
                v.current,
                if v.changes.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", clip(&v.changes.join("; "), 120))
                },
                t.revision,
                if t.healthy == Some(true) {
                    "last worked"
                } else {
                    "is the previous one"
                }
            ));
        }
        steps = ctx.undo_steps(obj, &v);
    }
    ev.extend(v.cleared_line());
    steps.push(Step::tool(
        "rollout_history",
        json!({"namespace": obj.namespace, "name": obj.name, "kind": obj.kind}),
        "see what each revision changed",
    ));
    (ev, steps)
}

// ------------------------------------------------------------------------------ row 13

/// Deployments, StatefulSets and DaemonSets short of ready replicas, or past their progress
/// deadline. A rollout still progressing within its deadline is not a finding.
pub(crate) fn rollout_stalled(ctx: &Ctx) -> Vec<Finding> {
    let mut out = vec![];
    for d in &ctx.snap.deployments {
        let desired = d.spec.replicas.unwrap_or(1);
        if desired == 0 {
            continue;
        }
        let st = d.status.clone().unwrap_or_default();
        let cs = conds!(st.conditions);
        let ready = st.ready_replicas.unwrap_or(0);
        let available = st.available_replicas.unwrap_or(0);
        let updated = st.updated_replicas.unwrap_or(0);
        let deadline = cs
            .iter()
            .find(|c| c.type_ == "Progressing" && c.reason == "ProgressDeadlineExceeded");
        let progressing = cs.iter().any(|c| {
            c.type_ == "Progressing"
                && c.status == "True"
                && matches!(
                    c.reason,
                    "ReplicaSetUpdated" | "NewReplicaSetCreated" | "FoundNewReplicaSet"
                )
        });
        let obj = ObjectRef::new("Deployment", ns_of(&d.metadata), name_of(&d.metadata));
        let short = ready < desired || available < desired;
        let lagging = d.metadata.generation.unwrap_or(0) > st.observed_generation.unwrap_or(0);
        if deadline.is_none()
            && (!short || progressing || ctx.has_young_pod(&obj, YOUNG_SECS) || lagging)
        {
            continue;
        }
        let sev = if deadline.is_some() || available == 0 {
            Severity::Critical
        } else {
            Severity::Warning
        };
        let (hist, steps) = history_steps(ctx, &obj);
        let mut f = Finding::new(Row::RolloutStalled, sev, obj.clone())
            .summary(if deadline.is_some() {
                format!("rollout stalled past its progress deadline: {ready}/{desired} ready, {updated} updated")
            } else {
                format!("only {ready}/{desired} replicas ready ({available} available)")
            })
            .cause(if deadline.is_some() {
                "the new ReplicaSet's pods never became available within progressDeadlineSeconds"
            } else {
                "some replicas are not ready (see the pods' findings)"
            })
            .evidence(format!(
                "spec.replicas = {desired}, readyReplicas = {ready}, availableReplicas = {available}, updatedReplicas = {updated}"
            ))
            .evidence_all(
                cs.iter()
                    .filter(|c| c.status != "True")
                    .map(Cond::line),
            )
            .evidence_all(hist)
            .since(
                d.status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .and_then(|c| c.iter().find(|c| c.type_.text() == "Progressing"))
                    .and_then(|c| c.last_transition_time.as_ref().map(|t| t.0)),
            )
            .steps(steps);
        f = f.steps(look_steps(&obj, None, false).into_iter().skip(1));
        out.push(f);
    }
    for s in &ctx.snap.stateful_sets {
        let desired = s.spec.replicas.unwrap_or(1);
        let st = s.status.clone().unwrap_or_default();
        let ready = st.ready_replicas.unwrap_or(0);
        let obj = ObjectRef::new("StatefulSet", ns_of(&s.metadata), name_of(&s.metadata));
        if desired == 0 || ready >= desired || ctx.has_young_pod(&obj, YOUNG_SECS) {
            continue;
        }
        let (hist, steps) = history_steps(ctx, &obj);
        out.push(
            Finding::new(
                Row::RolloutStalled,
                if ready == 0 { Severity::Critical } else { Severity::Warning },
                obj,
            )
            .summary(format!("only {ready}/{desired} replicas ready"))
            .cause("pods of the StatefulSet are not ready (it creates them one by one: one stuck pod blocks the rest)")
            .evidence(format!(
                "spec.replicas = {desired}, readyReplicas = {ready}, currentRevision = {}, updateRevision = {}",
                st.current_revision.unwrap_or_default(),
                st.update_revision.unwrap_or_default()
            ))
            .evidence_all(hist)
            .steps(steps),
        );
    }
    for s in &ctx.snap.daemon_sets {
        let st = s.status.clone().unwrap_or_default();
        let desired = st.desired_number_scheduled;
        let ready = st.number_ready;
        let obj = ObjectRef::new("DaemonSet", ns_of(&s.metadata), name_of(&s.metadata));
        if desired == 0 || ready >= desired || ctx.has_young_pod(&obj, YOUNG_SECS) {
            continue;
        }
        let (hist, steps) = history_steps(ctx, &obj);
        out.push(
            Finding::new(
                Row::RolloutStalled,
                if ready == 0 {
                    Severity::Critical
                } else {
                    Severity::Warning
                },
                obj,
            )
            .summary(format!("only {ready}/{desired} daemon pods ready"))
            .cause("daemon pods on some nodes are not ready")
            .evidence(format!(
                "desiredNumberScheduled = {desired}, numberReady = {ready}, numberUnavailable = {}",
                st.number_unavailable.unwrap_or(0)
            ))
            .evidence_all(hist)
            .steps(steps),
        );
    }
    out
}

// ------------------------------------------------------------------------------ row 14

/// ReplicaSets (and StatefulSets, DaemonSets, Jobs) whose controller cannot create pods.
pub(crate) fn failed_create(ctx: &Ctx) -> Vec<Finding> {
    let mut out = vec![];
    let mut check = |kind: &str, meta: &ObjectMeta, cond_msg: Option<String>, owner: ObjectRef| {
        let ns = ns_of(meta);
        let name = name_of(meta);
        let events = ctx.event_groups(kind, ns, name);
        let ev = events.iter().find(|g| g.reason == "FailedCreate");
        let Some(msg) = cond_msg.or_else(|| ev.map(|g| g.message.clone())) else {
            return;
        };
        let (cause, action) = failed_create_cause(ctx, ns, &msg);
        let mut f = Finding::new(Row::FailedCreate, Severity::Critical, owner)
            .summary(format!(
                "{kind} {name} cannot create pods: {}",
                clip(&msg, 120)
            ))
            .cause(cause)
            .evidence(format!("{kind} {name}: {}", clip(&msg, 160)))
            .since(ev.and_then(|g| g.first))
            .step(Step::manual(action, "no pod is created until it is fixed"));
        if let Some(g) = ev {
            f = f.evidence(g.line(ctx.now));
        }
        for q in &ctx.snap.resource_quotas {
            if ns_of(&q.metadata) == ns && msg.contains(name_of(&q.metadata)) {
                let st = q.status.clone().unwrap_or_default();
                let hard = st.hard.unwrap_or_default();
                let used = st.used.unwrap_or_default();
                let parts: Vec<String> = hard
                    .iter()
                    .map(|(k, v)| {
                        format!(
                            "{k} {}/{}",
                            used.get(k).map(|u| u.0.as_str()).unwrap_or("0"),
                            v.0
                        )
                    })
                    .collect();
                f = f.evidence(format!(
                    "ResourceQuota {} used/hard: {}",
                    name_of(&q.metadata),
                    parts.join(", ")
                ));
            }
        }
        out.push(f);
    };
    for rs in &ctx.snap.replica_sets {
        if rs.spec.replicas.unwrap_or(1) == 0 {
            continue;
        }
        let cond = rs
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|c| {
                c.iter()
                    .find(|c| c.type_.text() == "ReplicaFailure" && c.status.text() == "True")
            })
            .map(|c| c.message.clone().unwrap_or_default());
        let owner = ctx.owner_of_rs(ns_of(&rs.metadata), name_of(&rs.metadata));
        check("ReplicaSet", &rs.metadata, cond, owner);
    }
    for s in &ctx.snap.stateful_sets {
        let o = ObjectRef::new("StatefulSet", ns_of(&s.metadata), name_of(&s.metadata));
        check("StatefulSet", &s.metadata, None, o);
    }
    for s in &ctx.snap.daemon_sets {
        let o = ObjectRef::new("DaemonSet", ns_of(&s.metadata), name_of(&s.metadata));
        check("DaemonSet", &s.metadata, None, o);
    }
    for j in &ctx.snap.jobs {
        let (ns, name) = (ns_of(&j.metadata), name_of(&j.metadata));
        let o = ctx
            .owner_of_job(ns, name)
            .unwrap_or_else(|| ObjectRef::new("Job", ns, name));
        check("Job", &j.metadata, None, o);
    }
    out
}

fn failed_create_cause(ctx: &Ctx, ns: &str, msg: &str) -> (String, String) {
    if msg.contains("exceeded quota") {
        let quota = msg
            .split("exceeded quota: ")
            .nth(1)
            .and_then(|s| s.split(',').next())
            .unwrap_or("?");
        return (
            format!("ResourceQuota {quota} is exhausted: {}", clip(msg, 140)),
            format!("raise ResourceQuota {quota} in namespace {ns}, or lower the pod template's requests/replicas"),
        );
    }
    if msg.contains("serviceaccount") || msg.contains("service account") {
        let sa = msg
            .split("serviceaccount \"")
            .nth(1)
            .and_then(|s| s.split('"').next())
            .or_else(|| {
                msg.split("service account ")
                    .nth(1)
                    .and_then(|s| s.split_whitespace().next())
                    .map(|s| s.rsplit('/').next().unwrap_or(s).trim_end_matches(':'))
            })
            .unwrap_or("?")
            .to_string();
        let exists = ctx
            .snap
            .service_accounts
            .iter()
            .any(|(n, s)| n == ns && *s == sa);
        return (
            format!(
                "ServiceAccount {sa} {} in namespace {ns}",
                if exists { "exists now but did not" } else { "does not exist" }
            ),
            format!("create it: kubectl create serviceaccount {sa} -n {ns} (or fix spec.template.spec.serviceAccountName)"),
        );
    }
    if msg.contains("LimitRange") || msg.contains("maximum") || msg.contains("minimum") {
        return (
            format!(
                "a LimitRange rejects the pod's requests/limits: {}",
                clip(msg, 140)
            ),
            "set the pod template's requests/limits within the namespace's LimitRange".into(),
        );
    }
    if msg.contains("admission webhook")
        || msg.contains("denied the request")
        || msg.contains("violates PodSecurity")
    {
        return (
            format!("an admission policy rejects the pod: {}", clip(msg, 140)),
            "change the pod template to satisfy the policy the message names".into(),
        );
    }
    (
        format!("pod creation fails: {}", clip(msg, 140)),
        "fix what the FailedCreate message names".into(),
    )
}

// ------------------------------------------------------------------------------ row 15

/// A Deployment or StatefulSet scaled to zero while a Service selects its pods.
pub(crate) fn scaled_to_zero(ctx: &Ctx) -> Vec<Finding> {
    let mut out = vec![];
    let mut check = |obj: ObjectRef, replicas: Option<i32>, meta: &ObjectMeta| {
        if replicas != Some(0) {
            return;
        }
        let Some(labels) = ctx.template_labels(&obj) else {
            return;
        };
        let services: Vec<&str> = ctx
            .services_in(&obj.namespace)
            .iter()
            .filter(|s| service_selects(s, labels))
            .map(|s| name_of(&s.metadata))
            .collect();
        if services.is_empty() {
            return;
        }
        let (last, source) = last_replicas(ctx, &obj, meta);
        let ingress = services.iter().any(|s| {
            !ctx.exposure(&ObjectRef::new("Service", &obj.namespace, s))
                .is_empty()
        });
        out.push(
            Finding::new(
                Row::ScaledToZero,
                if ingress { Severity::Critical } else { Severity::Warning },
                obj.clone(),
            )
            .summary(format!(
                "scaled to 0 replicas while Service {} selects it: requests fail",
                services.join(", ")
            ))
            .cause("spec.replicas is 0, so the Service has no endpoints")
            .evidence("spec.replicas = 0")
            .evidence(format!(
                "Service {} selects its pods ({})",
                services.join(", "),
                fmt_labels(labels)
            ))
            .evidence(format!("last non-zero replicas = {last} ({source})"))
            .step(Step::tool(
                "workload_scale",
                json!({"namespace": obj.namespace, "name": obj.name, "kind": obj.kind, "replicas": last.to_string()}),
                format!("back to the last non-zero count ({source})"),
            ))
            .step(Step::tool(
                "rollout_status",
                json!({"namespace": obj.namespace, "name": obj.name, "kind": obj.kind}),
                "wait until the pods are ready",
            )),
        );
    };
    for d in &ctx.snap.deployments {
        let o = ObjectRef::new("Deployment", ns_of(&d.metadata), name_of(&d.metadata));
        check(o, d.spec.replicas, &d.metadata);
    }
    for s in &ctx.snap.stateful_sets {
        let o = ObjectRef::new("StatefulSet", ns_of(&s.metadata), name_of(&s.metadata));
        check(o, s.spec.replicas, &s.metadata);
    }
    out
}

/// The last non-zero replica count: last-applied configuration, then the ReplicaSets'
/// `desired-replicas` annotations (newest revision first), then an HPA minimum, else 1.
fn last_replicas(ctx: &Ctx, obj: &ObjectRef, meta: &ObjectMeta) -> (i32, String) {
    let ann = meta.annotations.as_ref();
    if let Some(n) = ann
        .and_then(|a| a.get("kubectl.kubernetes.io/last-applied-configuration"))
        .and_then(|s| serde_json::from_str::<serde_json::Value>(s).ok())
        .and_then(|v| {
            v.pointer("/spec/replicas")
                .and_then(serde_json::Value::as_i64)
        })
        .filter(|n| *n > 0)
    {
        return (n as i32, "last-applied configuration".into());
    }
    let mut best: Option<(i64, i32)> = None;
    for rs in &ctx.snap.replica_sets {
        if ns_of(&rs.metadata) != obj.namespace
            || ctx.owner_of_rs(&obj.namespace, name_of(&rs.metadata)) != *obj
        {
            continue;
        }
        let a = rs.metadata.annotations.clone().unwrap_or_default();
        let rev: i64 = a
            .get("deployment.kubernetes.io/revision")
            .and_then(|r| r.parse().ok())
            .unwrap_or(0);
        let n = a
            .get("deployment.kubernetes.io/desired-replicas")
            .and_then(|r| r.parse::<i32>().ok())
            .filter(|n| *n > 0)
            .or_else(|| rs.status.as_ref().map(|s| s.replicas).filter(|n| *n > 0));
        if let Some(n) = n {
            if best.is_none_or(|(r, _)| rev > r) {
                best = Some((rev, n));
            }
        }
    }
    if let Some((rev, n)) = best {
        return (n, format!("ReplicaSet of revision {rev}"));
    }
    if let Some(h) = ctx.snap.hpas.iter().find(|h| {
        ns_of(&h.metadata) == obj.namespace
            && h.spec.scale_target_ref.name == obj.name
            && h.spec.scale_target_ref.kind == obj.kind
    }) {
        let n = h.spec.min_replicas.unwrap_or(1).max(1);
        return (n, "HPA minReplicas".into());
    }
    (1, "unknown; 1 to start".into())
}

// ------------------------------------------------------------------------------ row 21

/// HorizontalPodAutoscalers that cannot compute metrics or scale.
pub(crate) fn hpa_not_scaling(ctx: &Ctx) -> Vec<Finding> {
    let mut out = vec![];
    for h in &ctx.snap.hpas {
        let ns = ns_of(&h.metadata);
        let t = &h.spec.scale_target_ref;
        let obj = ObjectRef::new(&t.kind, ns, &t.name);
        let st = h.status.clone().unwrap_or_default();
        let cs = conds!(st.conditions);
        let bad: Vec<&Cond> = cs
            .iter()
            .filter(|c| {
                (c.type_ == "ScalingActive" || c.type_ == "AbleToScale") && c.status == "False"
            })
            .collect();
        let Some(first) = bad.first() else { continue };
        let action = if first.message.contains("missing request") {
            let res = if first.message.contains("memory") {
                "memory"
            } else {
                "cpu"
            };
            let missing = containers_without_request(ctx, &obj, res);
            format!(
                "add resources.requests.{res} to container(s) {} of {} {}",
                if missing.is_empty() {
                    "(all)".into()
                } else {
                    missing.join(", ")
                },
                obj.kind,
                obj.name
            )
        } else if first.reason.contains("Metric") || first.message.contains("metrics") {
            "install/fix the metrics source (metrics-server or the custom metrics adapter) or fix the metric target".to_string()
        } else if first.reason == "FailedGetScale" {
            format!(
                "fix scaleTargetRef ({}/{}) to an existing workload",
                t.kind, t.name
            )
        } else {
            "fix what the HPA condition names".to_string()
        };
        out.push(
            Finding::new(Row::HpaNotScaling, Severity::Warning, obj.clone())
                .summary(format!(
                    "HPA {} cannot scale {} {}: {}",
                    name_of(&h.metadata),
                    t.kind,
                    t.name,
                    first.reason
                ))
                .cause(format!("{} ({})", clip(first.message, 140), first.reason))
                .evidence_all(bad.iter().map(|c| c.line()))
                .evidence(format!(
                    "replicas current = {}, desired = {}, min = {}, max = {}",
                    st.current_replicas.unwrap_or(0),
                    st.desired_replicas,
                    h.spec.min_replicas.unwrap_or(1),
                    h.spec.max_replicas
                ))
                .step(Step::manual(
                    action,
                    "the autoscaler is stuck at its current size",
                )),
        );
    }
    out
}

fn containers_without_request(ctx: &Ctx, obj: &ObjectRef, res: &str) -> Vec<String> {
    let spec = match obj.kind.as_str() {
        "Deployment" => ctx
            .snap
            .deployments
            .iter()
            .find(|d| ns_of(&d.metadata) == obj.namespace && name_of(&d.metadata) == obj.name)
            .and_then(|d| d.spec.template.spec.as_ref()),
        "StatefulSet" => ctx
            .snap
            .stateful_sets
            .iter()
            .find(|d| ns_of(&d.metadata) == obj.namespace && name_of(&d.metadata) == obj.name)
            .and_then(|d| d.spec.template.spec.as_ref()),
        _ => None,
    };
    spec.map(|s| {
        s.containers
            .iter()
            .filter(|c| {
                c.resources
                    .as_ref()
                    .and_then(|r| r.requests.as_ref())
                    .is_none_or(|r| !r.contains_key(res))
            })
            .map(|c| c.name.clone())
            .collect()
    })
    .unwrap_or_default()
}

// ------------------------------------------------------------------------------ row 23

/// Jobs that failed (BackoffLimitExceeded, DeadlineExceeded, …). A CronJob whose newer run
/// succeeded is only informational.
pub(crate) fn job_failed(ctx: &Ctx) -> Vec<Finding> {
    let mut out = vec![];
    for j in &ctx.snap.jobs {
        let st = j.status.clone().unwrap_or_default();
        let cs = conds!(st.conditions);
        let Some(failed) = cs
            .iter()
            .find(|c| c.type_ == "Failed" && c.status == "True")
        else {
            continue;
        };
        let (ns, name) = (ns_of(&j.metadata), name_of(&j.metadata));
        let cron = ctx.owner_of_job(ns, name).filter(|o| o.kind == "CronJob");
        let created = j.metadata.creation_timestamp.as_ref().map(|t| t.0);
        let recovered = cron.as_ref().is_some_and(|c| {
            ctx.snap.jobs.iter().any(|o| {
                ns_of(&o.metadata) == ns
                    && ctx.owner_of_job(ns, name_of(&o.metadata)).as_ref() == Some(c)
                    && o.metadata.creation_timestamp.as_ref().map(|t| t.0) > created
                    && o.status.as_ref().is_some_and(|s| {
                        s.conditions
                            .iter()
                            .flatten()
                            .any(|c| c.type_ == "Complete" && c.status == "True")
                    })
            })
        });
        let obj = cron
            .clone()
            .unwrap_or_else(|| ObjectRef::new("Job", ns, name));
        let pods: Vec<&Pod> = ctx
            .pods_in(ns)
            .iter()
            .copied()
            .filter(|p| {
                p.metadata
                    .owner_references
                    .iter()
                    .flatten()
                    .any(|o| o.kind == "Job" && o.name == name)
            })
            .collect();
        let mut f = Finding::new(
            Row::JobFailed,
            if recovered {
                Severity::Info
            } else {
                Severity::Warning
            },
            obj.clone(),
        )
        .summary(format!(
            "Job {name} failed ({}) after {} failed pod(s){}",
            failed.reason,
            st.failed.unwrap_or(0),
            if recovered {
                "; a newer run succeeded"
            } else {
                ""
            }
        ))
        .cause(if failed.message.is_empty() {
            failed.reason.to_string()
        } else {
            clip(failed.message, 160)
        })
        .evidence(failed.line())
        .evidence(format!(
            "status.failed = {}, succeeded = {}, backoffLimit = {}",
            st.failed.unwrap_or(0),
            st.succeeded.unwrap_or(0),
            j.spec.as_ref().and_then(|s| s.backoff_limit).unwrap_or(6)
        ))
        .since(st.start_time.as_ref().map(|t| t.0));
        let mut excerpt_done = false;
        for p in &pods {
            f = f.pod(name_of(&p.metadata));
            for cs in p
                .status
                .iter()
                .flat_map(|s| s.container_statuses.iter().flatten())
            {
                if let Some(t) = cs
                    .state
                    .as_ref()
                    .and_then(|s| s.terminated.as_ref())
                    .filter(|t| t.exit_code != 0)
                {
                    f = f.evidence(format!(
                        "container {}: {} exit {}",
                        cs.name,
                        t.reason.as_deref().unwrap_or("Error"),
                        t.exit_code
                    ));
                }
                if !excerpt_done {
                    let log = ctx
                        .previous_log(ns, name_of(&p.metadata), &cs.name)
                        .or_else(|| ctx.current_log(ns, name_of(&p.metadata), &cs.name));
                    if let Some(l) = log {
                        let ins = super::ctx::log_insight(l);
                        if let Some(c) = &ins.cause {
                            f.cause = format!("{}; {c}", f.cause);
                        }
                        f = f.evidence_all(ins.excerpt.clone());
                        f = f.steps(super::ctx::insight_steps(&ins, &cs.name));
                        excerpt_done = true;
                    }
                }
            }
        }
        let rerun = match &cron {
            Some(c) => format!("fix the cause, then re-run: kubectl create job {}-rerun -n {ns} --from=cronjob/{}", c.name, c.name),
            None => format!("fix the cause, then re-run: delete Job {name} and apply it again (Jobs are immutable)"),
        };
        f = f
            .step(Step::tool(
                "logs_analyze",
                json!({"namespace": ns, "workload": format!("Job/{name}"), "tail_lines": 200}),
                "read why its pods failed",
            ))
            .step(Step::manual(rerun, "a failed Job does not retry by itself"));
        out.push(f);
    }
    out
}

// ------------------------------------------------------------------------------ row 11

/// PersistentVolumeClaims stuck Pending (not merely waiting for their first consumer).
pub(crate) fn pvc_pending(ctx: &Ctx) -> Vec<Finding> {
    let mut out = vec![];
    let sc_blind = ctx.blind(&["storageclasses", "storageclass"]);
    let default_sc = ctx.snap.storage_classes.iter().find(|s| {
        s.metadata.annotations.as_ref().is_some_and(|a| {
            a.get("storageclass.kubernetes.io/is-default-class")
                .map(String::as_str)
                == Some("true")
        })
    });
    let sc_names: Vec<&str> = ctx
        .snap
        .storage_classes
        .iter()
        .map(|s| name_of(&s.metadata))
        .collect();
    for pvc in &ctx.snap.pvcs {
        if pvc.status.as_ref().and_then(|s| s.phase.as_deref()) != Some("Pending") {
            continue;
        }
        let (ns, name) = (ns_of(&pvc.metadata), name_of(&pvc.metadata));
        let named = pvc.spec.as_ref().and_then(|s| s.storage_class_name.clone());
        let sc_name = named
            .clone()
            .or_else(|| default_sc.map(|s| name_of(&s.metadata).to_string()));
        let sc = sc_name.as_deref().and_then(|n| {
            ctx.snap
                .storage_classes
                .iter()
                .find(|s| name_of(&s.metadata) == n)
        });
        let groups = ctx.event_groups("PersistentVolumeClaim", ns, name);
        let failed = groups.iter().find(|g| g.reason == "ProvisioningFailed");
        let wffc =
            sc.and_then(|s| s.volume_binding_mode.as_deref()) == Some("WaitForFirstConsumer");
        let missing_sc = !sc_blind
            && match &named {
                Some(n) => !n.is_empty() && !sc_names.contains(&n.as_str()),
                None => default_sc.is_none(),
            };
        let age = pvc
            .metadata
            .creation_timestamp
            .as_ref()
            .map(|t| ctx.secs_since(t.0))
            .unwrap_or(i64::MAX);
        if !missing_sc && failed.is_none() && (wffc || age < 60) {
            continue;
        }
        let users: Vec<&Pod> = ctx
            .pods_in(ns)
            .iter()
            .copied()
            .filter(|p| {
                p.spec
                    .iter()
                    .flat_map(|s| s.volumes.iter().flatten())
                    .any(|v| {
                        v.persistent_volume_claim
                            .as_ref()
                            .is_some_and(|c| c.claim_name == name)
                    })
            })
            .collect();
        let obj = users
            .first()
            .map(|p| ctx.owner_of(p))
            .unwrap_or_else(|| ObjectRef::new("PersistentVolumeClaim", ns, name));
        let (cause, action) = if missing_sc {
            match &named {
                Some(n) => (
                    format!("StorageClass {n} does not exist"),
                    format!(
                        "set storageClassName of PVC {name} to an existing class ({}) — PVC specs are immutable: recreate it",
                        if sc_names.is_empty() { "none exist; install a provisioner".to_string() } else { sc_names.join(", ") }
                    ),
                ),
                None => (
                    "the PVC names no StorageClass and the cluster has no default one".to_string(),
                    "mark a StorageClass as default or set storageClassName, or create a matching PersistentVolume".to_string(),
                ),
            }
        } else if let Some(g) = failed {
            (
                format!("provisioning fails: {}", clip(&g.message, 140)),
                "fix the StorageClass/provisioner the event names, or create a PersistentVolume by hand".to_string(),
            )
        } else {
            (
                "no PersistentVolume matches and none is provisioned".to_string(),
                "create a matching PersistentVolume or use a StorageClass with a provisioner"
                    .to_string(),
            )
        };
        let mut f = Finding::new(
            Row::PvcPending,
            if users.is_empty() {
                Severity::Warning
            } else {
                Severity::Critical
            },
            obj,
        )
        .summary(format!("PersistentVolumeClaim {name} is Pending: {cause}"))
        .cause(cause)
        .evidence(format!(
            "PVC {name}: status.phase = Pending, storageClassName = {}",
            named.as_deref().unwrap_or("(default)")
        ))
        .since(pvc.metadata.creation_timestamp.as_ref().map(|t| t.0))
        .step(Step::manual(
            action,
            "pods using the claim cannot start until it is bound",
        ));
        if let Some(g) = failed {
            f = f.evidence(g.line(ctx.now));
        }
        for p in users {
            f = f.pod(name_of(&p.metadata));
        }
        out.push(f);
    }
    out
}

// ------------------------------------------------------------------------------ row 22

/// Nodes not Ready, or under memory/disk/PID pressure, with the pods on them.
pub(crate) fn node_not_ready(ctx: &Ctx) -> Vec<Finding> {
    let mut on_node: HashMap<&str, Vec<&str>> = HashMap::new();
    for p in &ctx.snap.pods {
        if let Some(n) = p.spec.as_ref().and_then(|s| s.node_name.as_deref()) {
            on_node.entry(n).or_default().push(name_of(&p.metadata));
        }
    }
    let mut out = vec![];
    for n in &ctx.snap.nodes {
        let name = name_of(&n.metadata);
        let st = n.status.clone().unwrap_or_default();
        let cs = conds!(st.conditions);
        let not_ready = cs.iter().find(|c| c.type_ == "Ready" && c.status != "True");
        let pressure: Vec<&Cond> = cs
            .iter()
            .filter(|c| {
                (c.type_.ends_with("Pressure") || c.type_ == "NetworkUnavailable")
                    && c.status != "False"
            })
            .collect();
        if not_ready.is_none() && pressure.is_empty() {
            continue;
        }
        let obj = ObjectRef::new("Node", "", name);
        let pods = on_node.get(name).cloned().unwrap_or_default();
        let mut f = match not_ready {
            Some(c) => Finding::new(Row::NodeNotReady, Severity::Critical, obj)
                .summary(format!("node {name} is not Ready ({}), {} pods on it", c.status, pods.len()))
                .cause(if c.status == "Unknown" {
                    "the kubelet stopped reporting (node down, network partition or kubelet crash)".to_string()
                } else {
                    format!("the kubelet reports the node unhealthy: {}", clip(c.message, 140))
                })
                .evidence(c.line())
                .step(Step::manual(
                    format!("cordon the node (kubectl cordon {name}) and drain it if it does not recover; check the kubelet/runtime on it"),
                    "pods on a NotReady node are evicted after the toleration timeout",
                )),
            None => Finding::new(Row::NodeNotReady, Severity::Warning, obj)
                .summary(format!(
                    "node {name} is under {}",
                    pressure.iter().map(|c| c.type_).collect::<Vec<_>>().join(", ")
                ))
                .cause("the node is short of a resource and evicts pods / refuses new ones")
                .step(Step::manual(
                    format!("free the resource on {name} (delete unused images/logs, move pods) or raise limits/requests so pods fit; cordon it meanwhile"),
                    "pressure leads to evictions",
                )),
        };
        f = f
            .evidence_all(pressure.iter().map(|c| c.line()))
            .step(Step::tool(
                "resources_get",
                json!({"kind": "Node", "name": name, "events": true}),
                "see the node's conditions and events",
            ));
        for p in pods {
            f = f.pod(p);
        }
        out.push(f);
    }
    out
}
