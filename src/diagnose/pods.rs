//! Pod-level rows: crash loops (1), OOM (2), image pulls (3), missing config references (4),
//! stuck ContainerCreating (5), bad commands (6), init containers (7), readiness (8), liveness
//! (9), unschedulable (10), evicted (12), RBAC denied in logs (20), app-level faults (24).

use std::collections::HashMap;
use std::sync::OnceLock;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{
    Container, ContainerStateTerminated, ContainerStatus, Pod, PodSpec, Probe,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use regex::Regex;

use super::ctx::{
    clip, insight_steps, log_insight, look_steps, name_of, ns_of, LogInsight, Verdict,
};
use super::{CrashLoop, Ctx, Finding, ObjectRef, Row, Severity, Step};
use crate::tools::read::pod_status_at;

const IMAGE_PULL: [&str; 4] = [
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
    "ErrImageNeverPull",
];
/// A failed exit this recent (seconds) keeps a container "crash-looping" while it runs briefly.
const RECENT_FAILURE_SECS: i64 = 600;
/// Waiting in ContainerCreating / an init container running this long (seconds) is "stuck".
const STUCK_SECS: i64 = 300;

fn re(cell: &'static OnceLock<Regex>, pat: &str) -> &'static Regex {
    cell.get_or_init(|| Regex::new(pat).expect("built-in pattern"))
}

/// One pod being looked at.
struct PodView<'a> {
    p: &'a Pod,
    ns: &'a str,
    name: &'a str,
    owner: ObjectRef,
}

impl<'a> PodView<'a> {
    fn spec(&self) -> Option<&'a PodSpec> {
        self.p.spec.as_ref()
    }
    fn container(&self, name: &str, init: bool) -> Option<&'a Container> {
        let spec = self.spec()?;
        if init {
            spec.init_containers
                .as_ref()?
                .iter()
                .find(|c| c.name == name)
        } else {
            spec.containers.iter().find(|c| c.name == name)
        }
    }
    fn finding(&self, row: Row, sev: Severity) -> Finding {
        Finding::new(row, sev, self.owner.clone()).pod(self.name)
    }
}

fn last_termination(cs: &ContainerStatus) -> Option<&ContainerStateTerminated> {
    cs.state
        .as_ref()
        .and_then(|s| s.terminated.as_ref())
        .or_else(|| cs.last_state.as_ref().and_then(|s| s.terminated.as_ref()))
}

fn waiting(cs: &ContainerStatus) -> (Option<&str>, Option<&str>) {
    let w = cs.state.as_ref().and_then(|s| s.waiting.as_ref());
    (
        w.and_then(|w| w.reason.as_deref()),
        w.and_then(|w| w.message.as_deref()),
    )
}

fn term_failed(t: &ContainerStateTerminated) -> bool {
    t.exit_code != 0 || t.reason.as_deref() == Some("OOMKilled")
}

/// Crash-looping: in CrashLoopBackOff now, or restarting with failed exits in the last 10 minutes
/// (it is Running for a moment between restarts).
fn is_crash_looping(cs: &ContainerStatus, now: Timestamp) -> bool {
    if waiting(cs).0 == Some("CrashLoopBackOff") {
        return true;
    }
    cs.restart_count >= 2
        && last_termination(cs).is_some_and(|t| {
            term_failed(t)
                && t.finished_at
                    .as_ref()
                    .is_some_and(|f| now.duration_since(f.0).as_secs() < RECENT_FAILURE_SECS)
        })
}

fn term_text(t: &ContainerStateTerminated, now: Timestamp) -> String {
    format!(
        "{} exit {} ({} ago)",
        t.reason.as_deref().unwrap_or("Terminated"),
        t.exit_code,
        super::ctx::ago(t.finished_at.as_ref().map(|f| f.0), now)
    )
}

fn exit_meaning(code: i32) -> &'static str {
    match code {
        0 => "the process exits successfully but a container must keep running",
        1 => "the application exits with an error",
        2 => "the program was misused (bad arguments)",
        126 => "the command is not executable",
        127 => "the command was not found",
        128 => "the container could not start its command",
        134 => "the process aborted (SIGABRT)",
        137 => "the process was killed (SIGKILL: out of memory or a failed liveness probe)",
        139 => "the process crashed (segmentation fault)",
        143 => "the process was terminated (SIGTERM)",
        _ => "the process exits with an error",
    }
}

/// `back-off 5m0s restarting failed container=…` → `5m0s`.
fn back_off(msg: Option<&str>) -> Option<String> {
    let rest = msg?.split("back-off ").nth(1)?;
    rest.split_whitespace().next().map(str::to_string)
}

/// Memory quantities: `128Mi` → bytes.
pub(crate) fn parse_mem(q: &str) -> Option<f64> {
    let q = q.trim();
    let split = q
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(q.len());
    let (num, unit) = q.split_at(split);
    let n: f64 = num.parse().ok()?;
    let mult: f64 = match unit {
        "" => 1.0,
        "k" | "K" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "Ki" => 1024.0,
        "Mi" => 1024.0 * 1024.0,
        "Gi" => 1024.0 * 1024.0 * 1024.0,
        "Ti" => 1024.0f64.powi(4),
        _ => return None,
    };
    Some(n * mult)
}

/// Twice a memory quantity, in the same unit: `128Mi` → `256Mi`.
pub(crate) fn double_quantity(q: &str) -> Option<String> {
    let q = q.trim();
    parse_mem(q)?;
    let split = q
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(q.len());
    let (num, unit) = q.split_at(split);
    let n: f64 = num.parse().ok()?;
    let d = n * 2.0;
    let num = if d.fract() == 0.0 {
        format!("{}", d as i64)
    } else {
        format!("{d}")
    };
    Some(format!("{num}{unit}"))
}

fn memory_limit(c: Option<&Container>) -> Option<String> {
    c?.resources
        .as_ref()?
        .limits
        .as_ref()?
        .get("memory")
        .map(|q| q.0.clone())
}

fn probe_text(p: &Probe) -> String {
    let what = if let Some(h) = &p.http_get {
        format!(
            "httpGet {}:{}",
            h.path.as_deref().unwrap_or("/"),
            port_text(&h.port)
        )
    } else if let Some(t) = &p.tcp_socket {
        format!("tcpSocket :{}", port_text(&t.port))
    } else if let Some(g) = &p.grpc {
        format!("grpc :{}", g.port)
    } else if let Some(e) = &p.exec {
        format!("exec {}", e.command.clone().unwrap_or_default().join(" "))
    } else {
        "?".into()
    };
    format!(
        "{what} (initialDelay {}s, period {}s, failureThreshold {})",
        p.initial_delay_seconds.unwrap_or(0),
        p.period_seconds.unwrap_or(10),
        p.failure_threshold.unwrap_or(3)
    )
}

pub(crate) fn port_text(p: &IntOrString) -> String {
    match p {
        IntOrString::Int(i) => i.to_string(),
        IntOrString::String(s) => s.clone(),
    }
}

/// `8000/http, 9090` — the ports a container declares.
pub(crate) fn container_ports(c: Option<&Container>) -> String {
    let ports: Vec<String> = c
        .and_then(|c| c.ports.as_ref())
        .into_iter()
        .flatten()
        .map(|p| match &p.name {
            Some(n) => format!("{}/{n}", p.container_port),
            None => p.container_port.to_string(),
        })
        .collect();
    if ports.is_empty() {
        "none declared".into()
    } else {
        ports.join(", ")
    }
}

