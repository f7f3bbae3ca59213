//! Log tools: the logs of a pod or a whole workload, merged in time order (`logs_get`), and
//! their analysis — levels, templates, exceptions, first error, hints (`logs_analyze`).

use std::sync::atomic::{AtomicUsize, Ordering};

use futures::{AsyncReadExt, StreamExt};
use jiff::Timestamp;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, LogParams};
use kube::Client;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::read::{client, dyn_api, ensure_namespace, resolve_kind};
use super::util::{check_name, check_namespace_name, parse_duration, workload_selector, ToolError};
use super::{Common, Ctx, Effect, Render, Tool, ToolMeta};
use crate::logs::{analyze, Analysis, AnalyzeOptions, LogLine};

/// Pods fetched at once.
const FAN_OUT: usize = 8;
/// Most lines read per container log.
const MAX_TAIL: i64 = 1_000_000;

/// Which logs: one pod, a workload, or a label selector — and which containers.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Selection {
    /// Namespace of the pods.
    pub namespace: String,
    /// One pod by name.
    #[serde(default)]
    pub pod: Option<String>,
    /// A workload as `Kind/name`: `Deployment/backend`, `StatefulSet/db`, `DaemonSet/agent`, `Job/migrate`, `ReplicaSet/x`.
    #[serde(default)]
    pub workload: Option<String>,
    /// Pods by label selector, e.g. `app.kubernetes.io/instance=todo`.
    #[serde(default)]
    pub label_selector: Option<String>,
    /// Only this container (default: every container, init containers included).
    #[serde(default)]
    pub container: Option<String>,
    /// Read the previous (crashed) instance's log instead of the current one.
    #[serde(default)]
    pub previous: bool,
    /// Last lines per container.
    #[serde(default)]
    pub tail_lines: Option<i64>,
    /// Only lines newer than this duration (`10m`, `2h`) or RFC 3339 time.
    #[serde(default)]
    pub since: Option<String>,
}

