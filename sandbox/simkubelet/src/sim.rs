//! The pure pod simulation: given a pod's spec, what its images do (the catalogue) and what the
//! cluster could resolve for it (env references, volumes), advance its containers through time
//! the way a kubelet with containerd would, and say which status, events and log lines follow.
//!
//! Nothing here talks to the API server; `pods.rs` feeds inputs in and writes outputs out.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::core::v1::{
    Container, ContainerState, ContainerStateRunning, ContainerStateTerminated,
    ContainerStateWaiting, ContainerStatus, Pod, PodCondition, PodIP, PodStatus, Probe,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::catalogue::{parse_memory, Image, Runtime};

/// What the cluster could resolve for one container before it can be created.
#[derive(Debug, Clone, Default)]
pub struct Resolved {
    /// `Some(message)` when an env reference cannot be resolved (CreateContainerConfigError).
    pub config_error: Option<String>,
    /// Names and values of the environment the process would see.
    pub env: BTreeMap<String, String>,
}

/// Everything outside the pod spec the simulation needs; refreshed while the pod is blocked.
#[derive(Debug, Clone, Default)]
pub struct Inputs {
    /// container name → resolution (init and app containers).
    pub containers: BTreeMap<String, Resolved>,
    /// `Some(message)` of the first volume that cannot be mounted (FailedMount).
    pub volume_error: Option<String>,
}

/// Behaviour tunables.
#[derive(Debug, Clone, Copy)]
pub struct Tunables {
    pub backoff_base: SignedDuration,
    pub backoff_cap: SignedDuration,
    /// Time an image pull takes.
    pub pull_time: SignedDuration,
}

impl Default for Tunables {
    fn default() -> Self {
        Tunables {
            backoff_base: SignedDuration::from_secs(1),
            backoff_cap: SignedDuration::from_secs(8),
            pull_time: SignedDuration::from_millis(200),
        }
    }
}

/// An event the kubelet would record about this pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimEvent {
    pub warning: bool,
    pub reason: String,
    pub message: String,
    /// `spec.containers{name}` / `spec.initContainers{name}`, or None for the pod itself.
    pub field_path: Option<String>,
}

/// Log output of one step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogOut {
    /// A new instance of the container started: its current log becomes the previous one.
    NewInstance { container: String },
    Line {
        container: String,
        at: Timestamp,
        text: String,
    },
}

#[derive(Debug, Default)]
pub struct StepOut {
    pub events: Vec<SimEvent>,
    pub logs: Vec<LogOut>,
    /// When the simulation next has something to do (None = nothing until inputs change).
    pub next_wake: Option<Timestamp>,
}

/// Images already pulled on one node (shared by that node's pods).
pub type NodeImages = Arc<Mutex<HashSet<String>>>;

#[derive(Debug, Clone)]
enum CState {
    /// Not created yet; `until` is when the next attempt is due.
    Waiting {
        reason: String,
        message: Option<String>,
        until: Option<Timestamp>,
    },
    Pulling {
        done_at: Timestamp,
    },
    Running(Box<Instance>),
    Terminated(Terminated),
}

#[derive(Debug, Clone)]
struct Terminated {
    reason: String,
    exit_code: i32,
    message: Option<String>,
    started: Timestamp,
    finished: Timestamp,
    container_id: String,
}

#[derive(Debug, Clone)]
struct Instance {
    started: Timestamp,
    container_id: String,
    /// When the ports answer.
    listen_at: Timestamp,
    /// When and how the process ends by itself.
    exit: Option<PlannedExit>,
    next_log: Option<Timestamp>,
    pid: u32,
    readiness: ProbeState,
    liveness: ProbeState,
    startup: ProbeState,
    /// Set once the startup probe (if any) succeeded.
    started_ok: bool,
}

#[derive(Debug, Clone)]
struct PlannedExit {
    at: Timestamp,
    code: i32,
    reason: &'static str,
    lines: Vec<String>,
}

#[derive(Debug, Clone, Default)]
struct ProbeState {
    next: Option<Timestamp>,
    successes: i32,
    failures: i32,
    ok: bool,
}

#[derive(Debug, Clone)]
struct Ctr {
    spec: Container,
    init: bool,
    image: Option<Image>,
    state: CState,
    last: Option<Terminated>,
    restarts: i32,
    ready: bool,
    backoff: SignedDuration,
    /// Times the image pull failed in a row (ImagePullBackOff doubling).
    pull_failures: u32,
    image_id: String,
}

/// The simulation of one pod.
pub struct PodSim {
    pub namespace: String,
    pub name: String,
    uid: String,
    pod_ip: String,
    restart_policy: String,
    tun: Tunables,
    node_images: NodeImages,
    inits: Vec<Ctr>,
    apps: Vec<Ctr>,
    inputs: Inputs,
    start: Timestamp,
    rng: u64,
    /// Condition type → (status, since), for stable lastTransitionTime.
    conditions: BTreeMap<String, (String, Timestamp)>,
    next_mount_event: Option<Timestamp>,
    container_seq: u64,
}

impl PodSim {
    /// `lookup` finds the catalogue image for an image reference.
    pub fn new(
        pod: &Pod,
        lookup: impl Fn(&str) -> Option<Image>,
        pod_ip: String,
        tun: Tunables,
        node_images: NodeImages,
        now: Timestamp,
    ) -> Self {
        let spec = pod.spec.clone().unwrap_or_default();
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let mk = |c: &Container, init: bool| Ctr {
            image: c.image.as_deref().and_then(&lookup),
            spec: c.clone(),
            init,
            state: CState::Waiting {
                reason: "ContainerCreating".into(),
                message: None,
                until: None,
            },
            last: None,
            restarts: 0,
            ready: false,
            backoff: SignedDuration::ZERO,
            pull_failures: 0,
            image_id: String::new(),
        };
        let inits = spec
            .init_containers
            .iter()
            .flatten()
            .map(|c| mk(c, true))
            .collect();
        let apps = spec.containers.iter().map(|c| mk(c, false)).collect();
        let seed = uid.bytes().fold(0xcbf29ce484222325u64, |h, b| {
            (h ^ b as u64).wrapping_mul(0x100000001b3)
        });
        PodSim {
            namespace: pod.metadata.namespace.clone().unwrap_or_default(),
            name: pod.metadata.name.clone().unwrap_or_default(),
            uid,
            pod_ip,
            restart_policy: spec.restart_policy.unwrap_or_else(|| "Always".into()),
            tun,
            node_images,
            inits,
            apps,
            inputs: Inputs::default(),
            start: now,
            rng: seed | 1,
            conditions: BTreeMap::new(),
            next_mount_event: None,
            container_seq: 0,
        }
    }

    pub fn set_inputs(&mut self, inputs: Inputs) {
        self.inputs = inputs;
    }

    /// True while some container waits on something outside the pod (a missing ConfigMap,
    /// Secret or key), so the caller should re-resolve inputs now and then.
    pub fn blocked_on_inputs(&self) -> bool {
        self.inputs.volume_error.is_some()
            || self.all().any(|c| {
                matches!(&c.state, CState::Waiting { reason, .. } if reason == "CreateContainerConfigError")
            })
    }

    fn all(&self) -> impl Iterator<Item = &Ctr> {
        self.inits.iter().chain(self.apps.iter())
    }

    fn rand(&mut self) -> u64 {
        // xorshift64*
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        x.wrapping_mul(0x2545F4914F6CDD1D)
    }