// ------------------------------------------------------------------------------ the pod pass

/// Rows 1–10 and 24, per container of every pod; grouped per workload later.
pub(crate) fn pod_findings(ctx: &Ctx) -> Vec<Finding> {
    let mut out = vec![];
    let mut insights: HashMap<(ObjectRef, String, bool), LogInsight> = HashMap::new();
    let mut verdicts: HashMap<ObjectRef, Option<Verdict>> = HashMap::new();
    for p in &ctx.snap.pods {
        let st = p.status.clone().unwrap_or_default();
        if p.metadata.deletion_timestamp.is_some()
            || st.phase.as_deref() == Some("Succeeded")
            || st.reason.as_deref() == Some("Evicted")
        {
            continue;
        }
        let v = PodView {
            p,
            ns: ns_of(&p.metadata),
            name: name_of(&p.metadata),
            owner: ctx.owner_of(p),
        };
        let verdict = verdicts
            .entry(v.owner.clone())
            .or_insert_with(|| ctx.verdict(&v.owner))
            .clone();
        let mut pc = PodCheck {
            ctx,
            v: &v,
            verdict: verdict.as_ref(),
            insights: &mut insights,
            out: &mut out,
        };
        if pc.unschedulable() {
            continue;
        }
        let mut blocked = false;
        for cs in st.init_container_statuses.iter().flatten() {
            blocked |= pc.container(cs, true);
        }
        if blocked {
            continue;
        }
        let mut creating = false;
        let before = pc.out.len();
        for cs in st.container_statuses.iter().flatten() {
            if waiting(cs).0 == Some("ContainerCreating") {
                creating = true;
                continue;
            }
            pc.container(cs, false);
        }
        // a Pending pod whose containers already explain it (image pull, config) is not "stuck"
        if (creating || st.phase.as_deref() == Some("Pending")) && pc.out.len() == before {
            pc.stuck_creating();
        }
    }
    out
}

struct PodCheck<'c, 'a> {
    ctx: &'c Ctx<'a>,
    v: &'c PodView<'a>,
    verdict: Option<&'c Verdict>,
    insights: &'c mut HashMap<(ObjectRef, String, bool), LogInsight>,
    out: &'c mut Vec<Finding>,
}

impl PodCheck<'_, '_> {
    fn now(&self) -> Timestamp {
        self.ctx.now
    }

    fn undo(&self) -> Vec<Step> {
        self.verdict
            .map(|vd| self.ctx.undo_steps(&self.v.owner, vd))
            .unwrap_or_default()
    }

    fn started_with_revision(&self) -> bool {
        self.verdict.is_some_and(|vd| vd.started_with_current)
    }

    fn look(&self, previous: bool) -> Vec<Step> {
        look_steps(&self.v.owner, Some(self.v.name), previous)
    }

    /// The log insight for a container of this workload (computed once per workload + container).
    fn insight(&mut self, container: &str, previous: bool) -> LogInsight {
        let key = (self.v.owner.clone(), container.to_string(), previous);
        if let Some(i) = self.insights.get(&key) {
            return i.clone();
        }
        let log = if previous {
            self.ctx.previous_log(self.v.ns, self.v.name, container)
        } else {
            self.ctx.current_log(self.v.ns, self.v.name, container)
        };
        match log {
            Some(l) => {
                let i = log_insight(l);
                self.insights.insert(key, i.clone());
                i
            }
            None => LogInsight::default(),
        }
    }

    fn pod_events(&self, reasons: &[&str]) -> Vec<String> {
        self.ctx
            .event_evidence("Pod", self.v.ns, self.v.name, reasons)
    }

    /// Returns true when the container blocks the pod (an init container not done).
    fn container(&mut self, cs: &ContainerStatus, init: bool) -> bool {
        let now = self.now();
        let (reason, msg) = waiting(cs);
        let term = last_termination(cs);
        let spec = self.v.container(&cs.name, init);
        let what = if init { "init container" } else { "container" };
        if let Some(r) = reason.filter(|r| IMAGE_PULL.contains(r)) {
            self.image_pull(cs, r, msg, spec, what);
            return true;
        }
        if reason == Some("CreateContainerConfigError") {
            self.config_ref(cs, msg, spec, what);
            return true;
        }
        let start_error = term.is_some_and(|t| {
            matches!(
                t.reason.as_deref(),
                Some("StartError" | "ContainerCannotRun")
            ) || t
                .message
                .as_deref()
                .is_some_and(|m| m.contains("executable file not found"))
        });
        if matches!(reason, Some("RunContainerError" | "CreateContainerError"))
            || (start_error && (is_crash_looping(cs, now) || cs.restart_count > 0))
        {
            self.bad_command(cs, reason, msg, term, spec, what);
            return true;
        }
        if term.is_some_and(|t| t.reason.as_deref() == Some("OOMKilled")) {
            self.oom(cs, spec, init);
            return init;
        }
        if init {
            return self.init(cs, spec);
        }
        if cs.restart_count > 0 && self.liveness(cs, spec) {
            return false;
        }
        if is_crash_looping(cs, now) {
            self.crash_loop(cs, spec, Row::CrashLoop, what);
            return false;
        }
        let running = cs.state.as_ref().is_some_and(|s| s.running.is_some());
        if running && !cs.ready {
            self.readiness(cs, spec);
        }
        false
    }

    // ---------------------------------------------------------------------------- row 1

    fn crash_loop(
        &mut self,
        cs: &ContainerStatus,
        spec: Option<&k8s_openapi::api::core::v1::Container>,
        row: Row,
        what: &str,
    ) {
        let now = self.now();
        let (reason, msg) = waiting(cs);
        let term = last_termination(cs);
        let ins = self.insight(&cs.name, true);
        let exit = term.map(|t| t.exit_code);
        let summary = format!(
            "{what} {} is crash-looping: {}, {} restarts",
            cs.name,
            term.map(|t| format!(
                "exit {} ({})",
                t.exit_code,
                t.reason.as_deref().unwrap_or("Error")
            ))
            .unwrap_or_else(|| "exits".into()),
            cs.restart_count
        );
        let cause = ins.cause.clone().unwrap_or_else(|| {
            format!(
                "{} (exit {}); the previous instance's log was not available",
                exit_meaning(exit.unwrap_or(1)),
                exit.unwrap_or(1)
            )
        });
        let mut f = self
            .v
            .finding(row, Severity::Critical)
            .summary(summary)
            .cause(cause);
        if let Some(t) = term {
            f = f.evidence(format!("lastState.terminated = {}", term_text(t, now)));
        }
        f = f.evidence(match back_off(msg) {
            Some(b) => format!("restartCount = {}, back-off = {b}", cs.restart_count),
            None => format!("restartCount = {}", cs.restart_count),
        });
        f = f.evidence_all(self.pod_events(&["BackOff"]));
        if let Some(r) = reason {
            f = f.evidence(format!("state.waiting.reason = {r}"));
        }
        if let Some(c) = spec.and_then(|c| c.image.as_ref()) {
            f = f.evidence(format!("image = {c}"));
        }
        f = f.evidence_all(ins.excerpt.clone());
        let since = self
            .ctx
            .event_groups("Pod", self.v.ns, self.v.name)
            .iter()
            .find(|g| g.reason == "BackOff")
            .and_then(|g| g.first)
            .or(term.and_then(|t| t.started_at.as_ref().map(|s| s.0)));
        f = f.since(since);
        if let Some(l) = self.verdict.and_then(|vd| vd.cleared_line()) {
            f = f.evidence(l);
        }
        if self.started_with_revision() {
            f = f.steps(self.undo());
        }
        f = f.steps(insight_steps(&ins, &cs.name));
        if ins.cause.is_none() && !self.started_with_revision() {
            f = f.step(Step::manual(
                format!(
                    "fix the configuration or command of container {} (read its previous logs)",
                    cs.name
                ),
                "the container keeps exiting",
            ));
        }
        f = f.steps(self.look(true));
        self.out.push(f);
    }