/// One container log that was read (or could not be).
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct SourceRead {
    /// `pod/container`, `(previous)` for the crashed instance.
    pub source: String,
    pub lines: usize,
    /// Set when the lines asked for held more bytes than the cap: only the newest that fit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub byte_capped: Option<ByteCapped>,
    /// Why nothing was read (container not started yet, no previous instance, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// How the byte cap cut a container log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
pub struct ByteCapped {
    /// The cap, in bytes per container log.
    pub limit_bytes: i64,
    /// False when the newest lines were longer than estimated: the newest few are missing too.
    pub newest_read: bool,
}

struct Fetched {
    sources: Vec<SourceRead>,
    lines: Vec<LogLine>,
}

/// `since` as seconds back from `now`: a duration like `10m`, or an RFC 3339 time in the past.
fn since_seconds(since: Option<&str>, now: Timestamp) -> Result<Option<i64>, ToolError> {
    let Some(v) = since else { return Ok(None) };
    let secs = match v.trim().parse::<Timestamp>() {
        Ok(t) if t > now => {
            return Err(ToolError::invalid(
                format!("since '{v}' is in the future (the server's time is {now:.0})"),
                "pass a time in the past, or a duration back from now such as 10m or 2h",
            ))
        }
        // a time within the last second reads the last second
        Ok(t) => now.duration_since(t).as_secs().max(1),
        Err(_) => parse_duration(v)?,
    };
    if secs == 0 {
        return Err(ToolError::invalid(
            format!("since '{v}' selects no time at all"),
            "pass a duration of at least 1s, e.g. 10m, or an RFC 3339 time in the past",
        ));
    }
    Ok(Some(secs))
}

async fn select_pods(
    ctx: &Ctx,
    common: &Common,
    client: &Client,
    s: &Selection,
) -> Result<Vec<Pod>, ToolError> {
    check_namespace_name(&s.namespace)?;
    since_seconds(s.since.as_deref(), Timestamp::now())?;
    ctx.policy.check_namespace(&s.namespace)?;
    let chosen = [
        s.pod.is_some(),
        s.workload.is_some(),
        s.label_selector.is_some(),
    ]
    .iter()
    .filter(|x| **x)
    .count();
    if chosen != 1 {
        return Err(ToolError::invalid(
            "name exactly one of pod, workload or label_selector",
            "e.g. {\"namespace\": \"todo-app\", \"workload\": \"Deployment/todo-backend\"} or {\"namespace\": \"todo-app\", \"pod\": \"todo-backend-7c9d-x2x\"}",
        ));
    }
    let pods: Api<Pod> = Api::namespaced(client.clone(), &s.namespace);
    if let Some(name) = &s.pod {
        check_name("pod", name)?;
        return match pods
            .get_opt(name)
            .await
            .map_err(|e| ToolError::from_kube(e, &format!("get pod {name}")))?
        {
            Some(p) => Ok(vec![p]),
            None => {
                ensure_namespace(client, &s.namespace).await?;
                Err(ToolError::not_found(
                    format!("pod '{name}' not found in namespace {}", s.namespace),
                    "pods_list shows the pods; or pass workload=\"Deployment/<name>\"",
                ))
            }
        };
    }
    let selector = match (&s.workload, &s.label_selector) {
        (Some(w), _) => {
            let (kind, name) = w.split_once('/').ok_or_else(|| {
                ToolError::invalid(
                    format!("workload '{w}' is not Kind/name"),
                    "e.g. Deployment/todo-backend",
                )
            })?;
            check_name("workload name", name)?;
            let (ar, caps) = resolve_kind(ctx, common, kind, None).await?;
            let api = dyn_api(client.clone(), &ar, &caps, Some(&s.namespace));
            let obj = api
                .get_opt(name)
                .await
                .map_err(|e| ToolError::from_kube(e, &format!("get {} {name}", ar.kind)))?
                .ok_or_else(|| {
                    ToolError::not_found(
                        format!(
                            "{} '{name}' not found in namespace {}",
                            ar.kind, s.namespace
                        ),
                        format!(
                            "resources_list kind={} namespace={} shows what exists",
                            ar.kind, s.namespace
                        ),
                    )
                })?;
            workload_selector(&obj.data).ok_or_else(|| {
                ToolError::invalid(
                    format!("{} '{name}' has no usable spec.selector", ar.kind),
                    "pass label_selector instead",
                )
            })?
        }
        (None, Some(l)) => l.clone(),
        _ => unreachable!("exactly one selection was checked above"),
    };
    let list = pods
        .list(&ListParams::default().labels(&selector))
        .await
        .map_err(|e| ToolError::from_kube(e, &format!("list pods with {selector}")))?;
    if list.items.is_empty() {
        ensure_namespace(client, &s.namespace).await?;
        return Err(ToolError::not_found(
            format!("no pods match {selector} in namespace {}", s.namespace),
            "pods_list shows the pods and their labels",
        ));
    }
    Ok(list.items)
}

/// Containers of a pod to read: (name, crash-looped recently).
fn containers(p: &Pod, only: Option<&str>) -> Vec<(String, bool)> {
    let st = p.status.clone().unwrap_or_default();
    let statuses: Vec<_> = st
        .init_container_statuses
        .iter()
        .flatten()
        .chain(st.container_statuses.iter().flatten())
        .cloned()
        .collect();
    let spec = p.spec.clone().unwrap_or_default();
    spec.init_containers
        .iter()
        .flatten()
        .chain(spec.containers.iter())
        .map(|c| c.name.clone())
        .filter(|n| only.is_none_or(|o| o == n))
        .map(|n| {
            let crashed = statuses.iter().find(|s| s.name == n).is_some_and(|s| {
                s.restart_count > 0
                    && s.last_state
                        .as_ref()
                        .and_then(|l| l.terminated.as_ref())
                        .is_some()
            });
            (n, crashed)
        })
        .collect()
}

/// A read that ends inside a line at most this many bytes short of `limit_bytes` counts as cut
/// by the cap (the kubelet cuts at exactly `limit_bytes`; the slack is for anything in between
/// that cuts a little earlier).
const CAP_SLACK: usize = 512;
/// Reads of one container log at most: the first, and smaller windows after a cut by the cap.
const MAX_READS: usize = 3;
/// Share of the lines that seemed to fit that the next, smaller window asks for.
const SHRINK: f64 = 0.9;

/// One container log as read: complete lines only when the cap cut it.
struct SourceText {
    text: String,
    byte_capped: Option<ByteCapped>,
}

/// Did the byte cap cut this read of a `window`-line window?
fn cut_by_cap(bytes: &[u8], limit: i64, window: i64) -> bool {
    let len = bytes.len() as i64;
    let whole_lines = bytes.ends_with(b"\n");
    // at the cap, or close to it and inside a line
    let at_cap = len >= limit || (!whole_lines && len + CAP_SLACK as i64 >= limit);
    // every line of the window came back whole: nothing was cut
    let all_lines = whole_lines && memchr::memchr_iter(b'\n', bytes).count() as i64 >= window;
    at_cap && !all_lines
}

/// A window smaller than `window` whose newest lines should fit in `limit` bytes, from the bytes
/// per line of a read the cap cut.
fn smaller_window(bytes: &[u8], limit: i64, window: i64) -> i64 {
    let whole = memchr::memchr_iter(b'\n', bytes).count() as f64;
    let fit = whole * limit as f64 / bytes.len().max(1) as f64;
    ((fit * SHRINK) as i64).clamp(1, (window - 1).max(1))
}

/// Reads the newest lines of one container log that fit in `limit` bytes; `read(window)` reads
/// the last `window` lines with that cap.
///
/// The kubelet applies limitBytes from the *start* of the tail_lines window, so a window larger
/// than the cap comes back without its newest lines. Then the window is shrunk to the lines that
/// should fit, estimated from the bytes per line seen, and read again (at most [`MAX_READS`]
/// reads). A line the cap cut in two is dropped (unless it is the only one).
async fn read_newest<F, Fut>(mut read: F, tail: i64, limit: i64) -> Result<SourceText, kube::Error>
where
    F: FnMut(i64) -> Fut,
    Fut: std::future::Future<Output = Result<Vec<u8>, kube::Error>>,
{
    let mut window = tail;
    let mut bytes = read(window).await?;
    let mut reads = 1;
    let mut capped = false;
    while cut_by_cap(&bytes, limit, window) {
        capped = true;
        let smaller = smaller_window(&bytes, limit, window);
        if reads == MAX_READS || smaller >= window {
            break;
        }
        window = smaller;
        bytes = read(window).await?;
        reads += 1;
    }
    let still_cut = capped && cut_by_cap(&bytes, limit, window);
    if still_cut && !bytes.ends_with(b"\n") {
        if let Some(nl) = memchr::memrchr(b'\n', &bytes) {
            bytes.truncate(nl + 1);
        }
    }
    Ok(SourceText {
        text: String::from_utf8(bytes)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()),
        byte_capped: capped.then_some(ByteCapped {
            limit_bytes: limit,
            newest_read: !still_cut,
        }),
    })
}

