//! Analysis of the logs of many pods and containers: levels, message templates, exceptions and
//! stack traces, the first error, the error rate over time, and hints at common causes.
//!
//! Everything here is a pure function of the lines given; fetching them is the caller's job.

use std::collections::{BTreeSet, HashMap};
use std::fmt::Write as _;
use std::str::FromStr;
use std::sync::OnceLock;

use jiff::Timestamp;
use regex::Regex;
use schemars::JsonSchema;
use serde::Serialize;

use super::miner::{build_shape, Miner, MinerConfig};

/// One line of one container's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// `pod/container`, or `pod/container (previous)` for the previous instance's log.
    pub source: String,
    /// When the line was written (for Kubernetes logs, from `timestamps=true`). When `None`, a
    /// leading RFC 3339 timestamp in `text` is used if there is one.
    pub ts: Option<Timestamp>,
    pub text: String,
}

impl LogLine {
    pub fn new(source: impl Into<String>, ts: Option<Timestamp>, text: impl Into<String>) -> Self {
        LogLine {
            source: source.into(),
            ts,
            text: text.into(),
        }
    }
}

/// Options of [`analyze`].
#[derive(Debug, Clone)]
pub struct AnalyzeOptions {
    /// Templates listed at most (the rest are counted in `more_templates`).
    pub max_templates: usize,
    /// Templates skipped before the listed ones, in the same order: a page further down.
    pub template_offset: usize,
    /// Time buckets of the error rate.
    pub buckets: usize,
}

impl Default for AnalyzeOptions {
    fn default() -> Self {
        AnalyzeOptions {
            max_templates: 15,
            template_offset: 0,
            buckets: 10,
        }
    }
}

/// Severity of a line, most severe first in ordering.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Fatal,
    Error,
    Warn,
    Info,
    Debug,
    Unknown,
}

impl Level {
    fn is_error(self) -> bool {
        matches!(self, Level::Fatal | Level::Error)
    }
    fn name(self) -> &'static str {
        match self {
            Level::Fatal => "fatal",
            Level::Error => "error",
            Level::Warn => "warn",
            Level::Info => "info",
            Level::Debug => "debug",
            Level::Unknown => "other",
        }
    }
}

/// Lines read from one source.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct SourceCount {
    pub source: String,
    pub lines: usize,
    /// Error and fatal messages.
    pub errors: usize,
}

/// Messages by level. Stack-trace continuation lines are counted once, in `stack_lines`, not
/// per level.
#[derive(Debug, Clone, Default, PartialEq, Serialize, JsonSchema)]
pub struct LevelCounts {
    pub fatal: usize,
    pub error: usize,
    pub warn: usize,
    pub info: usize,
    pub debug: usize,
    /// Messages with no recognisable level.
    pub other: usize,
    /// Lines that continue a stack trace (`  File …`, `\tat …`, goroutine frames).
    pub stack_lines: usize,
}

/// One message template and where it was seen.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct TemplateSummary {
    /// The template, `<*>` marking variable parts.
    pub template: String,
    /// The most severe level seen with it.
    pub level: Level,
    pub count: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_seen: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_seen: Option<String>,
    /// Sources it was seen in (at most 5).
    pub sources: Vec<String>,
    /// One line with this template.
    pub example: String,
}

/// Occurrences of one exception (same type and message shape).
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct ExceptionGroup {
    /// `python`, `java`, `go` or `node`.
    pub language: String,
    /// Exception type: `KeyError`, `java.lang.NullPointerException`, `panic`, `TypeError`.
    pub exception_type: String,
    /// The line naming the exception and its message (`KeyError: 'DATABASE_URL'`).
    pub message: String,
    pub count: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_seen: Option<String>,
    /// Sources it was seen in (at most 5).
    pub sources: Vec<String>,
    /// A few lines of the first trace (the innermost frames for Python).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trace: Vec<String>,
}

/// The earliest error or fatal message.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct FirstError {
    pub source: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ts: Option<String>,
    pub line: String,
}

/// Lines and errors in one time bucket.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct ErrorBucket {
    pub start: String,
    pub end: String,
    pub lines: usize,
    pub errors: usize,
}

/// A likely cause, with the line that suggests it.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct Hint {
    /// `missing_env_var`, `connection_refused`, `dns_failure`, `auth_failure`, `out_of_memory`
    /// or `migration_failure`.
    pub cause: String,
    /// What it is about: the variable, `host:port`, host name, … (may be empty).
    pub detail: String,
    /// One sentence for a reader.
    pub summary: String,
    /// The (first) line that shows it.
    pub evidence: String,
    pub source: String,
    /// Lines that showed it.
    pub count: usize,
}

