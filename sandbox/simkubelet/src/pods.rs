//! Pod workers: watch the pods bound to a node, run one simulation per pod, and write what it
//! produces (status, events, logs) — the kubelet's sync loop, simulated.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::TryStreamExt;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, Secret};
use kube::api::{DeleteParams, Patch, PatchParams, Preconditions};
use kube::runtime::watcher::{self, watcher, Event};
use kube::runtime::WatchStreamExt;
use kube::{Api, Client};
use tokio::sync::watch;

use crate::catalogue::Catalogue;
use crate::events::Recorder;
use crate::logs::LogStore;
use crate::node::NodeSpec;
use crate::sim::{Inputs, LogOut, NodeImages, PodSim, Resolved, Tunables};

/// What every pod worker of a node shares.
#[derive(Clone)]
pub struct Ctx {
    pub client: Client,
    pub node: NodeSpec,
    pub catalogue: Arc<Catalogue>,
    pub logs: LogStore,
    pub recorder: Recorder,
    pub tunables: Tunables,
    pub images: NodeImages,
    pub next_ip: Arc<AtomicU32>,
}

/// Watches the node's pods and keeps one worker per pod uid.
pub async fn run_node(ctx: Ctx) {
    let api: Api<Pod> = Api::all(ctx.client.clone());
    let cfg = watcher::Config::default().fields(&format!("spec.nodeName={}", ctx.node.name));
    let mut workers: HashMap<String, watch::Sender<Pod>> = HashMap::new();
    let stream = watcher(api, cfg).default_backoff();
    futures::pin_mut!(stream);
    loop {
        let ev = match stream.try_next().await {
            Ok(Some(ev)) => ev,
            Ok(None) => break,
            Err(err) => {
                tracing::warn!(node = %ctx.node.name, %err, "pod watch error");
                continue;
            }
        };
        match ev {
            Event::Apply(pod) | Event::InitApply(pod) => {
                let uid = pod.metadata.uid.clone().unwrap_or_default();
                match workers.get(&uid) {
                    Some(tx) => {
                        let _ = tx.send(pod);
                    }
                    None => {
                        let (tx, rx) = watch::channel(pod.clone());
                        workers.insert(uid, tx);
                        tokio::spawn(worker(ctx.clone(), pod, rx));
                    }
                }
            }
            Event::Delete(pod) => {
                // Dropping the sender ends the worker.
                workers.remove(pod.metadata.uid.as_deref().unwrap_or_default());
            }
            Event::Init | Event::InitDone => {}
        }
        workers.retain(|_, tx| !tx.is_closed());
    }
}