/// Splits one container log read with `timestamps=true` into lines, each with the key it merges
/// by: its timestamp, or for a line without one the timestamp of the line before it in this log
/// (of the line after it, at the start), so that it stays next to its neighbours.
fn parse_log(source: &str, text: &str) -> Vec<(Option<Timestamp>, LogLine)> {
    let mut out: Vec<(Option<Timestamp>, LogLine)> = Vec::new();
    for l in text.lines() {
        let (ts, body) = match l.split_once(' ') {
            Some((t, rest)) => match t.parse::<Timestamp>() {
                Ok(t) => (Some(t), rest),
                Err(_) => (None, l),
            },
            None => (None, l),
        };
        let key = ts.or_else(|| out.last().and_then(|p| p.0));
        out.push((key, LogLine::new(source, ts, body)));
    }
    // lines before the first timestamp take the first one
    let mut next = None;
    for (key, _) in out.iter_mut().rev() {
        match key {
            Some(_) => next = *key,
            None => *key = next,
        }
    }
    out
}

/// Reads the selected logs (bounded fan-out), with `timestamps` so they can be merged.
async fn fetch(
    ctx: &Ctx,
    client: &Client,
    pods: &[Pod],
    s: &Selection,
    default_tail: i64,
    auto_previous: bool,
    limit_bytes: i64,
) -> Result<Fetched, ToolError> {
    let since_seconds = since_seconds(s.since.as_deref(), Timestamp::now())?;
    if let Some(c) = &s.container {
        if pods.iter().all(|p| containers(p, Some(c)).is_empty()) {
            let names: Vec<String> = pods
                .first()
                .map(|p| containers(p, None).into_iter().map(|c| c.0).collect())
                .unwrap_or_default();
            return Err(ToolError::not_found(
                format!("no selected pod has a container '{c}'"),
                format!("containers: {}", names.join(", ")),
            ));
        }
    }
    let mut jobs = vec![];
    for p in pods {
        let pod = p.metadata.name.clone().unwrap_or_default();
        for (c, crashed) in containers(p, s.container.as_deref()) {
            jobs.push((pod.clone(), c.clone(), s.previous));
            if auto_previous && crashed && !s.previous {
                jobs.push((pod.clone(), c, true));
            }
        }
    }
    let api: Api<Pod> = Api::namespaced(client.clone(), &s.namespace);
    let total = jobs.len();
    let tail = s.tail_lines.unwrap_or(default_tail).clamp(1, MAX_TAIL);
    // reads finish in any order: progress counts the finished ones, so it only goes up
    let done = AtomicUsize::new(0);
    let results: Vec<(String, Result<SourceText, kube::Error>)> = futures::stream::iter(jobs)
        .map(|(pod, container, previous)| {
            let api = &api;
            let done = &done;
            let progress = ctx.progress.clone();
            async move {
                let read = |window: i64| {
                    let lp = LogParams {
                        container: Some(container.clone()),
                        previous,
                        tail_lines: Some(window),
                        since_seconds,
                        timestamps: true,
                        limit_bytes: Some(limit_bytes),
                        ..Default::default()
                    };
                    let pod = pod.clone();
                    async move {
                        let mut body = api.log_stream(&pod, &lp).await?;
                        let mut bytes = Vec::new();
                        body.read_to_end(&mut bytes)
                            .await
                            .map_err(kube::Error::ReadEvents)?;
                        Ok(bytes)
                    }
                };
                let r = read_newest(read, tail, limit_bytes).await;
                if let Some(p) = progress {
                    let n = done.fetch_add(1, Ordering::Relaxed) + 1;
                    p(
                        n as f64,
                        Some(total as f64),
                        format!("read {pod}/{container}"),
                    );
                }
                (
                    format!(
                        "{pod}/{container}{}",
                        if previous { " (previous)" } else { "" }
                    ),
                    r,
                )
            }
        })
        .buffer_unordered(FAN_OUT)
        .collect()
        .await;
    let mut sources = vec![];
    let mut keyed = vec![];
    for (source, r) in results {
        match r {
            Ok(read) => {
                let lines = parse_log(&source, &read.text);
                sources.push(SourceRead {
                    source,
                    lines: lines.len(),
                    byte_capped: read.byte_capped,
                    error: None,
                });
                keyed.extend(lines);
            }
            Err(kube::Error::Api(e)) if e.code == 400 || e.code == 404 => {
                sources.push(SourceRead {
                    source,
                    lines: 0,
                    byte_capped: None,
                    error: Some(e.message),
                })
            }
            Err(e) => return Err(ToolError::from_kube(e, &format!("read logs of {source}"))),
        }
    }
    sources.sort_by(|a, b| a.source.cmp(&b.source));
    // merge in time order; the sort is stable, so each log keeps its own order among equal keys
    keyed.sort_by_key(|(key, _)| *key);
    let lines = keyed.into_iter().map(|(_, l)| l).collect();
    Ok(Fetched { sources, lines })
}

