//! The MCP server seen from clients: an in-process rmcp client over a duplex pipe, raw JSON-RPC
//! for protocol negotiation, and the HTTP endpoints.

use std::sync::Arc;
use std::time::Duration;

use aiops_mcp::cluster::Clusters;
use aiops_mcp::mcp::AiopsServer;
use aiops_mcp::policy::Policy;
use aiops_mcp::tools::{Ctx, Effect, Registry};
use rmcp::model::{
    CallToolRequestParams, CallToolResult, ClientCapabilities, ClientConfig, ElicitRequestParams,
    ElicitResult, ElicitationAction, Implementation,
};
use rmcp::service::{RequestContext, RoleClient, RunningService};
use rmcp::{ClientHandler, ErrorData, ServiceExt};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use crate::common::{wait_for, TestNs};

/// A client that answers confirmation requests with `answer` (None = no elicitation support).
#[derive(Clone)]
pub struct TestClient {
    pub answer: Option<bool>,
}

impl ClientHandler for TestClient {
    fn get_info(&self) -> ClientConfig {
        let caps = if self.answer.is_some() {
            ClientCapabilities::builder().enable_elicitation().build()
        } else {
            ClientCapabilities::default()
        };
        ClientConfig::new(caps, Implementation::new("aiops-it", "0.0.0"))
    }

    async fn create_elicitation(
        &self,
        _request: ElicitRequestParams,
        _context: RequestContext<RoleClient>,
    ) -> Result<ElicitResult, ErrorData> {
        let mut r = ElicitResult::new(ElicitationAction::Accept);
        r.content = Some(json!({"confirm": self.answer.unwrap_or(false)}));
        Ok(r)
    }
}

pub fn server(policy: Policy) -> AiopsServer {
    let ctx = Ctx {
        clusters: Clusters::new(None, None),
        policy: Arc::new(policy),
        progress: None,
    };
    AiopsServer::new(Arc::new(Registry::new()), ctx)
}

pub async fn connect_with(
    policy: Policy,
    answer: Option<bool>,
) -> RunningService<RoleClient, TestClient> {
    let (c, s) = tokio::io::duplex(1 << 20);
    let srv = server(policy);
    tokio::spawn(async move {
        if let Ok(running) = srv.serve(s).await {
            let _ = running.waiting().await;
        }
    });
    TestClient { answer }
        .serve(c)
        .await
        .expect("client connects")
}

/// The default policy, plus destructive calls without confirmation (for tests that tear down).
pub fn permissive() -> Policy {
    Policy {
        allow_destructive_without_confirmation: true,
        ..Default::default()
    }
}

pub async fn connect() -> RunningService<RoleClient, TestClient> {
    connect_with(Policy::default(), None).await
}

pub async fn call(client: &rmcp::Peer<RoleClient>, tool: &str, args: Value) -> CallToolResult {
    let params = CallToolRequestParams::new(tool.to_string())
        .with_arguments(args.as_object().cloned().unwrap_or_default());
    client.call_tool(params).await.expect("tools/call answers")
}

pub fn text(r: &CallToolResult) -> String {
    r.content
        .iter()
        .filter_map(|c| c.as_text().map(|t| t.text.clone()))
        .collect::<Vec<_>>()
        .join("\n")
}

fn arrays_have_items(v: &Value, path: &str) -> Result<(), String> {
    match v {
        Value::Object(o) => {
            if o.get("type") == Some(&json!("array")) && !o.contains_key("items") {
                return Err(format!("array without items at {path}"));
            }
            o.iter()
                .try_for_each(|(k, c)| arrays_have_items(c, &format!("{path}.{k}")))
        }
        Value::Array(a) => a
            .iter()
            .enumerate()
            .try_for_each(|(i, c)| arrays_have_items(c, &format!("{path}[{i}]"))),
        _ => Ok(()),
    }
}

