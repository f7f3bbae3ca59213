//! The todo stack: a typed spec (the same shape as the Helm chart's values.yaml) rendered into
//! Kubernetes objects. Pure: no cluster access here; `tools/stack.rs` applies and watches.

pub mod helm;

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// Secret keys every stack needs.
pub const REQUIRED_SECRET_KEYS: [&str; 4] = [
    "DATABASE_URL",
    "BETTER_AUTH_SECRET",
    "BETTER_AUTH_URL",
    "OPENAI_API_KEY",
];

/// The chart's name and version (charts/todo-stack/Chart.yaml).
pub const CHART_NAME: &str = "todo-stack";
pub const CHART_VERSION: &str = "0.1.0";
pub const APP_VERSION: &str = "1.0.0";

/// The whole stack. Field names follow the chart's values.yaml.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct StackSpec {
    /// Image registry/path prefix for all images, e.g. `ghcr.io/acme` (empty = none).
    pub image_registry: String,
    /// IfNotPresent (default), Always, or Never (local images only).
    pub image_pull_policy: String,
    /// Kept old ReplicaSets per Deployment (rollback depth).
    pub revision_history_limit: i32,
    /// Seconds a rollout may take before it is reported as stalled.
    pub progress_deadline_seconds: i32,
    pub frontend: Component,
    pub backend: Component,
    pub mcp: Component,
    pub config: AppConfig,
    pub secret: SecretRef,
    pub ingress: IngressSpec,
    pub probes: ProbeTimings,
}

/// One component (frontend, backend or mcp).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Component {
    /// Image repository without registry, e.g. `todo-backend`.
    pub repository: String,
    /// Pinned image tag, e.g. `1.0.0` (`latest` is refused).
    pub tag: String,
    pub replicas: i32,
    /// Container port.
    pub port: i32,
    /// HTTP path of the readiness and liveness probes.
    pub probe_path: String,
    pub resources: Resources,
    /// Mount the root filesystem read-only (writable emptyDirs at /tmp and the cache path).
    pub read_only_root_filesystem: bool,
    /// Service type: ClusterIP (default) or NodePort.
    pub service_type: String,
    /// NodePort when serviceType is NodePort (30000-32767; 0 = let Kubernetes pick).
    pub node_port: i32,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Resources {
    pub requests: CpuMem,
    pub limits: CpuMem,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct CpuMem {
    pub cpu: String,
    pub memory: String,
}

/// Non-secret settings (the ConfigMap).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct AppConfig {
    pub node_env: String,
    pub log_level: String,
    pub ai_model: String,
    /// Run `alembic upgrade head` in an init container of the backend.
    pub migrations: bool,
}