// ------------------------------------------------------------------ logs_get

/// Logs of one pod or of every pod of a workload, merged in time order with `[pod/container]`
/// prefixes; grep filter; byte cap with an explicit note; secrets masked.
/// Example: {"namespace": "todo-app", "workload": "Deployment/todo-backend", "tail_lines": 50, "grep": "ERROR|Traceback"}.
pub struct LogsGet;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LogsGetParams {
    #[serde(flatten)]
    pub common: Common,
    #[serde(flatten)]
    pub selection: Selection,
    /// Only lines matching this regular expression.
    #[serde(default)]
    pub grep: Option<String>,
    /// Prefix each line with its timestamp (default false).
    #[serde(default)]
    pub timestamps: bool,
    /// Most bytes to return (default 16000).
    #[serde(default)]
    pub max_bytes: Option<usize>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct LogsGetOutput {
    pub sources: Vec<SourceRead>,
    /// Lines as `[pod/container] text`, oldest first.
    pub lines: Vec<String>,
    /// Lines left out by the byte cap (the oldest are dropped first).
    pub truncated_lines: usize,
}

impl Tool for LogsGet {
    type Params = LogsGetParams;
    type Output = LogsGetOutput;
    const META: ToolMeta = ToolMeta {
        name: "logs_get",
        title: "Get logs of a pod or workload",
        description: "Logs of a pod, or of every pod of a workload (Deployment/StatefulSet/DaemonSet/Job/ReplicaSet) or label selector, all containers or one, current or previous instance, tail_lines/since/grep, merged in time order with [pod/container] prefixes, capped in bytes with a note. Prefer logs_analyze for a summary.",
        effect: Effect::Read,
        idempotent: true,
    };