    // ---------------------------------------------------------------------------- row 2

    fn oom(&mut self, cs: &ContainerStatus, spec: Option<&Container>, init: bool) {
        let now = self.now();
        let Some(t) = last_termination(cs) else {
            return;
        };
        let looping = is_crash_looping(cs, now);
        let finished = t.finished_at.as_ref().map(|f| f.0);
        let recent = finished.is_none_or(|f| now.duration_since(f).as_secs() < 3600);
        let sev = if looping {
            Severity::Critical
        } else if recent || cs.restart_count >= 2 {
            Severity::Warning
        } else {
            Severity::Info
        };
        let limit = memory_limit(spec);
        let suggested = limit.as_deref().and_then(double_quantity);
        let state = if looping {
            "is crash-looping, killed for memory"
        } else {
            "was OOM-killed and is running again"
        };
        let mut f = self
            .v
            .finding(Row::OomKilled, sev)
            .summary(format!(
                "container {} {state} ({} restarts, limit {})",
                cs.name,
                cs.restart_count,
                limit.as_deref().unwrap_or("none")
            ))
            .since(finished)
            .evidence(format!("lastState.terminated = {}", term_text(t, now)))
            .evidence(format!("restartCount = {}", cs.restart_count))
            .evidence(format!(
                "resources.limits.memory = {}",
                limit.as_deref().unwrap_or("(none)")
            ));
        let lowered = self.verdict.filter(|vd| {
            vd.started_with_current
                && vd
                    .changes
                    .iter()
                    .any(|c| c.to_lowercase().contains("memory"))
        });
        f = match (&limit, &suggested) {
            (Some(l), Some(s)) => f.cause(format!(
                "the process needs more memory than its limit {l}"
            ))
            .step(Step::manual(
                format!(
                    "raise resources.limits.memory of container {} from {l} to {s} (and requests.memory accordingly) in the {} pod template",
                    cs.name, self.v.owner.kind
                ),
                "the container is killed when it exceeds its memory limit",
            )),
            _ => f
                .cause("the node ran out of memory or the container has no memory limit")
                .step(Step::manual(
                    format!(
                        "set resources.requests/limits.memory of container {} to what it uses at peak",
                        cs.name
                    ),
                    "without a limit the container is killed under node memory pressure",
                )),
        };
        if let Some(vd) = lowered {
            let undo = self.ctx.undo_steps(&self.v.owner, vd);
            let mut steps = undo;
            steps.append(&mut f.remediation);
            f.remediation = steps;
            f = f.evidence(format!(
                "revision {} changed: {}",
                vd.current,
                vd.changes.join("; ")
            ));
        }
        if looping || init {
            f = f.evidence_all(self.insight(&cs.name, true).excerpt);
        }
        self.out.push(f);
    }

    // ---------------------------------------------------------------------------- row 3

    fn image_pull(
        &mut self,
        cs: &ContainerStatus,
        reason: &str,
        msg: Option<&str>,
        spec: Option<&Container>,
        what: &str,
    ) {
        let image = spec
            .and_then(|c| c.image.clone())
            .unwrap_or_else(|| cs.image.clone());
        let good = self.verdict.and_then(|vd| vd.target_image(&cs.name));
        let mut f = self
            .v
            .finding(Row::ImagePull, Severity::Critical)
            .summary(format!(
                "{what} {} cannot pull image {image} ({reason})",
                cs.name
            ))
            .cause(match msg {
                Some(m) if m.contains("not found") || m.contains("manifest unknown") => {
                    format!("image {image} does not exist (wrong tag or name)")
                }
                Some(m) if m.contains("unauthorized") || m.contains("denied") => {
                    format!(
                        "the registry refuses to serve {image} (credentials / imagePullSecrets)"
                    )
                }
                _ => format!("image {image} cannot be pulled"),
            })
            .evidence(format!("state.waiting.reason = {reason}"))
            .evidence(format!("image = {image}"));
        if let Some(m) = msg {
            f = f.evidence(format!("state.waiting.message = {}", clip(m, 160)));
        }
        f = f.evidence_all(self.pod_events(&["Failed", "BackOff"]));
        if let Some(g) = &good {
            f = f.evidence(format!("last working image = {g}"));
        }
        if self.started_with_revision() {
            f = f.steps(self.undo());
        }
        f = f.step(Step::manual(
            match &good {
                Some(g) => format!(
                    "fix the image of container {}: {image} → {g} (or a tag that exists)",
                    cs.name
                ),
                None => format!(
                    "fix the image name/tag of container {} ({image}) or add imagePullSecrets",
                    cs.name
                ),
            },
            "the kubelet cannot pull the image",
        ));
        self.out.push(f);
    }

    // ---------------------------------------------------------------------------- row 4

