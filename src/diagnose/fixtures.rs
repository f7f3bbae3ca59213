//! Builder-style fixtures: `pod("web-1").owned_by_rs("web-abc").crash_looping(1).restarts(5)`.
//! Times are relative to [`now`], a fixed instant, so tests do not depend on the clock.

use std::collections::BTreeMap;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, ContainerState, ContainerStateRunning, ContainerStateTerminated,
    ContainerStateWaiting, ContainerStatus, EnvVar, EnvVarSource, Event, EventSeries,
    HTTPGetAction, ObjectReference, Pod, PodCondition, PodSpec, PodStatus, Probe,
    ResourceRequirements, SecretKeySelector, Service,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, OwnerReference, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::{json, Value};

use super::{ContainerLog, KeysOnly, RevisionInfo, Snapshot, WorkloadHistory};

pub const NS: &str = "shop";

pub fn now() -> Timestamp {
    Timestamp::from_second(1_748_779_200).unwrap_or(Timestamp::UNIX_EPOCH) // 2025-06-01T12:00:00Z
}

pub fn ago(secs: i64) -> Timestamp {
    now() - SignedDuration::from_secs(secs)
}

pub fn t(secs: i64) -> Option<Time> {
    Some(Time(ago(secs)))
}

pub fn snap() -> Snapshot {
    Snapshot {
        now: now(),
        ..Default::default()
    }
}

pub fn from_json<T: serde::de::DeserializeOwned>(v: Value) -> T {
    serde_json::from_value(v).expect("fixture JSON matches the type")
}

fn meta(name: &str, labels: &[(&str, &str)]) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.into()),
        namespace: Some(NS.into()),
        creation_timestamp: t(86_400),
        labels: Some(
            labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        ),
        ..Default::default()
    }
}

fn owner_ref(kind: &str, name: &str) -> OwnerReference {
    OwnerReference {
        api_version: "apps/v1".into(),
        kind: kind.into(),
        name: name.into(),
        uid: format!("uid-{name}"),
        controller: Some(true),
        ..Default::default()
    }
}

// ------------------------------------------------------------------------------ pods

pub struct PodB(pub Pod);

/// A healthy Running pod with one ready container `app` (image `app:1.0`), an hour old.
pub fn pod(name: &str) -> PodB {
    let mut m = meta(name, &[]);
    m.creation_timestamp = t(3600);
    PodB(Pod {
        metadata: m,
        spec: Some(PodSpec {
            containers: vec![Container {
                name: "app".into(),
                image: Some("app:1.0".into()),
                ..Default::default()
            }],
            node_name: Some("node-1".into()),
            ..Default::default()
        }),
        status: Some(PodStatus {
            phase: Some("Running".into()),
            start_time: t(3600),
            conditions: Some(vec![
                cond("PodScheduled", "True", None, None, 3600),
                cond("Ready", "True", None, None, 3500),
            ]),
            container_statuses: Some(vec![ContainerStatus {
                name: "app".into(),
                image: "app:1.0".into(),
                ready: true,
                started: Some(true),
                state: Some(running(3500)),
                ..Default::default()
            }]),
            ..Default::default()
        }),
    })
}

fn cond(
    type_: &str,
    status: &str,
    reason: Option<&str>,
    msg: Option<&str>,
    secs: i64,
) -> PodCondition {
    PodCondition {
        type_: type_.into(),
        status: status.into(),
        reason: reason.map(Into::into),
        message: msg.map(Into::into),
        last_transition_time: t(secs),
        ..Default::default()
    }
}

fn running(secs: i64) -> ContainerState {
    ContainerState {
        running: Some(ContainerStateRunning {
            started_at: t(secs),
        }),
        ..Default::default()
    }
}

fn waiting(reason: &str, msg: Option<&str>) -> ContainerState {
    ContainerState {
        waiting: Some(ContainerStateWaiting {
            reason: Some(reason.into()),
            message: msg.map(Into::into),
        }),
        ..Default::default()
    }
}

fn terminated(reason: &str, code: i32, secs: i64) -> ContainerState {
    ContainerState {
        terminated: Some(ContainerStateTerminated {
            reason: Some(reason.into()),
            exit_code: code,
            started_at: t(secs + 5),
            finished_at: t(secs),
            ..Default::default()
        }),
        ..Default::default()
    }
}