/// Where the secret values come from; values never pass through the model.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct SecretRef {
    /// Name of the Secret holding DATABASE_URL, BETTER_AUTH_SECRET, BETTER_AUTH_URL, OPENAI_API_KEY.
    pub name: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct IngressSpec {
    pub enabled: bool,
    pub class_name: String,
    pub host: String,
    /// TLS secret name; empty = no TLS.
    pub tls_secret_name: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct ProbeTimings {
    pub readiness_initial_delay_seconds: i32,
    pub readiness_period_seconds: i32,
    pub liveness_initial_delay_seconds: i32,
    pub liveness_period_seconds: i32,
    pub failure_threshold: i32,
}

fn component(
    repository: &str,
    replicas: i32,
    port: i32,
    probe_path: &str,
    req: (&str, &str),
    lim: (&str, &str),
) -> Component {
    Component {
        repository: repository.into(),
        tag: APP_VERSION.into(),
        replicas,
        port,
        probe_path: probe_path.into(),
        resources: Resources {
            requests: CpuMem {
                cpu: req.0.into(),
                memory: req.1.into(),
            },
            limits: CpuMem {
                cpu: lim.0.into(),
                memory: lim.1.into(),
            },
        },
        read_only_root_filesystem: true,
        service_type: "ClusterIP".into(),
        node_port: 0,
    }
}

impl Default for Component {
    fn default() -> Self {
        component("", 1, 8080, "/", ("100m", "128Mi"), ("500m", "256Mi"))
    }
}

impl Default for StackSpec {
    fn default() -> Self {
        StackSpec {
            image_registry: String::new(),
            image_pull_policy: "IfNotPresent".into(),
            revision_history_limit: 10,
            progress_deadline_seconds: 600,
            frontend: component(
                "todo-frontend",
                2,
                3000,
                "/",
                ("250m", "256Mi"),
                ("500m", "512Mi"),
            ),
            backend: component(
                "todo-backend",
                2,
                8000,
                "/health",
                ("250m", "256Mi"),
                ("1", "512Mi"),
            ),
            mcp: component(
                "todo-mcp",
                1,
                8001,
                "/health",
                ("100m", "128Mi"),
                ("500m", "256Mi"),
            ),
            config: AppConfig::default(),
            secret: SecretRef::default(),
            ingress: IngressSpec::default(),
            probes: ProbeTimings::default(),
        }
    }
}

impl Default for AppConfig {
    fn default() -> Self {
        AppConfig {
            node_env: "production".into(),
            log_level: "info".into(),
            ai_model: "gpt-4o-mini".into(),
            migrations: true,
        }
    }
}

impl Default for SecretRef {
    fn default() -> Self {
        SecretRef {
            name: "todo-secrets".into(),
        }
    }
}

impl Default for IngressSpec {
    fn default() -> Self {
        IngressSpec {
            enabled: true,
            class_name: "nginx".into(),
            host: "todo.local".into(),
            tls_secret_name: String::new(),
        }
    }
}

impl Default for ProbeTimings {
    fn default() -> Self {
        ProbeTimings {
            readiness_initial_delay_seconds: 3,
            readiness_period_seconds: 5,
            liveness_initial_delay_seconds: 15,
            liveness_period_seconds: 10,
            failure_threshold: 3,
        }
    }
}

/// Names of the three components, in deploy order.
pub const COMPONENTS: [&str; 3] = ["backend", "mcp", "frontend"];

/// Helm's values merge: maps merge key by key, everything else is replaced.
pub fn merge_values(base: &mut Value, overlay: &Value) {
    match (base, overlay) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                match b.get_mut(k) {
                    Some(bv) if bv.is_object() && v.is_object() => merge_values(bv, v),
                    _ => {
                        b.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (b, o) => *b = o.clone(),
    }
}

impl StackSpec {
    /// The defaults with `values` merged over them (as `helm install -f values.yaml` does).
    pub fn from_values(values: &Value) -> Result<StackSpec, String> {
        if !(values.is_object() || values.is_null()) {
            return Err(format!("values must be an object like {{\"backend\": {{\"tag\": \"1.0.1\"}}}}, got {values}"));
        }
        let mut merged = serde_json::to_value(StackSpec::default()).map_err(|e| e.to_string())?;
        if values.is_object() {
            merge_values(&mut merged, values);
        }
        serde_json::from_value(merged).map_err(|e| format!("invalid values: {e}"))
    }

    pub fn component(&self, name: &str) -> &Component {
        match name {
            "frontend" => &self.frontend,
            "backend" => &self.backend,
            _ => &self.mcp,
        }
    }

    pub fn image(&self, c: &Component) -> String {
        let reg = self.image_registry.trim_end_matches('/');
        if reg.is_empty() {
            format!("{}:{}", c.repository, c.tag)
        } else {
            format!("{reg}/{}:{}", c.repository, c.tag)
        }
    }

    /// Checks the spec; every problem is named with what is valid.
    pub fn validate(&self, release: &str) -> Result<(), String> {
        let dns = |s: &str| {
            !s.is_empty()
                && s.len() <= 53
                && s.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !s.starts_with('-')
                && !s.ends_with('-')
        };
        if !dns(release) {
            return Err(format!("release '{release}' must be lowercase letters, digits and '-', at most 53 characters (a Helm release name), e.g. 'todo'"));
        }
        if !["IfNotPresent", "Always", "Never"].contains(&self.image_pull_policy.as_str()) {
            return Err(format!(
                "imagePullPolicy '{}' is not valid: use IfNotPresent, Always or Never",
                self.image_pull_policy
            ));
        }
        for name in COMPONENTS {
            let c = self.component(name);
            if c.tag.is_empty() || c.tag == "latest" {
                return Err(format!(
                    "{name}.tag '{}' is refused: an unpinned tag makes rollouts unreproducible and rollbacks meaningless (the same tag can point at different images). Pin a version, e.g. '{APP_VERSION}'",
                    c.tag
                ));
            }
            if c.repository.is_empty() {
                return Err(format!(
                    "{name}.repository is empty: name the image, e.g. 'todo-{name}'"
                ));
            }
            if !(0..=100).contains(&c.replicas) {
                return Err(format!(
                    "{name}.replicas {} is out of range 0..100",
                    c.replicas
                ));
            }
            if !(1..=65535).contains(&c.port) {
                return Err(format!(
                    "{name}.port {} is not a TCP port (1-65535)",
                    c.port
                ));
            }
            if !c.probe_path.starts_with('/') {
                return Err(format!(
                    "{name}.probePath '{}' must start with '/'",
                    c.probe_path
                ));
            }
            if !["ClusterIP", "NodePort"].contains(&c.service_type.as_str()) {
                return Err(format!(
                    "{name}.serviceType '{}' is not valid: use ClusterIP or NodePort",
                    c.service_type
                ));
            }
            if c.node_port != 0
                && (c.service_type != "NodePort" || !(30000..=32767).contains(&c.node_port))
            {
                return Err(format!(
                    "{name}.nodePort {} needs serviceType NodePort and a port in 30000-32767",
                    c.node_port
                ));
            }
        }
        if self.ingress.enabled && self.ingress.host.is_empty() {
            return Err(
                "ingress.host is empty: set a host such as 'todo.local' or disable the ingress"
                    .into(),
            );
        }
        if self.secret.name.is_empty() {
            return Err("secret.name is empty: name the Secret holding DATABASE_URL, BETTER_AUTH_SECRET, BETTER_AUTH_URL, OPENAI_API_KEY".into());
        }
        Ok(())
    }
}

fn labels(release: &str, component: Option<&str>, version: &str) -> Value {
    let mut l = json!({
        "app.kubernetes.io/name": "todo",
        "app.kubernetes.io/instance": release,
        "app.kubernetes.io/version": version,
        "app.kubernetes.io/managed-by": "Helm",
        "app.kubernetes.io/part-of": "todo",
        "helm.sh/chart": format!("{CHART_NAME}-{CHART_VERSION}"),
    });
    if let Some(c) = component {
        l["app.kubernetes.io/component"] = json!(c);
    }
    l
}

fn selector(release: &str, component: &str) -> Value {
    json!({"app.kubernetes.io/name": "todo", "app.kubernetes.io/instance": release, "app.kubernetes.io/component": component})
}

fn meta(
    name: &str,
    namespace: &str,
    release: &str,
    component: Option<&str>,
    version: &str,
) -> Value {
    json!({
        "name": name,
        "namespace": namespace,
        "labels": labels(release, component, version),
        // Helm adopts objects carrying these, so `helm upgrade` works on what aiops-mcp deployed.
        "annotations": {"meta.helm.sh/release-name": release, "meta.helm.sh/release-namespace": namespace},
    })
}

/// Name of a component's objects.
pub fn object_name(release: &str, component: &str) -> String {
    format!("{release}-{component}")
}

fn env_cm(name: &str, cm: &str, key: &str) -> Value {
    json!({"name": name, "valueFrom": {"configMapKeyRef": {"name": cm, "key": key}}})
}

fn env_secret(name: &str, secret: &str) -> Value {
    json!({"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": name}}})
}

