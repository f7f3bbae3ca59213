//! The snapshot indexed once (owners, events, logs, histories by key) and the helpers every
//! analyzer shares: event summaries, log insight, revision verdicts, label matching.

use std::collections::{BTreeMap, HashMap, HashSet};

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Event, Pod, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use serde_json::json;

use super::{ContainerLog, ObjectRef, RevisionInfo, Snapshot, Step, WorkloadHistory};
use crate::logs::{analyze, AnalyzeOptions, LogLine};

/// A map key from parts (maps keyed by borrowed tuples cannot be queried with shorter-lived strs).
fn key(parts: &[&str]) -> String {
    parts.join("\u{0}")
}

pub(crate) struct Ctx<'a> {
    pub snap: &'a Snapshot,
    pub now: Timestamp,
    /// (namespace, ReplicaSet) → its controller.
    rs_owner: HashMap<String, ObjectRef>,
    /// (namespace, Job) → its CronJob.
    job_owner: HashMap<String, ObjectRef>,
    /// (kind, namespace, name) → events about it.
    events: HashMap<String, Vec<&'a Event>>,
    prev_logs: HashMap<String, &'a ContainerLog>,
    cur_logs: HashMap<String, &'a ContainerLog>,
    histories: HashMap<String, &'a WorkloadHistory>,
    /// namespace → pods in it.
    pub pods_by_ns: HashMap<&'a str, Vec<&'a Pod>>,
    /// namespace → services in it.
    services_by_ns: HashMap<&'a str, Vec<&'a Service>>,
    /// owner → its pods.
    pub pods_by_owner: HashMap<ObjectRef, Vec<&'a Pod>>,
}

pub(crate) fn ns_of(m: &ObjectMeta) -> &str {
    m.namespace.as_deref().unwrap_or_default()
}

pub(crate) fn name_of(m: &ObjectMeta) -> &str {
    m.name.as_deref().unwrap_or_default()
}

fn controller(m: &ObjectMeta) -> Option<&OwnerReference> {
    m.owner_references
        .as_ref()?
        .iter()
        .find(|o| o.controller == Some(true))
}

impl<'a> Ctx<'a> {
    pub fn new(snap: &'a Snapshot) -> Self {
        let mut rs_owner = HashMap::new();
        for rs in &snap.replica_sets {
            if let Some(o) = controller(&rs.metadata) {
                rs_owner.insert(
                    key(&[ns_of(&rs.metadata), name_of(&rs.metadata)]),
                    ObjectRef::new(&o.kind, ns_of(&rs.metadata), &o.name),
                );
            }
        }
        let mut job_owner = HashMap::new();
        for j in &snap.jobs {
            if let Some(o) = controller(&j.metadata) {
                job_owner.insert(
                    key(&[ns_of(&j.metadata), name_of(&j.metadata)]),
                    ObjectRef::new(&o.kind, ns_of(&j.metadata), &o.name),
                );
            }
        }
        let mut events: HashMap<String, Vec<&Event>> = HashMap::new();
        for e in &snap.events {
            let o = &e.involved_object;
            let ns = o.namespace.as_deref().unwrap_or_else(|| ns_of(&e.metadata));
            events
                .entry(key(&[
                    o.kind.as_deref().unwrap_or_default(),
                    ns,
                    o.name.as_deref().unwrap_or_default(),
                ]))
                .or_default()
                .push(e);
        }
        let logs = |v: &'a [ContainerLog]| -> HashMap<String, &'a ContainerLog> {
            v.iter()
                .map(|l| (key(&[&l.namespace, &l.pod, &l.container]), l))
                .collect()
        };
        let histories = snap
            .histories
            .iter()
            .map(|h| (key(&[&h.kind, &h.namespace, &h.name]), h))
            .collect();
        let mut services_by_ns: HashMap<&str, Vec<&Service>> = HashMap::new();
        for s in &snap.services {
            services_by_ns
                .entry(ns_of(&s.metadata))
                .or_default()
                .push(s);
        }
        let mut ctx = Ctx {
            snap,
            now: snap.now,
            rs_owner,
            job_owner,
            events,
            prev_logs: logs(&snap.previous_logs),
            cur_logs: logs(&snap.current_logs),
            histories,
            pods_by_ns: HashMap::new(),
            services_by_ns,
            pods_by_owner: HashMap::new(),
        };
        let mut by_ns: HashMap<&str, Vec<&Pod>> = HashMap::new();
        let mut by_owner: HashMap<ObjectRef, Vec<&Pod>> = HashMap::new();
        for p in &snap.pods {
            by_ns.entry(ns_of(&p.metadata)).or_default().push(p);
            by_owner.entry(ctx.owner_of(p)).or_default().push(p);
        }
        ctx.pods_by_ns = by_ns;
        ctx.pods_by_owner = by_owner;
        ctx
    }