    fn rand_range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.rand() % (hi - lo + 1)
    }

    /// Advances the simulation to `now`.
    pub fn step(&mut self, now: Timestamp) -> StepOut {
        let mut out = StepOut::default();
        if let Some(msg) = self.inputs.volume_error.clone() {
            // The sandbox cannot be set up: nothing starts; FailedMount repeats.
            if self.next_mount_event.is_none_or(|t| t <= now) {
                out.events.push(SimEvent {
                    warning: true,
                    reason: "FailedMount".into(),
                    message: msg,
                    field_path: None,
                });
                self.next_mount_event = Some(now + SignedDuration::from_secs(5));
            }
            let inits_pending = self.inits_pending();
            for c in self.inits.iter_mut().chain(self.apps.iter_mut()) {
                let reason = if c.init || !inits_pending {
                    "ContainerCreating"
                } else {
                    "PodInitializing"
                };
                c.state = CState::Waiting {
                    reason: reason.into(),
                    message: None,
                    until: None,
                };
            }
            wake(&mut out, self.next_mount_event);
            return out;
        }
        // Init containers run one after another.
        let mut i = 0;
        while i < self.inits.len() {
            if is_completed(&self.inits[i]) {
                i += 1;
                continue;
            }
            self.advance(true, i, now, &mut out);
            if !is_completed(&self.inits[i]) {
                for c in self.apps.iter_mut() {
                    c.state = CState::Waiting {
                        reason: "PodInitializing".into(),
                        message: None,
                        until: None,
                    };
                }
                return out;
            }
            i += 1;
        }
        for i in 0..self.apps.len() {
            self.advance(false, i, now, &mut out);
        }
        out
    }

    fn inits_pending(&self) -> bool {
        self.inits.iter().any(|c| !is_completed(c))
    }

    fn ctr(&mut self, init: bool, i: usize) -> &mut Ctr {
        if init {
            &mut self.inits[i]
        } else {
            &mut self.apps[i]
        }
    }

    /// Advances one container as far as `now` allows (several transitions in one call).
    fn advance(&mut self, init: bool, i: usize, now: Timestamp, out: &mut StepOut) {
        for _ in 0..16 {
            if !self.advance_once(init, i, now, out) {
                return;
            }
        }
    }

    /// One transition; returns true when the state changed and another may follow at once.
    fn advance_once(&mut self, init: bool, i: usize, now: Timestamp, out: &mut StepOut) -> bool {
        let tun = self.tun;
        let (name, field_path, image_ref) = {
            let c = self.ctr(init, i);
            let fp = format!(
                "spec.{}{{{}}}",
                if init { "initContainers" } else { "containers" },
                c.spec.name
            );
            (
                c.spec.name.clone(),
                fp,
                c.spec.image.clone().unwrap_or_default(),
            )
        };
        let ev = |out: &mut StepOut, warning: bool, reason: &str, message: String| {
            out.events.push(SimEvent {
                warning,
                reason: reason.into(),
                message,
                field_path: Some(field_path.clone()),
            })
        };
        let state = self.ctr(init, i).state.clone();
        match state {
            CState::Waiting { reason, until, .. } => {
                if let Some(t) = until {
                    if t > now {
                        wake(out, Some(t));
                        return false;
                    }
                }
                let resolved = self
                    .inputs
                    .containers
                    .get(&name)
                    .cloned()
                    .unwrap_or_default();
                let c = self.ctr(init, i);
                let policy = c.spec.image_pull_policy.clone().unwrap_or_else(|| {
                    if image_ref.ends_with(":latest") || !image_ref.contains(':') {
                        "Always".into()
                    } else {
                        "IfNotPresent".into()
                    }
                });
                if c.image.is_none() {
                    if policy == "Never" {
                        let msg = format!("Container image \"{image_ref}\" is not present with pull policy of Never");
                        if reason != "ErrImageNeverPull" {
                            ev(out, true, "ErrImageNeverPull", msg.clone());
                        }
                        self.ctr(init, i).state = CState::Waiting {
                            reason: "ErrImageNeverPull".into(),
                            message: Some(msg),
                            until: Some(now + SignedDuration::from_secs(10)),
                        };
                        wake(out, Some(now + SignedDuration::from_secs(10)));
                        return false;
                    }
                    if reason == "ErrImagePull" {
                        // The failed pull turns into a back-off.
                        let c = self.ctr(init, i);
                        let delay = backoff_for(tun, c.pull_failures);
                        let msg = format!("Back-off pulling image \"{image_ref}\"");
                        c.state = CState::Waiting {
                            reason: "ImagePullBackOff".into(),
                            message: Some(msg.clone()),
                            until: Some(now + delay),
                        };
                        ev(out, false, "BackOff", msg);
                        ev(out, true, "Failed", "Error: ImagePullBackOff".into());
                        wake(out, Some(now + delay));
                        return false;
                    }
                    ev(
                        out,
                        false,
                        "Pulling",
                        format!("Pulling image \"{image_ref}\""),
                    );
                    let full = full_reference(&image_ref);
                    let detail = format!(
                        "rpc error: code = NotFound desc = failed to pull and unpack image \"{full}\": failed to resolve reference \"{full}\": {full}: not found"
                    );
                    ev(
                        out,
                        true,
                        "Failed",
                        format!("Failed to pull image \"{image_ref}\": {detail}"),
                    );
                    ev(out, true, "Failed", "Error: ErrImagePull".into());
                    let c = self.ctr(init, i);
                    c.pull_failures += 1;
                    let t = now + SignedDuration::from_secs(1);
                    c.state = CState::Waiting {
                        reason: "ErrImagePull".into(),
                        message: Some(detail),
                        until: Some(t),
                    };
                    wake(out, Some(t));
                    return false;
                }
                if c.image_id.is_empty() {
                    let present = self.node_images.lock().unwrap().contains(&image_ref);
                    if policy == "Always" || !present {
                        ev(
                            out,
                            false,
                            "Pulling",
                            format!("Pulling image \"{image_ref}\""),
                        );
                        let done_at = now + tun.pull_time;
                        self.ctr(init, i).state = CState::Pulling { done_at };
                        wake(out, Some(done_at));
                        return true;
                    }
                    ev(
                        out,
                        false,
                        "Pulled",
                        format!("Container image \"{image_ref}\" already present on machine"),
                    );
                    self.ctr(init, i).image_id = image_id(&image_ref);
                }
                if let Some(err) = resolved.config_error {
                    if reason != "CreateContainerConfigError" {
                        ev(out, true, "Failed", format!("Error: {err}"));
                    }
                    self.ctr(init, i).state = CState::Waiting {
                        reason: "CreateContainerConfigError".into(),
                        message: Some(err),
                        until: None,
                    };
                    return false;
                }
                self.create_and_start(init, i, now, &resolved, out, &ev);
                true
            }
            CState::Pulling { done_at } => {
                if done_at > now {
                    wake(out, Some(done_at));
                    return false;
                }
                let ms = tun.pull_time.as_millis();
                ev(
                    out,
                    false,
                    "Pulled",
                    format!("Successfully pulled image \"{image_ref}\" in {ms}ms"),
                );
                self.node_images.lock().unwrap().insert(image_ref.clone());
                let c = self.ctr(init, i);
                c.image_id = image_id(&image_ref);
                c.state = CState::Waiting {
                    reason: "ContainerCreating".into(),
                    message: None,
                    until: None,
                };
                true
            }
            CState::Running(inst) => self.run_step(init, i, *inst, now, out, &ev),
            CState::Terminated(t) => {
                let restart = match self.restart_policy.as_str() {
                    "Never" => false,
                    "OnFailure" => t.exit_code != 0,
                    _ => !init || t.exit_code != 0,
                };
                if !restart {
                    return false;
                }
                let c = self.ctr(init, i);
                // A container that ran long enough starts its back-off again from the base.
                let ran = t.finished.duration_since(t.started);
                if ran > tun.backoff_cap * 2 {
                    c.backoff = SignedDuration::ZERO;
                }
                c.backoff = if c.backoff.is_zero() {
                    tun.backoff_base
                } else {
                    (c.backoff * 2).min(tun.backoff_cap)
                };
                let delay = c.backoff;
                let pod_ref = format!("{}_{}({})", self.name, self.namespace, self.uid);
                let msg = format!(
                    "back-off {} restarting failed container={name} pod={pod_ref}",
                    fmt_dur(delay)
                );
                let c = self.ctr(init, i);
                c.last = Some(t);
                c.state = CState::Waiting {
                    reason: "CrashLoopBackOff".into(),
                    message: Some(msg),
                    until: Some(now + delay),
                };
                ev(
                    out,
                    true,
                    "BackOff",
                    "Back-off restarting failed container".into(),
                );
                wake(out, Some(now + delay));
                false
            }
        }
    }

    fn create_and_start(
        &mut self,
        init: bool,
        i: usize,
        now: Timestamp,
        resolved: &Resolved,
        out: &mut StepOut,
        ev: &dyn Fn(&mut StepOut, bool, &str, String),
    ) {
        self.container_seq += 1;
        let cid = format!(
            "containerd://{:016x}{:016x}{:08x}",
            self.rand(),
            self.rand(),
            self.container_seq
        );
        let pid = self.rand_range(7, 400) as u32;
        let c = self.ctr(init, i);
        let name = c.spec.name.clone();
        let image = c.image.clone().expect("checked by caller");
        let was_started_before = c.last.is_some()
            || c.restarts > 0
            || matches!(c.state, CState::Waiting { ref reason, .. } if reason == "CrashLoopBackOff");
        if was_started_before {
            c.restarts += 1;
        }
        let command: Vec<String> = c.spec.command.clone().unwrap_or_default();
        let args: Vec<String> = c.spec.args.clone().unwrap_or_default();
        let exe = command
            .first()
            .cloned()
            .or_else(|| image.commands.first().cloned())
            .unwrap_or_default();
        let exe_base = exe.rsplit('/').next().unwrap_or(&exe).to_string();
        ev(out, false, "Created", format!("Created container {name}"));
        if !command.is_empty()
            && !image.commands.is_empty()
            && !image.commands.iter().any(|k| k == &exe_base)
        {
            let msg = format!(
                "failed to create containerd task: failed to create shim task: OCI runtime create failed: runc create failed: unable to start container process: exec: \"{exe}\": executable file not found in $PATH: unknown"
            );
            ev(out, true, "Failed", format!("Error: {msg}"));
            let c = self.ctr(init, i);
            c.state = CState::Terminated(Terminated {
                reason: "StartError".into(),
                exit_code: 128,
                message: Some(msg),
                started: now,
                finished: now,
                container_id: cid,
            });
            out.logs.push(LogOut::NewInstance { container: name });
            return;
        }
        ev(out, false, "Started", format!("Started container {name}"));
        out.logs.push(LogOut::NewInstance {
            container: name.clone(),
        });
        let limit = c
            .spec
            .resources
            .as_ref()
            .and_then(|r| r.limits.as_ref())
            .and_then(|l| l.get("memory"))
            .and_then(|q| parse_memory(&q.0));
        let mut plan = PlannedPlan::default();
        let mut start_lines: Vec<String> = Vec::new();
        let long_running;
        if image.runtime == Runtime::Shell {
            let script = shell_script(&command, &args, &image);
            let (lines, secs, code) = interpret_shell(&script);
            start_lines = lines;
            long_running = secs.is_none();
            if let Some(s) = secs {
                plan.exit(
                    now + secs_dur(s + 0.05),
                    code,
                    if code == 0 { "Completed" } else { "Error" },
                    vec![],
                );
            }
        } else if let Some(run) = image.run.get(&exe_base) {
            long_running = false;
            plan.exit(
                now + secs_dur(run.seconds.max(0.05)),
                run.exit_code,
                if run.exit_code == 0 {
                    "Completed"
                } else {
                    "Error"
                },
                run.lines.clone(),
            );
        } else {
            long_running = true;
            start_lines = image.logs.start.clone();
            if let Some(missing) = image
                .requires_env
                .iter()
                .find(|v| !resolved.env.contains_key(*v))
            {
                plan.exit(
                    now + secs_dur(0.3),
                    1,
                    "Error",
                    missing_env_lines(image.runtime, missing),
                );
                start_lines.truncate(1);
            }
            if let Some(cr) = &image.crash {
                plan.exit(
                    now + secs_dur(cr.after_seconds.max(0.05)),
                    cr.exit_code,
                    "Error",
                    cr.lines.clone(),
                );
            }
        }
        // Memory: a limit below what the process uses kills it with OOMKilled.
        if let (Some(limit), Some(used)) = (limit, image.memory.as_deref().and_then(parse_memory)) {
            let mib = 1024.0 * 1024.0;
            let base_t = 0.5 + image.startup_seconds * 0.5;
            let t = if used >= limit {
                Some(base_t)
            } else if image.leak_mib_per_second > 0.0 {
                Some(base_t + (limit - used) / mib / image.leak_mib_per_second)
            } else {
                None
            };
            if let Some(t) = t {
                plan.exit(now + secs_dur(t), 137, "OOMKilled", vec![]);
            }
        }
        if long_running && image.logs.burst > 0 && !image.logs.lines.is_empty() {
            for k in 0..image.logs.burst {
                let text = self.pick_line(&image, &name, pid).join("\n");
                out.logs.push(LogOut::Line {
                    container: name.clone(),
                    at: now + SignedDuration::from_micros(k as i64),
                    text,
                });
            }
        }
        let seed_lines: Vec<String> = start_lines
            .iter()
            .map(|l| self.render(l, &name, pid))
            .collect();
        for (k, l) in seed_lines.into_iter().enumerate() {
            out.logs.push(LogOut::Line {
                container: name.clone(),
                at: now + SignedDuration::from_millis(k as i64),
                text: l,
            });
        }
        let c = self.ctr(init, i);
        let probe_start = |p: &Option<Probe>| ProbeState {
            next: p.as_ref().map(|p| {
                now + SignedDuration::from_secs(p.initial_delay_seconds.unwrap_or(0) as i64)
            }),
            ..Default::default()
        };
        let has_startup = c.spec.startup_probe.is_some();
        let inst = Instance {
            started: now,
            container_id: cid,
            listen_at: now + secs_dur(image.startup_seconds),
            exit: plan.0,
            next_log: (long_running
                && image.logs.every_seconds > 0.0
                && !image.logs.lines.is_empty())
            .then(|| now + secs_dur(image.logs.every_seconds)),
            pid,
            readiness: probe_start(&c.spec.readiness_probe),
            liveness: probe_start(&c.spec.liveness_probe),
            startup: probe_start(&c.spec.startup_probe),
            started_ok: !has_startup,
        };
        c.ready = c.spec.readiness_probe.is_none() && !init && inst.started_ok;
        c.state = CState::Running(Box::new(inst));
    }

    /// A running container: logs, probes, planned exit.
    fn run_step(
        &mut self,
        init: bool,
        i: usize,
        mut inst: Instance,
        now: Timestamp,
        out: &mut StepOut,
        ev: &dyn Fn(&mut StepOut, bool, &str, String),
    ) -> bool {
        let name = self.ctr(init, i).spec.name.clone();
        let image = self.ctr(init, i).image.clone().unwrap_or_default();
        let exit_at = inst.exit.as_ref().map(|e| e.at);
        let horizon = exit_at.map_or(now, |t| t.min(now));
        // Steady-state log lines up to the horizon.
        while let Some(t) = inst.next_log {
            if t > horizon {
                break;
            }
            for line in self.pick_line(&image, &name, inst.pid) {
                out.logs.push(LogOut::Line {
                    container: name.clone(),
                    at: t,
                    text: line,
                });
            }
            let jitter = 0.75 + (self.rand() % 500) as f64 / 1000.0;
            inst.next_log = Some(t + secs_dur(image.logs.every_seconds * jitter));
        }
        // Probes (only while the process lives).
        let mut kill: Option<(String, String)> = None;
        let listen_at = inst.listen_at;
        if exit_at.is_none_or(|t| t > now) {
            let spec = self.ctr(init, i).spec.clone();
            if !inst.started_ok {
                if let Some(p) = &spec.startup_probe {
                    match self.run_probe(p, &mut inst.startup, &spec, &image, listen_at, now) {
                        Some(Ok(())) if inst.startup.ok => inst.started_ok = true,
                        Some(Err(m)) => {
                            ev(out, true, "Unhealthy", format!("Startup probe failed: {m}"));
                            if inst.startup.failures >= p.failure_threshold.unwrap_or(3) {
                                kill = Some(("startup".into(), m));
                            }
                        }
                        _ => {}
                    }
                }
            }
            if inst.started_ok && kill.is_none() {
                if let Some(p) = &spec.liveness_probe {
                    if let Some(Err(m)) =
                        self.run_probe(p, &mut inst.liveness, &spec, &image, listen_at, now)
                    {
                        ev(
                            out,
                            true,
                            "Unhealthy",
                            format!("Liveness probe failed: {m}"),
                        );
                        if inst.liveness.failures >= p.failure_threshold.unwrap_or(3) {
                            kill = Some(("liveness".into(), m));
                        }
                    }
                }
                if let Some(p) = &spec.readiness_probe {
                    if let Some(Err(m)) =
                        self.run_probe(p, &mut inst.readiness, &spec, &image, listen_at, now)
                    {
                        ev(
                            out,
                            true,
                            "Unhealthy",
                            format!("Readiness probe failed: {m}"),
                        );
                    }
                    let ready = inst.readiness.ok;
                    self.ctr(init, i).ready = ready;
                } else if !init {
                    self.ctr(init, i).ready = true;
                }
            }
        }
        if let Some((which, _)) = kill {
            ev(
                out,
                false,
                "Killing",
                format!("Container {name} failed {which} probe, will be restarted"),
            );
            let shutdown = match image.runtime {
                Runtime::Python => vec![
                    "INFO:     Shutting down".to_string(),
                    "INFO:     Finished server process [{pid}]".to_string(),
                ],
                Runtime::Node => vec!["Received SIGTERM, shutting down".to_string()],
                _ => vec![],
            };
            for l in shutdown {
                let text = self.render(&l, &name, inst.pid);
                out.logs.push(LogOut::Line {
                    container: name.clone(),
                    at: now,
                    text,
                });
            }
            let c = self.ctr(init, i);
            c.ready = false;
            c.state = CState::Terminated(Terminated {
                reason: "Error".into(),
                exit_code: 137,
                message: None,
                started: inst.started,
                finished: now,
                container_id: inst.container_id,
            });
            return true;
        }
        if let Some(exit) = inst.exit.clone().filter(|e| e.at <= now) {
            let texts = exit.lines.clone();
            for (k, l) in texts.iter().enumerate() {
                let text = self.render(l, &name, inst.pid);
                out.logs.push(LogOut::Line {
                    container: name.clone(),
                    at: exit.at + SignedDuration::from_micros(k as i64),
                    text,
                });
            }
            let c = self.ctr(init, i);
            c.ready = false;
            c.state = CState::Terminated(Terminated {
                reason: exit.reason.into(),
                exit_code: exit.code,
                message: None,
                started: inst.started,
                finished: exit.at,
                container_id: inst.container_id,
            });
            return true;
        }
        let next = [
            inst.next_log,
            exit_at,
            inst.readiness.next,
            inst.liveness.next,
            (!inst.started_ok).then_some(inst.startup.next).flatten(),
        ]
        .into_iter()
        .flatten()
        .min();
        wake(out, next);
        self.ctr(init, i).state = CState::Running(Box::new(inst));
        false
    }

    /// Runs a probe if it is due: None = not due, Some(Ok) = passed, Some(Err(message)) = failed.
    fn run_probe(
        &mut self,
        p: &Probe,
        st: &mut ProbeState,
        spec: &Container,
        image: &Image,
        listen_at: Timestamp,
        now: Timestamp,
    ) -> Option<Result<(), String>> {
        let due = st.next?;
        if due > now {
            return None;
        }
        let period = SignedDuration::from_secs(p.period_seconds.unwrap_or(10).max(1) as i64);
        // Catch up to now without replaying missed periods.
        let mut next = due + period;
        while next <= now {
            next += period;
        }
        st.next = Some(next);
        let res = self.probe_result(p, spec, image, listen_at, now);
        match &res {
            Ok(()) => {
                st.failures = 0;
                st.successes += 1;
                if st.successes >= p.success_threshold.unwrap_or(1) {
                    st.ok = true;
                }
            }
            Err(_) => {
                st.successes = 0;
                st.failures += 1;
                if st.failures >= p.failure_threshold.unwrap_or(3) {
                    st.ok = false;
                }
            }
        }
        Some(res)
    }

    fn probe_result(
        &self,
        p: &Probe,
        spec: &Container,
        image: &Image,
        listen_at: Timestamp,
        now: Timestamp,
    ) -> Result<(), String> {
        let listening =
            |port: i32| listen_at <= now && image.ports.iter().any(|&q| q as i32 == port);
        let refused = |scheme: &str, port: i32, path: &str| {
            let url = if scheme.is_empty() {
                String::new()
            } else {
                format!("Get \"{scheme}://{}:{port}{path}\": ", self.pod_ip)
            };
            format!(
                "{url}dial tcp {}:{port}: connect: connection refused",
                self.pod_ip
            )
        };
        if let Some(h) = &p.http_get {
            let port = resolve_port(&h.port, spec).ok_or_else(|| {
                format!(
                    "port {:?} is not a named port of the container",
                    port_text(&h.port)
                )
            })?;
            let path = h.path.clone().unwrap_or_else(|| "/".into());
            let scheme = h
                .scheme
                .clone()
                .unwrap_or_else(|| "HTTP".into())
                .to_lowercase();
            if !listening(port) {
                return Err(refused(&scheme, port, &path));
            }
            let only_path = path.split('?').next().unwrap_or(&path);
            let code = image.http.get(only_path).copied().unwrap_or(404);
            if (200..400).contains(&code) {
                Ok(())
            } else {
                Err(format!("HTTP probe failed with statuscode: {code}"))
            }
        } else if let Some(t) = &p.tcp_socket {
            let port = resolve_port(&t.port, spec).ok_or_else(|| {
                format!(
                    "port {:?} is not a named port of the container",
                    port_text(&t.port)
                )
            })?;
            if listening(port) {
                Ok(())
            } else {
                Err(refused("", port, ""))
            }
        } else if let Some(g) = &p.grpc {
            if listening(g.port) {
                Ok(())
            } else {
                Err(format!(
                    "timeout: failed to connect service \"{}:{}\" within 1s",
                    self.pod_ip, g.port
                ))
            }
        } else if let Some(e) = &p.exec {
            let cmd = e.command.clone().unwrap_or_default();
            match cmd.first().map(String::as_str) {
                Some("false") => Err(String::new()),
                Some(x) if !image.commands.is_empty() && !image.commands.iter().any(|k| k == x) && !["sh", "/bin/sh", "cat", "test", "true"].contains(&x) => Err(format!(
                    "OCI runtime exec failed: exec failed: unable to start container process: exec: \"{x}\": executable file not found in $PATH: unknown"
                )),
                _ => Ok(()),
            }
        } else {
            Ok(())
        }
    }

    /// One steady-state log entry, picked by weight and rendered (several lines for a trace).
    fn pick_line(&mut self, image: &Image, container: &str, pid: u32) -> Vec<String> {
        let total: u64 = image
            .logs
            .lines
            .iter()
            .map(|l| l.weight as u64)
            .sum::<u64>()
            .max(1);
        let mut pick = self.rand() % total;
        let mut chosen = &image.logs.lines[0];
        for l in &image.logs.lines {
            if pick < l.weight as u64 {
                chosen = l;
                break;
            }
            pick -= l.weight as u64;
        }
        let texts: Vec<String> = chosen.text.lines().iter().map(|s| s.to_string()).collect();
        texts
            .iter()
            .map(|t| self.render(t, container, pid))
            .collect()
    }

    fn render(&mut self, template: &str, container: &str, pid: u32) -> String {
        let mut out = String::with_capacity(template.len() + 16);
        let mut rest = template;
        while let Some(open) = rest.find('{') {
            out.push_str(&rest[..open]);
            let after = &rest[open + 1..];
            let Some(close) = after.find('}') else {
                out.push_str(&rest[open..]);
                return out;
            };
            let key = &after[..close];
            let val = match key {
                "ip" => format!(
                    "10.244.{}.{}",
                    self.rand_range(0, 3),
                    self.rand_range(2, 250)
                ),
                "podip" => self.pod_ip.clone(),
                "port" => self.rand_range(32768, 60999).to_string(),
                "n" => self.rand_range(1, 999).to_string(),
                "id" => self.rand_range(1, 99999).to_string(),
                "ms" => format!("{}.{}", self.rand_range(1, 480), self.rand_range(0, 9)),
                "uuid" => {
                    let (a, b) = (self.rand(), self.rand());
                    format!(
                        "{:08x}-{:04x}-4{:03x}-a{:03x}-{:012x}",
                        a >> 32,
                        (a >> 16) & 0xffff,
                        a & 0xfff,
                        b >> 52,
                        b & 0xffff_ffff_ffff
                    )
                }
                "hex" => format!("{:012x}", self.rand() & 0xffff_ffff_ffff),
                "pid" => pid.to_string(),
                "pod" => self.name.clone(),
                "namespace" => self.namespace.clone(),
                "container" => container.to_string(),
                _ => {
                    out.push('{');
                    out.push_str(key);
                    out.push('}');
                    rest = &after[close + 1..];
                    continue;
                }
            };
            out.push_str(&val);
            rest = &after[close + 1..];
        }
        out.push_str(rest);
        out
    }

    /// The pod status this simulation shows now.
    pub fn status(&mut self, now: Timestamp) -> PodStatus {
        let inits_done = !self.inits_pending();
        let init_statuses: Vec<ContainerStatus> = self.inits.iter().map(ctr_status).collect();
        let app_statuses: Vec<ContainerStatus> = self.apps.iter().map(ctr_status).collect();
        let restart_never = self.restart_policy == "Never";
        let restart_on_failure = self.restart_policy == "OnFailure";
        let app_terminal = |c: &Ctr| match &c.state {
            CState::Terminated(t) => restart_never || (restart_on_failure && t.exit_code == 0),
            _ => false,
        };
        let init_failed = restart_never
            && self
                .inits
                .iter()
                .any(|c| matches!(&c.state, CState::Terminated(t) if t.exit_code != 0));
        let phase = if init_failed {
            "Failed"
        } else if !self.apps.is_empty() && self.apps.iter().all(app_terminal) {
            if self
                .apps
                .iter()
                .all(|c| matches!(&c.state, CState::Terminated(t) if t.exit_code == 0))
            {
                "Succeeded"
            } else {
                "Failed"
            }
        } else if inits_done
            && self.apps.iter().any(|c| {
                matches!(c.state, CState::Running(_) | CState::Terminated(_)) || c.last.is_some()
            })
        {
            "Running"
        } else {
            "Pending"
        };
        let unready: Vec<&str> = self
            .apps
            .iter()
            .filter(|c| !c.ready)
            .map(|c| c.spec.name.as_str())
            .collect();
        let incomplete: Vec<&str> = self
            .inits
            .iter()
            .filter(|c| !is_completed(c))
            .map(|c| c.spec.name.as_str())
            .collect();
        let all_ready = unready.is_empty() && phase == "Running";
        let mut conds = vec![];
        let init_msg = (!incomplete.is_empty()).then(|| {
            format!(
                "containers with incomplete status: [{}]",
                incomplete.join(" ")
            )
        });
        let unready_msg = (!unready.is_empty())
            .then(|| format!("containers with unready status: [{}]", unready.join(" ")));
        let ready_reason = if phase == "Succeeded" || phase == "Failed" {
            "PodCompleted"
        } else {
            "ContainersNotReady"
        };
        conds.push(self.cond(
            "Initialized",
            inits_done || phase == "Succeeded",
            now,
            (!inits_done).then_some("ContainersNotInitialized"),
            init_msg,
        ));
        conds.push(self.cond(
            "Ready",
            all_ready,
            now,
            (!all_ready).then_some(ready_reason),
            if all_ready { None } else { unready_msg.clone() },
        ));
        conds.push(self.cond(
            "ContainersReady",
            all_ready,
            now,
            (!all_ready).then_some(ready_reason),
            if all_ready { None } else { unready_msg },
        ));
        conds.push(self.cond("PodScheduled", true, now, None, None));
        PodStatus {
            phase: Some(phase.into()),
            conditions: Some(conds),
            host_ip: Some("127.0.0.1".into()),
            pod_ip: Some(self.pod_ip.clone()),
            pod_ips: Some(vec![PodIP {
                ip: self.pod_ip.clone(),
            }]),
            start_time: Some(Time(self.start)),
            init_container_statuses: (!init_statuses.is_empty()).then_some(init_statuses),
            container_statuses: Some(app_statuses),
            ..Default::default()
        }
    }

    fn cond(
        &mut self,
        kind: &str,
        ok: bool,
        now: Timestamp,
        reason: Option<&str>,
        message: Option<String>,
    ) -> PodCondition {
        let status = if ok { "True" } else { "False" }.to_string();
        let entry = self
            .conditions
            .entry(kind.to_string())
            .or_insert((status.clone(), now));
        if entry.0 != status {
            *entry = (status.clone(), now);
        }
        PodCondition {
            type_: kind.into(),
            status,
            last_transition_time: Some(Time(entry.1)),
            last_probe_time: None,
            reason: reason.map(str::to_string),
            message,
            ..Default::default()
        }
    }

    /// Stops every running container (pod deletion): returns Killing events.
    pub fn kill_all(&mut self, now: Timestamp) -> Vec<SimEvent> {
        let mut events = vec![];
        for c in self.inits.iter_mut().chain(self.apps.iter_mut()) {
            if let CState::Running(inst) = &c.state {
                let fp = format!(
                    "spec.{}{{{}}}",
                    if c.init {
                        "initContainers"
                    } else {
                        "containers"
                    },
                    c.spec.name
                );
                events.push(SimEvent {
                    warning: false,
                    reason: "Killing".into(),
                    message: format!("Stopping container {}", c.spec.name),
                    field_path: Some(fp),
                });
                c.state = CState::Terminated(Terminated {
                    reason: "Completed".into(),
                    exit_code: 0,
                    message: None,
                    started: inst.started,
                    finished: now,
                    container_id: inst.container_id.clone(),
                });
                c.ready = false;
            }
        }
        events
    }
}