/// Renders the stack's objects in apply order: ConfigMap, Deployments, Services, Ingress.
/// (The namespace and Secret are handled by the deploy: they are not part of the release.)
pub fn render(spec: &StackSpec, release: &str, namespace: &str) -> Vec<Value> {
    let cm_name = format!("{release}-config");
    let scheme = if spec.ingress.tls_secret_name.is_empty() {
        "http"
    } else {
        "https"
    };
    let public = format!("{scheme}://{}", spec.ingress.host);
    let mut objs = vec![];
    let mut data: BTreeMap<&str, String> = BTreeMap::new();
    data.insert(
        "BACKEND_URL",
        format!(
            "http://{}:{}",
            object_name(release, "backend"),
            spec.backend.port
        ),
    );
    data.insert(
        "MCP_SERVER_URL",
        format!("http://{}:{}", object_name(release, "mcp"), spec.mcp.port),
    );
    data.insert("NODE_ENV", spec.config.node_env.clone());
    data.insert("LOG_LEVEL", spec.config.log_level.clone());
    data.insert("AI_MODEL", spec.config.ai_model.clone());
    data.insert("FRONTEND_URL", public.clone());
    data.insert("BETTER_AUTH_URL", public.clone());
    data.insert("NEXT_PUBLIC_API_URL", format!("{public}/api"));
    objs.push(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta(&cm_name, namespace, release, None, APP_VERSION), "data": data}));

    let secret = spec.secret.name.as_str();
    for name in COMPONENTS {
        let c = spec.component(name);
        let env: Vec<Value> = match name {
            "frontend" => vec![
                env_cm("NEXT_PUBLIC_API_URL", &cm_name, "NEXT_PUBLIC_API_URL"),
                env_cm("BETTER_AUTH_URL", &cm_name, "BETTER_AUTH_URL"),
                env_cm("BACKEND_URL", &cm_name, "BACKEND_URL"),
                env_cm("NODE_ENV", &cm_name, "NODE_ENV"),
                env_secret("BETTER_AUTH_SECRET", secret),
            ],
            "backend" => vec![
                env_secret("DATABASE_URL", secret),
                env_secret("BETTER_AUTH_SECRET", secret),
                env_secret("OPENAI_API_KEY", secret),
                env_cm("FRONTEND_URL", &cm_name, "FRONTEND_URL"),
                env_cm("AI_MODEL", &cm_name, "AI_MODEL"),
                env_cm("MCP_SERVER_URL", &cm_name, "MCP_SERVER_URL"),
                env_cm("LOG_LEVEL", &cm_name, "LOG_LEVEL"),
            ],
            _ => vec![
                env_secret("DATABASE_URL", secret),
                env_cm("BACKEND_URL", &cm_name, "BACKEND_URL"),
                env_cm("LOG_LEVEL", &cm_name, "LOG_LEVEL"),
            ],
        };
        let sec_ctx = json!({
            "allowPrivilegeEscalation": false,
            "readOnlyRootFilesystem": c.read_only_root_filesystem,
            "capabilities": {"drop": ["ALL"]},
        });
        let probe = |delay: i32, period: i32| json!({"httpGet": {"path": c.probe_path, "port": "http"}, "initialDelaySeconds": delay, "periodSeconds": period, "failureThreshold": spec.probes.failure_threshold});
        let cache_path = if name == "frontend" {
            "/app/.next/cache"
        } else {
            "/app/.cache"
        };
        let mut container = json!({
            "name": name,
            "image": spec.image(c),
            "imagePullPolicy": spec.image_pull_policy,
            "ports": [{"name": "http", "containerPort": c.port, "protocol": "TCP"}],
            "env": env,
            "resources": {"requests": {"cpu": c.resources.requests.cpu, "memory": c.resources.requests.memory}, "limits": {"cpu": c.resources.limits.cpu, "memory": c.resources.limits.memory}},
            "readinessProbe": probe(spec.probes.readiness_initial_delay_seconds, spec.probes.readiness_period_seconds),
            "livenessProbe": probe(spec.probes.liveness_initial_delay_seconds, spec.probes.liveness_period_seconds),
            "securityContext": sec_ctx,
        });
        let mut volumes = vec![];
        if c.read_only_root_filesystem {
            container["volumeMounts"] = json!([{"name": "tmp", "mountPath": "/tmp"}, {"name": "cache", "mountPath": cache_path}]);
            volumes = vec![
                json!({"name": "tmp", "emptyDir": {}}),
                json!({"name": "cache", "emptyDir": {}}),
            ];
        }
        let mut pod_spec = json!({
            "securityContext": {"runAsNonRoot": true, "runAsUser": 65532, "runAsGroup": 65532, "fsGroup": 65532, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [container],
        });
        if !volumes.is_empty() {
            pod_spec["volumes"] = json!(volumes);
        }
        if name == "backend" && spec.config.migrations {
            pod_spec["initContainers"] = json!([{
                "name": "migrate",
                "image": spec.image(c),
                "imagePullPolicy": spec.image_pull_policy,
                "command": ["alembic", "upgrade", "head"],
                "env": [env_secret("DATABASE_URL", secret)],
                "resources": {"requests": {"cpu": c.resources.requests.cpu, "memory": c.resources.requests.memory}, "limits": {"cpu": c.resources.limits.cpu, "memory": c.resources.limits.memory}},
                "securityContext": sec_ctx,
            }]);
        }
        let obj_name = object_name(release, name);
        objs.push(json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": meta(&obj_name, namespace, release, Some(name), &c.tag),
            "spec": {
                "replicas": c.replicas,
                "revisionHistoryLimit": spec.revision_history_limit,
                "progressDeadlineSeconds": spec.progress_deadline_seconds,
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
                "selector": {"matchLabels": selector(release, name)},
                "template": {"metadata": {"labels": labels(release, Some(name), &c.tag)}, "spec": pod_spec},
            },
        }));
    }
    for name in COMPONENTS {
        let c = spec.component(name);
        let mut port =
            json!({"name": "http", "port": c.port, "targetPort": "http", "protocol": "TCP"});
        if c.service_type == "NodePort" && c.node_port != 0 {
            port["nodePort"] = json!(c.node_port);
        }
        objs.push(json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": meta(&object_name(release, name), namespace, release, Some(name), &c.tag),
            "spec": {"type": c.service_type, "selector": selector(release, name), "ports": [port]},
        }));
    }
    if spec.ingress.enabled {
        let path = |p: &str, svc: &str, port: i32| json!({"path": p, "pathType": "Prefix", "backend": {"service": {"name": svc, "port": {"number": port}}}});
        let mut ing_spec = json!({
            "ingressClassName": spec.ingress.class_name,
            "rules": [{"host": spec.ingress.host, "http": {"paths": [
                path("/api", &object_name(release, "backend"), spec.backend.port),
                path("/", &object_name(release, "frontend"), spec.frontend.port),
            ]}}],
        });
        if !spec.ingress.tls_secret_name.is_empty() {
            ing_spec["tls"] =
                json!([{"hosts": [spec.ingress.host], "secretName": spec.ingress.tls_secret_name}]);
        }
        objs.push(json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": meta(release, namespace, release, None, APP_VERSION), "spec": ing_spec}));
    }
    objs
}