    /// The workload that owns a pod: Pod → ReplicaSet → Deployment, StatefulSet, DaemonSet,
    /// Job → CronJob; a bare pod owns itself.
    pub fn owner_of(&self, p: &Pod) -> ObjectRef {
        let ns = ns_of(&p.metadata);
        let Some(o) = controller(&p.metadata) else {
            return ObjectRef::new("Pod", ns, name_of(&p.metadata));
        };
        self.resolve_owner(ns, &o.kind, &o.name, p.metadata.labels.as_ref())
    }

    fn resolve_owner(
        &self,
        ns: &str,
        kind: &str,
        name: &str,
        labels: Option<&BTreeMap<String, String>>,
    ) -> ObjectRef {
        match kind {
            "ReplicaSet" => {
                if let Some(o) = self.rs_owner.get(&key(&[ns, name])) {
                    return o.clone();
                }
                // ReplicaSet not in the snapshot: a Deployment's RS is `<deploy>-<pod-template-hash>`
                if let Some(dep) = labels
                    .and_then(|l| l.get("pod-template-hash"))
                    .and_then(|h| name.strip_suffix(&format!("-{h}")))
                {
                    return ObjectRef::new("Deployment", ns, dep);
                }
                ObjectRef::new(kind, ns, name)
            }
            "Job" => self
                .job_owner
                .get(&key(&[ns, name]))
                .cloned()
                .unwrap_or_else(|| ObjectRef::new(kind, ns, name)),
            _ => ObjectRef::new(kind, ns, name),
        }
    }

    /// The owner of a ReplicaSet or Job (itself when it has none).
    pub fn owner_of_rs(&self, ns: &str, name: &str) -> ObjectRef {
        self.rs_owner
            .get(&key(&[ns, name]))
            .cloned()
            .unwrap_or_else(|| ObjectRef::new("ReplicaSet", ns, name))
    }

    pub fn owner_of_job(&self, ns: &str, name: &str) -> Option<ObjectRef> {
        self.job_owner.get(&key(&[ns, name])).cloned()
    }

    pub fn workloads_checked(&self) -> usize {
        let s = self.snap;
        let bare_rs = s
            .replica_sets
            .iter()
            .filter(|r| controller(&r.metadata).is_none())
            .count();
        let bare_jobs = s
            .jobs
            .iter()
            .filter(|j| controller(&j.metadata).is_none())
            .count();
        let bare_pods = self
            .pods_by_owner
            .keys()
            .filter(|o| o.kind == "Pod")
            .count();
        s.deployments.len()
            + s.stateful_sets.len()
            + s.daemon_sets.len()
            + s.cron_jobs.len()
            + bare_rs
            + bare_jobs
            + bare_pods
    }

    /// Whether the fetch layer could not read this kind (then "missing" cannot be claimed).
    pub fn blind(&self, kinds: &[&str]) -> bool {
        self.snap.blind_spots.iter().any(|b| {
            let b = b.to_ascii_lowercase();
            let head = b
                .split([':', ' ', '('])
                .next()
                .unwrap_or_default()
                .to_string();
            // Kind or plural on either side: "PersistentVolumeClaim (forbidden)" is blind for
            // "persistentvolumeclaims", "IngressClass" for "ingressclasses".
            kinds.iter().any(|k| {
                let k = k.to_ascii_lowercase();
                let plural = |a: &str, b: &str| {
                    a.strip_prefix(b)
                        .is_some_and(|rest| rest == "s" || rest == "es")
                };
                head == k || plural(&head, &k) || plural(&k, &head)
            })
        })
    }

    // -------------------------------------------------------------------------- events

    pub fn events_of(&self, kind: &str, ns: &str, name: &str) -> &[&'a Event] {
        self.events
            .get(&key(&[kind, ns, name]))
            .map(Vec::as_slice)
            .unwrap_or_default()
    }