    async fn call(&self, ctx: &Ctx, p: LogsGetParams) -> Result<LogsGetOutput, ToolError> {
        let grep = match &p.grep {
            Some(g) => Some(regex::Regex::new(g).map_err(|e| {
                ToolError::invalid(
                    format!("grep '{g}' is not a valid regular expression: {e}"),
                    "e.g. \"ERROR|Traceback\" (Rust regex syntax)",
                )
            })?),
            None => None,
        };
        let client = client(ctx, &p.common).await?;
        let pods = select_pods(ctx, &p.common, &client, &p.selection).await?;
        let f = fetch(ctx, &client, &pods, &p.selection, 100, false, 4 << 20).await?;
        let mut lines: Vec<String> = f
            .lines
            .iter()
            .filter(|l| grep.as_ref().is_none_or(|g| g.is_match(&l.text)))
            .map(|l| match (p.timestamps, l.ts) {
                (true, Some(t)) => format!("{t} [{}] {}", l.source, l.text),
                _ => format!("[{}] {}", l.source, l.text),
            })
            .collect();
        // Keep the newest lines within the cap.
        let cap = p.max_bytes.unwrap_or(16_000).clamp(1_000, 1 << 20);
        let mut size = 0;
        let mut keep = lines.len();
        while keep > 0 && size + lines[keep - 1].len() < cap {
            size += lines[keep - 1].len() + 1;
            keep -= 1;
        }
        let truncated_lines = keep;
        lines.drain(..keep);
        Ok(LogsGetOutput {
            sources: f.sources,
            lines,
            truncated_lines,
        })
    }
}

impl Render for LogsGetOutput {
    fn render(&self) -> String {
        let mut s = String::new();
        for src in self.sources.iter().filter(|s| s.error.is_some()) {
            s.push_str(&format!(
                "# {}: {}\n",
                src.source,
                src.error.clone().unwrap_or_default()
            ));
        }
        for src in &self.sources {
            if let Some(cap) = src.byte_capped {
                s.push_str(&format!("# {}: {}\n", src.source, byte_cap_note(src, cap)));
            }
        }
        if self.truncated_lines > 0 {
            s.push_str(&format!("# {} older lines not shown (byte cap) — narrow with tail_lines, since, grep or container, or raise max_bytes\n", self.truncated_lines));
        }
        for l in &self.lines {
            s.push_str(l);
            s.push('\n');
        }
        if self.lines.is_empty() {
            s.push_str("# no log lines\n");
        }
        s
    }
}

// ------------------------------------------------------------------ logs_analyze

/// Reads the logs of a pod or workload (previous instances of crash-looping containers
/// included automatically) and summarises them: lines per source, counts by level, message
/// templates, exceptions with their final line, the first error, error rate over time and hints
/// for common causes (missing env var, connection refused, DNS, auth, OOM, migration).
/// Example: {"namespace": "todo-app", "workload": "Deployment/todo-backend"}.
pub struct LogsAnalyze;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LogsAnalyzeParams {
    #[serde(flatten)]
    pub common: Common,
    #[serde(flatten)]
    pub selection: Selection,
    /// Templates to list (default 15; the rest are counted).
    #[serde(default)]
    pub max_templates: Option<usize>,
    /// Skip this many templates, e.g. 15 to see the next page after the first 15.
    #[serde(default)]
    pub template_offset: Option<usize>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct LogsAnalyzeOutput {
    pub read: Vec<SourceRead>,
    /// Said when a cap stopped the reading (older lines were not read).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub truncation: Option<String>,
    pub analysis: Analysis,
}

/// `2 MiB`, `1500 bytes`.
fn size(bytes: i64) -> String {
    if bytes >= 1 << 20 && bytes % (1 << 20) == 0 {
        format!("{} MiB", bytes >> 20)
    } else {
        format!("{bytes} bytes")
    }
}

/// What a byte cap did to one container log, with the numbers.
fn byte_cap_note(src: &SourceRead, cap: ByteCapped) -> String {
    let mut note = format!(
        "the lines asked for held more than the read cap of {}: only the newest {} lines that fit were read, older ones were not",
        size(cap.limit_bytes),
        src.lines
    );
    if !cap.newest_read {
        note.push_str(" (and the newest few were longer than estimated and are missing too)");
    }
    note
}

/// Says which caps stopped logs_analyze's reading (`tail` lines, and the bytes per container
/// log), with the numbers; `None` when every log was read whole.
fn truncation_note(sources: &[SourceRead], tail: i64) -> Option<String> {
    let by_lines: Vec<&SourceRead> = sources
        .iter()
        .filter(|s| s.byte_capped.is_none() && s.lines as i64 >= tail)
        .collect();
    let by_bytes: Vec<(&SourceRead, ByteCapped)> = sources
        .iter()
        .filter_map(|s| Some((s, s.byte_capped?)))
        .collect();
    let mut notes = vec![];
    if let Some(first) = by_lines.first() {
        notes.push(format!(
            "{} container log(s) hit the cap of {tail} lines each (e.g. {})",
            by_lines.len(),
            first.source
        ));
    }
    if let Some((first, cap)) = by_bytes.first() {
        let mut note = format!(
            "{} container log(s) held more than the cap of {} each in their last {tail} lines, so only the newest lines that fit were read (e.g. {}: {} lines)",
            by_bytes.len(),
            size(cap.limit_bytes),
            first.source,
            first.lines
        );
        let short = by_bytes.iter().filter(|(_, c)| !c.newest_read).count();
        if short > 0 {
            note.push_str(&format!(
                "; in {short} of them the newest few lines are missing too"
            ));
        }
        notes.push(note);
    }
    (!notes.is_empty()).then(|| {
        format!(
            "{}; older lines were not read — pass since or tail_lines to choose the window",
            notes.join("; ")
        )
    })
}

/// Lines read per container instance by logs_analyze unless tail_lines says otherwise.
const ANALYZE_TAIL: i64 = 5_000;
/// Bytes read per container instance.
const ANALYZE_BYTES: i64 = 2 << 20;

impl Tool for LogsAnalyze {
    type Params = LogsAnalyzeParams;
    type Output = LogsAnalyzeOutput;
    const META: ToolMeta = ToolMeta {
        name: "logs_analyze",
        title: "Analyse logs of a pod or workload",
        description: "Summarise the logs of a pod or a whole workload in a few hundred tokens: lines per pod/container, counts by level, message templates with counts, exceptions and stack traces grouped with their final line, the first error, error rate over time, and hints (missing env var, connection refused host:port, DNS, auth, OOM, migration failure). Previous logs of crash-looping containers are included automatically.",
        effect: Effect::Read,
        idempotent: true,
    };

