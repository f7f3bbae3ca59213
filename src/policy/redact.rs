//! Redaction of credential-like material before it leaves the server.
//!
//! Pure functions, no cluster access and no I/O. [`redact_text`] masks secrets inside free text
//! (logs, events, command output) while keeping the surrounding context readable;
//! [`redact_value`] walks Kubernetes JSON (Secrets, Lists, kubeconfigs, anything else) and
//! applies structural rules plus [`redact_text`] on every remaining string leaf.
//!
//! Text rules, in the order applied:
//! 1. PEM private-key blocks (also truncated ones) → `<redacted: PEM private key>`; certificates stay.
//! 2. Passwords in URLs (`scheme://user:pass@host`) → `scheme://user:<redacted>@host`.
//! 3. `Bearer <token>` / `Basic <b64>` → `Bearer <redacted>` (prose such as "Bearer token" stays).
//! 4. JWTs (`eyJ…`.`…`.`…`) → `<redacted: jwt>`.
//! 5. OpenAI-style keys (`sk-…`, `sk-proj-…`) → `<redacted:sk-key>`.
//! 6. AWS access key ids (`AKIA…`/`ASIA…`) → `<redacted: aws-key>`.
//! 7. `key=value`, `key: value`, `"key": "value"` where the key ends with a sensitive word
//!    (password, secret, token, api_key, …) → value replaced by `<redacted>`.

use std::borrow::Cow;
use std::sync::LazyLock;

use regex::{Captures, NoExpand, Regex, Replacer};
use serde_json::{Map, Value};

/// Placeholder for masked values.
const REDACTED: &str = "<redacted>";
/// kubectl's copy of the whole applied object; for Secrets it contains the values.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";
/// Lower-case key suffixes that mark a value as a credential (`client_secret` ends with `secret`).
const KEY_SUFFIXES: &str =
    "password passwd pwd secret token apikey api_key api-key accesskey access_key \
    access-key secretkey secret_key secret-key privatekey private_key private-key";

fn compile(pattern: &str) -> Regex {
    Regex::new(pattern).expect("redaction pattern must compile")
}