#[tokio::test]
async fn tools_list_has_object_schemas_items_on_arrays_and_explicit_annotations() {
    let client = connect().await;
    let info = client.peer_info().unwrap();
    assert_eq!(info.server_info.as_ref().unwrap().name, "aiops-mcp");
    assert!(info
        .instructions
        .as_deref()
        .unwrap_or_default()
        .contains("cluster_overview"));
    let tools = client.list_tools(None).await.unwrap().tools;
    assert_eq!(tools.len(), Registry::new().all().len());
    for t in &tools {
        assert_eq!(
            t.input_schema.get("type"),
            Some(&json!("object")),
            "{}",
            t.name
        );
        arrays_have_items(&Value::Object((*t.input_schema).clone()), &t.name).unwrap();
        let out = t.output_schema.as_ref().expect("output schema");
        assert_eq!(out.get("type"), Some(&json!("object")), "{}", t.name);
        arrays_have_items(&Value::Object((**out).clone()), &t.name).unwrap();
        let a = t.annotations.as_ref().expect("annotations");
        assert!(
            a.read_only_hint.is_some()
                && a.destructive_hint.is_some()
                && a.idempotent_hint.is_some()
                && a.open_world_hint.is_some(),
            "{}",
            t.name
        );
    }
}

/// Sends one raw initialize and returns the negotiated protocolVersion.
async fn negotiate(requested: &str) -> String {
    let (c, s) = tokio::io::duplex(1 << 16);
    let srv = server(Policy::default());
    tokio::spawn(async move {
        if let Ok(r) = srv.serve(s).await {
            let _ = r.waiting().await;
        }
    });
    let (r, mut w) = tokio::io::split(c);
    let req = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": requested, "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}}});
    w.write_all(format!("{req}\n").as_bytes()).await.unwrap();
    let mut line = String::new();
    BufReader::new(r).read_line(&mut line).await.unwrap();
    let v: Value = serde_json::from_str(&line).unwrap();
    v["result"]["protocolVersion"]
        .as_str()
        .unwrap_or_else(|| panic!("no version in {line}"))
        .to_string()
}

#[tokio::test]
async fn empty_or_unknown_protocol_version_gets_2025_06_18_and_known_ones_are_echoed() {
    assert_eq!(negotiate("").await, "2025-06-18");
    assert_eq!(negotiate("1999-01-01").await, "2025-06-18");
    for v in ["2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"] {
        assert_eq!(negotiate(v).await, v);
    }
}

#[tokio::test]
async fn read_tools_answer_on_the_sandbox() {
    let ns = TestNs::new("mcpread").await;
    ns.apply_yaml("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: crashy}\nspec:\n  selector: {matchLabels: {app: crashy}}\n  template:\n    metadata: {labels: {app: crashy}}\n    spec:\n      containers: [{name: c, image: 'crasher:1.0'}]\n").await;
    let client = connect().await;
    let pods = wait_for(
        "crash pod listed as unhealthy",
        Duration::from_secs(60),
        || async {
            let r = call(&client, "pods_list", json!({"namespace": ns.name})).await;
            let t = text(&r);
            (t.contains("Unhealthy (1)")
                && t.contains("owner=Deployment/crashy")
                && t.contains("last=c: Error exit 2"))
            .then_some(r)
        },
    )
    .await;
    let s = pods.structured_content.unwrap();
    assert_eq!(s["unhealthy"][0]["owner"], "Deployment/crashy");

    let r = call(&client, "cluster_overview", json!({})).await;
    let t = text(&r);
    assert!(
        t.contains("Kubernetes v1.20") && t.contains("nodes ready"),
        "{t}"
    );
    assert!(t.contains(&format!("{}: unhealthy pods", ns.name)), "{t}");

    let t = text(&call(&client, "contexts_list", json!({})).await);
    assert!(
        t.contains("* sandbox ") && t.contains("sandbox-restricted"),
        "{t}"
    );
    assert!(!t.contains("token"), "{t}");

    let t = text(&call(&client, "namespaces_list", json!({})).await);
    assert!(t.contains(&ns.name), "{t}");

    let t = text(
        &call(
            &client,
            "resources_list",
            json!({"kind": "deploy", "namespace": ns.name}),
        )
        .await,
    );
    // No readiness probe: the crashing pod is Ready for a moment after each start.
    assert!(
        t.contains("crashy") && (t.contains("ready 0/1") || t.contains("ready 1/1")),
        "{t}"
    );

    let r = call(
        &client,
        "resources_get",
        json!({"kind": "Deployment", "name": "crashy", "namespace": ns.name, "events": true}),
    )
    .await;
    let t = text(&r);
    assert!(
        t.contains("kind: Deployment")
            && !t.contains("managedFields")
            && t.contains("ScalingReplicaSet"),
        "{t}"
    );

    let t = text(
        &call(
            &client,
            "events_list",
            json!({"namespace": ns.name, "warnings_only": true}),
        )
        .await,
    );
    assert!(t.contains("Warning BackOff"), "{t}");
}