impl PodB {
    fn st(&mut self) -> &mut PodStatus {
        self.0.status.get_or_insert_with(Default::default)
    }
    fn cs(&mut self) -> &mut ContainerStatus {
        let st = self.st();
        let v = st.container_statuses.get_or_insert_with(Vec::new);
        if v.is_empty() {
            v.push(ContainerStatus {
                name: "app".into(),
                ..Default::default()
            });
        }
        &mut v[0]
    }
    fn c(&mut self) -> &mut Container {
        let spec = self.0.spec.get_or_insert_with(Default::default);
        if spec.containers.is_empty() {
            spec.containers.push(Container {
                name: "app".into(),
                ..Default::default()
            });
        }
        &mut spec.containers[0]
    }
    fn set_ready_cond(&mut self, ready: bool) {
        let st = self.st();
        for c in st.conditions.iter_mut().flatten() {
            if c.type_ == "Ready" {
                c.status = if ready { "True" } else { "False" }.into();
            }
        }
    }

    pub fn labels(mut self, l: &[(&str, &str)]) -> Self {
        let m = self.0.metadata.labels.get_or_insert_with(BTreeMap::new);
        for (k, v) in l {
            m.insert(k.to_string(), v.to_string());
        }
        self
    }
    /// Owned by ReplicaSet `rs` (its pod-template-hash is the part after the last `-`).
    pub fn owned_by_rs(mut self, rs: &str) -> Self {
        let hash = rs.rsplit('-').next().unwrap_or_default().to_string();
        self = self.labels(&[("pod-template-hash", &hash)]);
        self.0.metadata.owner_references = Some(vec![owner_ref("ReplicaSet", rs)]);
        self
    }
    pub fn owned_by(mut self, kind: &str, name: &str) -> Self {
        self.0.metadata.owner_references = Some(vec![owner_ref(kind, name)]);
        self
    }
    pub fn container(mut self, name: &str) -> Self {
        self.c().name = name.into();
        self.cs().name = name.into();
        self
    }
    pub fn image(mut self, img: &str) -> Self {
        self.c().image = Some(img.into());
        self.cs().image = img.into();
        self
    }
    pub fn node(mut self, n: &str) -> Self {
        self.0.spec.get_or_insert_with(Default::default).node_name = Some(n.into());
        self
    }
    pub fn created_ago(mut self, secs: i64) -> Self {
        self.0.metadata.creation_timestamp = t(secs);
        self
    }
    /// In CrashLoopBackOff: the last instance exited with `exit` 30 s ago; 5 restarts.
    pub fn crash_looping(mut self, exit: i32) -> Self {
        let pod = self.0.metadata.name.clone().unwrap_or_default();
        let reason = if exit == 137 { "OOMKilled" } else { "Error" };
        let cs = self.cs();
        cs.state = Some(waiting(
            "CrashLoopBackOff",
            Some(&format!(
                "back-off 5m0s restarting failed container=app pod={pod}"
            )),
        ));
        cs.last_state = Some(terminated(reason, exit, 30));
        cs.ready = false;
        cs.started = Some(false);
        if cs.restart_count < 2 {
            cs.restart_count = 5;
        }
        self.set_ready_cond(false);
        self
    }
    pub fn restarts(mut self, n: i32) -> Self {
        self.cs().restart_count = n;
        self
    }
    /// The previous instance ended with `reason`/`code` `secs` ago (the container runs again).
    pub fn last_exit(mut self, reason: &str, code: i32, secs: i64) -> Self {
        self.cs().last_state = Some(terminated(reason, code, secs));
        self
    }
    /// A past OOM kill `secs` ago; the container is Running again.
    pub fn oom_killed(self, secs: i64) -> Self {
        self.last_exit("OOMKilled", 137, secs)
    }
    pub fn memory_limit(mut self, q: &str) -> Self {
        self.c()
            .resources
            .get_or_insert_with(ResourceRequirements::default)
            .limits
            .get_or_insert_with(BTreeMap::new)
            .insert("memory".into(), Quantity(q.into()));
        self
    }
    pub fn cpu_request(mut self, q: &str) -> Self {
        self.c()
            .resources
            .get_or_insert_with(ResourceRequirements::default)
            .requests
            .get_or_insert_with(BTreeMap::new)
            .insert("cpu".into(), Quantity(q.into()));
        self
    }
    /// The container waits with `reason` (`ImagePullBackOff`, …); the pod is Pending.
    pub fn waiting(mut self, reason: &str, msg: &str) -> Self {
        let cs = self.cs();
        cs.state = Some(waiting(reason, Some(msg)));
        cs.ready = false;
        self.st().phase = Some("Pending".into());
        self.set_ready_cond(false);
        self
    }
    /// Running (started `secs` ago) but not ready.
    pub fn unready(mut self, secs: i64) -> Self {
        let cs = self.cs();
        cs.state = Some(running(secs));
        cs.ready = false;
        self.set_ready_cond(false);
        self
    }
    pub fn readiness_http(mut self, path: &str, port: i32) -> Self {
        self.c().readiness_probe = Some(http_probe(path, port));
        self
    }
    pub fn liveness_http(mut self, path: &str, port: i32) -> Self {
        self.c().liveness_probe = Some(http_probe(path, port));
        self
    }
    pub fn port(mut self, n: i32, name: &str) -> Self {
        self.c()
            .ports
            .get_or_insert_with(Vec::new)
            .push(ContainerPort {
                container_port: n,
                name: (!name.is_empty()).then(|| name.to_string()),
                ..Default::default()
            });
        self
    }
    pub fn command(mut self, cmd: &[&str]) -> Self {
        self.c().command = Some(cmd.iter().map(|s| s.to_string()).collect());
        self
    }
    pub fn env_secret_key(mut self, var: &str, secret: &str, key: &str) -> Self {
        self.c().env.get_or_insert_with(Vec::new).push(EnvVar {
            name: var.into(),
            value_from: Some(EnvVarSource {
                secret_key_ref: Some(SecretKeySelector {
                    name: secret.into(),
                    key: key.into(),
                    optional: None,
                }),
                ..Default::default()
            }),
            ..Default::default()
        });
        self
    }
    pub fn volume(mut self, v: Value) -> Self {
        self.0
            .spec
            .get_or_insert_with(Default::default)
            .volumes
            .get_or_insert_with(Vec::new)
            .push(from_json(v));
        self
    }
    /// Pending and unschedulable with the scheduler's message.
    pub fn unschedulable(mut self, msg: &str) -> Self {
        let st = self.st();
        st.phase = Some("Pending".into());
        st.container_statuses = None;
        st.conditions = Some(vec![cond(
            "PodScheduled",
            "False",
            Some("Unschedulable"),
            Some(msg),
            600,
        )]);
        self
    }
    /// Scheduled `secs` ago, containers still ContainerCreating.
    pub fn creating(mut self, secs: i64) -> Self {
        let st = self.st();
        st.phase = Some("Pending".into());
        st.conditions = Some(vec![cond("PodScheduled", "True", None, None, secs)]);
        let cs = self.cs();
        cs.state = Some(waiting("ContainerCreating", None));
        cs.ready = false;
        self
    }
    pub fn evicted(mut self, msg: &str) -> Self {
        let st = self.st();
        st.phase = Some("Failed".into());
        st.reason = Some("Evicted".into());
        st.message = Some(msg.into());
        st.container_statuses = None;
        self
    }
    /// An init container `name` in CrashLoopBackOff (exit `exit`); the app container waits.
    pub fn init_crash_looping(mut self, name: &str, exit: i32) -> Self {
        self.0
            .spec
            .get_or_insert_with(Default::default)
            .init_containers = Some(vec![Container {
            name: name.into(),
            image: Some("app:1.0".into()),
            command: Some(vec!["alembic".into(), "upgrade".into(), "head".into()]),
            ..Default::default()
        }]);
        let st = self.st();
        st.phase = Some("Pending".into());
        st.init_container_statuses = Some(vec![ContainerStatus {
            name: name.into(),
            image: "app:1.0".into(),
            restart_count: 4,
            state: Some(waiting(
                "CrashLoopBackOff",
                Some("back-off 2m40s restarting failed"),
            )),
            last_state: Some(terminated("Error", exit, 40)),
            ..Default::default()
        }]);
        let cs = self.cs();
        cs.state = Some(waiting("PodInitializing", None));
        cs.ready = false;
        self.set_ready_cond(false);
        self
    }
    pub fn build(self) -> Pod {
        self.0
    }
}