    async fn call(&self, ctx: &Ctx, p: LogsAnalyzeParams) -> Result<LogsAnalyzeOutput, ToolError> {
        let client = client(ctx, &p.common).await?;
        let pods = select_pods(ctx, &p.common, &client, &p.selection).await?;
        let f = fetch(
            ctx,
            &client,
            &pods,
            &p.selection,
            ANALYZE_TAIL,
            true,
            ANALYZE_BYTES,
        )
        .await?;
        // as fetch reads it
        let tail = p
            .selection
            .tail_lines
            .unwrap_or(ANALYZE_TAIL)
            .clamp(1, MAX_TAIL);
        let truncation = truncation_note(&f.sources, tail);
        let opts = AnalyzeOptions {
            max_templates: p.max_templates.unwrap_or(15).clamp(1, 200),
            template_offset: p.template_offset.unwrap_or(0),
            ..Default::default()
        };
        let analysis = analyze(&f.lines, &opts);
        Ok(LogsAnalyzeOutput {
            read: f.sources,
            truncation,
            analysis,
        })
    }
}

impl Render for LogsAnalyzeOutput {
    fn render(&self) -> String {
        let mut s = String::new();
        for src in self.read.iter().filter(|s| s.error.is_some()) {
            s.push_str(&format!(
                "# {}: {}\n",
                src.source,
                src.error.clone().unwrap_or_default()
            ));
        }
        if let Some(t) = &self.truncation {
            s.push_str(&format!("# {t}\n"));
        }
        s.push_str(&self.analysis.render());
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    /// A container log as the kubelet serves it: the last `window` lines, each prefixed with its
    /// timestamp, cut at `limit` bytes from the start of the window.
    struct Kubelet {
        lines: Vec<String>,
        reads: Cell<usize>,
    }

    impl Kubelet {
        fn new(lengths: impl IntoIterator<Item = usize>) -> Self {
            let lines = lengths
                .into_iter()
                .enumerate()
                .map(|(i, len)| {
                    let body = format!("line {i} é {}", "x".repeat(len));
                    format!("2024-05-01T10:00:00.{i:09}Z {body}\n")
                })
                .collect();
            Kubelet {
                lines,
                reads: Cell::new(0),
            }
        }

        fn read(&self, window: i64, limit: i64) -> Vec<u8> {
            self.reads.set(self.reads.get() + 1);
            let from = self.lines.len().saturating_sub(window as usize);
            let mut out = self.lines[from..].concat().into_bytes();
            out.truncate(limit as usize);
            out
        }
    }

    fn read_all(k: &Kubelet, tail: i64, limit: i64) -> SourceText {
        let read = |w| std::future::ready(Ok(k.read(w, limit)));
        futures::executor::block_on(read_newest(read, tail, limit)).unwrap()
    }

    fn last_line(text: &str) -> &str {
        text.lines().last().unwrap_or_default()
    }

    #[test]
    fn a_window_larger_than_the_byte_cap_yields_its_newest_whole_lines() {
        let k = Kubelet::new((0..5_000).map(|i| 40 + i % 37));
        let r = read_all(&k, 5_000, 64 << 10);
        assert_eq!(
            r.byte_capped,
            Some(ByteCapped {
                limit_bytes: 64 << 10,
                newest_read: true
            })
        );
        assert_eq!(last_line(&r.text), k.lines[4_999].trim_end());
        assert!(r.text.len() <= 64 << 10);
        let lines = parse_log("p/c", &r.text);
        // whole lines only, and most of what fits
        assert!(lines
            .iter()
            .all(|(ts, l)| ts.is_some() && l.text.ends_with('x')));
        // about 636 lines of ~103 bytes fit
        assert!(lines.len() > 550, "{}", lines.len());
        assert_eq!(k.reads.get(), 2);
    }

    #[test]
    fn newest_lines_longer_than_the_older_ones_are_still_read() {
        // the window's start is short lines, its end long ones
        let k = Kubelet::new((0..3_000).map(|i| if i < 2_000 { 20 } else { 400 }));
        let r = read_all(&k, 3_000, 32 << 10);
        assert_eq!(last_line(&r.text), k.lines[2_999].trim_end());
        assert_eq!(r.byte_capped.map(|c| c.newest_read), Some(true));
        assert!(k.reads.get() <= MAX_READS);
    }

    #[test]
    fn a_window_within_the_byte_cap_is_read_once_and_whole() {
        let k = Kubelet::new((0..100).map(|_| 50));
        let r = read_all(&k, 100, 64 << 10);
        assert_eq!(r.byte_capped, None);
        assert_eq!(r.text.lines().count(), 100);
        assert_eq!(k.reads.get(), 1);
        // exactly as many bytes as the cap, every line whole: not cut
        let limit = k.lines.concat().len() as i64;
        let r = read_all(&k, 100, limit);
        assert_eq!(r.byte_capped, None);
        assert_eq!(r.text.lines().count(), 100);
        // a log shorter than the window that ends just short of the cap: not cut either
        let r = read_all(&k, 5_000, limit + 10);
        assert_eq!(r.byte_capped, None);
        assert_eq!(r.text.lines().count(), 100);
        assert_eq!(k.reads.get(), 3);
    }

    #[test]
    fn a_single_line_longer_than_the_cap_is_kept_cut_and_said_to_be() {
        let k = Kubelet::new([10, 10, 5_000]);
        let r = read_all(&k, 3, 1_000);
        assert_eq!(
            r.byte_capped,
            Some(ByteCapped {
                limit_bytes: 1_000,
                newest_read: false
            })
        );
        assert!(r.text.starts_with("2024-05-01T10:00:00.000000002Z line 2"));
        assert!(k.reads.get() <= MAX_READS);
    }

    #[test]
    fn a_cut_inside_a_multibyte_character_is_no_error() {
        let k = Kubelet::new([10]);
        // the cap falls inside the two bytes of 'é'
        let cut = k.lines[0].find('é').unwrap() as i64 + 1;
        let r = read_all(&k, 1, cut);
        assert!(r.text.starts_with("2024-05-01T10:00:00.000000000Z line 0"));
    }

    #[test]
    fn lines_without_a_timestamp_stay_next_to_their_neighbours() {
        let a = parse_log(
            "a/c",
            "continued before the first\n2024-05-01T10:00:01Z a1\n  at a stack frame\n2024-05-01T10:00:03Z a3\n",
        );
        let b = parse_log("b/c", "2024-05-01T10:00:00Z b0\n2024-05-01T10:00:02Z b2\n");
        assert_eq!(a[2].1.ts, None);
        let mut keyed: Vec<_> = a.into_iter().chain(b).collect();
        keyed.sort_by_key(|(key, _)| *key);
        let texts: Vec<&str> = keyed.iter().map(|(_, l)| l.text.as_str()).collect();
        assert_eq!(
            texts,
            [
                "b0",
                "continued before the first",
                "a1",
                "  at a stack frame",
                "b2",
                "a3"
            ]
        );
    }

    #[test]
    fn since_in_the_future_is_refused_with_the_servers_time() {
        let now: Timestamp = "2024-05-01T10:00:00Z".parse().unwrap();
        let e = since_seconds(Some("2024-05-01T11:00:00Z"), now)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("in the future") && e.contains("2024-05-01T10:00:00Z"),
            "{e}"
        );
        assert_eq!(
            since_seconds(Some("2024-05-01T09:50:00Z"), now).unwrap(),
            Some(600)
        );
        assert_eq!(since_seconds(Some("10m"), now).unwrap(), Some(600));
        assert_eq!(since_seconds(None, now).unwrap(), None);
        let e = since_seconds(Some("0s"), now).unwrap_err().to_string();
        assert!(e.contains("at least 1s"), "{e}");
    }