/// PEM private key: BEGIN … END (lazily), or BEGIN … end of text when the block was truncated.
static PEM_KEY: LazyLock<Regex> = LazyLock::new(|| {
    compile(
        r"(?s)-----BEGIN [A-Z0-9 ]*PRIVATE KEY[A-Z0-9 ]*-----(?:.*?-----END [A-Z0-9 ]*PRIVATE KEY[A-Z0-9 ]*-----|.*)",
    )
});
/// `scheme://user:` (group 1), then the password up to the last `@` before the host.
static URL_CREDS: LazyLock<Regex> =
    LazyLock::new(|| compile(r#"([A-Za-z][A-Za-z0-9+.-]*://[^\s/@:"'<>]*:)[^\s/"'<>]+@"#));
/// Optional `Authorization:` context (1), scheme (2), token (3), a directly following quote (4).
static AUTH_SCHEME: LazyLock<Regex> = LazyLock::new(|| {
    compile(
        r#"(?i)(authorization["']?[ \t]*[:=][ \t]*["']?)?(?-u:\b)(bearer|basic)[ \t]+([A-Za-z0-9._~+/=-]+)("?)"#,
    )
});
static JWT: LazyLock<Regex> =
    LazyLock::new(|| compile(r"(?-u:\b)eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*"));
/// Preceding character (1) so that `disk-…` or `my-sk-…` do not count; key body (2).
static SK_KEY: LazyLock<Regex> =
    LazyLock::new(|| compile(r"(^|[^A-Za-z0-9_-])sk-([A-Za-z0-9_-]{16,})"));
static AWS_KEY: LazyLock<Regex> =
    LazyLock::new(|| compile(r"(?-u:\b)(?:AKIA|ASIA)[A-Z0-9]{16}(?-u:\b)"));
/// Cheap gate for [`KV`]: a sensitive word must occur somewhere.
static KV_HINT: LazyLock<Regex> = LazyLock::new(|| compile(r"(?i)pass|pwd|secret|token|key"));
/// Sensitive key, separator (optional closing quote, `:`/`=`/`:=`, spaces but never a newline),
/// then an escaped-quoted, double-quoted, single-quoted or bare scalar value.
static KV: LazyLock<Regex> = LazyLock::new(|| {
    compile(concat!(
        r"(?i)(?P<key>[a-z0-9_.-]*?(?:password|passwd|pwd|secret|token|api[_-]?key|access[_-]?key",
        r"|secret[_-]?key|private[_-]?key))",
        r#"(?P<sep>\\?["']?[ \t]*(?::=|[:=])[ \t]*)"#,
        r#"(?:\\"(?P<esc>[^"\n]*?)\\"|"(?P<dq>(?:[^"\\\n]|\\.)*)"|'(?P<sq>[^'\n]*)'"#,
        r#"|(?P<bare>[^\s"'\\{\[,;&][^\s"'\\,;&}\]]*))"#,
    ))
});

/// Masks credential-like substrings in free text. Returns `Cow::Borrowed` when nothing matched.
///
/// Only the secret part is replaced, so `DATABASE_PASSWORD=x` becomes `DATABASE_PASSWORD=<redacted>`
/// and a reader (human or model) still understands the line. Applying it twice changes nothing.
pub fn redact_text(s: &str) -> Cow<'_, str> {
    let mut out = Cow::Borrowed(s);
    if s.contains("-----BEGIN") {
        out = apply(out, &PEM_KEY, NoExpand("<redacted: PEM private key>"));
    }
    if s.contains("://") && s.contains('@') {
        out = apply(out, &URL_CREDS, "${1}<redacted>@");
    }
    if has_any(s, &["earer", "EARER", "asic", "ASIC"]) {
        out = apply(out, &AUTH_SCHEME, auth_replacement);
    }
    if s.contains("eyJ") {
        out = apply(out, &JWT, NoExpand("<redacted: jwt>"));
    }
    if s.contains("sk-") {
        out = apply(out, &SK_KEY, |c: &Captures| {
            // DNS-1123 names (lower-case, digits, dashes) such as `sk-payments-worker-7d9f` stay.
            let dns = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-';
            if c[2].contains('-') && c[2].bytes().all(dns) {
                c[0].to_string()
            } else {
                format!("{}<redacted:sk-key>", &c[1])
            }
        });
    }
    if has_any(s, &["AKIA", "ASIA"]) {
        out = apply(out, &AWS_KEY, NoExpand("<redacted: aws-key>"));
    }
    if has_any(s, &["=", ":"]) && KV_HINT.is_match(&out) {
        out = apply(out, &KV, kv_replacement);
    }
    match out {
        Cow::Owned(o) if o != s => Cow::Owned(o),
        _ => Cow::Borrowed(s),
    }
}

/// Cheap substring pre-check so that most lines never reach a regex.
fn has_any(s: &str, needles: &[&str]) -> bool {
    needles.iter().any(|n| s.contains(n))
}

/// Runs one rule; keeps the current text (and its borrow) when the rule did not match.
fn apply<'a>(cur: Cow<'a, str>, re: &Regex, rep: impl Replacer) -> Cow<'a, str> {
    let replaced = match re.replace_all(&cur, rep) {
        Cow::Owned(o) => Some(o),
        Cow::Borrowed(_) => None,
    };
    replaced.map_or(cur, Cow::Owned)
}

fn auth_replacement(c: &Captures) -> String {
    let token = &c[3];
    // `Bearer realm="api"` is an auth parameter, not a credential.
    let auth_param = token.ends_with('=') && &c[4] == "\"";
    // Outside an Authorization header, a short purely alphabetic word is prose ("Bearer token").
    let credential =
        c.get(1).is_some() || token.len() >= 16 || !token.bytes().all(|b| b.is_ascii_alphabetic());
    if auth_param || !credential {
        return c[0].to_string();
    }
    let context = c.get(1).map_or("", |m| m.as_str());
    format!("{context}{} {REDACTED}{}", &c[2], &c[4])
}