fn http_probe(path: &str, port: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.into()),
            port: IntOrString::Int(port),
            ..Default::default()
        }),
        period_seconds: Some(10),
        failure_threshold: Some(3),
        ..Default::default()
    }
}

// ------------------------------------------------------------------------------ workloads

pub struct DeployB(pub Deployment);

/// A Deployment `name` with `replicas` replicas, all ready, template labels `app=<name>`.
pub fn deployment(name: &str, replicas: i32) -> DeployB {
    DeployB(from_json(json!({
        "metadata": {"name": name, "namespace": NS, "generation": 1, "creationTimestamp": ago(86_400).to_string()},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [{"name": "app", "image": "app:1.0"}]}}
        },
        "status": {
            "observedGeneration": 1, "replicas": replicas, "readyReplicas": replicas,
            "availableReplicas": replicas, "updatedReplicas": replicas,
            "conditions": [
                {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"},
                {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"}
            ]
        }
    })))
}

impl DeployB {
    pub fn ready(mut self, ready: i32) -> Self {
        let st = self.0.status.get_or_insert_with(Default::default);
        st.ready_replicas = Some(ready);
        st.available_replicas = Some(ready);
        self
    }
    /// Replaces the condition of this type.
    pub fn condition(mut self, type_: &str, status: &str, reason: &str) -> Self {
        let st = self.0.status.get_or_insert_with(Default::default);
        let cs = st.conditions.get_or_insert_with(Vec::new);
        cs.retain(|c| c.type_.as_deref() != Some(type_));
        cs.push(from_json(json!({"type": type_, "status": status, "reason": reason, "message": format!("{reason} message"), "lastTransitionTime": ago(900).to_string()})));
        self
    }
    pub fn build(self) -> Deployment {
        self.0
    }
}