#[tokio::test]
async fn lists_longer_than_a_page_are_folded_page_by_page_without_loss() {
    use aiops_mcp::tools::read::fold_scoped;
    use k8s_openapi::api::core::v1::ConfigMap;
    let ns = TestNs::new("paging").await;
    for i in 0..7 {
        ns.apply_yaml(&format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: page-{i}}}\ndata: {{k: v}}\n"
        ))
        .await;
    }
    let ctx = Ctx {
        clusters: Clusters::new(None, None),
        policy: Arc::new(permissive()),
        progress: None,
    };
    let client = kube::Client::try_default().await.unwrap();
    let whole: std::collections::BTreeSet<String> = ns
        .api::<ConfigMap>()
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|c| c.metadata.name)
        .collect();
    assert!(whole.len() >= 7, "{whole:?}");
    let lp = kube::api::ListParams::default();
    // Pages of 2: every object once, in four requests or more.
    let (folded, scope) = fold_scoped::<ConfigMap, Vec<String>>(
        &ctx,
        &client,
        Some(&ns.name),
        &lp,
        "configmaps",
        2,
        vec![],
        |v, c| v.push(c.metadata.name.unwrap_or_default()),
    )
    .await
    .unwrap();
    assert_eq!(scope, format!("namespace {}", ns.name));
    assert_eq!(folded.len(), whole.len(), "{folded:?}");
    assert_eq!(
        folded
            .into_iter()
            .collect::<std::collections::BTreeSet<_>>(),
        whole
    );
    // A caller's own limit is one request of that size.
    let (one, _) = fold_scoped::<ConfigMap, usize>(
        &ctx,
        &client,
        Some(&ns.name),
        &lp.clone().limit(3),
        "configmaps",
        2,
        0,
        |n, _| *n += 1,
    )
    .await
    .unwrap();
    assert_eq!(one, 3);
    // An empty result in a namespace that does not exist is an error naming it.
    let e = fold_scoped::<ConfigMap, usize>(
        &ctx,
        &client,
        Some("no-such-namespace-zz"),
        &lp,
        "configmaps",
        2,
        0,
        |n, _| *n += 1,
    )
    .await
    .unwrap_err();
    assert!(e.to_string().contains("no-such-namespace-zz"), "{e}");
}