/// Result of [`analyze`].
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct Analysis {
    pub total_lines: usize,
    /// Lines read per source, in order of first appearance.
    pub sources: Vec<SourceCount>,
    pub levels: LevelCounts,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hints: Vec<Hint>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exceptions: Vec<ExceptionGroup>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_error: Option<FirstError>,
    /// Lines and errors over time (empty when no line has a timestamp).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub error_rate: Vec<ErrorBucket>,
    /// Message templates, most severe first, then most frequent.
    pub templates: Vec<TemplateSummary>,
    /// Templates skipped before `templates` (the `template_offset` asked for).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub template_offset: usize,
    /// Templates after the ones listed in `templates`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub more_templates: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

const MAX_LINE: usize = 300;

fn clip(s: &str, max: usize) -> String {
    let s = s.trim_end();
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

fn ts_string(ts: Option<Timestamp>) -> Option<String> {
    ts.map(|t| t.to_string())
}

// ---------------------------------------------------------------------------------------------
// levels

struct Patterns {
    klog: Regex,
    py_prefix: Regex,
    access: Regex,
    level_word: Regex,
    bracket_level: Regex,
    logfmt_level: Regex,
    js_error: Regex,
    py_final: Regex,
    java_start: Regex,
    java_frame: Regex,
    go_frame: Regex,
    js_prop: Regex,
    env_key_error: Regex,
    env_missing: Regex,
    env_not_set: Regex,
    host_port: Regex,
    /// `server at "db.local" (10.0.0.1), port 5432` (libpq / psycopg2).
    host_comma_port: Regex,
    dns: Regex,
    dns_host: Regex,
    auth: Regex,
    forbidden: Regex,
    oom: Regex,
    migration: Regex,
    relation: Regex,
}

fn patterns() -> &'static Patterns {
    static P: OnceLock<Patterns> = OnceLock::new();
    P.get_or_init(|| {
        let re = |s: &str| Regex::new(s).expect("built-in pattern");
        Patterns {
            // klog: E0102 15:04:05.123456   12345 file.go:42] msg
            klog: re(r"^([IWEF])\d{4} \d{2}:\d{2}:\d{2}\.\d+\s"),
            // Python logging `ERROR:root:msg`, uvicorn `INFO:     msg`
            py_prefix: re(r"^(CRITICAL|FATAL|ERROR|WARNING|WARN|INFO|DEBUG):(?:[\w.\-]*:|\s)"),
            // access logs: "GET /x HTTP/1.1" 500
            access: re(r#""[A-Z]+ \S+ HTTP/[\d.]+"\s+(\d{3})\b"#),
            level_word: re(r"\b(FATAL|CRITICAL|ERROR|ERR|WARNING|WARN|INFO|DEBUG|TRACE|PANIC|SEVERE)\b"),
            bracket_level: re(r"(?i)[\[<(](fatal|critical|crit|error|err|warning|warn|notice|info|debug|trace)[\]>)]"),
            logfmt_level: re(r#"(?i)\b(?:level|lvl|severity)=["']?(\w+)"#),
            // Node / JS: `Error: msg`, `TypeError [ERR_X]: msg`, possibly after `⨯ `
            js_error: re(r"^(?:⨯\s*)?(?:Uncaught\s+)?([A-Z]\w*(?:Error|Exception))(?:\s*\[\w+\])?:\s?(.*)$"),
            // Python traceback's last line: `KeyError: 'X'`, `module.Error: msg`, `SystemExit`
            py_final: re(r"^([A-Za-z_][\w.]*(?:Error|Exception|Exit|Interrupt|Warning|Failure|Fault)|[A-Za-z_][\w]*\.[\w.]*[A-Z]\w*)(?::\s?(.*))?$"),
            java_start: re(r#"^(?:Exception in thread "[^"]*"\s+)?((?:[a-z_$][\w$]*\.)+[A-Z][\w$]*(?:Exception|Error|Throwable))(?::\s?(.*))?$"#),
            java_frame: re(r"^\s+at\s+[\w$.<>/]+\(.*\)\s*$|^\s+\.\.\. \d+ more\s*$|^Caused by: "),
            go_frame: re(r"^(?:goroutine \d+ \[|created by |\[signal |exit status \d+|[\w./*()\-]+\(.*\)$)"),
            js_prop: re(r"^[\w$]+: \S"),
            env_key_error: re(r#"KeyError: ['"]([A-Z][A-Z0-9_]*)['"]"#),
            env_missing: re(r#"(?i)missing (?:required )?env(?:ironment)? var(?:iable)?s?:?\s*['"`]?([A-Za-z_][A-Za-z0-9_]*)"#),
            env_not_set: re(r#"(?i)env(?:ironment)? var(?:iable)?\s+['"`]?([A-Za-z_][A-Za-z0-9_]*)['"`]?\s+(?:is\s+)?(?:not set|not defined|unset|missing|required)"#),
            host_port: re(r"\b((?:\d{1,3}\.){3}\d{1,3}|\[[0-9a-fA-F:]+\]|[A-Za-z][\w.\-]*):(\d{2,5})\b"),
            host_comma_port: re(r#"(?i)(?:server at|host)\s*"?([A-Za-z0-9][\w.\-]*)"?\s*(?:\([^)]*\))?,?\s*port\s*(\d{2,5})"#),
            dns: re(r"(?i)could not resolve|no such host|name or service not known|ENOTFOUND|EAI_AGAIN|temporary failure in name resolution|could not translate host name|nodename nor servname"),
            dns_host: re(r#"(?i)(?:ENOTFOUND|EAI_AGAIN|lookup|resolve host:?|translate host name)\s+["']?([A-Za-z0-9][\w.\-]*)"#),
            auth: re(r"(?i)password authentication failed|invalid credentials|authentication failed|unauthorized|401 unauthorized|access denied for user|invalid api key|invalid token"),
            forbidden: re(r#"forbidden: User "[^"]*" cannot \w+ resource"#),
            oom: re(r"MemoryError|(?i:out of memory)|OOMKilled|OutOfMemoryError|^Killed\s*$|Memory limit exceeded"),
            migration: re(r"(?i)DuplicateColumn|DuplicateTable|UndefinedTable|UndefinedColumn|migrations? (?:failed|error)|failed to (?:run|apply) migrations?|alembic upgrade head|alembic\.util\.exc|can't locate revision|target database is not up to date"),
            relation: re(r#"relation "([^"]+)" does not exist|column "([^"]+)" (?:of relation "[^"]+" )?(?:does not exist|already exists)"#),
        }
    })
}

fn word_level(w: &str) -> Option<Level> {
    Some(match w.to_ascii_lowercase().as_str() {
        "fatal" | "critical" | "crit" | "panic" | "emerg" | "alert" | "dpanic" => Level::Fatal,
        "error" | "err" | "severe" => Level::Error,
        "warning" | "warn" => Level::Warn,
        "info" | "notice" | "information" => Level::Info,
        "debug" | "trace" | "verbose" => Level::Debug,
        _ => return None,
    })
}

/// Level of a JSON number (pino / bunyan: 10 trace … 60 fatal).
fn numeric_level(n: i64) -> Level {
    match n {
        n if n >= 60 => Level::Fatal,
        n if n >= 50 => Level::Error,
        n if n >= 40 => Level::Warn,
        n if n >= 30 => Level::Info,
        _ => Level::Debug,
    }
}

/// What the analysis needs from one line: its level and the message to mine.
struct Classified<'a> {
    level: Level,
    message: std::borrow::Cow<'a, str>,
}

/// The level of a JSON log line and its message field, if the line is a JSON object.
fn json_line(text: &str) -> Option<(Level, Option<String>)> {
    let t = text.trim();
    if !t.starts_with('{') || !t.ends_with('}') {
        return None;
    }
    let v: serde_json::Value = serde_json::from_str(t).ok()?;
    let obj = v.as_object()?;
    let mut level = Level::Unknown;
    for key in [
        "level",
        "severity",
        "lvl",
        "levelname",
        "log.level",
        "loglevel",
        "status",
    ] {
        match obj.get(key) {
            Some(serde_json::Value::String(s)) => {
                if let Some(l) = word_level(s) {
                    level = l;
                    break;
                }
            }
            Some(serde_json::Value::Number(n)) if key != "status" => {
                if let Some(n) = n.as_i64() {
                    level = numeric_level(n);
                    break;
                }
            }
            _ => {}
        }
    }
    let msg = ["msg", "message", "event", "error", "err"]
        .iter()
        .find_map(|k| obj.get(*k).and_then(|m| m.as_str()).map(str::to_string));
    Some((level, msg))
}

fn classify(text: &str) -> Classified<'_> {
    let p = patterns();
    let plain = |level| Classified {
        level,
        message: std::borrow::Cow::Borrowed(text),
    };
    if let Some((level, msg)) = json_line(text) {
        return Classified {
            level,
            message: msg.map_or(std::borrow::Cow::Borrowed(text), std::borrow::Cow::Owned),
        };
    }
    if let Some(c) = p.klog.captures(text) {
        let level = match &c[1] {
            "F" => Level::Fatal,
            "E" => Level::Error,
            "W" => Level::Warn,
            _ => Level::Info,
        };
        let msg = text.find("] ").map_or(text, |i| &text[i + 2..]);
        return Classified {
            level,
            message: std::borrow::Cow::Borrowed(msg),
        };
    }
    // access logs: the status decides (uvicorn writes them at INFO)
    if let Some(c) = p.access.captures(text) {
        let status: u16 = c[1].parse().unwrap_or(0);
        return plain(if status >= 500 {
            Level::Error
        } else if status >= 400 {
            Level::Warn
        } else {
            Level::Info
        });
    }
    if let Some(c) = p.py_prefix.captures(text) {
        return plain(word_level(&c[1]).unwrap_or(Level::Unknown));
    }
    let trimmed = text.trim_start();
    if trimmed.starts_with("panic:") || trimmed.starts_with("fatal error:") {
        return plain(Level::Fatal);
    }
    if trimmed.starts_with('⨯') {
        return plain(Level::Error);
    }
    if trimmed.starts_with('⚠') {
        return plain(Level::Warn);
    }
    if p.js_error.is_match(trimmed) || (p.py_final.is_match(trimmed) && trimmed.contains(':')) {
        return plain(Level::Error);
    }
    // a level word near the start of the line
    let mut cut = text.len().min(120);
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    let head = &text[..cut];
    if let Some(c) = p.logfmt_level.captures(head) {
        if let Some(l) = word_level(&c[1]) {
            return plain(l);
        }
    }
    if let Some(c) = p.level_word.captures(head) {
        if let Some(l) = word_level(&c[1]) {
            return plain(l);
        }
    }
    if let Some(c) = p.bracket_level.captures(head) {
        if let Some(l) = word_level(&c[1]) {
            return plain(l);
        }
    }
    if trimmed == "Killed" {
        return plain(Level::Fatal);
    }
    plain(Level::Unknown)
}

// ---------------------------------------------------------------------------------------------
// exceptions

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lang {
    Python,
    Java,
    Go,
    Node,
}

impl Lang {
    fn name(self) -> &'static str {
        match self {
            Lang::Python => "python",
            Lang::Java => "java",
            Lang::Go => "go",
            Lang::Node => "node",
        }
    }
}

/// An exception being read from one source.
#[derive(Debug)]
struct OpenTrace {
    lang: Lang,
    ty: String,
    message: String,
    ts: Option<Timestamp>,
    lines: Vec<String>,
    /// Python: true once the final `XError: msg` line was read.
    done: bool,
}

const TRACE_KEEP: usize = 6;

impl OpenTrace {
    fn push(&mut self, line: &str) {
        if self.lines.len() < 64 {
            self.lines.push(clip(line, 200));
        }
    }
}

/// Is `line` a continuation of the open trace?
fn continues(t: &OpenTrace, line: &str) -> bool {
    let p = patterns();
    let indented = line.starts_with([' ', '\t']);
    match t.lang {
        Lang::Python => {
            !t.done
                && (indented
                    || line.is_empty()
                    || line.starts_with("Traceback (most recent call last)")
                    || line.starts_with("During handling of the above exception")
                    || line.starts_with("The above exception was the direct cause"))
        }
        Lang::Java => indented && p.java_frame.is_match(line) || line.starts_with("Caused by: "),
        Lang::Go => indented || line.is_empty() || p.go_frame.is_match(line),
        Lang::Node => {
            let tr = line.trim_start();
            line.starts_with('}')
                || (indented
                    && (tr.starts_with("at ")
                        || tr.starts_with('[')
                        || tr.starts_with('{')
                        || tr.starts_with('}')
                        || p.js_prop.is_match(tr)))
        }
    }
}

#[derive(Debug)]
struct ExcAcc {
    group: ExceptionGroup,
    sources: BTreeSet<String>,
    first_ts: Option<Timestamp>,
}

// ---------------------------------------------------------------------------------------------
// hints

#[derive(Debug)]
struct HintAcc {
    hint: Hint,
    order: usize,
}

fn add_hint(
    hints: &mut HashMap<(String, String), HintAcc>,
    cause: &str,
    detail: &str,
    summary: String,
    line: &LogLine,
) {
    let n = hints.len();
    hints
        .entry((cause.to_string(), detail.to_string()))
        .and_modify(|h| h.hint.count += 1)
        .or_insert_with(|| HintAcc {
            hint: Hint {
                cause: cause.to_string(),
                detail: detail.to_string(),
                summary,
                evidence: clip(&line.text, MAX_LINE),
                source: line.source.clone(),
                count: 1,
            },
            order: n,
        });
}

fn scan_hints(line: &LogLine, level: Level, hints: &mut HashMap<(String, String), HintAcc>) {
    let p = patterns();
    let text = line.text.as_str();
    // missing environment variable
    for re in [&p.env_key_error, &p.env_missing, &p.env_not_set] {
        if let Some(c) = re.captures(text) {
            let var = &c[1];
            add_hint(
                hints,
                "missing_env_var",
                var,
                format!("environment variable {var} is missing: set it in the container's env (or the Secret/ConfigMap it comes from)"),
                line,
            );
            break;
        }
    }
    // connection refused
    if text.contains("ECONNREFUSED") || text.to_ascii_lowercase().contains("connection refused") {
        let target = p
            .host_port
            .captures_iter(text)
            .map(|c| format!("{}:{}", &c[1], &c[2]))
            .find(|hp| !hp.starts_with("http") && !hp.starts_with("node:"))
            .or_else(|| {
                p.host_comma_port
                    .captures(text)
                    .map(|c| format!("{}:{}", &c[1], &c[2]))
            })
            .unwrap_or_default();
        let summary = if target.is_empty() {
            "a connection was refused: the target service is down, not ready, or on another port"
                .to_string()
        } else {
            format!("connection to {target} was refused: nothing listens there (service down or not ready, wrong port, or a Service without ready endpoints)")
        };
        add_hint(hints, "connection_refused", &target, summary, line);
    }
    // DNS
    if p.dns.is_match(text) {
        let host = p
            .dns_host
            .captures(text)
            .map(|c| c[1].trim_end_matches(['.', ':', ',']).to_string())
            .unwrap_or_default();
        let summary = if host.is_empty() {
            "a host name did not resolve: check the Service name and namespace".to_string()
        } else {
            format!("host name {host} did not resolve: check the Service name, namespace and that it exists")
        };
        add_hint(hints, "dns_failure", &host, summary, line);
    }
    // auth
    if let Some(m) = p.forbidden.find(text) {
        add_hint(
            hints,
            "auth_failure",
            m.as_str(),
            "the service account lacks RBAC permission for an API call (add a Role/RoleBinding)"
                .to_string(),
            line,
        );
    } else if p.auth.is_match(text) {
        add_hint(
            hints,
            "auth_failure",
            "",
            "authentication failed: check credentials, tokens or secrets the app uses".to_string(),
            line,
        );
    } else if let Some(c) = p.access.captures(text) {
        if &c[1] == "401" || &c[1] == "403" {
            add_hint(
                hints,
                "auth_failure",
                &c[1],
                format!("requests are rejected with HTTP {}: missing or wrong credentials, or no permission", &c[1]),
                line,
            );
        }
    }
    // out of memory
    if p.oom.is_match(text.trim()) {
        add_hint(
            hints,
            "out_of_memory",
            "",
            "the process ran out of memory (or was killed for it): raise the memory limit or reduce usage".to_string(),
            line,
        );
    }
    // migrations
    if p.migration.is_match(text)
        || (level.is_error() && (p.relation.is_match(text) || text.contains("alembic")))
    {
        let detail = p
            .relation
            .captures(text)
            .and_then(|c| c.get(1).or(c.get(2)))
            .map(|m| m.as_str().to_string())
            .unwrap_or_default();
        add_hint(
            hints,
            "migration_failure",
            &detail,
            "the database schema does not match the code: a migration failed or was not run (for example `alembic upgrade head`)".to_string(),
            line,
        );
    }
}

// ---------------------------------------------------------------------------------------------
// analysis

#[derive(Debug)]
struct TemplateAcc {
    level: Level,
    count: usize,
    first: Option<Timestamp>,
    last: Option<Timestamp>,
    sources: BTreeSet<String>,
    example: String,
}

/// Timestamp of a line: its own, or a leading RFC 3339 timestamp in the text.
fn line_ts(line: &LogLine) -> Option<Timestamp> {
    if line.ts.is_some() {
        return line.ts;
    }
    let first = line.text.split_ascii_whitespace().next()?;
    if first.len() < 20 || !first.as_bytes()[0].is_ascii_digit() {
        return None;
    }
    Timestamp::from_str(first).ok()
}

/// Analyses `lines` (any mix of sources, each source's lines in order).
pub fn analyze(lines: &[LogLine], opts: &AnalyzeOptions) -> Analysis {
    let p = patterns();
    let mut sources: Vec<SourceCount> = Vec::new();
    let mut source_idx: HashMap<&str, usize> = HashMap::new();
    let mut levels = LevelCounts::default();
    let mut miner = Miner::new(MinerConfig {
        max_templates: 5_000,
        ..MinerConfig::default()
    });
    let mut templates: HashMap<u32, TemplateAcc> = HashMap::new();
    let mut open: HashMap<&str, OpenTrace> = HashMap::new();
    let mut exceptions: HashMap<String, ExcAcc> = HashMap::new();
    let mut exc_order: Vec<String> = Vec::new();
    let mut hints: HashMap<(String, String), HintAcc> = HashMap::new();
    let mut first_error: Option<(Option<Timestamp>, usize)> = None;
    let mut stamped: Vec<(Timestamp, bool)> = Vec::new();

    let mut close = |t: OpenTrace, source: &str, exc: &mut HashMap<String, ExcAcc>| {
        if matches!(t.lang, Lang::Java | Lang::Node) && t.lines.is_empty() {
            // a Java/Node error line is an exception (with a trace) only when frames follow
            return;
        }
        let mut shape = String::new();
        build_shape(&t.message, &mut shape);
        let key = format!("{}\u{1}{}\u{1}{}", t.lang.name(), t.ty, shape);
        let trace: Vec<String> = if t.lang == Lang::Python {
            // the innermost frames are the last ones
            let n = t.lines.len();
            t.lines[n.saturating_sub(TRACE_KEEP)..].to_vec()
        } else {
            t.lines.iter().take(TRACE_KEEP).cloned().collect()
        };
        let message = if t.message.is_empty() {
            t.ty.clone()
        } else {
            format!("{}: {}", t.ty, t.message)
        };
        let acc = exc.entry(key.clone()).or_insert_with(|| {
            exc_order.push(key.clone());
            ExcAcc {
                group: ExceptionGroup {
                    language: t.lang.name().to_string(),
                    exception_type: t.ty.clone(),
                    message: clip(&message, MAX_LINE),
                    count: 0,
                    first_seen: None,
                    sources: Vec::new(),
                    trace,
                },
                sources: BTreeSet::new(),
                first_ts: None,
            }
        });
        acc.group.count += 1;
        acc.sources.insert(source.to_string());
        if let Some(ts) = t.ts {
            if acc.first_ts.is_none_or(|f| ts < f) {
                acc.first_ts = Some(ts);
            }
        }
    };

    for (idx, line) in lines.iter().enumerate() {
        let si = *source_idx.entry(line.source.as_str()).or_insert_with(|| {
            sources.push(SourceCount {
                source: line.source.clone(),
                lines: 0,
                errors: 0,
            });
            sources.len() - 1
        });
        sources[si].lines += 1;
        let ts = line_ts(line);
        let text = line.text.trim_end_matches(['\r', '\n']);
        // the timestamp, when it leads the text, is not part of the message
        let body = match (line.ts, ts) {
            (None, Some(_)) => text
                .split_once(char::is_whitespace)
                .map_or("", |(_, rest)| rest.trim_start()),
            _ => text,
        };

        // stack traces: continuation lines belong to the open exception of this source
        if let Some(t) = open.get_mut(line.source.as_str()) {
            if continues(t, body) {
                t.push(body);
                levels.stack_lines += 1;
                scan_hints(line, Level::Error, &mut hints);
                continue;
            }
            // Python: the first unindented line after the frames names the exception
            if t.lang == Lang::Python && !t.done {
                if let Some(c) = p.py_final.captures(body.trim()) {
                    t.ty = c[1].to_string();
                    t.message = c.get(2).map_or("", |m| m.as_str()).trim().to_string();
                    t.done = true;
                    t.push(body);
                }
            }
            let t = open.remove(line.source.as_str()).expect("present");
            let python_final = t.lang == Lang::Python
                && t.done
                && t.lines.last().map(String::as_str) == Some(body);
            close(t, &line.source, &mut exceptions);
            if python_final {
                // the final line is an error message in its own right
                levels.error += 1;
                sources[si].errors += 1;
                note_error(&mut first_error, ts, idx);
                if let Some(ts) = ts {
                    stamped.push((ts, true));
                }
                scan_hints(line, Level::Error, &mut hints);
                mine(
                    &mut miner,
                    &mut templates,
                    body,
                    Level::Error,
                    ts,
                    &line.source,
                );
                continue;
            }
        }

        if body.trim().is_empty() {
            continue;
        }
        let c = classify(body);
        let mut level = c.level;
        // does an exception start here?
        let trimmed = body.trim_start();
        let after_marker = trimmed.trim_start_matches('⨯').trim_start();
        let start = if body.contains("Traceback (most recent call last)") {
            Some((Lang::Python, String::new(), String::new()))
        } else if let Some(rest) = trimmed.strip_prefix("panic: ") {
            Some((Lang::Go, "panic".to_string(), rest.to_string()))
        } else if let Some(rest) = trimmed.strip_prefix("fatal error: ") {
            Some((Lang::Go, "fatal error".to_string(), rest.to_string()))
        } else if let Some(cap) = p.java_start.captures(trimmed) {
            Some((
                Lang::Java,
                cap[1].to_string(),
                cap.get(2).map_or("", |m| m.as_str()).to_string(),
            ))
        } else {
            p.js_error.captures(after_marker).map(|cap| {
                (
                    Lang::Node,
                    cap[1].to_string(),
                    cap.get(2).map_or("", |m| m.as_str()).to_string(),
                )
            })
        };
        if let Some((lang, ty, message)) = start {
            if level == Level::Unknown || level > Level::Error {
                level = if lang == Lang::Go {
                    Level::Fatal
                } else {
                    Level::Error
                };
            }
            let java_or_node = matches!(lang, Lang::Java | Lang::Node);
            // Java and Node errors without a trace are plain error lines; the trace decides
            let t = OpenTrace {
                lang,
                ty,
                message,
                ts,
                lines: if lang == Lang::Python || java_or_node {
                    Vec::new()
                } else {
                    vec![clip(body, 200)]
                },
                done: false,
            };
            open.insert(line.source.as_str(), t);
        }
        match level {
            Level::Fatal => levels.fatal += 1,
            Level::Error => levels.error += 1,
            Level::Warn => levels.warn += 1,
            Level::Info => levels.info += 1,
            Level::Debug => levels.debug += 1,
            Level::Unknown => levels.other += 1,
        }
        if level.is_error() {
            sources[si].errors += 1;
            note_error(&mut first_error, ts, idx);
        }
        if let Some(ts) = ts {
            stamped.push((ts, level.is_error()));
        }
        scan_hints(line, level, &mut hints);
        mine(
            &mut miner,
            &mut templates,
            &c.message,
            level,
            ts,
            &line.source,
        );
    }
    // traces still open at the end of their source
    let rest: Vec<(&str, OpenTrace)> = open.drain().collect();
    for (source, t) in rest {
        close(t, source, &mut exceptions);
    }
    let mut exc_list: Vec<ExceptionGroup> = exc_order
        .iter()
        .filter_map(|k| exceptions.remove(k))
        .map(|mut e| {
            e.group.sources = e.sources.into_iter().take(5).collect();
            e.group.first_seen = ts_string(e.first_ts);
            e.group
        })
        .collect();
    exc_list.sort_by_key(|e| std::cmp::Reverse(e.count));

    // templates: merged ids resolved, most severe first, then most frequent
    let mut merged: HashMap<u32, TemplateAcc> = HashMap::new();
    for (id, acc) in templates {
        let root = miner.resolve(id);
        match merged.get_mut(&root) {
            None => {
                merged.insert(root, acc);
            }
            Some(m) => {
                m.level = m.level.min(acc.level);
                m.count += acc.count;
                m.first = min_opt(m.first, acc.first);
                m.last = max_opt(m.last, acc.last);
                m.sources.extend(acc.sources);
            }
        }
    }
    let mut tlist: Vec<TemplateSummary> = merged
        .into_iter()
        .map(|(id, acc)| TemplateSummary {
            template: miner.template(id).unwrap_or_else(|| acc.example.clone()),
            level: acc.level,
            count: acc.count,
            first_seen: ts_string(acc.first),
            last_seen: ts_string(acc.last),
            sources: acc.sources.into_iter().take(5).collect(),
            example: acc.example,
        })
        .collect();
    tlist.sort_by(|a, b| {
        a.level
            .cmp(&b.level)
            .then(b.count.cmp(&a.count))
            .then(a.template.cmp(&b.template))
    });
    let template_offset = opts.template_offset.min(tlist.len());
    tlist.drain(..template_offset);
    let more_templates = tlist.len().saturating_sub(opts.max_templates);
    tlist.truncate(opts.max_templates);

    let mut hint_list: Vec<HintAcc> = hints.into_values().collect();
    hint_list.sort_by_key(|h| h.order);

    let first_error = first_error.map(|(ts, idx)| FirstError {
        source: lines[idx].source.clone(),
        ts: ts_string(ts),
        line: clip(&lines[idx].text, MAX_LINE),
    });

    Analysis {
        total_lines: lines.len(),
        sources,
        levels,
        hints: hint_list.into_iter().map(|h| h.hint).collect(),
        exceptions: exc_list,
        first_error,
        error_rate: buckets(&stamped, opts.buckets),
        templates: tlist,
        template_offset,
        more_templates,
    }
}

fn min_opt(a: Option<Timestamp>, b: Option<Timestamp>) -> Option<Timestamp> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

fn max_opt(a: Option<Timestamp>, b: Option<Timestamp>) -> Option<Timestamp> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

/// Keeps the earliest error: by timestamp when it has one, else the first in input order (a
/// stamped error beats an unstamped one).
fn note_error(first: &mut Option<(Option<Timestamp>, usize)>, ts: Option<Timestamp>, idx: usize) {
    let better = match (*first, ts) {
        (None, _) => true,
        (Some((Some(f), _)), Some(t)) => t < f,
        (Some((None, _)), Some(_)) => true,
        _ => false,
    };
    if better {
        *first = Some((ts, idx));
    }
}

fn mine(
    miner: &mut Miner,
    templates: &mut HashMap<u32, TemplateAcc>,
    message: &str,
    level: Level,
    ts: Option<Timestamp>,
    source: &str,
) {
    if message.trim().is_empty() {
        return;
    }
    let id = miner.add(message);
    let acc = templates.entry(id).or_insert_with(|| TemplateAcc {
        level,
        count: 0,
        first: ts,
        last: ts,
        sources: BTreeSet::new(),
        example: clip(message, MAX_LINE),
    });
    acc.level = acc.level.min(level);
    acc.count += 1;
    acc.first = min_opt(acc.first, ts);
    acc.last = max_opt(acc.last, ts);
    if acc.sources.len() < 5 {
        acc.sources.insert(source.to_string());
    }
}

fn buckets(stamped: &[(Timestamp, bool)], n: usize) -> Vec<ErrorBucket> {
    if stamped.is_empty() || n == 0 {
        return Vec::new();
    }
    let lo = stamped.iter().map(|s| s.0).min().expect("non-empty");
    let hi = stamped.iter().map(|s| s.0).max().expect("non-empty");
    let span = (hi.as_nanosecond() - lo.as_nanosecond()).max(1);
    let n = if span <= 1 { 1 } else { n };
    let width = (span + n as i128 - 1) / n as i128;
    let mut out: Vec<ErrorBucket> = (0..n)
        .map(|i| {
            let s = lo.as_nanosecond() + width * i as i128;
            let e = (s + width).min(hi.as_nanosecond().max(s + 1));
            ErrorBucket {
                start: Timestamp::from_nanosecond(s)
                    .map_or_else(|_| String::new(), |t| t.to_string()),
                end: Timestamp::from_nanosecond(e)
                    .map_or_else(|_| String::new(), |t| t.to_string()),
                lines: 0,
                errors: 0,
            }
        })
        .collect();
    for (ts, err) in stamped {
        let i = (((ts.as_nanosecond() - lo.as_nanosecond()) / width) as usize).min(n - 1);
        out[i].lines += 1;
        if *err {
            out[i].errors += 1;
        }
    }
    out
}

impl Analysis {
    /// A compact text report for a model: counts, likely causes first, exceptions, the first
    /// error, the error rate and the top templates.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let srcs: Vec<String> = self
            .sources
            .iter()
            .take(8)
            .map(|c| format!("{} {}", c.source, c.lines))
            .collect();
        let _ = writeln!(
            s,
            "{} lines from {} source{} ({}{})",
            self.total_lines,
            self.sources.len(),
            if self.sources.len() == 1 { "" } else { "s" },
            srcs.join(", "),
            if self.sources.len() > 8 { ", …" } else { "" }
        );
        let l = &self.levels;
        let mut lv = Vec::new();
        for (n, name) in [
            (l.fatal, "fatal"),
            (l.error, "error"),
            (l.warn, "warn"),
            (l.info, "info"),
            (l.debug, "debug"),
            (l.other, "other"),
            (l.stack_lines, "stack-trace lines"),
        ] {
            if n > 0 {
                lv.push(format!("{n} {name}"));
            }
        }
        let _ = writeln!(
            s,
            "levels: {}",
            if lv.is_empty() {
                "none".into()
            } else {
                lv.join(", ")
            }
        );
        if !self.hints.is_empty() {
            let _ = writeln!(s, "likely causes:");
            for h in &self.hints {
                let times = if h.count > 1 {
                    format!(" (×{})", h.count)
                } else {
                    String::new()
                };
                let _ = writeln!(s, "- {}{times}", h.summary);
                let _ = writeln!(s, "  evidence [{}]: {}", h.source, clip(&h.evidence, 200));
            }
        }
        if !self.exceptions.is_empty() {
            let _ = writeln!(s, "exceptions:");
            for e in self.exceptions.iter().take(5) {
                let first = e
                    .first_seen
                    .as_deref()
                    .map(|t| format!(", first {t}"))
                    .unwrap_or_default();
                let _ = writeln!(
                    s,
                    "- {} ×{} [{}] in {}{first}",
                    clip(&e.message, 200),
                    e.count,
                    e.language,
                    e.sources.join(", ")
                );
                for t in e.trace.iter().take(4) {
                    let _ = writeln!(s, "    {}", clip(t.trim(), 160));
                }
            }
            if self.exceptions.len() > 5 {
                let _ = writeln!(s, "  ({} more exception kinds)", self.exceptions.len() - 5);
            }
        }
        if let Some(f) = &self.first_error {
            let ts = f.ts.as_deref().map(|t| format!("{t} ")).unwrap_or_default();
            let _ = writeln!(s, "first error: {ts}[{}] {}", f.source, clip(&f.line, 200));
        }
        if self.error_rate.len() > 1 && self.error_rate.iter().any(|b| b.errors > 0) {
            let counts: Vec<String> = self
                .error_rate
                .iter()
                .map(|b| format!("{}/{}", b.errors, b.lines))
                .collect();
            let _ = writeln!(
                s,
                "errors/lines over time ({} … {}): {}",
                self.error_rate[0].start,
                self.error_rate[self.error_rate.len() - 1].end,
                counts.join(" ")
            );
        }
        if self.template_offset > 0 {
            let total = self.template_offset + self.templates.len() + self.more_templates;
            if self.templates.is_empty() {
                let _ = writeln!(
                    s,
                    "(no templates after the first {}: there are {total})",
                    self.template_offset
                );
            } else {
                let _ = writeln!(
                    s,
                    "templates {}-{} of {total}:",
                    self.template_offset + 1,
                    self.template_offset + self.templates.len()
                );
            }
        } else if !self.templates.is_empty() {
            let _ = writeln!(s, "top templates:");
        }
        if !self.templates.is_empty() {
            for t in &self.templates {
                let _ = writeln!(
                    s,
                    "- [{}] ×{} {}",
                    t.level.name(),
                    t.count,
                    clip(&t.template, 160)
                );
            }
        }
        if self.more_templates > 0 {
            let _ = writeln!(
                s,
                "({} more templates: pass template_offset={})",
                self.more_templates,
                self.template_offset + self.templates.len()
            );
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Option<Timestamp> {
        Some(s.parse().unwrap())
    }

    fn lines(source: &str, start: &str, texts: &[&str]) -> Vec<LogLine> {
        let t0: Timestamp = start.parse().unwrap();
        texts
            .iter()
            .enumerate()
            .map(|(i, t)| {
                LogLine::new(
                    source,
                    Some(t0 + jiff::SignedDuration::from_millis(100 * i as i64)),
                    *t,
                )
            })
            .collect()
    }

    fn backend_crash() -> Vec<LogLine> {
        lines(
            "api-7d9f/api (previous)",
            "2024-05-01T10:00:00Z",
            &[
                "INFO:     Started server process [1]",
                "INFO:     Waiting for application startup.",
                "ERROR:    Traceback (most recent call last):",
                "  File \"/usr/local/lib/python3.12/site-packages/starlette/routing.py\", line 693, in lifespan",
                "    async with self.lifespan_context(app) as maybe_state:",
                "  File \"/app/main.py\", line 12, in lifespan",
                "    engine = create_engine(os.environ[\"DATABASE_URL\"])",
                "  File \"<frozen os>\", line 714, in __getitem__",
                "KeyError: 'DATABASE_URL'",
                "",
                "ERROR:    Application startup failed. Exiting.",
            ],
        )
    }

    #[test]
    fn python_keyerror_traceback_becomes_exception_and_missing_env_hint() {
        let a = analyze(&backend_crash(), &AnalyzeOptions::default());
        assert_eq!(a.exceptions.len(), 1, "{:#?}", a.exceptions);
        let e = &a.exceptions[0];
        assert_eq!(e.exception_type, "KeyError");
        assert_eq!(e.message, "KeyError: 'DATABASE_URL'");
        assert_eq!(e.language, "python");
        assert!(e.trace.iter().any(|t| t.contains("/app/main.py")));
        assert_eq!(e.sources, vec!["api-7d9f/api (previous)"]);
        let h = &a.hints[0];
        assert_eq!(h.cause, "missing_env_var");
        assert_eq!(h.detail, "DATABASE_URL");
        assert!(h.evidence.contains("DATABASE_URL"));
        assert_eq!(a.levels.info, 2);
        assert!(a.levels.error >= 2, "{:?}", a.levels);
        let fe = a.first_error.as_ref().unwrap();
        assert!(fe.line.contains("Traceback"), "{fe:?}");
        assert_eq!(fe.ts.as_deref(), Some("2024-05-01T10:00:00.2Z"));
    }

    #[test]
    fn nextjs_fetch_failed_gives_node_exception_and_connection_refused_hint() {
        let l = lines(
            "web-5c4b/web",
            "2024-05-01T10:00:05Z",
            &[
                "  ▲ Next.js 14.2.3",
                " ✓ Ready in 412ms",
                " ⨯ TypeError: fetch failed",
                "    at node:internal/deps/undici/undici:13502:13",
                "    at async Page (/app/.next/server/app/page.js:1:2345) {",
                "  [cause]: Error: connect ECONNREFUSED 10.96.3.4:8000",
                "      at TCPConnectWrap.afterConnect [as oncomplete] (node:net:1607:16) {",
                "    errno: -111,",
                "    code: 'ECONNREFUSED',",
                "  }",
                "}",
                " ⚠ Fast Refresh had to perform a full reload",
            ],
        );
        let a = analyze(&l, &AnalyzeOptions::default());
        let e = &a.exceptions[0];
        assert_eq!(e.language, "node");
        assert_eq!(e.exception_type, "TypeError");
        assert_eq!(e.message, "TypeError: fetch failed");
        let h = a
            .hints
            .iter()
            .find(|h| h.cause == "connection_refused")
            .unwrap();
        assert_eq!(h.detail, "10.96.3.4:8000");
        assert_eq!(a.levels.warn, 1);
        assert_eq!(a.levels.error, 1);
    }

    #[test]
    fn libpq_connection_refused_names_host_and_port() {
        let l = lines(
            "api-1/api",
            "2024-05-01T10:00:00Z",
            &["psycopg2.OperationalError: connection to server at \"postgres.todo-app.svc\" (10.96.44.12), port 5432 failed: Connection refused"],
        );
        let a = analyze(&l, &AnalyzeOptions::default());
        let h = a
            .hints
            .iter()
            .find(|h| h.cause == "connection_refused")
            .unwrap();
        assert_eq!(h.detail, "postgres.todo-app.svc:5432");
    }

    #[test]
    fn go_panic_with_goroutine_trace_is_one_fatal_exception() {
        let l = lines(
            "worker-1/worker",
            "2024-05-01T10:00:00Z",
            &[
                "starting worker",
                "panic: runtime error: invalid memory address or nil pointer dereference",
                "[signal SIGSEGV: segmentation violation code=0x1 addr=0x0 pc=0x4a1b2c]",
                "",
                "goroutine 1 [running]:",
                "main.(*Worker).Run(0x0)",
                "\t/src/worker.go:42 +0x1c",
                "main.main()",
                "\t/src/main.go:17 +0x65",
                "exit status 2",
            ],
        );
        let a = analyze(&l, &AnalyzeOptions::default());
        assert_eq!(a.exceptions.len(), 1, "{:#?}", a.exceptions);
        let e = &a.exceptions[0];
        assert_eq!(e.language, "go");
        assert_eq!(e.exception_type, "panic");
        assert!(e.message.contains("nil pointer dereference"));
        assert!(e.trace.iter().any(|t| t.contains("goroutine 1 [running]")));
        assert_eq!(a.levels.fatal, 1);
        assert_eq!(a.levels.stack_lines, 8);
    }

    #[test]
    fn java_exception_with_at_frames_is_grouped_across_pods() {
        let mut l = Vec::new();
        for pod in ["svc-a/app", "svc-b/app"] {
            l.extend(lines(
                pod,
                "2024-05-01T10:00:00Z",
                &[
                    "Exception in thread \"main\" java.lang.IllegalStateException: pool exhausted after 30000 ms",
                    "\tat com.example.Pool.get(Pool.java:42)",
                    "\tat com.example.Main.main(Main.java:10)",
                ],
            ));
        }
        let a = analyze(&l, &AnalyzeOptions::default());
        assert_eq!(a.exceptions.len(), 1);
        let e = &a.exceptions[0];
        assert_eq!(e.exception_type, "java.lang.IllegalStateException");
        assert_eq!(e.count, 2);
        assert_eq!(e.sources, vec!["svc-a/app", "svc-b/app"]);
        assert_eq!(e.trace.len(), 2);
    }

    #[test]
    fn alembic_duplicate_column_gives_migration_hint() {
        let l = lines(
            "api-1/migrate",
            "2024-05-01T10:00:00Z",
            &[
                "INFO  [alembic.runtime.migration] Running upgrade 1a2b -> 3c4d, add email",
                "sqlalchemy.exc.ProgrammingError: (psycopg2.errors.DuplicateColumn) column \"email\" of relation \"users\" already exists",
            ],
        );
        let a = analyze(&l, &AnalyzeOptions::default());
        assert!(
            a.hints.iter().any(|h| h.cause == "migration_failure"),
            "{:#?}",
            a.hints
        );
        assert_eq!(a.levels.error, 1);
        assert_eq!(a.levels.info, 1);
    }

    #[test]
    fn levels_from_klog_json_access_logs_and_prefixes() {
        let texts = [
            "E0102 15:04:05.123456       1 controller.go:42] failed to sync: timeout",
            "W0102 15:04:06.000000       1 reflector.go:10] watch closed",
            "I0102 15:04:07.000000       1 main.go:5] started",
            r#"{"level":"error","msg":"db down","ts":1}"#,
            r#"{"severity":"WARNING","message":"slow query"}"#,
            r#"{"level":50,"msg":"pino error"}"#,
            "INFO:     10.0.0.1:5555 - \"GET /api/items HTTP/1.1\" 500 Internal Server Error",
            "INFO:     10.0.0.1:5555 - \"GET /api/items HTTP/1.1\" 404 Not Found",
            "INFO:     10.0.0.1:5555 - \"GET /healthz HTTP/1.1\" 200 OK",
            "ERROR:root:something broke",
            "2024-05-01 10:00:00 DEBUG cache warm",
            "plain text without level",
        ];
        let l: Vec<LogLine> = texts
            .iter()
            .map(|t| LogLine::new("p/c", None, *t))
            .collect();
        let a = analyze(&l, &AnalyzeOptions::default());
        let v = &a.levels;
        assert_eq!(
            (v.error, v.warn, v.info, v.debug, v.other),
            (5, 3, 2, 1, 1),
            "{v:?}"
        );
        // JSON lines are mined on their message
        assert!(a.templates.iter().any(|t| t.template == "db down"));
        assert_eq!(a.first_error.unwrap().line, texts[0]);
    }

    #[test]
    fn dns_auth_and_oom_hints() {
        let texts = [
            "Error: getaddrinfo ENOTFOUND postgres.db.svc.cluster.local",
            "dial tcp: lookup redis on 10.96.0.10:53: no such host",
            "E0102 15:04:05.123456 1 main.go:1] pods is forbidden: User \"system:serviceaccount:default:app\" cannot list resource \"pods\" in API group \"\"",
            "FATAL:  password authentication failed for user \"app\"",
            "MemoryError",
            "Killed",
        ];
        let l: Vec<LogLine> = texts
            .iter()
            .map(|t| LogLine::new("p/c", None, *t))
            .collect();
        let a = analyze(&l, &AnalyzeOptions::default());
        let causes: Vec<(&str, &str)> = a
            .hints
            .iter()
            .map(|h| (h.cause.as_str(), h.detail.as_str()))
            .collect();
        assert!(
            causes.contains(&("dns_failure", "postgres.db.svc.cluster.local")),
            "{causes:?}"
        );
        assert!(causes.contains(&("dns_failure", "redis")), "{causes:?}");
        assert!(causes
            .iter()
            .any(|c| c.0 == "auth_failure" && c.1.contains("forbidden")));
        assert!(causes.iter().filter(|c| c.0 == "auth_failure").count() >= 2);
        assert_eq!(causes.iter().filter(|c| c.0 == "out_of_memory").count(), 1);
        assert_eq!(
            a.hints
                .iter()
                .find(|h| h.cause == "out_of_memory")
                .unwrap()
                .count,
            2
        );
    }

    #[test]
    fn env_var_messages_in_other_wordings() {
        let texts = [
            "Error: Missing required environment variable: STRIPE_KEY",
            "panic: environment variable REDIS_URL is not set",
        ];
        let l: Vec<LogLine> = texts
            .iter()
            .map(|t| LogLine::new("p/c", None, *t))
            .collect();
        let a = analyze(&l, &AnalyzeOptions::default());
        let vars: Vec<&str> = a
            .hints
            .iter()
            .filter(|h| h.cause == "missing_env_var")
            .map(|h| h.detail.as_str())
            .collect();
        assert_eq!(vars, vec!["STRIPE_KEY", "REDIS_URL"]);
    }

    #[test]
    fn templates_are_sorted_by_severity_then_count_and_capped() {
        let mut texts = Vec::new();
        for i in 0..30 {
            texts.push(format!("INFO request {i} served in {i} ms"));
        }
        texts.push("ERROR upstream timeout after 30s".to_string());
        for i in 0..20 {
            texts.push(format!("INFO distinct message {}", "w ".repeat(i + 1)));
        }
        let l: Vec<LogLine> = texts
            .iter()
            .map(|t| LogLine::new("p/c", None, t.clone()))
            .collect();
        let a = analyze(
            &l,
            &AnalyzeOptions {
                max_templates: 3,
                ..Default::default()
            },
        );
        assert_eq!(a.templates.len(), 3);
        assert_eq!(a.templates[0].level, Level::Error);
        assert_eq!(a.templates[1].count, 30);
        assert!(a.more_templates > 0);
        assert!(a.render().contains(&format!(
            "({} more templates: pass template_offset=3)",
            a.more_templates
        )));
    }

    #[test]
    fn template_offset_pages_through_all_templates_once() {
        // 12 templates of distinct counts, so the order is fixed
        let mut l = Vec::new();
        for t in 0..12 {
            let words = "w ".repeat(t + 1);
            for _ in 0..(20 - t) {
                l.push(LogLine::new("p/c", None, format!("INFO message {words}")));
            }
        }
        let page = |offset| {
            analyze(
                &l,
                &AnalyzeOptions {
                    max_templates: 5,
                    template_offset: offset,
                    ..Default::default()
                },
            )
        };
        let all = analyze(&l, &AnalyzeOptions::default());
        assert_eq!(all.templates.len(), 12);
        let mut seen = Vec::new();
        let mut offset = 0;
        loop {
            let a = page(offset);
            seen.extend(a.templates.iter().map(|t| t.template.clone()));
            let r = a.render();
            if a.more_templates == 0 {
                assert!(!r.contains("more templates"), "{r}");
                break;
            }
            offset += a.templates.len();
            assert!(
                r.contains(&format!("pass template_offset={offset})")),
                "{r}"
            );
        }
        let expected: Vec<String> = all.templates.iter().map(|t| t.template.clone()).collect();
        assert_eq!(seen, expected);
        let second = page(5).render();
        assert!(second.contains("templates 6-10 of 12:"), "{second}");
        assert!(
            second.contains("(2 more templates: pass template_offset=10)"),
            "{second}"
        );
        let past = page(40);
        assert!(past.templates.is_empty());
        assert_eq!((past.template_offset, past.more_templates), (12, 0));
        assert!(past
            .render()
            .contains("(no templates after the first 12: there are 12)"));
    }

    #[test]
    fn error_rate_buckets_cover_the_time_span() {
        let mut l = Vec::new();
        for i in 0..100 {
            let text = if i >= 90 { "ERROR boom" } else { "INFO ok" };
            l.push(LogLine::new(
                "p/c",
                ts(&format!("2024-05-01T10:00:{:02}Z", i % 60))
                    .map(|t| t + jiff::SignedDuration::from_secs(60 * (i / 60))),
                text,
            ));
        }
        let a = analyze(
            &l,
            &AnalyzeOptions {
                max_templates: 15,
                ..Default::default()
            },
        );
        assert_eq!(a.error_rate.len(), 10);
        assert_eq!(a.error_rate.iter().map(|b| b.lines).sum::<usize>(), 100);
        assert_eq!(a.error_rate.iter().map(|b| b.errors).sum::<usize>(), 10);
        assert!(a.error_rate[9].errors > 0);
        assert_eq!(a.error_rate[0].errors, 0);
    }

    #[test]
    fn render_is_compact_and_puts_causes_first() {
        let mut l = backend_crash();
        l.extend(lines(
            "web-5c4b/web",
            "2024-05-01T10:00:05Z",
            &[
                " ⨯ TypeError: fetch failed",
                "    at async Page (/app/page.js:1:2)",
                "  [cause]: Error: connect ECONNREFUSED 10.96.3.4:8000",
            ],
        ));
        let a = analyze(&l, &AnalyzeOptions::default());
        let r = a.render();
        let causes = r.find("likely causes:").unwrap();
        let exc = r.find("exceptions:").unwrap();
        assert!(causes < exc, "{r}");
        assert!(r.contains("DATABASE_URL"));
        assert!(r.contains("10.96.3.4:8000"));
        assert!(r.len() < 3000, "{} chars:\n{r}", r.len());
        // the schema marks optional fields as not required
        let schema = serde_json::to_value(schemars::schema_for!(Analysis)).unwrap();
        let req: Vec<&str> = schema["required"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert!(req.contains(&"total_lines"));
        assert!(
            !req.contains(&"hints")
                && !req.contains(&"first_error")
                && !req.contains(&"more_templates")
        );
    }
}