/// ReplicaSet `name` of Deployment `deploy` at `revision`, wanting `replicas`.
pub fn replica_set(name: &str, deploy: &str, revision: i64, replicas: i32) -> ReplicaSet {
    let mut rs: ReplicaSet = from_json(json!({
        "metadata": {"name": name, "namespace": NS,
            "annotations": {"deployment.kubernetes.io/revision": revision.to_string(),
                            "deployment.kubernetes.io/desired-replicas": replicas.to_string()}},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": deploy}},
                 "template": {"metadata": {"labels": {"app": deploy}}}},
        "status": {"replicas": replicas}
    }));
    rs.metadata.owner_references = Some(vec![owner_ref("Deployment", deploy)]);
    rs
}

/// A ClusterIP Service `name` selecting `sel`, port 80 → `target`.
pub fn service(name: &str, sel: &[(&str, &str)], target: Value) -> Service {
    let sel: BTreeMap<&str, &str> = sel.iter().copied().collect();
    from_json(json!({
        "metadata": {"name": name, "namespace": NS},
        "spec": {"selector": sel, "ports": [{"name": "http", "port": 80, "targetPort": target}]}
    }))
}

// ------------------------------------------------------------------------------ events

pub struct EventB(pub Event);

/// A Warning event about `kind/name`, seen once `secs` ago.
pub fn event(kind: &str, name: &str, reason: &str, msg: &str) -> EventB {
    EventB(Event {
        metadata: ObjectMeta {
            name: Some(format!("{name}.{reason}")),
            namespace: Some(NS.into()),
            ..Default::default()
        },
        involved_object: ObjectReference {
            kind: Some(kind.into()),
            name: Some(name.into()),
            namespace: Some(NS.into()),
            ..Default::default()
        },
        reason: Some(reason.into()),
        message: Some(msg.into()),
        type_: Some("Warning".into()),
        count: Some(1),
        first_timestamp: t(600),
        last_timestamp: t(30),
        ..Default::default()
    })
}

/// The kubelet's BackOff warning for container `app` of `pod`, seen `count` times.
pub fn backoff(pod: &str, count: i32) -> Event {
    event(
        "Pod",
        pod,
        "BackOff",
        "Back-off restarting failed container app",
    )
    .count(count)
    .build()
}

impl EventB {
    pub fn normal(mut self) -> Self {
        self.0.type_ = Some("Normal".into());
        self
    }
    pub fn count(mut self, n: i32) -> Self {
        self.0.count = Some(n);
        self
    }
    pub fn last(mut self, secs: i64) -> Self {
        self.0.last_timestamp = t(secs);
        self
    }
    /// An events.k8s.io-style event: eventTime + series, no lastTimestamp/count.
    pub fn series(mut self, count: i32, first: i64, last: i64) -> Self {
        self.0.last_timestamp = None;
        self.0.first_timestamp = None;
        self.0.count = None;
        self.0.event_time = Some(MicroTime(ago(first)));
        self.0.series = Some(EventSeries {
            count: Some(count),
            last_observed_time: Some(MicroTime(ago(last))),
        });
        self
    }
    pub fn build(self) -> Event {
        self.0
    }
}

// ------------------------------------------------------------------------------ the rest

pub fn log(pod: &str, container: &str, lines: &[&str]) -> ContainerLog {
    ContainerLog {
        namespace: NS.into(),
        pod: pod.into(),
        container: container.into(),
        lines: lines.iter().map(|s| s.to_string()).collect(),
    }
}

pub fn keys(name: &str, keys: &[&str]) -> KeysOnly {
    KeysOnly {
        namespace: NS.into(),
        name: name.into(),
        keys: keys.iter().map(|s| s.to_string()).collect(),
    }
}

pub fn rev(
    revision: i64,
    healthy: Option<bool>,
    current: bool,
    image: &str,
    changes: &[&str],
) -> RevisionInfo {
    RevisionInfo {
        revision,
        created: Some(ago(86_400 - revision * 3600)),
        images: vec![format!("app={image}")],
        current,
        healthy,
        changes: changes.iter().map(|s| s.to_string()).collect(),
    }
}

pub fn history(kind: &str, name: &str, revisions: Vec<RevisionInfo>) -> WorkloadHistory {
    WorkloadHistory {
        kind: kind.into(),
        namespace: NS.into(),
        name: name.into(),
        revisions,
    }
}