    fn config_ref(
        &mut self,
        cs: &ContainerStatus,
        msg: Option<&str>,
        spec: Option<&Container>,
        what: &str,
    ) {
        static MISSING: OnceLock<Regex> = OnceLock::new();
        static KEY: OnceLock<Regex> = OnceLock::new();
        let missing = re(&MISSING, r#"(configmap|secret) "([^"]+)" not found"#);
        let key_re = re(
            &KEY,
            r"couldn't find key (\S+) in (ConfigMap|Secret) (?:([^/\s]+)/)?(\S+)",
        );
        let m = msg.unwrap_or_default();
        // (kind, name, key)
        let refd: Option<(String, String, Option<String>)> = if let Some(c) = key_re.captures(m) {
            Some((c[2].to_string(), c[4].to_string(), Some(c[1].to_string())))
        } else {
            missing.captures(m).map(|c| {
                let kind = if &c[1] == "configmap" {
                    "ConfigMap"
                } else {
                    "Secret"
                };
                (kind.to_string(), c[2].to_string(), None)
            })
        };
        let refd = refd.or_else(|| self.missing_env_ref(spec));
        let mut f = self
            .v
            .finding(Row::ConfigRefMissing, Severity::Critical)
            .evidence("state.waiting.reason = CreateContainerConfigError");
        if !m.is_empty() {
            f = f.evidence(format!("state.waiting.message = {}", clip(m, 160)));
        }
        match refd {
            Some((kind, name, key)) => {
                let exists = self.keys_of(&kind, &name);
                let env_names = env_vars_referencing(spec, &kind, &name, key.as_deref());
                let envs = if env_names.is_empty() {
                    String::new()
                } else {
                    format!(" (env {})", env_names.join(", "))
                };
                let (state, action) = match (&exists, &key) {
                    (Known::Missing, _) => (
                        format!("{kind} {name} does not exist in namespace {}", self.v.ns),
                        format!("create {kind} {name} in namespace {}{}, or fix the reference{envs}", self.v.ns,
                            key.as_ref().map(|k| format!(" with key {k}")).unwrap_or_default()),
                    ),
                    (Known::Keys(keys), Some(k)) => (
                        format!("{kind} {name} exists but has no key {k} (keys: {})", if keys.is_empty() { "none".to_string() } else { keys.join(", ") }),
                        format!("add key {k} to {kind} {name}, or fix the key referenced{envs}"),
                    ),
                    (Known::Keys(_), None) => (
                        format!("{kind} {name} exists now (it was missing when the container was created)"),
                        format!("delete the pod so it is recreated with {kind} {name}"),
                    ),
                    (Known::Unknown, _) => (
                        format!("{kind} {name}{} is referenced but could not be checked ({kind} not readable)", key.as_ref().map(|k| format!(" key {k}")).unwrap_or_default()),
                        format!("create {kind} {name}{} or fix the reference{envs}", key.as_ref().map(|k| format!(" with key {k}")).unwrap_or_default()),
                    ),
                };
                f = f
                    .summary(format!(
                        "{what} {} cannot start: {kind} {name}{} missing",
                        cs.name,
                        key.as_ref()
                            .map(|k| format!(" key {k}"))
                            .unwrap_or_default()
                    ))
                    .cause(state.clone())
                    .evidence(state)
                    .step(Step::manual(action, "the container's env references it"));
            }
            None => {
                f = f
                    .summary(format!(
                        "{what} {} cannot be created: a config reference is missing",
                        cs.name
                    ))
                    .cause(if m.is_empty() {
                        "a ConfigMap/Secret the container references is missing".to_string()
                    } else {
                        clip(m, 160)
                    })
                    .step(Step::manual(
                        "create the referenced ConfigMap/Secret or fix the reference",
                        "the container's env references it",
                    ));
            }
        }
        f = f.evidence_all(self.pod_events(&["Failed"]));
        if self.started_with_revision() {
            f = f.steps(self.undo());
        }
        self.out.push(f);
    }

    /// The first env/envFrom reference (not optional) to a ConfigMap/Secret or key that the
    /// snapshot shows missing.
    fn missing_env_ref(
        &self,
        spec: Option<&Container>,
    ) -> Option<(String, String, Option<String>)> {
        let c = spec?;
        for e in c.env.iter().flatten() {
            let Some(vf) = &e.value_from else { continue };
            let refs = [
                vf.config_map_key_ref
                    .as_ref()
                    .filter(|r| r.optional != Some(true))
                    .map(|r| ("ConfigMap", r.name.clone(), r.key.clone())),
                vf.secret_key_ref
                    .as_ref()
                    .filter(|r| r.optional != Some(true))
                    .map(|r| ("Secret", r.name.clone(), r.key.clone())),
            ];
            for (kind, name, key) in refs.into_iter().flatten() {
                match self.keys_of(kind, &name) {
                    Known::Missing => return Some((kind.into(), name, Some(key))),
                    Known::Keys(k) if !k.contains(&key) => {
                        return Some((kind.into(), name, Some(key)))
                    }
                    _ => {}
                }
            }
        }
        for ef in c.env_from.iter().flatten() {
            let refs = [
                ef.config_map_ref
                    .as_ref()
                    .filter(|r| r.optional != Some(true))
                    .map(|r| ("ConfigMap", r.name.clone())),
                ef.secret_ref
                    .as_ref()
                    .filter(|r| r.optional != Some(true))
                    .map(|r| ("Secret", r.name.clone())),
            ];
            for (kind, name) in refs.into_iter().flatten() {
                if matches!(self.keys_of(kind, &name), Known::Missing) {
                    return Some((kind.into(), name, None));
                }
            }
        }
        None
    }

    fn keys_of(&self, kind: &str, name: &str) -> Known {
        let (list, kinds): (&[super::KeysOnly], &[&str]) = if kind.eq_ignore_ascii_case("secret") {
            (&self.ctx.snap.secrets, &["secrets", "secret"])
        } else {
            (&self.ctx.snap.config_maps, &["configmaps", "configmap"])
        };
        if self.ctx.blind(kinds) {
            return Known::Unknown;
        }
        match list
            .iter()
            .find(|k| k.namespace == self.v.ns && k.name == name)
        {
            Some(k) => Known::Keys(k.keys.clone()),
            None => Known::Missing,
        }
    }

    // ---------------------------------------------------------------------------- row 5

    fn stuck_creating(&mut self) {
        let now = self.now();
        let p = self.v.p;
        let st = p.status.clone().unwrap_or_default();
        let scheduled = st
            .conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == "PodScheduled" && c.status == "True");
        let Some(scheduled) = scheduled else {
            return;
        };
        let since = scheduled.last_transition_time.as_ref().map(|t| t.0).or(p
            .metadata
            .creation_timestamp
            .as_ref()
            .map(|t| t.0));
        let long = since.is_none_or(|s| now.duration_since(s).as_secs() > STUCK_SECS);
        let groups = self.ctx.event_groups("Pod", self.v.ns, self.v.name);
        let mount = groups.iter().find(|g| {
            matches!(
                g.reason.as_str(),
                "FailedMount" | "FailedAttachVolume" | "FailedCreatePodSandBox"
            )
        });
        if mount.is_none() && !long {
            return;
        }
        // volumes that reference what does not exist
        let mut missing: Vec<String> = vec![];
        for vol in p
            .spec
            .as_ref()
            .and_then(|s| s.volumes.as_ref())
            .into_iter()
            .flatten()
        {
            if let Some(cm) = vol.config_map.as_ref().filter(|c| c.optional != Some(true)) {
                if matches!(self.keys_of("ConfigMap", &cm.name), Known::Missing) {
                    missing.push(format!("ConfigMap {} (volume {})", cm.name, vol.name));
                }
            }
            if let Some(s) = vol.secret.as_ref().filter(|c| c.optional != Some(true)) {
                let name = s.secret_name.clone().unwrap_or_default();
                if matches!(self.keys_of("Secret", &name), Known::Missing) {
                    missing.push(format!("Secret {name} (volume {})", vol.name));
                }
            }
            if let Some(c) = &vol.persistent_volume_claim {
                if !self.ctx.blind(&["persistentvolumeclaims", "pvc"])
                    && !self.ctx.snap.pvcs.iter().any(|x| {
                        ns_of(&x.metadata) == self.v.ns && name_of(&x.metadata) == c.claim_name
                    })
                {
                    missing.push(format!(
                        "PersistentVolumeClaim {} (volume {})",
                        c.claim_name, vol.name
                    ));
                }
            }
        }
        let phase = st.phase.clone().unwrap_or_default();
        let mut f = self
            .v
            .finding(Row::StuckCreating, Severity::Critical)
            .since(since)
            .evidence(format!(
                "status.phase = {phase}, containers waiting ContainerCreating for {}",
                self.ctx.ago(since)
            ))
            .evidence_all(self.pod_events(&[
                "FailedMount",
                "FailedAttachVolume",
                "FailedCreatePodSandBox",
            ]));
        let sandbox = mount.is_some_and(|g| g.reason == "FailedCreatePodSandBox");
        if !missing.is_empty() {
            f = f
                .summary(format!(
                    "pod stuck in ContainerCreating: missing {}",
                    missing.join(", ")
                ))
                .cause(format!(
                    "a volume references what does not exist: {}",
                    missing.join(", ")
                ))
                .step(Step::manual(
                    format!(
                        "create {} in namespace {} (or fix the volume reference)",
                        missing.join(", "),
                        self.v.ns
                    ),
                    "the kubelet cannot mount the volume",
                ));
        } else if let Some(g) = mount {
            f = f
                .summary(format!("pod stuck in ContainerCreating: {}", g.reason))
                .cause(if sandbox {
                    format!(
                        "the pod sandbox cannot be created (network/runtime): {}",
                        clip(&g.message, 140)
                    )
                } else {
                    format!("a volume cannot be mounted: {}", clip(&g.message, 140))
                })
                .step(Step::manual(
                    if sandbox {
                        "check the node's CNI/runtime (events name the node)".to_string()
                    } else {
                        "create what the FailedMount event names, or fix the volume".to_string()
                    },
                    "the pod cannot start until it is fixed",
                ));
        } else {
            f = f
                .summary(format!(
                    "pod stuck in ContainerCreating for {}",
                    self.ctx.ago(since)
                ))
                .cause(
                    "the container has not been created for a long time (volume, image or runtime)",
                )
                .steps(self.look(false).into_iter().skip(1));
        }
        self.out.push(f);
    }