#[tokio::test]
async fn bad_input_gets_specific_in_band_errors() {
    let client = connect().await;
    let cases = [
        (
            "pods_list",
            json!({"namespace": "kube-sistem"}),
            "did you mean kube-system",
        ),
        (
            "pods_list",
            json!({"namespace": "Bad_NS"}),
            "not a valid namespace name",
        ),
        (
            "resources_list",
            json!({"kind": "deploymnt"}),
            "did you mean Deployment",
        ),
        (
            "resources_get",
            json!({"kind": "deploy", "name": "Nope!", "namespace": "default"}),
            "DNS-1123",
        ),
        (
            "resources_get",
            json!({"kind": "svc", "name": "kubernets", "namespace": "default"}),
            "did you mean kubernetes",
        ),
        (
            "pods_list",
            json!({"namespac": "default"}),
            "valid parameters",
        ),
        ("events_list", json!({"since": "5y"}), "unknown unit"),
        (
            "resources_apply",
            json!({"manifest": "kind: ConfigMap\nmetadata: {name: x}\n"}),
            "has no apiVersion",
        ),
        ("no_such_tool", json!({}), "unknown tool"),
    ];
    for (tool, args, want) in cases {
        let r = call(&client, tool, args.clone()).await;
        assert_eq!(r.is_error, Some(true), "{tool} {args}");
        let t = text(&r);
        assert!(t.contains(want), "{tool} {args}: {t}");
    }
}

#[tokio::test]
async fn forbidden_calls_say_which_permission_is_missing() {
    let clusters = Clusters::new(None, Some("sandbox-restricted".into()));
    let ctx = Ctx {
        clusters,
        policy: Arc::new(Policy::default()),
        progress: None,
    };
    let r = Registry::new()
        .call(&ctx, "pods_list", json!({"namespace": "default"}))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        r.contains("forbidden")
            && r.contains("cannot list resource \"pods\"")
            && r.contains("namespace \"default\""),
        "{r}"
    );
    // The allowed namespace works for the same identity.
    Registry::new()
        .call(
            &ctx,
            "pods_list",
            json!({"namespace": "sandbox-restricted"}),
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn apply_previews_then_creates_configures_and_reports_unchanged() {
    let ns = TestNs::new("apply").await;
    let client = connect().await;
    let doc = |v: &str| {
        format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: settings, namespace: {}}}\ndata: {{LOG_LEVEL: {v}}}\n", ns.name)
    };
    let r = call(
        &client,
        "resources_apply",
        json!({"manifest": doc("info"), "dry_run": true}),
    )
    .await;
    assert!(text(&r).contains("would be created"), "{}", text(&r));
    let cms = ns.api::<k8s_openapi::api::core::v1::ConfigMap>();
    assert!(
        cms.get_opt("settings").await.unwrap().is_none(),
        "dry run changed the cluster"
    );
    assert!(
        text(&call(&client, "resources_apply", json!({"manifest": doc("info")})).await)
            .contains("settings -n")
    );
    let r = call(
        &client,
        "resources_apply",
        json!({"manifest": doc("debug")}),
    )
    .await;
    assert!(
        text(&r).contains("configured (data.LOG_LEVEL)"),
        "{}",
        text(&r)
    );
    assert!(text(
        &call(
            &client,
            "resources_apply",
            json!({"manifest": doc("debug")})
        )
        .await
    )
    .contains("unchanged"));
    let managers: Vec<String> = cms
        .get("settings")
        .await
        .unwrap()
        .metadata
        .managed_fields
        .unwrap()
        .into_iter()
        .filter_map(|m| m.manager)
        .collect();
    assert!(managers.contains(&"aiops-mcp".to_string()), "{managers:?}");
}