    /// Events of an object grouped by reason (every event, not only the newest), Warnings first.
    pub fn event_groups(&self, kind: &str, ns: &str, name: &str) -> Vec<EventGroup> {
        group(self.events_of(kind, ns, name))
    }

    /// `Reason ×N (last 30s ago): message` for the groups whose reason is in `reasons` (all
    /// Warning groups when `reasons` is empty).
    pub fn event_evidence(
        &self,
        kind: &str,
        ns: &str,
        name: &str,
        reasons: &[&str],
    ) -> Vec<String> {
        self.event_groups(kind, ns, name)
            .into_iter()
            .filter(|g| {
                if reasons.is_empty() {
                    g.warning
                } else {
                    reasons.contains(&g.reason.as_str())
                }
            })
            .take(3)
            .map(|g| g.line(self.now))
            .collect()
    }

    // -------------------------------------------------------------------------- logs

    pub fn previous_log(&self, ns: &str, pod: &str, container: &str) -> Option<&'a ContainerLog> {
        self.prev_logs.get(&key(&[ns, pod, container])).copied()
    }

    pub fn current_log(&self, ns: &str, pod: &str, container: &str) -> Option<&'a ContainerLog> {
        self.cur_logs.get(&key(&[ns, pod, container])).copied()
    }

    // -------------------------------------------------------------------------- history

    pub fn history(&self, obj: &ObjectRef) -> Option<&'a WorkloadHistory> {
        self.histories
            .get(&key(&[&obj.kind, &obj.namespace, &obj.name]))
            .copied()
    }

    /// What the rollout history says about a failure of `obj` now.
    pub fn verdict(&self, obj: &ObjectRef) -> Option<Verdict> {
        if !matches!(
            obj.kind.as_str(),
            "Deployment" | "StatefulSet" | "DaemonSet"
        ) {
            return None;
        }
        let h = self.history(obj)?;
        let current = h
            .revisions
            .iter()
            .filter(|r| r.current)
            .max_by_key(|r| r.revision)
            .or_else(|| h.revisions.iter().max_by_key(|r| r.revision))?;
        let older: Vec<&RevisionInfo> = h
            .revisions
            .iter()
            .filter(|r| r.revision < current.revision)
            .collect();
        // "All available" right now does not clear a revision rolled out minutes ago: pods that
        // pass readiness and crash later (a dependency down at start-up) look healthy between
        // crashes.
        let recent = current
            .created
            .is_some_and(|c| self.now.duration_since(c).as_secs() < 600);
        if (current.healthy == Some(true) && !recent) || older.is_empty() {
            return Some(Verdict {
                current: current.revision,
                started_with_current: false,
                target: None,
                changes: vec![],
                ran_before_failing: None,
            });
        }
        // A revision whose rollout completed and that ran well before its pods began to fail
        // (the oldest warning event) is not a bad release: a dependency or the data changed.
        if !recent && self.rollout_completed(obj) == Some(true) {
            if let (Some(created), Some(onset)) = (current.created, self.failing_since(obj)) {
                let ran = onset.duration_since(created).as_secs();
                if ran > RAN_BEFORE_FAILING_SECS {
                    return Some(Verdict {
                        current: current.revision,
                        started_with_current: false,
                        target: None,
                        changes: vec![],
                        ran_before_failing: Some(ran),
                    });
                }
            }
        }
        let target = older
            .iter()
            .filter(|r| r.healthy == Some(true))
            .max_by_key(|r| r.revision)
            .or_else(|| older.iter().max_by_key(|r| r.revision))
            .copied();
        let changes = match target {
            Some(t) => {
                let mut revs: Vec<&RevisionInfo> = h
                    .revisions
                    .iter()
                    .filter(|r| r.revision > t.revision && r.revision <= current.revision)
                    .collect();
                revs.sort_by_key(|r| r.revision);
                revs.iter()
                    .flat_map(|r| r.changes.iter().cloned())
                    .collect()
            }
            None => current.changes.clone(),
        };
        Some(Verdict {
            current: current.revision,
            started_with_current: true,
            target: target.cloned(),
            changes,
            ran_before_failing: None,
        })
    }

    /// When the pods of `obj` began to fail: the first time of their oldest Warning event
    /// (a repeating event keeps its first time while it repeats).
    fn failing_since(&self, obj: &ObjectRef) -> Option<Timestamp> {
        self.pods_by_owner
            .get(obj)?
            .iter()
            .flat_map(|p| self.events_of("Pod", ns_of(&p.metadata), name_of(&p.metadata)))
            .filter(|e| e.type_.as_deref() == Some("Warning"))
            .filter_map(|e| event_first(e))
            .min()
    }

    /// Whether the current revision's rollout finished: a Deployment's Progressing condition is
    /// NewReplicaSetAvailable (it stays so when pods crash later), a StatefulSet's
    /// currentRevision caught up with updateRevision, a DaemonSet runs the current template on
    /// every node it should. `None` when the object is not in the snapshot.
    fn rollout_completed(&self, obj: &ObjectRef) -> Option<bool> {
        let s = self.snap;
        let hit = |m: &ObjectMeta| ns_of(m) == obj.namespace && name_of(m) == obj.name;
        match obj.kind.as_str() {
            "Deployment" => {
                let d = s.deployments.iter().find(|d| hit(&d.metadata))?;
                let conds = d.status.as_ref()?.conditions.as_ref()?;
                Some(conds.iter().any(|c| {
                    c.type_.as_deref() == Some("Progressing")
                        && c.reason.as_deref() == Some("NewReplicaSetAvailable")
                }))
            }
            "StatefulSet" => {
                let st = s
                    .stateful_sets
                    .iter()
                    .find(|d| hit(&d.metadata))?
                    .status
                    .as_ref()?;
                Some(st.current_revision.is_some() && st.current_revision == st.update_revision)
            }
            "DaemonSet" => {
                let st = s
                    .daemon_sets
                    .iter()
                    .find(|d| hit(&d.metadata))?
                    .status
                    .as_ref()?;
                Some(st.updated_number_scheduled == Some(st.desired_number_scheduled))
            }
            _ => None,
        }
    }

    /// Undo (and watch) steps when the failure began with the current revision.
    pub fn undo_steps(&self, obj: &ObjectRef, v: &Verdict) -> Vec<Step> {
        let Some(t) = v.target.as_ref().filter(|_| v.started_with_current) else {
            return vec![];
        };
        let what = if v.changes.is_empty() {
            String::new()
        } else {
            format!(" (it changed: {})", v.changes.join("; "))
        };
        let healthy = if t.healthy == Some(true) {
            "the last healthy revision"
        } else {
            "the previous revision"
        };
        vec![
            Step::tool(
                "rollout_undo",
                json!({"namespace": obj.namespace, "name": obj.name, "kind": obj.kind, "to_revision": t.revision}),
                format!(
                    "the failure began with revision {}{what}; revision {} is {healthy}",
                    v.current, t.revision
                ),
            ),
            Step::tool(
                "rollout_status",
                json!({"namespace": obj.namespace, "name": obj.name, "kind": obj.kind}),
                "watch the rollback become available",
            ),
        ]
    }

    // -------------------------------------------------------------------------- services

    /// `Service/x` and `Ingress/y` that route to the pods of `obj`.
    pub fn exposure(&self, obj: &ObjectRef) -> Vec<String> {
        let labels: Vec<&BTreeMap<String, String>> = match obj.kind.as_str() {
            "Service" => return self.ingresses_to(&obj.namespace, &obj.name),
            _ => match self.template_labels(obj) {
                Some(l) => vec![l],
                None => self
                    .pods_by_owner
                    .get(obj)
                    .into_iter()
                    .flatten()
                    .filter_map(|p| p.metadata.labels.as_ref())
                    .take(1)
                    .collect(),
            },
        };
        let mut out = vec![];
        for s in self.services_in(&obj.namespace) {
            if labels.iter().any(|l| service_selects(s, l)) {
                let name = name_of(&s.metadata);
                out.push(format!("Service/{name}"));
                out.extend(self.ingresses_to(&obj.namespace, name));
            }
        }
        out.sort();
        out.dedup();
        out
    }

    /// (ready, not ready) addresses of a Service's Endpoints; `None` when there is no
    /// Endpoints object for it.
    pub fn endpoint_counts(&self, ns: &str, svc: &str) -> Option<(usize, usize)> {
        let ep = self
            .snap
            .endpoints
            .iter()
            .find(|e| ns_of(&e.metadata) == ns && name_of(&e.metadata) == svc)?;
        let count = |f: fn(&k8s_openapi::api::core::v1::EndpointSubset) -> usize| -> usize {
            ep.subsets.iter().flatten().map(f).sum()
        };
        Some((
            count(|s| s.addresses.as_ref().map_or(0, Vec::len)),
            count(|s| s.not_ready_addresses.as_ref().map_or(0, Vec::len)),
        ))
    }

    fn ingresses_to(&self, ns: &str, svc: &str) -> Vec<String> {
        self.snap
            .ingresses
            .iter()
            .filter(|i| ns_of(&i.metadata) == ns)
            .filter(|i| ingress_backends(i).iter().any(|(s, _)| s == svc))
            .map(|i| format!("Ingress/{}", name_of(&i.metadata)))
            .collect()
    }

    pub fn services_in(&self, ns: &str) -> &[&'a Service] {
        self.services_by_ns
            .get(ns)
            .map(Vec::as_slice)
            .unwrap_or_default()
    }

    pub fn pods_in(&self, ns: &str) -> &[&'a Pod] {
        self.pods_by_ns
            .get(ns)
            .map(Vec::as_slice)
            .unwrap_or_default()
    }

    /// Pod template labels of a Deployment/StatefulSet/DaemonSet/ReplicaSet.
    pub fn template_labels(&self, obj: &ObjectRef) -> Option<&'a BTreeMap<String, String>> {
        let s = self.snap;
        let hit = |m: &ObjectMeta| ns_of(m) == obj.namespace && name_of(m) == obj.name;
        match obj.kind.as_str() {
            "Deployment" => s
                .deployments
                .iter()
                .find(|d| hit(&d.metadata))?
                .spec
                .template
                .metadata
                .as_ref()?
                .labels
                .as_ref(),
            "StatefulSet" => s
                .stateful_sets
                .iter()
                .find(|d| hit(&d.metadata))?
                .spec
                .template
                .metadata
                .as_ref()?
                .labels
                .as_ref(),
            "DaemonSet" => s
                .daemon_sets
                .iter()
                .find(|d| hit(&d.metadata))?
                .spec
                .template
                .metadata
                .as_ref()?
                .labels
                .as_ref(),
            "ReplicaSet" => s
                .replica_sets
                .iter()
                .find(|d| hit(&d.metadata))?
                .spec
                .template
                .as_ref()?
                .metadata
                .as_ref()?
                .labels
                .as_ref(),
            _ => None,
        }
    }

    /// Whether any pod of `owner` is newer than `secs` (a rollout or scale-up just began).
    pub fn has_young_pod(&self, owner: &ObjectRef, secs: i64) -> bool {
        self.pods_by_owner
            .get(owner)
            .into_iter()
            .flatten()
            .any(|p| {
                p.metadata
                    .creation_timestamp
                    .as_ref()
                    .is_none_or(|t| self.secs_since(t.0) < secs)
            })
    }

    pub fn secs_since(&self, t: Timestamp) -> i64 {
        self.now.duration_since(t).as_secs()
    }

    pub fn ago(&self, t: Option<Timestamp>) -> String {
        ago(t, self.now)
    }
}