#[derive(Default)]
struct PlannedPlan(Option<PlannedExit>);

impl PlannedPlan {
    /// Keeps the earliest planned exit.
    fn exit(&mut self, at: Timestamp, code: i32, reason: &'static str, lines: Vec<String>) {
        if self.0.as_ref().is_none_or(|e| at < e.at) {
            self.0 = Some(PlannedExit {
                at,
                code,
                reason,
                lines,
            });
        }
    }
}

fn is_completed(c: &Ctr) -> bool {
    matches!(&c.state, CState::Terminated(t) if t.exit_code == 0)
}

fn wake(out: &mut StepOut, t: Option<Timestamp>) {
    if let Some(t) = t {
        out.next_wake = Some(out.next_wake.map_or(t, |w| w.min(t)));
    }
}

fn secs_dur(s: f64) -> SignedDuration {
    SignedDuration::from_secs_f64(s.max(0.0))
}

fn backoff_for(tun: Tunables, failures: u32) -> SignedDuration {
    let mut d = tun.backoff_base;
    for _ in 1..failures {
        d = (d * 2).min(tun.backoff_cap);
    }
    d
}

/// `1s`, `2s`, `1m20s`, like Go's duration printing for whole seconds.
fn fmt_dur(d: SignedDuration) -> String {
    let s = d.as_secs();
    if s >= 60 {
        format!("{}m{}s", s / 60, s % 60)
    } else if s >= 1 {
        format!("{s}s")
    } else {
        format!("{}ms", d.as_millis())
    }
}