async fn worker(ctx: Ctx, pod: Pod, mut rx: watch::Receiver<Pod>) {
    let ns = pod.metadata.namespace.clone().unwrap_or_default();
    let name = pod.metadata.name.clone().unwrap_or_default();
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let terminal = pod
        .status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .is_some_and(|p| p == "Succeeded" || p == "Failed");
    let ip = pod
        .status
        .as_ref()
        .and_then(|s| s.pod_ip.clone())
        .unwrap_or_else(|| {
            let n = ctx.next_ip.fetch_add(1, Ordering::Relaxed);
            format!(
                "10.244.{}.{}",
                ctx.node.index * 4 + (n / 250) as usize % 4,
                2 + n % 250
            )
        });
    let cat = ctx.catalogue.clone();
    let mut sim = PodSim::new(
        &pod,
        |r| cat.lookup(r).cloned(),
        ip,
        ctx.tunables,
        ctx.images.clone(),
        Timestamp::now(),
    );
    sim.set_inputs(resolve(&ctx.client, &pod).await);
    let mut last_written = String::new();
    let mut last_resolve = std::time::Instant::now();
    let mut current = pod;
    loop {
        let now = Timestamp::now();
        if current.metadata.deletion_timestamp.is_some() {
            let events = sim.kill_all(now);
            for e in &events {
                ctx.recorder.record(&current, &ctx.node.name, e).await;
            }
            write_status(&api, &name, &mut sim, now, &mut last_written).await;
            let dp = DeleteParams {
                grace_period_seconds: Some(0),
                preconditions: Some(Preconditions {
                    uid: Some(uid.clone()),
                    resource_version: None,
                }),
                ..Default::default()
            };
            if let Err(err) = api.delete(&name, &dp).await {
                tracing::debug!(pod = %name, %err, "final delete failed (already gone?)");
            }
            break;
        }
        let mut wake = None;
        if !terminal {
            let out = sim.step(now);
            for l in out.logs {
                match l {
                    LogOut::NewInstance { container } => {
                        ctx.logs.new_instance(&ns, &name, &container)
                    }
                    LogOut::Line {
                        container,
                        at,
                        text,
                    } => ctx.logs.append(&ns, &name, &container, at, text),
                }
            }
            for e in &out.events {
                ctx.recorder.record(&current, &ctx.node.name, e).await;
            }
            write_status(&api, &name, &mut sim, now, &mut last_written).await;
            wake = out.next_wake;
        }
        let mut sleep = wake
            .map(|t| t.duration_since(Timestamp::now()).unsigned_abs())
            .unwrap_or(Duration::from_secs(30))
            .min(Duration::from_secs(30));
        if sim.blocked_on_inputs() {
            sleep = sleep.min(Duration::from_secs(1));
        }
        tokio::select! {
            _ = tokio::time::sleep(sleep) => {}
            changed = rx.changed() => {
                if changed.is_err() {
                    break;
                }
                current = rx.borrow_and_update().clone();
            }
        }
        if sim.blocked_on_inputs() && last_resolve.elapsed() >= Duration::from_millis(900) {
            sim.set_inputs(resolve(&ctx.client, &current).await);
            last_resolve = std::time::Instant::now();
        }
    }
    ctx.logs.remove_pod(&ns, &name);
    ctx.recorder.forget(&uid);
}

async fn write_status(
    api: &Api<Pod>,
    name: &str,
    sim: &mut PodSim,
    now: Timestamp,
    last: &mut String,
) {
    let status = sim.status(now);
    let body = serde_json::json!({ "status": status });
    let text = body.to_string();
    if text == *last {
        return;
    }
    // JSON merge patch: arrays (containerStatuses, conditions) are replaced whole.
    match api
        .patch_status(name, &PatchParams::default(), &Patch::Merge(&body))
        .await
    {
        Ok(_) => *last = text,
        Err(err) => tracing::debug!(pod = %name, %err, "status write failed"),
    }
}

/// Looks up what the pod's containers reference: env from ConfigMaps/Secrets and volumes.
pub async fn resolve(client: &Client, pod: &Pod) -> Inputs {
    let ns = pod.metadata.namespace.clone().unwrap_or_default();
    let spec = pod.spec.clone().unwrap_or_default();
    let mut lookup = Lookup {
        cms: Api::namespaced(client.clone(), &ns),
        secrets: Api::namespaced(client.clone(), &ns),
        ns,
        cache: HashMap::new(),
    };
    let mut inputs = Inputs::default();
    for c in spec
        .init_containers
        .iter()
        .flatten()
        .chain(spec.containers.iter())
    {
        let r = resolve_container(&mut lookup, c).await;
        inputs.containers.insert(c.name.clone(), r);
    }
    for v in spec.volumes.iter().flatten() {
        let mut refs: Vec<(&str, String, bool, Vec<String>)> = vec![];
        if let Some(cm) = &v.config_map {
            refs.push((
                "configmap",
                cm.name.clone(),
                cm.optional.unwrap_or(false),
                cm.items.iter().flatten().map(|i| i.key.clone()).collect(),
            ));
        }
        if let Some(s) = &v.secret {
            refs.push((
                "secret",
                s.secret_name.clone().unwrap_or_default(),
                s.optional.unwrap_or(false),
                s.items.iter().flatten().map(|i| i.key.clone()).collect(),
            ));
        }
        if let Some(p) = &v.projected {
            for src in p.sources.iter().flatten() {
                if let Some(cm) = &src.config_map {
                    refs.push((
                        "configmap",
                        cm.name.clone(),
                        cm.optional.unwrap_or(false),
                        cm.items.iter().flatten().map(|i| i.key.clone()).collect(),
                    ));
                }
                if let Some(s) = &src.secret {
                    refs.push((
                        "secret",
                        s.name.clone(),
                        s.optional.unwrap_or(false),
                        s.items.iter().flatten().map(|i| i.key.clone()).collect(),
                    ));
                }
            }
        }
        for (kind, obj, optional, keys) in refs {
            let data = lookup.get(kind, &obj).await;
            let err = match data {
                None if !optional => Some(format!("{kind} \"{obj}\" not found")),
                Some(d) => keys
                    .iter()
                    .find(|k| !d.contains_key(*k))
                    .map(|k| format!("{kind} references non-existent config key: {k}")),
                None => None,
            };
            if let Some(err) = err {
                inputs.volume_error = Some(format!(
                    "MountVolume.SetUp failed for volume \"{}\" : {err}",
                    v.name
                ));
                return inputs;
            }
        }
    }
    inputs
}