/// What the history says: whether the failure began with the current revision, and where to go back.
#[derive(Debug, Clone)]
pub(crate) struct Verdict {
    pub current: i64,
    pub started_with_current: bool,
    /// The revision to undo to: the newest older healthy one, else the previous one.
    pub target: Option<RevisionInfo>,
    /// What changed from `target` to the current revision.
    pub changes: Vec<String>,
    /// Seconds the current revision ran after its rollout before its pods began to fail, when
    /// that is long enough to clear it (then `started_with_current` is false).
    pub ran_before_failing: Option<i64>,
}

/// A failure that began this long after its revision was created did not come with it.
const RAN_BEFORE_FAILING_SECS: i64 = 900;

impl Verdict {
    /// Evidence saying why the current revision is not blamed, when the history cleared it.
    pub fn cleared_line(&self) -> Option<String> {
        let ran = self.ran_before_failing?;
        Some(format!(
            "history: revision {} completed its rollout and ran {} before the first failure; not a bad release, so no rollback is proposed",
            self.current,
            human_secs(ran)
        ))
    }

    /// The image `container` ran in the undo target (`container=image` entries).
    pub fn target_image(&self, container: &str) -> Option<String> {
        self.target.as_ref()?.images.iter().find_map(|i| {
            i.split_once('=')
                .filter(|(c, _)| *c == container)
                .map(|(_, img)| img.to_string())
        })
    }
}