fn full_reference(r: &str) -> String {
    let with_tag = if r.rsplit('/').next().is_some_and(|l| l.contains(':')) {
        r.to_string()
    } else {
        format!("{r}:latest")
    };
    let first = with_tag.split('/').next().unwrap_or("");
    if !with_tag.contains('/') {
        format!("docker.io/library/{with_tag}")
    } else if first.contains('.') || first.contains(':') || first == "localhost" {
        with_tag
    } else {
        format!("docker.io/{with_tag}")
    }
}

fn image_id(r: &str) -> String {
    let h = r.bytes().fold(0xcbf29ce484222325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100000001b3)
    });
    let name = full_reference(r);
    let repo = name
        .rsplit_once(':')
        .map_or(name.as_str(), |(a, _)| a)
        .to_string();
    format!(
        "{repo}@sha256:{h:016x}{:016x}{:016x}{:016x}",
        h.rotate_left(13),
        h.rotate_left(29),
        h.rotate_left(41)
    )
}

fn port_text(p: &IntOrString) -> String {
    match p {
        IntOrString::Int(i) => i.to_string(),
        IntOrString::String(s) => s.clone(),
    }
}

fn resolve_port(p: &IntOrString, spec: &Container) -> Option<i32> {
    match p {
        IntOrString::Int(i) => Some(*i),
        IntOrString::String(s) => s.parse().ok().or_else(|| {
            spec.ports
                .iter()
                .flatten()
                .find(|cp| cp.name.as_deref() == Some(s.as_str()))
                .map(|cp| cp.container_port)
        }),
    }
}