    #[test]
    fn truncation_note_tells_line_and_byte_caps_apart_with_numbers() {
        let src = |name: &str, lines, byte_capped| SourceRead {
            source: name.into(),
            lines,
            byte_capped,
            error: None,
        };
        let cap = |newest_read| {
            Some(ByteCapped {
                limit_bytes: 2 << 20,
                newest_read,
            })
        };
        assert_eq!(truncation_note(&[src("a/c", 10, None)], 5_000), None);
        let note = truncation_note(
            &[
                src("a/c", 5_000, None),
                src("b/c", 1_234, cap(true)),
                src("c/c", 900, cap(false)),
            ],
            5_000,
        )
        .unwrap();
        assert!(
            note.contains("1 container log(s) hit the cap of 5000 lines each (e.g. a/c)"),
            "{note}"
        );
        assert!(
            note.contains(
                "2 container log(s) held more than the cap of 2 MiB each in their last 5000 lines"
            ),
            "{note}"
        );
        assert!(
            note.contains("b/c: 1234 lines") && note.contains("in 1 of them the newest few"),
            "{note}"
        );
    }

    #[test]
    fn logs_get_says_when_the_byte_cap_cut_a_container_log() {
        let out = LogsGetOutput {
            sources: vec![SourceRead {
                source: "web-1/web".into(),
                lines: 900,
                byte_capped: Some(ByteCapped {
                    limit_bytes: 4 << 20,
                    newest_read: true,
                }),
                error: None,
            }],
            lines: vec!["[web-1/web] ok".into()],
            truncated_lines: 0,
        };
        let r = out.render();
        assert!(
            r.contains("# web-1/web: the lines asked for held more than the read cap of 4 MiB: only the newest 900 lines that fit were read"),
            "{r}"
        );
    }
}