/// `3d`, `5m`, `12s` — like kubectl's AGE.
pub(crate) fn ago(since: Option<Timestamp>, now: Timestamp) -> String {
    let Some(t) = since else {
        return "?".into();
    };
    human_secs(now.duration_since(t).as_secs())
}

/// A duration as kubectl shows ages: `45s`, `12m`, `5h`, `3d`.
pub(crate) fn human_secs(s: i64) -> String {
    let s = s.max(0);
    match s {
        0..=119 => format!("{s}s"),
        120..=7199 => format!("{}m", s / 60),
        7200..=172_799 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86400),
    }
}

pub(crate) fn clip(s: &str, n: usize) -> String {
    let s = s.trim();
    if s.chars().count() <= n {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(n).collect::<String>())
    }
}

// ------------------------------------------------------------------------------ events

/// Events of one object with one reason, summed.
#[derive(Debug, Clone)]
pub(crate) struct EventGroup {
    pub reason: String,
    pub warning: bool,
    pub count: i32,
    pub first: Option<Timestamp>,
    pub last: Option<Timestamp>,
    /// The newest message.
    pub message: String,
    /// Every distinct message (newest first), for probes that fail in several ways.
    pub messages: Vec<String>,
    /// fieldPaths the events name, e.g. `spec.containers{backend}`.
    pub field_paths: HashSet<String>,
}