fn kv_replacement(c: &Captures) -> String {
    let groups = [("esc", "\\\""), ("dq", "\""), ("sq", "'"), ("bare", "")];
    let (value, quote) = groups
        .into_iter()
        .find_map(|(group, quote)| c.name(group).map(|m| (m.as_str(), quote)))
        .unwrap_or_default();
    if !should_mask(&c["key"], value) {
        return c[0].to_string();
    }
    format!("{}{}{quote}{REDACTED}{quote}", &c["key"], &c["sep"])
}

/// True when a key name (case-insensitive) ends with one of the sensitive words.
pub fn is_sensitive_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    key == "client-key-data" || KEY_SUFFIXES.split_whitespace().any(|s| key.ends_with(s))
}

/// Whether the value of a sensitive key should be masked: not when it is empty, already a
/// placeholder, a boolean/null (`automountServiceAccountToken: false`), a `${VAR}`/`$(VAR)`
/// reference, or the shell's working directory (`PWD=/app`).
fn should_mask(key: &str, value: &str) -> bool {
    let v = value.trim();
    let benign = matches!(
        v.to_ascii_lowercase().as_str(),
        "" | "true" | "false" | "null" | "none" | "~"
    );
    let placeholder = v.starts_with("<redacted") || v.starts_with("${") || v.starts_with("$(");
    let shell_pwd =
        matches!(key.to_ascii_lowercase().as_str(), "pwd" | "oldpwd") && v.starts_with('/');
    !(benign || placeholder || shell_pwd)
}

/// Decoded length of standard base64 text: `len * 3 / 4` minus padding (whitespace ignored).
fn base64_decoded_len(s: &str) -> usize {
    let len = s.bytes().filter(|b| !b.is_ascii_whitespace()).count();
    let trimmed = s.trim_end();
    let padding = (trimmed.len() - trimmed.trim_end_matches('=').len()).min(2);
    (len * 3 / 4).saturating_sub(padding)
}

/// Redacts a JSON value in place, recursively.
///
/// - Secrets (`kind: Secret`, items of a `SecretList`/`List`, and kind-less objects with
///   `metadata`, a string `type` and `data`/`stringData`): each `data` value becomes
///   `<redacted: N bytes>` (N = base64-decoded length), each `stringData` value
///   `<redacted: N bytes>` (N = UTF-8 length); keys are kept and the last-applied annotation is dropped.
/// - Kubeconfigs: `users[*].user` token, password, client-key-data, client-certificate-data and
///   `auth-provider.config` entries whose key contains token/secret become `<redacted>`.
/// - Any string value under a sensitive key (`token`, `password`, `client-key-data`,
///   `clientSecret`, `apiKey`, `DB_PASSWORD`, …) and the `value` of `{name, value}` pairs whose
///   name is sensitive (container env) become `<redacted>`.
/// - Every other string leaf goes through [`redact_text`].
pub fn redact_value(v: &mut Value) {
    walk(v, false);
}