    // ---------------------------------------------------------------------------- row 6

    fn bad_command(
        &mut self,
        cs: &ContainerStatus,
        reason: Option<&str>,
        msg: Option<&str>,
        term: Option<&ContainerStateTerminated>,
        spec: Option<&Container>,
        what: &str,
    ) {
        let now = self.now();
        // A back-off message only says the container is restarted; the last termination's
        // message says why it could not start.
        let backoff = msg.is_some_and(|m| m.to_ascii_lowercase().starts_with("back-off"));
        let message = msg
            .filter(|_| !backoff)
            .map(str::to_string)
            .or_else(|| term.and_then(|t| t.message.clone()))
            .or_else(|| msg.map(str::to_string))
            .unwrap_or_default();
        let cmd: Vec<String> = spec
            .map(|c| {
                c.command
                    .iter()
                    .flatten()
                    .chain(c.args.iter().flatten())
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        let mut f = self
            .v
            .finding(Row::BadCommand, Severity::Critical)
            .summary(format!("{what} {} cannot run its command", cs.name))
            .cause(
                if message.contains("executable file not found") || message.contains("no such file")
                {
                    format!(
                        "the command {} does not exist in the image",
                        cmd.first().map(String::as_str).unwrap_or("(image default)")
                    )
                } else {
                    format!(
                        "the runtime cannot start the container: {}",
                        clip(&message, 140)
                    )
                },
            );
        if let Some(r) = reason {
            f = f.evidence(format!("state.waiting.reason = {r}"));
        }
        if let Some(t) = term {
            f = f.evidence(format!("lastState.terminated = {}", term_text(t, now)));
        }
        if !message.is_empty() {
            f = f.evidence(format!("message = {}", clip(&message, 160)));
        }
        f = f.evidence(format!(
            "command = {}",
            if cmd.is_empty() {
                "(image default)".to_string()
            } else {
                cmd.join(" ")
            }
        ));
        f = f.evidence_all(self.pod_events(&["Failed"]));
        if self.started_with_revision() {
            f = f.steps(self.undo());
        }
        f = f.step(Step::manual(
            format!(
                "fix command/args of container {} to an executable that exists in {}",
                cs.name,
                spec.and_then(|c| c.image.as_deref()).unwrap_or("the image")
            ),
            "the container's entrypoint cannot be executed",
        ));
        self.out.push(f);
    }

    // ---------------------------------------------------------------------------- row 7

    /// An init container; true when it blocks the pod.
    fn init(&mut self, cs: &ContainerStatus, spec: Option<&Container>) -> bool {
        let now = self.now();
        let state = cs.state.clone().unwrap_or_default();
        if state.terminated.as_ref().is_some_and(|t| t.exit_code == 0) {
            return false;
        }
        let looping = is_crash_looping(cs, now)
            || state.terminated.as_ref().is_some_and(|t| t.exit_code != 0);
        let running_since = state
            .running
            .as_ref()
            .and_then(|r| r.started_at.as_ref())
            .map(|t| t.0);
        let hanging = running_since.is_some_and(|s| now.duration_since(s).as_secs() > STUCK_SECS);
        if !looping && !hanging {
            // waiting to start (PodInitializing) or just started
            return state.running.is_some() || state.waiting.is_some();
        }
        let ins = self.insight(&cs.name, looping);
        let term = last_termination(cs);
        let summary = if looping {
            format!(
                "init container {} keeps failing ({}, {} restarts): the pod cannot start",
                cs.name,
                term.map(|t| format!("exit {}", t.exit_code))
                    .unwrap_or_else(|| "CrashLoopBackOff".into()),
                cs.restart_count
            )
        } else {
            format!(
                "init container {} has been running for {}: the pod cannot start",
                cs.name,
                self.ctx.ago(running_since)
            )
        };
        let cause = ins.cause.clone().unwrap_or_else(|| {
            if looping {
                format!(
                    "{} (init step)",
                    exit_meaning(term.map(|t| t.exit_code).unwrap_or(1))
                )
            } else {
                "the init step waits for something that never comes (a dependency or a condition)"
                    .to_string()
            }
        });
        let mut f = self
            .v
            .finding(Row::InitContainer, Severity::Critical)
            .summary(summary)
            .cause(cause)
            .since(
                term.and_then(|t| t.started_at.as_ref().map(|s| s.0))
                    .or(running_since),
            )
            .evidence("condition Initialized = False");
        if let Some(r) = state.waiting.as_ref().and_then(|w| w.reason.as_deref()) {
            f = f.evidence(format!(
                "initContainerStatuses[{}].state.waiting.reason = {r}",
                cs.name
            ));
        }
        if let Some(t) = term {
            f = f.evidence(format!(
                "initContainerStatuses[{}].lastState.terminated = {}",
                cs.name,
                term_text(t, now)
            ));
        }
        if let Some(c) = spec {
            let cmd: Vec<String> = c
                .command
                .iter()
                .flatten()
                .chain(c.args.iter().flatten())
                .cloned()
                .collect();
            if !cmd.is_empty() {
                f = f.evidence(format!("command = {}", clip(&cmd.join(" "), 120)));
            }
        }
        f = f.evidence_all(ins.excerpt.clone());
        if self.started_with_revision() {
            f = f.steps(self.undo());
        }
        f = f.steps(insight_steps(&ins, &cs.name));
        f = f.step(Step::manual(
            format!(
                "fix the init step {} (its command, or the config it needs, e.g. DATABASE_URL)",
                cs.name
            ),
            "the app containers start only after every init container succeeds",
        ));
        f = f.steps(self.look(looping));
        self.out.push(f);
        true
    }

    // ---------------------------------------------------------------------------- row 8 / 24

    fn readiness(&mut self, cs: &ContainerStatus, spec: Option<&Container>) {
        let now = self.now();
        let probe = spec.and_then(|c| c.readiness_probe.as_ref());
        let groups = self.ctx.event_groups("Pod", self.v.ns, self.v.name);
        let unhealthy: Vec<String> = groups
            .iter()
            .filter(|g| g.reason == "Unhealthy")
            .flat_map(|g| g.messages.iter().cloned())
            .filter(|m| m.starts_with("Readiness probe failed"))
            .collect();
        let started = cs
            .state
            .as_ref()
            .and_then(|s| s.running.as_ref())
            .and_then(|r| r.started_at.as_ref())
            .map(|t| t.0);
        let grace = probe
            .map(|p| {
                i64::from(p.initial_delay_seconds.unwrap_or(0))
                    + i64::from(p.period_seconds.unwrap_or(10))
                        * i64::from(p.failure_threshold.unwrap_or(3))
            })
            .unwrap_or(0)
            + 30;
        let young = started.is_some_and(|s| now.duration_since(s).as_secs() < grace.max(60));
        let ins = self.insight(&cs.name, false);
        if unhealthy.is_empty() && (young || (probe.is_none() && !ins.app_fault())) {
            return;
        }
        let all_unready = self
            .ctx
            .pods_by_owner
            .get(&self.v.owner)
            .into_iter()
            .flatten()
            .all(|p| !pod_status_at(p, now).1);
        let sev = if all_unready {
            Severity::Critical
        } else {
            Severity::Warning
        };
        let row = if ins.app_fault() {
            Row::AppFault
        } else {
            Row::Readiness
        };
        let mut f = self.v.finding(row, sev).since(started).evidence(format!(
            "containerStatuses[{}].ready = false (running {})",
            cs.name,
            self.ctx.ago(started)
        ));
        if let Some(p) = probe {
            f = f.evidence(format!("readinessProbe = {}", probe_text(p)));
        }
        f = f.evidence(format!("container ports = {}", container_ports(spec)));
        let ev = self.ctx.event_groups("Pod", self.v.ns, self.v.name);
        if let Some(g) = ev.iter().find(|g| g.reason == "Unhealthy") {
            f = f.evidence(format!(
                "event Unhealthy ×{} (last {} ago): {}",
                g.count,
                self.ctx.ago(g.last),
                clip(
                    unhealthy.first().map(String::as_str).unwrap_or(&g.message),
                    140
                )
            ));
        }
        if let Some(e) = self.endpoint_not_ready() {
            f = f.evidence(e);
        }
        f = f.evidence_all(ins.excerpt.clone());
        let first = unhealthy.first().map(String::as_str).unwrap_or_default();
        if row == Row::AppFault {
            let cause = ins.cause.clone().unwrap_or_default();
            f = f
                .summary(format!("container {} is not ready: {cause}", cs.name))
                .cause(cause)
                .steps(insight_steps(&ins, &cs.name));
        } else {
            let (cause, action) = probe_cause(first, probe, spec);
            f = f
                .summary(format!(
                    "container {} is running but not ready: {}",
                    cs.name,
                    clip(
                        if first.is_empty() {
                            "readiness probe failing"
                        } else {
                            first
                        },
                        120
                    )
                ))
                .cause(cause)
                .step(Step::manual(
                    action,
                    "the pod receives no Service traffic while unready",
                ));
        }
        if self.started_with_revision() {
            f = f.steps(self.undo());
        }
        f = f.steps(self.look(false));
        self.out.push(f);
    }

    fn endpoint_not_ready(&self) -> Option<String> {
        for ep in &self.ctx.snap.endpoints {
            if ns_of(&ep.metadata) != self.v.ns {
                continue;
            }
            let listed = ep.subsets.iter().flatten().any(|s| {
                s.not_ready_addresses.iter().flatten().any(|a| {
                    a.target_ref.as_ref().and_then(|t| t.name.as_deref()) == Some(self.v.name)
                })
            });
            if listed {
                return Some(format!(
                    "Endpoints {} lists the pod as notReady",
                    name_of(&ep.metadata)
                ));
            }
        }
        None
    }

    // ---------------------------------------------------------------------------- row 9

    /// Liveness probe kills; true when reported.
    fn liveness(&mut self, cs: &ContainerStatus, spec: Option<&Container>) -> bool {
        let now = self.now();
        let groups = self.ctx.event_groups("Pod", self.v.ns, self.v.name);
        let single = self.v.spec().is_none_or(|s| s.containers.len() <= 1);
        let about_me = |g: &super::ctx::EventGroup| {
            single
                || g.field_paths.is_empty()
                || g.field_paths
                    .iter()
                    .any(|fp| fp.contains(&format!("{{{}}}", cs.name)))
        };
        let failed: Vec<&super::ctx::EventGroup> = groups
            .iter()
            .filter(|g| {
                about_me(g)
                    && ((g.reason == "Unhealthy"
                        && g.messages
                            .iter()
                            .any(|m| m.starts_with("Liveness probe failed")))
                        || (g.reason == "Killing"
                            && g.messages
                                .iter()
                                .any(|m| m.contains("failed liveness probe"))))
            })
            .collect();
        if failed.is_empty() {
            return false;
        }
        let probe = spec.and_then(|c| c.liveness_probe.as_ref());
        let looping = waiting(cs).0 == Some("CrashLoopBackOff");
        let mut f = self
            .v
            .finding(
                Row::Liveness,
                if looping {
                    Severity::Critical
                } else {
                    Severity::Warning
                },
            )
            .summary(format!(
                "liveness probe keeps killing container {} ({} restarts)",
                cs.name, cs.restart_count
            ))
            .evidence(format!("restartCount = {}", cs.restart_count));
        if let Some(t) = last_termination(cs) {
            f = f
                .evidence(format!("lastState.terminated = {}", term_text(t, now)))
                .since(t.started_at.as_ref().map(|s| s.0));
        }
        if let Some(p) = probe {
            f = f.evidence(format!("livenessProbe = {}", probe_text(p)));
        }
        f = f.evidence(format!("container ports = {}", container_ports(spec)));
        let mut probe_msg = String::new();
        for g in &failed {
            let m = g
                .messages
                .iter()
                .find(|m| {
                    m.starts_with("Liveness probe failed") || m.contains("failed liveness probe")
                })
                .cloned()
                .unwrap_or_default();
            if g.reason == "Unhealthy" {
                probe_msg = m.clone();
            }
            f = f.evidence(format!(
                "event {} ×{} (last {} ago): {}",
                g.reason,
                g.count,
                self.ctx.ago(g.last),
                clip(&m, 140)
            ));
        }
        let (cause, action) = probe_cause(&probe_msg, probe, spec);
        let raise = probe.map(|p| {
            format!(
                "or raise livenessProbe initialDelaySeconds {}→{} / failureThreshold {}→{}",
                p.initial_delay_seconds.unwrap_or(0),
                (p.initial_delay_seconds.unwrap_or(0) * 2).max(30),
                p.failure_threshold.unwrap_or(3),
                p.failure_threshold.unwrap_or(3) * 2
            )
        });
        f = f
            .cause(format!(
                "the liveness probe fails and the kubelet restarts the container: {cause}"
            ))
            .step(Step::manual(
                format!(
                    "{}{}",
                    action.replace("readinessProbe", "livenessProbe"),
                    raise.map(|r| format!(", {r}")).unwrap_or_default()
                ),
                "each failed liveness check kills a container that may be healthy but slow",
            ));
        if self.started_with_revision() {
            f = f.steps(self.undo());
        }
        self.out.push(f);
        true
    }

    // ---------------------------------------------------------------------------- row 10

    fn unschedulable(&mut self) -> bool {
        let p = self.v.p;
        let cond = p
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .into_iter()
            .flatten()
            .find(|c| {
                c.type_ == "PodScheduled"
                    && c.status == "False"
                    && c.reason.as_deref() == Some("Unschedulable")
            });
        let Some(c) = cond else {
            return false;
        };
        let msg = c.message.clone().unwrap_or_default();
        let spec = self.v.spec();
        let mut cpu = 0.0f64;
        let mut mem = 0.0f64;
        let mut req_text = vec![];
        for ct in spec.map(|s| s.containers.as_slice()).unwrap_or_default() {
            if let Some(r) = ct.resources.as_ref().and_then(|r| r.requests.as_ref()) {
                if let Some(q) = r.get("cpu") {
                    cpu += parse_cpu(&q.0).unwrap_or(0.0);
                    req_text.push(format!("{} cpu {}", ct.name, q.0));
                }
                if let Some(q) = r.get("memory") {
                    mem += parse_mem(&q.0).unwrap_or(0.0);
                    req_text.push(format!("{} memory {}", ct.name, q.0));
                }
            }
        }
        let (cause, action) = if msg.contains("Insufficient cpu")
            || msg.contains("Insufficient memory")
        {
            let what = if msg.contains("Insufficient cpu") && msg.contains("Insufficient memory") {
                "cpu and memory"
            } else if msg.contains("Insufficient cpu") {
                "cpu"
            } else {
                "memory"
            };
            (
                format!("no node has enough free {what} for the pod's requests (cpu {cpu:.2} cores, memory {:.0}Mi)", mem / 1048576.0),
                format!("lower the {what} requests of the pod template, or add node capacity"),
            )
        } else if msg.contains("node affinity")
            || msg.contains("node selector")
            || msg.contains("nodeSelector")
        {
            let sel = spec
                .and_then(|s| s.node_selector.as_ref())
                .map(super::ctx::fmt_labels)
                .unwrap_or_else(|| "(affinity rules)".into());
            (
                format!("no node matches the pod's node selector/affinity {sel}"),
                format!(
                    "fix nodeSelector/affinity ({sel}) to labels the nodes have, or label a node"
                ),
            )
        } else if msg.contains("taint") {
            (
                "every node has a taint the pod does not tolerate".to_string(),
                "add a toleration for the taint the message names, or remove the taint".to_string(),
            )
        } else if msg.contains("PersistentVolumeClaim") || msg.contains("persistentvolumeclaim") {
            (
                "a PersistentVolumeClaim of the pod is not bound or does not exist".to_string(),
                "create/bind the PVC (see its events) or fix its storageClassName".to_string(),
            )
        } else {
            (
                format!("the scheduler finds no node: {}", clip(&msg, 140)),
                "fix what the scheduler message names (requests, selector, tolerations)"
                    .to_string(),
            )
        };
        let mut f = self
            .v
            .finding(Row::Unschedulable, Severity::Critical)
            .summary(format!("pod cannot be scheduled: {}", clip(&msg, 120)))
            .cause(cause)
            .since(c.last_transition_time.as_ref().map(|t| t.0))
            .evidence(format!(
                "condition PodScheduled = False (Unschedulable): {}",
                clip(&msg, 160)
            ));
        if !req_text.is_empty() {
            f = f.evidence(format!("requests = {}", req_text.join(", ")));
        }
        if let Some(ns) = spec.and_then(|s| s.node_selector.as_ref()) {
            f = f.evidence(format!("nodeSelector = {}", super::ctx::fmt_labels(ns)));
        }
        f = f
            .evidence_all(self.pod_events(&["FailedScheduling"]))
            .step(Step::manual(
                action,
                "the pod stays Pending until a node fits",
            ));
        self.out.push(f);
        true
    }
}

enum Known {
    Missing,
    Keys(Vec<String>),
    Unknown,
}

fn env_vars_referencing(
    c: Option<&Container>,
    kind: &str,
    name: &str,
    key: Option<&str>,
) -> Vec<String> {
    let Some(c) = c else { return vec![] };
    c.env
        .iter()
        .flatten()
        .filter(|e| {
            let Some(vf) = &e.value_from else {
                return false;
            };
            let hit = |n: &str, k: &str| n == name && key.is_none_or(|want| want == k);
            if kind == "ConfigMap" {
                vf.config_map_key_ref
                    .as_ref()
                    .is_some_and(|r| hit(&r.name, &r.key))
            } else {
                vf.secret_key_ref
                    .as_ref()
                    .is_some_and(|r| hit(&r.name, &r.key))
            }
        })
        .map(|e| e.name.clone())
        .collect()
}

/// (cause, action) from a probe failure message, the probe and the container's ports.
fn probe_cause(msg: &str, probe: Option<&Probe>, spec: Option<&Container>) -> (String, String) {
    let ports = container_ports(spec);
    let (path, port) = match probe.and_then(|p| p.http_get.as_ref()) {
        Some(h) => (
            h.path.clone().unwrap_or_else(|| "/".into()),
            Some(port_text(&h.port)),
        ),
        None => (
            String::new(),
            probe
                .and_then(|p| p.tcp_socket.as_ref())
                .map(|t| port_text(&t.port)),
        ),
    };
    let declared = spec
        .and_then(|c| c.ports.as_ref())
        .is_some_and(|p| !p.is_empty());
    let port_known = port.as_ref().is_none_or(|pt| {
        !declared
            || spec
                .and_then(|c| c.ports.as_ref())
                .into_iter()
                .flatten()
                .any(|cp| {
                    cp.container_port.to_string() == *pt || cp.name.as_deref() == Some(pt.as_str())
                })
    });
    let port = port.unwrap_or_default();
    if let Some(code) = msg
        .split("statuscode: ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
    {
        let code = code.trim_end_matches(|c: char| !c.is_ascii_digit());
        return (
            format!("the probe path {path} on port {port} answers HTTP {code}: the app serves its health check elsewhere or is unhealthy"),
            format!("fix readinessProbe httpGet.path ({path}) to the app's health endpoint, or make the app answer 200 there (container ports: {ports})"),
        );
    }
    if msg.contains("connection refused") || !port_known {
        return (
            format!("nothing listens on probe port {port} (container ports: {ports})"),
            format!("fix readinessProbe port {port} to the port the app listens on ({ports})"),
        );
    }
    if msg.contains("timeout") || msg.contains("deadline exceeded") {
        let t = probe.and_then(|p| p.timeout_seconds).unwrap_or(1);
        return (
            format!("the probe times out after {t}s: the app is slow or blocked"),
            format!(
                "raise readinessProbe timeoutSeconds {t}→{} or fix what blocks the app",
                (t * 3).max(3)
            ),
        );
    }
    (
        if msg.is_empty() {
            "the readiness probe keeps failing".to_string()
        } else {
            format!("the readiness probe fails: {}", clip(msg, 120))
        },
        format!("fix the readiness probe (path {path}, port {port}; container ports: {ports}) or the app's health"),
    )
}

/// CPU quantities: `500m` → 0.5.
fn parse_cpu(q: &str) -> Option<f64> {
    match q.strip_suffix('m') {
        Some(m) => m.parse::<f64>().ok().map(|v| v / 1000.0),
        None => q.parse().ok(),
    }
}

// ------------------------------------------------------------------------------ row 12

/// Evicted pods (row 12), grouped per workload, with the node's pressure now.
pub(crate) fn evicted(ctx: &Ctx) -> Vec<Finding> {
    let mut out = vec![];
    for p in &ctx.snap.pods {
        let Some(st) = p.status.as_ref() else {
            continue;
        };
        if st.reason.as_deref() != Some("Evicted") {
            continue;
        }
        let msg = st.message.clone().unwrap_or_default();
        let node = p
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .unwrap_or_default();
        let pressure: Vec<String> = ctx
            .snap
            .nodes
            .iter()
            .filter(|n| name_of(&n.metadata) == node)
            .flat_map(|n| n.status.iter().flat_map(|s| s.conditions.iter().flatten()))
            .filter(|c| c.type_.ends_with("Pressure") && c.status == "True")
            .map(|c| c.type_.clone())
            .collect();
        let resource = if msg.contains("ephemeral-storage") {
            "ephemeral-storage"
        } else if msg.contains("memory") {
            "memory"
        } else if msg.contains("disk") || msg.contains("nodefs") || msg.contains("imagefs") {
            "disk"
        } else {
            "a resource"
        };
        let mut f = Finding::new(Row::Evicted, Severity::Warning, ctx.owner_of(p))
            .pod(name_of(&p.metadata))
            .summary(format!("pods were evicted from node {node}: it was low on {resource}"))
            .cause(format!("node {node} ran low on {resource} and the kubelet evicted pods{}", if pressure.is_empty() { String::new() } else { format!(" (now: {})", pressure.join(", ")) }))
            .evidence(format!("status.reason = Evicted: {}", clip(&msg, 140)))
            .since(st.start_time.as_ref().map(|t| t.0))
            .step(Step::manual(
                format!("set requests/limits for {resource} on the workload's containers so the scheduler places them where it fits"),
                "pods without requests are evicted first",
            ))
            .step(Step::manual(
                format!("delete the evicted pods: kubectl delete pod -n {} --field-selector=status.phase=Failed", ns_of(&p.metadata)),
                "evicted pods stay listed as Failed until deleted",
            ));
        if !pressure.is_empty() {
            f = f.evidence(format!("node {node}: {} = True", pressure.join(", ")));
        }
        out.push(f);
    }
    out
}

// ------------------------------------------------------------------------------ row 20

/// RBAC denials an app logs about its own ServiceAccount (row 20).
pub(crate) fn rbac_denied(ctx: &Ctx) -> Vec<Finding> {
    static FORBIDDEN: OnceLock<Regex> = OnceLock::new();
    let re = re(
        &FORBIDDEN,
        r#"User \\?"system:serviceaccount:([^:"\\]+):([^"\\]+)\\?" cannot (\w+) resource \\?"([^"\\]+)\\?"(?: in API group \\?"([^"\\]*)\\?")?"#,
    );
    let mut out = vec![];
    for log in ctx
        .snap
        .previous_logs
        .iter()
        .chain(ctx.snap.current_logs.iter())
    {
        let Some((line, c)) = log
            .lines
            .iter()
            .find_map(|l| re.captures(l).map(|c| (l, c)))
        else {
            continue;
        };
        let (sa_ns, sa, verb, resource) = (&c[1], &c[2], &c[3], &c[4]);
        let group = c.get(5).map(|g| g.as_str()).unwrap_or_default();
        let owner = ctx
            .pods_in(&log.namespace)
            .iter()
            .find(|p| name_of(&p.metadata) == log.pod)
            .map(|p| ctx.owner_of(p))
            .unwrap_or_else(|| ObjectRef::new("Pod", &log.namespace, &log.pod));
        let res = if group.is_empty() {
            resource.to_string()
        } else {
            format!("{resource}.{group}")
        };
        let role = format!("{sa}-{verb}-{}", resource.replace('.', "-"));
        out.push(
            Finding::new(Row::RbacDenied, Severity::Warning, owner)
                .pod(&log.pod)
                .summary(format!("ServiceAccount {sa_ns}/{sa} is forbidden to {verb} {res}"))
                .cause(format!("the app's ServiceAccount {sa} has no RBAC permission to {verb} {res}"))
                .evidence(format!("log| {}", clip(line, 160)))
                .step(Step::manual(
                    format!("grant it: kubectl create role {role} -n {sa_ns} --verb={verb} --resource={res} && kubectl create rolebinding {role} -n {sa_ns} --role={role} --serviceaccount={sa_ns}:{sa}"),
                    format!("the API server denies {verb} on {res} to {sa}"),
                )),
        );
    }
    out
}

// ------------------------------------------------------------------------------ crashloops

/// Every crash-looping container, regular and init.
pub(crate) fn crashloops(ctx: &Ctx) -> Vec<CrashLoop> {
    let now = ctx.now;
    let mut verdicts: HashMap<ObjectRef, Option<bool>> = HashMap::new();
    let mut out = vec![];
    for p in &ctx.snap.pods {
        let Some(st) = p.status.as_ref() else {
            continue;
        };
        let statuses = st
            .init_container_statuses
            .iter()
            .flatten()
            .map(|c| (c, true))
            .chain(st.container_statuses.iter().flatten().map(|c| (c, false)));
        for (cs, init) in statuses {
            if !is_crash_looping(cs, now) {
                continue;
            }
            let ns = ns_of(&p.metadata);
            let pod = name_of(&p.metadata);
            let owner = ctx.owner_of(p);
            let started = *verdicts.entry(owner.clone()).or_insert_with(|| {
                // With a single revision there is nothing to compare against: unknown.
                let compared = ctx.history(&owner).is_some_and(|h| h.revisions.len() > 1);
                ctx.verdict(&owner)
                    .filter(|_| compared)
                    .map(|v| v.started_with_current)
            });
            let t = last_termination(cs);
            let log_cause = ctx
                .previous_log(ns, pod, &cs.name)
                .and_then(|l| super::ctx::log_insight(l).cause);
            let last_log_lines = ctx
                .previous_log(ns, pod, &cs.name)
                .map(|l| {
                    let mut v: Vec<String> = l
                        .lines
                        .iter()
                        .rev()
                        .filter(|x| !x.trim().is_empty())
                        .take(5)
                        .map(|x| clip(x, 200))
                        .collect();
                    v.reverse();
                    v
                })
                .unwrap_or_default();
            out.push(CrashLoop {
                namespace: ns.to_string(),
                pod: pod.to_string(),
                container: cs.name.clone(),
                init,
                workload: format!("{}/{}", owner.kind, owner.name),
                restarts: cs.restart_count,
                exit_code: t.map(|t| t.exit_code),
                reason: t.and_then(|t| t.reason.clone()),
                last_termination: t.and_then(|t| t.finished_at.as_ref().map(|f| f.0)),
                back_off: back_off(waiting(cs).1),
                log_cause,
                last_log_lines,
                started_with_current_revision: started,
            });
        }
    }
    out
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn memory_quantities_double_in_their_unit() {
        assert_eq!(double_quantity("128Mi").as_deref(), Some("256Mi"));
        assert_eq!(double_quantity("1.5Gi").as_deref(), Some("3Gi"));
        assert_eq!(double_quantity("500M").as_deref(), Some("1000M"));
        assert_eq!(double_quantity("lots"), None);
        assert_eq!(parse_mem("1Ki"), Some(1024.0));
    }

    #[test]
    fn back_off_is_read_from_the_waiting_message() {
        assert_eq!(
            back_off(Some(
                "back-off 5m0s restarting failed container=api pod=api-1"
            ))
            .as_deref(),
            Some("5m0s")
        );
        assert_eq!(back_off(None), None);
    }
}