#[tokio::test]
async fn destructive_calls_need_confirmation() {
    let ns = TestNs::new("delete").await;
    ns.apply_yaml("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: b}\n").await;
    let cms = ns.api::<k8s_openapi::api::core::v1::ConfigMap>();
    let args = |n: &str| json!({"kind": "ConfigMap", "name": n, "namespace": ns.name});

    // No elicitation support: refused, saying which flag allows it; a dry run is fine.
    let c = connect_with(Policy::default(), None).await;
    let r = call(&c, "resources_delete", args("a")).await;
    assert!(
        r.is_error == Some(true) && text(&r).contains("--allow-destructive-without-confirmation"),
        "{}",
        text(&r)
    );
    let mut dry = args("a");
    dry["dry_run"] = json!(true);
    assert!(text(&call(&c, "resources_delete", dry).await).contains("would be deleted"));
    assert!(cms.get_opt("a").await.unwrap().is_some());

    // The user declines: nothing happens.
    let c = connect_with(Policy::default(), Some(false)).await;
    let r = call(&c, "resources_delete", args("a")).await;
    assert!(text(&r).contains("did not confirm"), "{}", text(&r));
    assert!(cms.get_opt("a").await.unwrap().is_some());

    // The user confirms: deleted.
    let c = connect_with(Policy::default(), Some(true)).await;
    assert!(text(&call(&c, "resources_delete", args("a")).await).contains("deleted"));
    wait_for("a deleted", Duration::from_secs(10), || async {
        cms.get_opt("a").await.ok()?.is_none().then_some(())
    })
    .await;

    // The operator allowed it without confirmation.
    let c = connect_with(permissive(), None).await;
    assert!(text(&call(&c, "resources_delete", args("b")).await).contains("deleted"));
}

#[tokio::test]
async fn read_only_hides_and_refuses_every_write_tool() {
    let c = connect_with(
        Policy {
            read_only: true,
            ..Default::default()
        },
        Some(true),
    )
    .await;
    let listed: Vec<String> = c
        .list_tools(None)
        .await
        .unwrap()
        .tools
        .into_iter()
        .map(|t| t.name.to_string())
        .collect();
    let registry = Registry::new();
    let writes: Vec<&str> = registry
        .all()
        .iter()
        .filter(|t| t.meta().effect != Effect::Read)
        .map(|t| t.meta().name)
        .collect();
    assert!(!writes.is_empty());
    for w in writes {
        assert!(
            !listed.iter().any(|l| l == w),
            "{w} listed in read-only mode"
        );
        let r = call(&c, w, json!({"kind": "ConfigMap", "name": "x", "namespace": "default", "manifest": "{}", "dry_run": true})).await;
        assert_eq!(r.is_error, Some(true));
        assert!(text(&r).contains("--read-only"), "{w}: {}", text(&r));
    }
}

#[tokio::test]
async fn disable_destructive_hides_deletes_but_keeps_applies() {
    let c = connect_with(
        Policy {
            disable_destructive: true,
            ..Default::default()
        },
        Some(true),
    )
    .await;
    let listed: Vec<String> = c
        .list_tools(None)
        .await
        .unwrap()
        .tools
        .into_iter()
        .map(|t| t.name.to_string())
        .collect();
    assert!(
        listed.contains(&"resources_apply".to_string())
            && !listed.contains(&"resources_delete".to_string())
    );
    let r = call(
        &c,
        "resources_delete",
        json!({"kind": "cm", "name": "x", "namespace": "default"}),
    )
    .await;
    assert!(text(&r).contains("--disable-destructive"), "{}", text(&r));
}