impl EventGroup {
    pub fn line(&self, now: Timestamp) -> String {
        format!(
            "event {} ×{} (last {} ago): {}",
            self.reason,
            self.count,
            ago(self.last, now),
            clip(&self.message, 140)
        )
    }
}

/// The time an event was last seen: series, lastTimestamp, eventTime, creation.
pub(crate) fn event_last(e: &Event) -> Option<Timestamp> {
    e.series
        .as_ref()
        .and_then(|s| s.last_observed_time.as_ref().map(|t| t.0))
        .or(e.last_timestamp.as_ref().map(|t| t.0))
        .or(e.event_time.as_ref().map(|t| t.0))
        .or(e.metadata.creation_timestamp.as_ref().map(|t| t.0))
}

fn event_first(e: &Event) -> Option<Timestamp> {
    e.first_timestamp
        .as_ref()
        .map(|t| t.0)
        .or(e.event_time.as_ref().map(|t| t.0))
        .or_else(|| event_last(e))
}

fn event_count(e: &Event) -> i32 {
    e.series
        .as_ref()
        .and_then(|s| s.count)
        .or(e.count)
        .unwrap_or(1)
        .max(1)
}

fn group(events: &[&Event]) -> Vec<EventGroup> {
    let mut groups: Vec<EventGroup> = vec![];
    let mut sorted: Vec<&&Event> = events.iter().collect();
    // newest first so the first message of a group is its newest
    sorted.sort_by_key(|e| std::cmp::Reverse(event_last(e)));
    for e in sorted {
        let reason = e.reason.clone().unwrap_or_default();
        let msg = e.message.clone().unwrap_or_default();
        let idx = match groups.iter().position(|g| g.reason == reason) {
            Some(i) => i,
            None => {
                groups.push(EventGroup {
                    reason,
                    warning: false,
                    count: 0,
                    first: None,
                    last: event_last(e),
                    message: msg.clone(),
                    messages: vec![],
                    field_paths: HashSet::new(),
                });
                groups.len() - 1
            }
        };
        let g = &mut groups[idx];
        g.warning |= e.type_.as_deref() == Some("Warning");
        g.count += event_count(e);
        let first = event_first(e);
        if g.first.is_none() || (first.is_some() && first < g.first) {
            g.first = first;
        }
        if !msg.is_empty() && !g.messages.contains(&msg) && g.messages.len() < 5 {
            g.messages.push(msg);
        }
        if let Some(fp) = &e.involved_object.field_path {
            g.field_paths.insert(fp.clone());
        }
    }
    groups.sort_by(|a, b| b.warning.cmp(&a.warning).then(b.last.cmp(&a.last)));
    groups
}

// ------------------------------------------------------------------------------ labels