fn ctr_status(c: &Ctr) -> ContainerStatus {
    let term = |t: &Terminated| ContainerState {
        terminated: Some(ContainerStateTerminated {
            reason: Some(t.reason.clone()),
            exit_code: t.exit_code,
            message: t.message.clone(),
            started_at: Some(Time(t.started)),
            finished_at: Some(Time(t.finished)),
            container_id: Some(t.container_id.clone()),
            signal: None,
        }),
        ..Default::default()
    };
    let (state, started, cid) = match &c.state {
        CState::Waiting {
            reason, message, ..
        } => (
            ContainerState {
                waiting: Some(ContainerStateWaiting {
                    reason: Some(reason.clone()),
                    message: message.clone(),
                }),
                ..Default::default()
            },
            false,
            c.last.as_ref().map(|t| t.container_id.clone()),
        ),
        CState::Pulling { .. } => (
            ContainerState {
                waiting: Some(ContainerStateWaiting {
                    reason: Some("ContainerCreating".into()),
                    message: None,
                }),
                ..Default::default()
            },
            false,
            None,
        ),
        CState::Running(i) => (
            ContainerState {
                running: Some(ContainerStateRunning {
                    started_at: Some(Time(i.started)),
                }),
                ..Default::default()
            },
            i.started_ok,
            Some(i.container_id.clone()),
        ),
        CState::Terminated(t) => (term(t), false, Some(t.container_id.clone())),
    };
    ContainerStatus {
        name: c.spec.name.clone(),
        image: c.spec.image.clone().unwrap_or_default(),
        image_id: c.image_id.clone(),
        container_id: cid,
        ready: c.ready,
        started: (!c.init).then_some(started),
        restart_count: c.restarts,
        state: Some(state),
        last_state: Some(c.last.as_ref().map(term).unwrap_or_default()),
        ..Default::default()
    }
}