/// Objects as one YAML stream (documents separated by `---`).
pub fn to_yaml(objs: &[Value]) -> String {
    objs.iter()
        .map(|o| serde_norway::to_string(o).unwrap_or_default())
        .collect::<Vec<_>>()
        .join("---\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_stack_renders_config_three_deployments_three_services_and_an_ingress() {
        let objs = render(&StackSpec::default(), "todo", "todo-app");
        let kinds: Vec<&str> = objs.iter().map(|o| o["kind"].as_str().unwrap()).collect();
        assert_eq!(
            kinds,
            [
                "ConfigMap",
                "Deployment",
                "Deployment",
                "Deployment",
                "Service",
                "Service",
                "Service",
                "Ingress"
            ]
        );
        let backend = &objs[1];
        assert_eq!(backend["metadata"]["name"], "todo-backend");
        let pod = &backend["spec"]["template"]["spec"];
        assert_eq!(
            pod["initContainers"][0]["command"],
            json!(["alembic", "upgrade", "head"])
        );
        assert_eq!(pod["securityContext"]["runAsUser"], 65532);
        assert_eq!(
            pod["containers"][0]["readinessProbe"]["httpGet"]["path"],
            "/health"
        );
        assert_eq!(
            backend["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"],
            0
        );
        let ing = objs.last().unwrap();
        assert_eq!(ing["spec"]["rules"][0]["http"]["paths"][0]["path"], "/api");
    }

    #[test]
    fn latest_tags_and_bad_values_are_refused_with_the_reason() {
        let mut s = StackSpec::default();
        s.backend.tag = "latest".into();
        assert!(s.validate("todo").unwrap_err().contains("Pin a version"));
        let s = StackSpec {
            image_pull_policy: "Sometimes".into(),
            ..Default::default()
        };
        assert!(s
            .validate("todo")
            .unwrap_err()
            .contains("IfNotPresent, Always or Never"));
        assert!(StackSpec::default()
            .validate("Todo_App")
            .unwrap_err()
            .contains("release"));
        assert!(StackSpec::default().validate("todo").is_ok());
    }

    #[test]
    fn spec_uses_the_chart_values_shape() {
        let v = StackSpec::from_values(
            &json!({"backend": {"tag": "1.0.1"}, "ingress": {"host": "x.example"}}),
        )
        .unwrap();
        assert_eq!(v.backend.tag, "1.0.1");
        assert_eq!(v.backend.repository, "todo-backend");
        assert_eq!(v.backend.port, 8000);
        assert!(StackSpec::from_values(&json!({"backnd": {}}))
            .unwrap_err()
            .contains("backnd"));
    }
}

#[cfg(test)]
mod schema_tests {
    /// charts/todo-stack/values.schema.json is generated from StackSpec; regenerate with
    /// `UPDATE_SCHEMA=1 cargo test --lib chart_values_schema`.
    #[test]
    fn chart_values_schema_matches_the_stack_spec() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("charts/todo-stack/values.schema.json");
        let mut schema = crate::tools::schema_for::<super::StackSpec>();
        schema["$schema"] = serde_json::json!("http://json-schema.org/draft-07/schema#");
        let text = serde_json::to_string_pretty(&schema).unwrap() + "\n";
        if std::env::var_os("UPDATE_SCHEMA").is_some() {
            std::fs::write(&path, &text).unwrap();
        }
        assert_eq!(
            std::fs::read_to_string(&path).unwrap_or_default(),
            text,
            "values.schema.json is stale: UPDATE_SCHEMA=1 cargo test --lib chart_values_schema"
        );
    }
}