pub(crate) fn selector_matches(
    sel: &BTreeMap<String, String>,
    labels: &BTreeMap<String, String>,
) -> bool {
    !sel.is_empty() && sel.iter().all(|(k, v)| labels.get(k) == Some(v))
}

pub(crate) fn service_selects(s: &Service, labels: &BTreeMap<String, String>) -> bool {
    s.spec
        .as_ref()
        .and_then(|sp| sp.selector.as_ref())
        .is_some_and(|sel| selector_matches(sel, labels))
}

/// A LabelSelector (matchLabels + matchExpressions); an empty selector selects everything.
pub(crate) fn label_selector_matches(
    sel: &LabelSelector,
    labels: &BTreeMap<String, String>,
) -> bool {
    let ml = sel
        .match_labels
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    let me = sel.match_expressions.iter().flatten().all(|e| {
        let vals = e.values.clone().unwrap_or_default();
        let have = labels.get(&e.key);
        match e.operator.as_str() {
            "In" => have.is_some_and(|v| vals.contains(v)),
            "NotIn" => have.is_none_or(|v| !vals.contains(v)),
            "Exists" => have.is_some(),
            "DoesNotExist" => have.is_none(),
            _ => false,
        }
    });
    ml && me
}

pub(crate) fn fmt_labels(l: &BTreeMap<String, String>) -> String {
    if l.is_empty() {
        return "(none)".into();
    }
    l.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// (service name, port as text) of every backend of an Ingress, the default backend included.
pub(crate) fn ingress_backends(
    i: &k8s_openapi::api::networking::v1::Ingress,
) -> Vec<(
    String,
    Option<k8s_openapi::api::networking::v1::ServiceBackendPort>,
)> {
    let Some(spec) = i.spec.as_ref() else {
        return vec![];
    };
    let mut out = vec![];
    if let Some(s) = spec
        .default_backend
        .as_ref()
        .and_then(|b| b.service.as_ref())
    {
        out.push((s.name.clone(), s.port.clone()));
    }
    for r in spec.rules.iter().flatten() {
        for p in r.http.iter().flat_map(|h| h.paths.iter()) {
            if let Some(s) = p.backend.service.as_ref() {
                out.push((s.name.clone(), s.port.clone()));
            }
        }
    }
    out
}

// ------------------------------------------------------------------------------ logs

/// What a log tail says: a cause in plain words, hints, and an excerpt of at most 5 lines.
#[derive(Debug, Clone, Default)]
pub(crate) struct LogInsight {
    pub cause: Option<String>,
    /// Hint cause codes found (`missing_env_var`, `connection_refused`, …) with their detail.
    pub hints: Vec<(String, String)>,
    pub excerpt: Vec<String>,
}

impl LogInsight {
    pub fn has(&self, cause: &str) -> bool {
        self.hints.iter().any(|(c, _)| c == cause)
    }
    pub fn detail(&self, cause: &str) -> Option<&str> {
        self.hints
            .iter()
            .find(|(c, _)| c == cause)
            .map(|(_, d)| d.as_str())
    }
    /// A dependency or configuration fault the app reports (row 24).
    pub fn app_fault(&self) -> bool {
        [
            "missing_env_var",
            "connection_refused",
            "dns_failure",
            "auth_failure",
            "migration_failure",
        ]
        .iter()
        .any(|c| self.has(c))
    }
}

/// Reads a log tail with the log analyzer: hints first (missing env var, migration failure,
/// connection refused, DNS, credentials, OOM), then the last exception, then the first error.
pub(crate) fn log_insight(log: &ContainerLog) -> LogInsight {
    if log.lines.iter().all(|l| l.trim().is_empty()) {
        return LogInsight::default();
    }
    let source = format!("{}/{}", log.pod, log.container);
    let lines: Vec<LogLine> = log
        .lines
        .iter()
        .map(|l| LogLine::new(source.as_str(), None, l.as_str()))
        .collect();
    let a = analyze(
        &lines,
        &AnalyzeOptions {
            max_templates: 5,
            buckets: 1,
            ..Default::default()
        },
    );
    let order = [
        "missing_env_var",
        "migration_failure",
        "connection_refused",
        "dns_failure",
        "auth_failure",
        "out_of_memory",
    ];
    let mut hints = a.hints.clone();
    hints.sort_by_key(|h| {
        order
            .iter()
            .position(|c| *c == h.cause)
            .unwrap_or(order.len())
    });
    let exception = a.exceptions.last().map(|e| e.message.clone());
    let cause = hints
        .first()
        .map(|h| {
            let s = h.summary.as_str();
            // the first clause is the cause; the advice after ':' goes into remediation
            s.split(": ").next().unwrap_or(s).to_string()
        })
        .or_else(|| exception.clone().map(|e| format!("the app fails with {e}")))
        .or_else(|| {
            a.first_error
                .as_ref()
                .map(|f| format!("the app logs: {}", clip(&f.line, 120)))
        });
    let mut excerpt: Vec<String> = vec![];
    let mut push = |l: &str| {
        let l = clip(l, 160);
        if !l.is_empty() && excerpt.len() < 5 && !excerpt.contains(&l) {
            excerpt.push(l);
        }
    };
    for h in &hints {
        push(&h.evidence);
    }
    if let Some(e) = &exception {
        push(e);
    }
    if let Some(f) = &a.first_error {
        push(&f.line);
    }
    // the very end of the log: how the process ended
    let tail: Vec<&String> = log
        .lines
        .iter()
        .rev()
        .filter(|l| !l.trim().is_empty())
        .take(2)
        .collect();
    for l in tail.into_iter().rev() {
        push(l);
    }
    LogInsight {
        cause,
        hints: hints
            .iter()
            .map(|h| (h.cause.clone(), h.detail.clone()))
            .collect(),
        excerpt: excerpt.into_iter().map(|l| format!("log| {l}")).collect(),
    }
}

/// The remediation a log insight points at (the config or dependency it names).
pub(crate) fn insight_steps(ins: &LogInsight, container: &str) -> Vec<Step> {
    let mut out = vec![];
    if let Some(v) = ins.detail("missing_env_var") {
        out.push(Step::manual(
            format!("set environment variable {v} in container {container} (env, or the Secret/ConfigMap it comes from)"),
            format!("the app exits because {v} is not set"),
        ));
    }
    if ins.has("migration_failure") {
        out.push(Step::manual(
            "fix the database migration (check DATABASE_URL and the migration the log names, then re-run it)",
            "the schema does not match the code",
        ));
    }
    if let Some(t) = ins.detail("connection_refused") {
        let t = if t.is_empty() { "the dependency" } else { t };
        out.push(Step::manual(
            format!("make {t} reachable: check that its Service has ready endpoints and the host/port in the app's config"),
            format!("connections to {t} are refused"),
        ));
    }
    if let Some(h) = ins.detail("dns_failure") {
        let h = if h.is_empty() { "the host" } else { h };
        out.push(Step::manual(
            format!("fix the host name {h} in the app's config (Service name and namespace)"),
            format!("{h} does not resolve"),
        ));
    }
    if ins.has("auth_failure") {
        out.push(Step::manual(
            "check the credentials/token the app uses (and, for API calls, its ServiceAccount's RBAC)",
            "the app's requests are rejected",
        ));
    }
    out
}

/// Steps to look further: logs of the workload (previous instance when crashing) and its events.
pub(crate) fn look_steps(obj: &ObjectRef, pod: Option<&str>, previous: bool) -> Vec<Step> {
    let workload = format!("{}/{}", obj.kind, obj.name);
    let mut args = json!({"namespace": obj.namespace, "tail_lines": 200});
    match (obj.kind.as_str(), pod) {
        ("Pod", _) => args["pod"] = json!(obj.name),
        // a CronJob has no pod selector: read one of its pods
        ("CronJob", Some(p)) => args["pod"] = json!(p),
        _ => args["workload"] = json!(workload),
    }
    if previous {
        args["previous"] = json!(true);
    }
    vec![
        Step::tool(
            "logs_analyze",
            args,
            if previous {
                "read the crashed instances' logs in full"
            } else {
                "read the logs in full"
            },
        ),
        match pod {
            // pod-level problems: the pod's events say the most
            Some(p) => Step::tool(
                "events_list",
                json!({"namespace": obj.namespace, "kind": "Pod", "name": p}),
                "see the pod's recent events",
            ),
            None => Step::tool(
                "events_list",
                json!({"namespace": obj.namespace, "kind": obj.kind, "name": obj.name}),
                "see the object's recent events",
            ),
        },
    ]
}