fn missing_env_lines(rt: Runtime, var: &str) -> Vec<String> {
    let lines: Vec<String> = match rt {
        Runtime::Python => vec![
            "Traceback (most recent call last):".into(),
            "  File \"/app/main.py\", line 9, in <module>".into(),
            "    from app.config import settings".into(),
            "  File \"/app/app/config.py\", line 14, in <module>".into(),
            format!("    {} = os.environ[\"{var}\"]", var.to_lowercase()),
            "  File \"/usr/local/lib/python3.12/os.py\", line 714, in __getitem__".into(),
            "    raise KeyError(key) from None".into(),
            format!("KeyError: '{var}'"),
        ],
        Runtime::Node => vec![
            "/app/server.js:18".into(),
            "    throw new Error(`Missing required environment variable: ${name}`);".into(),
            "    ^".into(),
            String::new(),
            format!("Error: Missing required environment variable: {var}"),
            "    at requireEnv (/app/server.js:18:11)".into(),
            "    at Object.<anonymous> (/app/server.js:25:22)".into(),
            "    at Module._compile (node:internal/modules/cjs/loader:1358:14)".into(),
            String::new(),
            "Node.js v20.12.2".into(),
        ],
        Runtime::Go => vec![
            format!("panic: required environment variable {var} is not set"),
            String::new(),
            "goroutine 1 [running]:".into(),
            "main.mustEnv(...)".into(),
            "\t/src/cmd/server/main.go:31".into(),
            "main.main()".into(),
            "\t/src/cmd/server/main.go:44 +0x1d4".into(),
        ],
        Runtime::Nginx | Runtime::Shell => {
            vec![format!("error: environment variable {var} is not set")]
        }
    };
    lines
}