fn walk(v: &mut Value, force_secret: bool) {
    match v {
        Value::String(s) => {
            if let Cow::Owned(o) = redact_text(s) {
                *s = o;
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|i| walk(i, force_secret)),
        Value::Object(map) => redact_object(map, force_secret),
        _ => {}
    }
}

fn redact_object(map: &mut Map<String, Value>, force_secret: bool) {
    let kind = map.get("kind").and_then(Value::as_str).unwrap_or_default();
    let secret_list = kind == "SecretList";
    if force_secret || kind == "Secret" || looks_like_kindless_secret(map) {
        redact_secret(map);
    }
    if let Some(Value::Array(users)) = map.get_mut("users") {
        for entry in users.iter_mut() {
            if let Some(Value::Object(user)) = entry.get_mut("user") {
                redact_kubeconfig_user(user);
            }
        }
    }
    let env_name = map.get("name").and_then(Value::as_str).map(str::to_owned);
    if let (Some(name), Some(Value::String(value))) = (env_name, map.get_mut("value")) {
        if is_sensitive_key(&name) && should_mask(&name, value) {
            *value = REDACTED.to_string();
        }
    }
    for (key, child) in map.iter_mut() {
        match child {
            Value::String(s) if is_sensitive_key(key) && should_mask(key, s) => {
                *s = REDACTED.to_string();
            }
            _ => walk(child, secret_list && key == "items"),
        }
    }
}

fn looks_like_kindless_secret(map: &Map<String, Value>) -> bool {
    !map.contains_key("kind")
        && map.get("metadata").is_some_and(Value::is_object)
        && map.get("type").is_some_and(Value::is_string)
        && (map.get("data").is_some_and(Value::is_object)
            || map.get("stringData").is_some_and(Value::is_object))
}

fn redact_secret(map: &mut Map<String, Value>) {
    for (field, base64) in [("data", true), ("stringData", false)] {
        let Some(Value::Object(entries)) = map.get_mut(field) else {
            continue;
        };
        for value in entries.values_mut() {
            *value = match value {
                Value::Null => continue,
                Value::String(s) if base64 => {
                    format!("<redacted: {} bytes>", base64_decoded_len(s))
                }
                Value::String(s) => format!("<redacted: {} bytes>", s.len()),
                _ => REDACTED.to_string(),
            }
            .into();
        }
    }
    if let Some(Value::Object(annotations)) = map
        .get_mut("metadata")
        .and_then(|m| m.get_mut("annotations"))
    {
        annotations.remove(LAST_APPLIED);
    }
}

fn redact_kubeconfig_user(user: &mut Map<String, Value>) {
    for field in "token password client-key-data client-certificate-data".split(' ') {
        if let Some(value) = user.get_mut(field).filter(|v| !v.is_null()) {
            *value = REDACTED.into();
        }
    }
    if let Some(Value::Object(config)) = user
        .get_mut("auth-provider")
        .and_then(|p| p.get_mut("config"))
    {
        for (key, value) in config.iter_mut() {
            let key = key.to_ascii_lowercase();
            if (key.contains("token") || key.contains("secret")) && !value.is_null() {
                *value = REDACTED.into();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Each case is `"input => expected"`; the input must redact to exactly the expected text.
    fn assert_redacts(cases: &[&str]) {
        for case in cases {
            let (input, expected) = case.split_once(" => ").expect("case has ' => '");
            assert_eq!(redact_text(input), expected, "input: {input}");
        }
    }

    /// Each line must come back unchanged and borrowed.
    fn assert_kept(lines: &[&str]) {
        for line in lines {
            let out = redact_text(line);
            assert!(matches!(out, Cow::Borrowed(_)), "changed: {line} -> {out}");
        }
    }

    #[test]
    fn url_password_is_masked_keeping_scheme_user_and_host() {
        assert_redacts(&[
            "DB=postgresql://user:s3cret@db:5432/app => DB=postgresql://user:<redacted>@db:5432/app",
            "to redis://:p@ss:word@cache:6379/0 => to redis://:<redacted>@cache:6379/0",
        ]);
    }

    #[test]
    fn bearer_and_basic_credentials_are_masked_but_prose_is_kept() {
        assert_redacts(&[
            "Authorization: Bearer abc.def => Authorization: Bearer <redacted>",
            "-H 'authorization: basic dXNlcjpwYXNz' => -H 'authorization: basic <redacted>'",
            "sent Bearer abcdefghijklmnopqrstuv => sent Bearer <redacted>",
        ]);
        let auth_param = r#"WWW-Authenticate: Bearer realm="api""#;
        assert_kept(&["missing Bearer token; Basic authentication on", auth_param]);
    }

    #[test]
    fn openai_style_keys_are_masked_but_dns_names_kept() {
        assert_redacts(&[
            "key sk-abcDEF1234567890xyz used => key <redacted:sk-key> used",
            "\"sk-proj-AbC_dEf-123456789012\" => \"<redacted:sk-key>\"",
        ]);
        assert_kept(&["pod sk-payments-worker-7d9f8, task-abcdefghijklmnopqr, sk-short1"]);
    }

    #[test]
    fn pem_private_key_blocks_are_masked_and_certificates_kept() {
        let pem = "-----BEGIN RSA PRIVATE KEY-----\nMIIEow\nAb==\n-----END RSA PRIVATE KEY-----";
        let masked = "key:\n<redacted: PEM private key>\nnext";
        assert_eq!(redact_text(&format!("key:\n{pem}\nnext")), masked);
        assert_redacts(&[
            r"-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIF\n-----END ENCRYPTED PRIVATE KEY----- => <redacted: PEM private key>",
            "-----BEGIN OPENSSH PRIVATE KEY-----\nb3Blbn (cut => <redacted: PEM private key>",
        ]);
        assert_kept(&["-----BEGIN CERTIFICATE-----\nMIIC\n-----END CERTIFICATE-----"]);
    }

    #[test]
    fn sensitive_key_value_pairs_are_masked() {
        assert_redacts(&[
            "BETTER_AUTH_SECRET=xyz => BETTER_AUTH_SECRET=<redacted>",
            "DATABASE_PASSWORD: xyz => DATABASE_PASSWORD: <redacted>",
            r#"{"apiKey": "xyz", "n": 1} => {"apiKey": "<redacted>", "n": 1}"#,
            "x-api-key: abc123 => x-api-key: <redacted>",
            "GET /reset?token=abc&next=/ => GET /reset?token=<redacted>&next=/",
            "password='a b c' user=bob => password='<redacted>' user=bob",
            "aws_secret_access_key = \"wJ\" => aws_secret_access_key = \"<redacted>\"",
            r#"{\"client_secret\":\"abc\"} => {\"client_secret\":\"<redacted>\"}"#,
        ]);
    }

    #[test]
    fn placeholder_empty_boolean_and_reference_values_are_kept() {
        assert_kept(&[
            "password=<redacted> PWD=/app",
            "DB_PASSWORD=",
            "token: \"\"",
            "automountServiceAccountToken: false pass: ${DB_PASSWORD}",
            "secretName: db-creds\n- secret:\n    secretName: x",
        ]);
    }

    #[test]
    fn jwts_and_aws_access_key_ids_are_masked() {
        assert_redacts(&[
            "id eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.c2lnbmF0dXJl ok => id <redacted: jwt> ok",
            "key AKIAIOSFODNN7EXAMPLE used => key <redacted: aws-key> used",
            "ASIAY34FZKBOKMUTVV7A, => <redacted: aws-key>,",
        ]);
    }

    #[test]
    fn ordinary_lines_are_returned_borrowed() {
        assert_kept(&[
            r#"INFO: 10.0.0.1:5000 - "GET /api/todos HTTP/1.1" 200 OK"#,
            "max_tokens=5 tokens_used: 7 see https://example.com/path?q=1",
            "2024-05-01T10:00:00Z level=info msg=\"ready\" port=8080",
            "",
        ]);
    }

    #[test]
    fn redact_text_is_idempotent() {
        let once = redact_text("u=pg://u:p@h/db Authorization: Bearer x.y K=sk-ABCdef1234567890gh");
        assert_kept(&[&once]);
    }

    #[test]
    fn secret_values_become_lengths_and_last_applied_is_dropped() {
        let mut secret = json!({"kind": "Secret", "type": "Opaque",
            "metadata": {"name": "db", "annotations": {LAST_APPLIED: "{\"data\":{}}", "team": "a"}},
            "data": {"user": "YWRtaW4=", "pass": "aHVudGVyMg==", "e": ""}, "stringData": {"note": "héllo"}});
        redact_value(&mut secret);
        let expected = json!({"kind": "Secret", "type": "Opaque",
            "metadata": {"name": "db", "annotations": {"team": "a"}},
            "data": {"user": "<redacted: 5 bytes>", "pass": "<redacted: 7 bytes>", "e": "<redacted: 0 bytes>"},
            "stringData": {"note": "<redacted: 6 bytes>"}});
        assert_eq!(secret, expected);
    }

    #[test]
    fn secrets_inside_lists_are_redacted_even_without_kind() {
        let mut list = json!({"kind": "List", "items": [
            {"kind": "Secret", "metadata": {"name": "a"}, "data": {"k": "YWJj"}},
            {"kind": "ConfigMap", "metadata": {"name": "b"}, "data": {"k": "YWJj"}}]});
        redact_value(&mut list);
        assert_eq!(list["items"][0]["data"]["k"], "<redacted: 3 bytes>");
        assert_eq!(list["items"][1]["data"]["k"], "YWJj");
        let mut typed = json!({"kind": "SecretList", "items": [{"data": {"k": "YWJj"}}]});
        redact_value(&mut typed);
        assert_eq!(typed["items"][0]["data"]["k"], "<redacted: 3 bytes>");
    }

    #[test]
    fn kubeconfig_user_credentials_are_masked() {
        let mut cfg = json!({"kind": "Config", "clusters": [{"cluster": {"server": "https://k"}}],
            "users": [{"name": "a", "user": {"client-certificate-data": "Y2VydA==",
                "client-key-data": "a2V5", "username": "bob", "password": "pw", "token": "abc",
                "auth-provider": {"name": "oidc", "config": {"client-id": "cli", "client-secret": "s",
                    "id-token": "t", "refresh-token": "r"}}}}]});
        redact_value(&mut cfg);
        let r = REDACTED;
        let expected = json!({"kind": "Config", "clusters": [{"cluster": {"server": "https://k"}}],
            "users": [{"name": "a", "user": {"client-certificate-data": r, "client-key-data": r,
                "username": "bob", "password": r, "token": r, "auth-provider": {"name": "oidc",
                    "config": {"client-id": "cli", "client-secret": r, "id-token": r, "refresh-token": r}}}}]});
        assert_eq!(cfg, expected);
    }

    #[test]
    fn sensitive_object_keys_and_env_pairs_are_masked() {
        let mut v = json!({"clientSecret": "a", "client_secret": "b", "api_key": "c", "apiKey": "d",
            "nested": {"password": "e"}, "automountServiceAccountToken": false, "secretName": "keep",
            "env": [{"name": "DB_PASSWORD", "value": "f"}, {"name": "LOG", "value": "debug"}],
            "log": "started with token=g"});
        redact_value(&mut v);
        let expected = json!({"clientSecret": REDACTED, "client_secret": REDACTED,
            "api_key": REDACTED, "apiKey": REDACTED, "nested": {"password": REDACTED},
            "automountServiceAccountToken": false, "secretName": "keep",
            "env": [{"name": "DB_PASSWORD", "value": REDACTED}, {"name": "LOG", "value": "debug"}],
            "log": "started with token=<redacted>"});
        assert_eq!(v, expected);
    }

    #[test]
    fn canary_never_survives_redaction() {
        const CANARY: &str = "CANARY-7f3a9c-s3cr3t";
        const CANARY_B64: &str = "Q0FOQVJZLTdmM2E5Yy1zM2NyM3Q="; // base64 of CANARY
        let url = format!("postgresql://app:{CANARY}@db:5432/app");
        let sk = "OPENAI_API_KEY=sk-CANARY7f3a9cs3cr3tAAAA";
        let mut mixture = json!({"kind": "List", "items": [
            {"kind": "Secret", "metadata": {"name": "app", "annotations": {
                LAST_APPLIED: format!("{{\"data\":{{\"pw\":\"{CANARY_B64}\"}}}}")}},
             "data": {"pw": CANARY_B64}, "stringData": {"pw2": CANARY}},
            {"kind": "Pod", "metadata": {"name": "web"}, "spec": {"containers": [{"name": "web",
                "args": ["--db", url], "env": [{"name": "DATABASE_URL", "value": url},
                    {"name": "APP_DB_PASSWORD", "value": CANARY}, {"name": "X", "value": sk}]}]}},
            {"kind": "ConfigMap", "metadata": {"name": "cfg"}, "data": {
                ".env": format!("{sk}\nLOG=info"),
                "kubeconfig": format!("users:\n- name: u\n  user:\n    token: {CANARY}\n")}},
            {"kind": "Config", "users": [{"name": "u", "user": {"token": CANARY}}]}]});
        redact_value(&mut mixture);
        let out = serde_json::to_string(&mixture).unwrap();
        assert!(
            !out.contains("CANARY") && !out.contains(CANARY_B64),
            "{out}"
        );
        assert!(out.contains("LOG=info"), "{out}");
    }
}