struct Lookup {
    ns: String,
    cms: Api<ConfigMap>,
    secrets: Api<Secret>,
    cache: HashMap<(&'static str, String), Option<BTreeMap<String, String>>>,
}

impl Lookup {
    /// The keys and values of a ConfigMap or Secret, None when it does not exist.
    async fn get(&mut self, kind: &'static str, name: &str) -> Option<BTreeMap<String, String>> {
        if let Some(v) = self.cache.get(&(kind, name.to_string())) {
            return v.clone();
        }
        let v = if kind == "configmap" {
            self.cms.get_opt(name).await.ok().flatten().map(|cm| {
                let mut m = cm.data.unwrap_or_default();
                for k in cm.binary_data.unwrap_or_default().into_keys() {
                    m.insert(k, String::new());
                }
                m
            })
        } else {
            self.secrets.get_opt(name).await.ok().flatten().map(|s| {
                let mut m: BTreeMap<String, String> = s
                    .data
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(k, v)| (k, String::from_utf8_lossy(&v.0).into_owned()))
                    .collect();
                m.extend(s.string_data.unwrap_or_default());
                m
            })
        };
        self.cache.insert((kind, name.to_string()), v.clone());
        v
    }
}

async fn resolve_container(l: &mut Lookup, c: &Container) -> Resolved {
    let mut r = Resolved::default();
    let label = |kind: &str| {
        if kind == "configmap" {
            "ConfigMap"
        } else {
            "Secret"
        }
    };
    for ef in c.env_from.iter().flatten() {
        let prefix = ef.prefix.clone().unwrap_or_default();
        let (kind, name, optional) = if let Some(cm) = &ef.config_map_ref {
            ("configmap", cm.name.clone(), cm.optional.unwrap_or(false))
        } else if let Some(s) = &ef.secret_ref {
            ("secret", s.name.clone(), s.optional.unwrap_or(false))
        } else {
            continue;
        };
        match l.get(kind, &name).await {
            Some(data) => {
                for (k, v) in data {
                    r.env.insert(format!("{prefix}{k}"), v);
                }
            }
            None if !optional => {
                r.config_error
                    .get_or_insert(format!("{kind} \"{name}\" not found"));
            }
            None => {}
        }
    }
    for e in c.env.iter().flatten() {
        let Some(from) = &e.value_from else {
            r.env
                .insert(e.name.clone(), e.value.clone().unwrap_or_default());
            continue;
        };
        let (kind, name, key, optional) = if let Some(k) = &from.config_map_key_ref {
            (
                "configmap",
                k.name.clone(),
                k.key.clone(),
                k.optional.unwrap_or(false),
            )
        } else if let Some(k) = &from.secret_key_ref {
            (
                "secret",
                k.name.clone(),
                k.key.clone(),
                k.optional.unwrap_or(false),
            )
        } else {
            // fieldRef / resourceFieldRef: always resolvable.
            r.env.insert(e.name.clone(), String::new());
            continue;
        };
        match l.get(kind, &name).await {
            Some(data) => match data.get(&key) {
                Some(v) => {
                    r.env.insert(e.name.clone(), v.clone());
                }
                None if !optional => {
                    r.config_error.get_or_insert(format!(
                        "couldn't find key {key} in {} {}/{name}",
                        label(kind),
                        l.ns
                    ));
                }
                None => {}
            },
            None if !optional => {
                r.config_error
                    .get_or_insert(format!("{kind} \"{name}\" not found"));
            }
            None => {}
        }
    }
    r
}