/// The script a busybox-like image runs: `sh -c SCRIPT`, or the command words themselves.
fn shell_script(command: &[String], args: &[String], image: &Image) -> String {
    let words: Vec<String> = command.iter().chain(args.iter()).cloned().collect();
    let words = if words.is_empty() {
        image.commands.first().cloned().into_iter().collect()
    } else {
        words
    };
    match words.as_slice() {
        [sh, flag, script, ..] if (sh.ends_with("sh")) && flag == "-c" => script.clone(),
        _ => words
            .iter()
            .map(|w| {
                if w.contains(' ') {
                    format!("'{w}'")
                } else {
                    w.clone()
                }
            })
            .collect::<Vec<_>>()
            .join(" "),
    }
}

/// Interprets a tiny shell: `echo`, `sleep N|infinity`, `exit N`, `true`, `false`, `while true`.
/// Returns the lines printed, the run time (None = runs forever) and the exit code.
fn interpret_shell(script: &str) -> (Vec<String>, Option<f64>, i32) {
    if script.contains("while true") || script.contains("tail -f") {
        let lines = script
            .split([';', '\n'])
            .filter_map(|s| s.trim().strip_prefix("echo ").map(unquote))
            .take(1)
            .collect();
        return (lines, None, 0);
    }
    let mut lines = vec![];
    let mut secs = 0.0;
    let mut code = 0;
    let trimmed = script.trim();
    if trimmed == "sh" || trimmed == "/bin/sh" || trimmed.is_empty() {
        return (lines, Some(0.0), 0);
    }
    for stmt in trimmed.split(';').flat_map(|s| s.split("&&")) {
        let stmt = stmt.trim();
        let mut parts = stmt.splitn(2, ' ');
        let cmd = parts.next().unwrap_or("");
        let arg = parts.next().unwrap_or("").trim();
        match cmd {
            "" => {}
            "echo" => lines.push(unquote(arg)),
            "sleep" => {
                if arg == "infinity" {
                    return (lines, None, 0);
                }
                secs += arg.trim_end_matches('s').parse::<f64>().unwrap_or(0.0);
            }
            "exit" => {
                code = arg.parse().unwrap_or(0);
                return (lines, Some(secs), code);
            }
            "false" => code = 1,
            "true" | ":" => code = 0,
            other => {
                lines.push(format!("sh: {other}: not found"));
                code = 127;
            }
        }
    }
    (lines, Some(secs), code)
}