#[tokio::test]
async fn namespace_allow_list_filters_lists_and_refuses_the_rest() {
    let ns = TestNs::new("allow").await;
    let c = connect_with(
        Policy {
            namespaces: Some(vec![ns.name.clone()]),
            ..Default::default()
        },
        None,
    )
    .await;
    let t = text(&call(&c, "namespaces_list", json!({})).await);
    assert!(t.contains(&ns.name) && !t.contains("kube-system"), "{t}");
    let r = call(&c, "pods_list", json!({"namespace": "kube-system"})).await;
    assert!(
        r.is_error == Some(true) && text(&r).contains("--namespaces"),
        "{}",
        text(&r)
    );
    let s = call(&c, "pods_list", json!({}))
        .await
        .structured_content
        .unwrap();
    assert!(s["unhealthy"]
        .as_array()
        .unwrap()
        .iter()
        .all(|p| p["namespace"] == json!(ns.name)));
    let t = text(&call(&c, "resources_list", json!({"kind": "ServiceAccount"})).await);
    assert!(
        t.contains(&format!("{}/default", ns.name)) && !t.contains("kube-system/"),
        "{t}"
    );
    let t = text(&call(&c, "cluster_overview", json!({})).await);
    assert!(!t.contains("kube-system"), "{t}");
    let r = call(&c, "resources_apply", json!({"manifest": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x, namespace: default}\n", "dry_run": true})).await;
    assert!(text(&r).contains("--namespaces"), "{}", text(&r));
}

#[tokio::test]
async fn denied_kinds_are_refused_by_every_tool() {
    let c = connect_with(
        Policy {
            deny_kinds: vec!["secret".into()],
            ..Default::default()
        },
        None,
    )
    .await;
    for (tool, args) in [
        ("resources_list", json!({"kind": "secrets"})),
        (
            "resources_get",
            json!({"kind": "Secret", "name": "x", "namespace": "default"}),
        ),
        (
            "resources_apply",
            json!({"manifest": "apiVersion: v1\nkind: Secret\nmetadata: {name: x}\n", "dry_run": true}),
        ),
    ] {
        let r = call(&c, tool, args).await;
        assert!(
            r.is_error == Some(true) && text(&r).contains("--deny-kinds"),
            "{tool}: {}",
            text(&r)
        );
    }
}

#[tokio::test]
async fn catalog_json_is_up_to_date() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/catalog.json");
    let checked_in: Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("tools/catalog.json exists"))
            .unwrap();
    assert!(
        checked_in == Registry::new().catalog(),
        "tools/catalog.json is out of date: run `cargo run -- tools --json > tools/catalog.json`"
    );
}

#[tokio::test]
async fn an_api_group_that_does_not_answer_discovery_is_left_out_not_fatal() {
    use kube::api::{Api, DynamicObject, PostParams};
    use kube::discovery::ApiResource;
    let _exclusive = crate::common::DISCOVERY_GAP.write().await;
    let client = crate::common::client().await;
    let ar = ApiResource {
        group: "apiregistration.k8s.io".into(),
        version: "v1".into(),
        api_version: "apiregistration.k8s.io/v1".into(),
        kind: "APIService".into(),
        plural: "apiservices".into(),
    };
    let api: Api<DynamicObject> = Api::all_with(client.clone(), &ar);
    let name = "v1alpha1.unreachable.aiops-mcp.dev";
    let svc: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
        "metadata": {"name": name},
        "spec": {"group": "unreachable.aiops-mcp.dev", "version": "v1alpha1",
                 "service": {"namespace": "default", "name": "nowhere", "port": 443},
                 "insecureSkipTLSVerify": true, "groupPriorityMinimum": 100, "versionPriority": 10}
    }))
    .unwrap();
    let _ = api.delete(name, &Default::default()).await;
    api.create(&PostParams::default(), &svc).await.unwrap();
    // The group is listed but its version does not answer (its backend Service does not exist).
    let ctx = Ctx {
        clusters: aiops_mcp::cluster::Clusters::new(None, None),
        policy: std::sync::Arc::new(permissive()),
        progress: None,
    };
    let r = aiops_mcp::tools::Registry::new();
    crate::common::wait_for(
        "the unavailable group is listed",
        std::time::Duration::from_secs(20),
        || async {
            let groups = client.list_api_groups().await.ok()?;
            groups
                .groups
                .iter()
                .any(|g| g.name == "unreachable.aiops-mcp.dev")
                .then_some(())
        },
    )
    .await;
    let out = r
        .call(
            &ctx,
            "resources_list",
            json!({"kind": "deployments", "namespace": "default"}),
        )
        .await;
    let missing = r
        .call(
            &ctx,
            "resources_get",
            json!({"kind": "widget", "name": "x"}),
        )
        .await;
    api.delete(name, &Default::default()).await.unwrap();
    assert!(out.is_ok(), "other kinds still resolve: {:?}", out.err());
    let e = missing.unwrap_err().to_string();
    assert!(
        e.contains("not served") && e.contains("unreachable.aiops-mcp.dev"),
        "{e}"
    );
}