fn unquote(s: &str) -> String {
    let s = s.trim();
    s.strip_prefix('"')
        .and_then(|x| x.strip_suffix('"'))
        .or_else(|| s.strip_prefix('\'').and_then(|x| x.strip_suffix('\'')))
        .unwrap_or(s)
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalogue::Catalogue;

    fn catalogue() -> Catalogue {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../images.yaml");
        Catalogue::load(&path).unwrap()
    }

    fn pod(yaml: &str) -> Pod {
        let mut p: Pod = serde_norway::from_str(yaml).unwrap();
        p.metadata.uid = Some("uid-1".into());
        p.metadata.namespace = Some("ns".into());
        p
    }

    fn sim(p: &Pod, inputs: Inputs) -> (PodSim, Timestamp) {
        let cat = catalogue();
        let t0: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let mut s = PodSim::new(
            p,
            |r| cat.lookup(r).cloned(),
            "10.244.0.9".into(),
            Tunables::default(),
            Default::default(),
            t0,
        );
        s.set_inputs(inputs);
        (s, t0)
    }

    /// Steps the simulation every 100 ms for `secs`, collecting events and logs.
    fn run(s: &mut PodSim, t0: Timestamp, secs: f64) -> (Vec<SimEvent>, Vec<LogOut>, PodStatus) {
        let mut events = vec![];
        let mut logs = vec![];
        let steps = (secs * 10.0) as i64;
        for k in 0..=steps {
            let o = s.step(t0 + SignedDuration::from_millis(k * 100));
            events.extend(o.events);
            logs.extend(o.logs);
        }
        (events, logs, s.status(t0 + secs_dur(secs)))
    }

    fn env(names: &[&str]) -> Resolved {
        Resolved {
            config_error: None,
            env: names
                .iter()
                .map(|n| (n.to_string(), "x".to_string()))
                .collect(),
        }
    }

    fn inputs(c: &str, r: Resolved) -> Inputs {
        Inputs {
            containers: [(c.to_string(), r)].into(),
            volume_error: None,
        }
    }

    fn waiting(st: &PodStatus) -> Option<String> {
        st.container_statuses.as_ref()?[0]
            .state
            .as_ref()?
            .waiting
            .as_ref()?
            .reason
            .clone()
    }

    #[test]
    fn healthy_web_image_becomes_ready_with_request_logs() {
        let p = pod("metadata: {name: web}\nspec:\n  containers:\n  - name: web\n    image: nginx:1.25\n    readinessProbe: {httpGet: {path: /, port: 80}, periodSeconds: 1}\n");
        let (mut s, t0) = sim(&p, inputs("web", env(&[])));
        let (events, logs, st) = run(&mut s, t0, 5.0);
        assert_eq!(st.phase.as_deref(), Some("Running"));
        let cs = &st.container_statuses.unwrap()[0];
        assert!(cs.ready, "{cs:?}");
        let reasons: Vec<_> = events.iter().map(|e| e.reason.as_str()).collect();
        assert_eq!(&reasons[..4], ["Pulling", "Pulled", "Created", "Started"]);
        assert!(
            logs.iter()
                .filter(|l| matches!(l, LogOut::Line { .. }))
                .count()
                > 2
        );
    }

    #[test]
    fn missing_env_crashes_with_a_traceback_and_backs_off() {
        let p = pod("metadata: {name: be}\nspec:\n  containers:\n  - name: backend\n    image: todo-backend:1.0.0\n");
        let (mut s, t0) = sim(&p, inputs("backend", env(&["BETTER_AUTH_SECRET"])));
        let (events, logs, st) = run(&mut s, t0, 6.0);
        let cs = &st.container_statuses.as_ref().unwrap()[0];
        assert!(cs.restart_count >= 1, "{cs:?}");
        let last = cs.last_state.as_ref().unwrap().terminated.as_ref().unwrap();
        assert_eq!(last.exit_code, 1);
        assert!(events.iter().any(|e| e.reason == "BackOff"));
        assert!(logs
            .iter()
            .any(|l| matches!(l, LogOut::Line { text, .. } if text == "KeyError: 'DATABASE_URL'")));
        // Between restarts the container shows CrashLoopBackOff.
        let mut saw = false;
        for k in 0..100 {
            s.step(t0 + secs_dur(6.0 + k as f64 * 0.05));
            if waiting(&s.status(t0)).as_deref() == Some("CrashLoopBackOff") {
                saw = true;
            }
        }
        assert!(saw);
    }

    #[test]
    fn unknown_image_goes_from_err_image_pull_to_back_off() {
        let p = pod("metadata: {name: x}\nspec:\n  containers:\n  - name: x\n    image: registry.example/nope:9\n");
        let (mut s, t0) = sim(&p, inputs("x", env(&[])));
        let o = s.step(t0);
        assert!(o.events.iter().any(|e| e
            .message
            .starts_with("Failed to pull image \"registry.example/nope:9\"")));
        assert_eq!(waiting(&s.status(t0)).as_deref(), Some("ErrImagePull"));
        s.step(t0 + secs_dur(1.1));
        assert_eq!(waiting(&s.status(t0)).as_deref(), Some("ImagePullBackOff"));
        assert_eq!(s.status(t0).phase.as_deref(), Some("Pending"));
    }

    #[test]
    fn config_error_blocks_until_inputs_are_fixed() {
        let p = pod(
            "metadata: {name: x}\nspec:\n  containers:\n  - name: web\n    image: nginx:1.25\n",
        );
        let bad = Resolved {
            config_error: Some("couldn't find key K in Secret ns/s".into()),
            env: Default::default(),
        };
        let (mut s, t0) = sim(&p, inputs("web", bad));
        run(&mut s, t0, 1.0);
        assert_eq!(
            waiting(&s.status(t0)).as_deref(),
            Some("CreateContainerConfigError")
        );
        assert!(s.blocked_on_inputs());
        s.set_inputs(inputs("web", env(&[])));
        s.step(t0 + secs_dur(1.5));
        assert!(s.status(t0).container_statuses.unwrap()[0]
            .state
            .as_ref()
            .unwrap()
            .running
            .is_some());
    }

    #[test]
    fn memory_limit_below_usage_is_oom_killed() {
        let p = pod("metadata: {name: x}\nspec:\n  containers:\n  - name: backend\n    image: todo-backend:1.0.0\n    resources: {limits: {memory: 64Mi}}\n");
        let (mut s, t0) = sim(
            &p,
            inputs(
                "backend",
                env(&["DATABASE_URL", "BETTER_AUTH_SECRET", "OPENAI_API_KEY"]),
            ),
        );
        let (_, _, st) = run(&mut s, t0, 4.0);
        let cs = &st.container_statuses.unwrap()[0];
        let t = cs
            .last_state
            .as_ref()
            .unwrap()
            .terminated
            .as_ref()
            .expect("terminated before");
        assert_eq!((t.reason.as_deref(), t.exit_code), (Some("OOMKilled"), 137));
    }

    #[test]
    fn wrong_readiness_path_keeps_the_pod_running_but_unready() {
        let p = pod("metadata: {name: x}\nspec:\n  containers:\n  - name: web\n    image: nginx:1.25\n    readinessProbe: {httpGet: {path: /nope, port: 80}, periodSeconds: 1}\n");
        let (mut s, t0) = sim(&p, inputs("web", env(&[])));
        let (events, _, st) = run(&mut s, t0, 5.0);
        assert_eq!(st.phase.as_deref(), Some("Running"));
        assert!(!st.container_statuses.unwrap()[0].ready);
        assert!(events.iter().any(|e| e.reason == "Unhealthy"
            && e.message == "Readiness probe failed: HTTP probe failed with statuscode: 404"));
    }

    #[test]
    fn failing_liveness_probe_kills_and_restarts() {
        let p = pod("metadata: {name: x}\nspec:\n  containers:\n  - name: web\n    image: nginx:1.25\n    livenessProbe: {httpGet: {path: /missing, port: 80}, periodSeconds: 1, failureThreshold: 2}\n");
        let (mut s, t0) = sim(&p, inputs("web", env(&[])));
        let (events, _, st) = run(&mut s, t0, 6.0);
        assert!(events
            .iter()
            .any(|e| e.reason == "Killing" && e.message.contains("failed liveness probe")));
        assert!(st.container_statuses.unwrap()[0].restart_count >= 1);
    }

    #[test]
    fn bad_command_is_a_start_error() {
        let p = pod("metadata: {name: x}\nspec:\n  containers:\n  - name: backend\n    image: todo-backend:1.0.0\n    command: [gunicorn-typo]\n");
        let (mut s, t0) = sim(&p, inputs("backend", env(&[])));
        let (events, _, st) = run(&mut s, t0, 2.0);
        assert!(events
            .iter()
            .any(|e| e.message.contains("executable file not found")));
        let cs = &st.container_statuses.unwrap()[0];
        let t = cs.last_state.as_ref().unwrap().terminated.as_ref().unwrap();
        assert_eq!(
            (t.reason.as_deref(), t.exit_code),
            (Some("StartError"), 128)
        );
    }

    #[test]
    fn failing_init_container_blocks_the_app_containers() {
        let p = pod("metadata: {name: x}\nspec:\n  initContainers:\n  - name: migrate\n    image: todo-backend:1.0.1-bad-migration\n    command: [alembic, upgrade, head]\n  containers:\n  - name: backend\n    image: todo-backend:1.0.1-bad-migration\n");
        let mut ins = inputs("backend", env(&["DATABASE_URL"]));
        ins.containers
            .insert("migrate".into(), env(&["DATABASE_URL"]));
        let (mut s, t0) = sim(&p, ins);
        let (_, logs, st) = run(&mut s, t0, 4.0);
        assert_eq!(st.phase.as_deref(), Some("Pending"));
        assert_eq!(waiting(&st).as_deref(), Some("PodInitializing"));
        let init = &st.init_container_statuses.unwrap()[0];
        assert!(init.restart_count >= 1);
        assert!(logs
            .iter()
            .any(|l| matches!(l, LogOut::Line { container, .. } if container == "migrate")));
    }

    #[test]
    fn job_style_pod_succeeds() {
        let p = pod("metadata: {name: x}\nspec:\n  restartPolicy: Never\n  containers:\n  - name: c\n    image: busybox:1.36\n    command: [sh, -c, 'echo done; exit 0']\n");
        let (mut s, t0) = sim(&p, inputs("c", env(&[])));
        let (_, logs, st) = run(&mut s, t0, 2.0);
        assert_eq!(st.phase.as_deref(), Some("Succeeded"));
        assert!(logs
            .iter()
            .any(|l| matches!(l, LogOut::Line { text, .. } if text == "done")));
    }

    #[test]
    fn missing_volume_keeps_container_creating_with_failed_mount() {
        let p = pod(
            "metadata: {name: x}\nspec:\n  containers:\n  - name: web\n    image: nginx:1.25\n",
        );
        let mut ins = inputs("web", env(&[]));
        ins.volume_error = Some(
            "MountVolume.SetUp failed for volume \"cfg\" : configmap \"cfg\" not found".into(),
        );
        let (mut s, t0) = sim(&p, ins);
        let (events, _, st) = run(&mut s, t0, 1.0);
        assert_eq!(waiting(&st).as_deref(), Some("ContainerCreating"));
        assert!(events.iter().any(|e| e.reason == "FailedMount"));
    }

    #[test]
    fn shell_interpreter_understands_echo_sleep_exit() {
        assert_eq!(
            interpret_shell("echo hi; sleep 2; exit 3"),
            (vec!["hi".to_string()], Some(2.0), 3)
        );
        assert_eq!(interpret_shell("sleep infinity").1, None);
        assert_eq!(interpret_shell("sh").1, Some(0.0));
    }
}
