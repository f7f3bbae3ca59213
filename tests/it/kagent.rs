//! tools/kagent against kagent's own CRDs (v0.9.12, from ../shared/data): installed into the
//! sandbox, our manifests created there (the API server validates them against the structural
//! schemas), and what a 1.20 server drops checked here: the CEL rules, the tool names against
//! tools/catalog.json, approval for every write, and the URL against charts/aiops-mcp.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, PostParams};
use serde::Deserialize;
use serde_json::Value;

use crate::common::{client, wait_for, TestNs};

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn crds_dir() -> Option<PathBuf> {
    let d = repo().join("../shared/data/kagent-crds/v0.9.12");
    d.is_dir().then_some(d)
}

/// Every YAML document of a file, as JSON values.
fn yaml_docs(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_norway::Deserializer::from_str(&text)
        .map(|d| Value::deserialize(d).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
        .filter(|v| !v.is_null())
        .collect()
}

/// Our manifests, by kind.
fn manifests() -> BTreeMap<String, Vec<Value>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo().join("tools/kagent"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    let mut by_kind: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for f in files {
        for doc in yaml_docs(&f) {
            assert_eq!(doc["apiVersion"], "kagent.dev/v1alpha2", "{}", f.display());
            let kind = doc["kind"].as_str().unwrap().to_string();
            by_kind.entry(kind).or_default().push(doc);
        }
    }
    by_kind
}

/// Installs the CRDs (create, not client-side apply: the agents CRD is too big for the
/// last-applied annotation) and waits until they are established.
async fn install_crds(client: &kube::Client, dir: &Path) {
    let crd_ar = ApiResource::erase::<CustomResourceDefinition>(&());
    let dynamic: Api<DynamicObject> = Api::all_with(client.clone(), &crd_ar);
    let typed: Api<CustomResourceDefinition> = Api::all(client.clone());
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    for f in files {
        for doc in yaml_docs(&f) {
            let name = doc["metadata"]["name"].as_str().unwrap().to_string();
            let obj: DynamicObject = serde_json::from_value(doc).unwrap();
            match dynamic.create(&PostParams::default(), &obj).await {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 409 => {}
                Err(e) => panic!("create CRD {name}: {e}"),
            }
            wait_for(
                &format!("CRD {name} established"),
                Duration::from_secs(60),
                || async {
                    let crd = typed.get(&name).await.ok()?;
                    crd.status?
                        .conditions?
                        .iter()
                        .any(|c| c.type_ == "Established" && c.status == "True")
                        .then_some(())
                },
            )
            .await;
        }
    }
}

async fn api_for(client: &kube::Client, ns: &str, doc: &Value) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("kagent.dev", "v1alpha2", doc["kind"].as_str().unwrap());
    let ar = wait_for(
        &format!("discovery of {gvk:?}"),
        Duration::from_secs(60),
        || async {
            kube::discovery::pinned_kind(client, &gvk)
                .await
                .ok()
                .map(|(ar, _)| ar)
        },
    )
    .await;
    Api::namespaced_with(client.clone(), ns, &ar)
}

/// Every leaf of `want` is in `got` with the same value (the server kept every field we wrote:
/// a structural schema silently prunes unknown ones).
fn assert_kept(want: &Value, got: &Value, path: &str) {
    match (want, got) {
        (Value::Object(w), Value::Object(g)) => {
            for (k, v) in w {
                let g = g.get(k).unwrap_or_else(|| {
                    panic!("{path}.{k} was pruned by the server: not in the CRD schema")
                });
                assert_kept(v, g, &format!("{path}.{k}"));
            }
        }
        (Value::Array(w), Value::Array(g)) => {
            assert_eq!(w.len(), g.len(), "{path}");
            for (i, (w, g)) in w.iter().zip(g).enumerate() {
                assert_kept(w, g, &format!("{path}[{i}]"));
            }
        }
        _ => assert_eq!(want, got, "{path}"),
    }
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| a.iter().map(|s| s.as_str().unwrap().to_string()).collect())
        .unwrap_or_default()
}

/// The CEL rules of the v0.9.12 CRDs that touch what our manifests set (a 1.20 API server
/// drops x-kubernetes-validations, so they are checked here).
fn check_cel_rules(m: &BTreeMap<String, Vec<Value>>) {
    for a in &m["Agent"] {
        let spec = &a["spec"];
        // has(self.type); type is Declarative or BYO; Declarative needs declarative.
        let ty = spec["type"].as_str().expect("Agent spec.type");
        assert!(ty == "Declarative" || ty == "BYO");
        assert!(ty != "Declarative" || spec.get("declarative").is_some());
        let decl = &spec["declarative"];
        // !has(systemMessage) || !has(systemMessageFrom)
        assert!(decl.get("systemMessage").is_none() || decl.get("systemMessageFrom").is_none());
        let tools = decl["tools"].as_array().expect("declarative.tools");
        assert!(tools.len() <= 20, "at most 20 tools");
        for t in tools {
            // type McpServer <=> has(mcpServer); type Agent <=> has(agent)
            let has_mcp = t.get("mcpServer").is_some();
            assert_eq!(t["type"] == "McpServer", has_mcp, "{t}");
            assert_eq!(t["type"] == "Agent", t.get("agent").is_some(), "{t}");
            if !has_mcp {
                continue;
            }
            let s = &t["mcpServer"];
            assert!(s["name"].is_string());
            assert_eq!(s["apiGroup"], "kagent.dev");
            assert_eq!(s["kind"], "RemoteMCPServer", "kind must be given");
            let names = strings(&s["toolNames"]);
            let approval = strings(&s["requireApproval"]);
            assert!(names.len() <= 50 && approval.len() <= 50);
            // !has(self.requireApproval) || self.requireApproval.all(x, has(self.toolNames) && x in self.toolNames)
            for x in &approval {
                assert!(
                    names.contains(x),
                    "requireApproval entry {x} is not in toolNames"
                );
            }
        }
    }
    for r in &m["RemoteMCPServer"] {
        let spec = &r["spec"];
        // !self.url.startsWith('http://') || !has(self.tls)
        assert!(!spec["url"].as_str().unwrap().starts_with("http://") || spec.get("tls").is_none());
    }
    for c in &m["ModelConfig"] {
        let spec = &c["spec"];
        let provider = spec["provider"].as_str().unwrap_or("OpenAI");
        for (field, p) in [
            ("openAI", "OpenAI"),
            ("anthropic", "Anthropic"),
            ("azureOpenAI", "AzureOpenAI"),
            ("ollama", "Ollama"),
            ("gemini", "Gemini"),
        ] {
            assert!(
                spec.get(field).is_none() || provider == p,
                "{field} needs provider {p}"
            );
        }
        // apiKeySecretKey needs apiKeySecret and vice versa (OpenAI)
        assert_eq!(
            spec.get("apiKeySecret").is_some(),
            spec.get("apiKeySecretKey").is_some()
        );
    }
}

/// Tool names against the catalogue; every write or destructive tool needs approval.
fn check_tools_against_catalog(m: &BTreeMap<String, Vec<Value>>) {
    let catalog: Value =
        serde_json::from_str(&std::fs::read_to_string(repo().join("tools/catalog.json")).unwrap())
            .unwrap();
    let effects: BTreeMap<String, String> = catalog["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["name"].as_str().unwrap().to_string(),
                t["effect"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let servers: BTreeSet<&str> = m["RemoteMCPServer"]
        .iter()
        .map(|r| r["metadata"]["name"].as_str().unwrap())
        .collect();
    let models: BTreeSet<&str> = m["ModelConfig"]
        .iter()
        .map(|r| r["metadata"]["name"].as_str().unwrap())
        .collect();
    for a in &m["Agent"] {
        let decl = &a["spec"]["declarative"];
        assert!(models.contains(decl["modelConfig"].as_str().unwrap()));
        for t in decl["tools"].as_array().unwrap() {
            let s = &t["mcpServer"];
            assert!(servers.contains(s["name"].as_str().unwrap()));
            let names = strings(&s["toolNames"]);
            let approval: BTreeSet<String> = strings(&s["requireApproval"]).into_iter().collect();
            assert!(!names.is_empty());
            for n in &names {
                let effect = effects
                    .get(n)
                    .unwrap_or_else(|| panic!("{n} is not a tool in tools/catalog.json"));
                assert_eq!(
                    effect != "read",
                    approval.contains(n),
                    "{n} ({effect}): write and destructive tools, and only those, require approval"
                );
            }
        }
    }
}

/// The URL is the chart's Service (release aiops-mcp), port and /mcp.
fn check_url_matches_the_chart(m: &BTreeMap<String, Vec<Value>>) {
    let chart: Value = serde_norway::from_str(
        &std::fs::read_to_string(repo().join("charts/aiops-mcp/Chart.yaml")).unwrap(),
    )
    .unwrap();
    let values: Value = serde_norway::from_str(
        &std::fs::read_to_string(repo().join("charts/aiops-mcp/values.yaml")).unwrap(),
    )
    .unwrap();
    // fullname: the release name when it contains the chart name (release "aiops-mcp").
    let service = chart["name"].as_str().unwrap();
    let port = values["service"]["port"].as_u64().unwrap();
    for r in &m["RemoteMCPServer"] {
        let spec = &r["spec"];
        assert_eq!(spec["protocol"], "STREAMABLE_HTTP");
        let url = spec["url"].as_str().unwrap();
        let rest = url.strip_prefix("http://").expect("http URL");
        let (hostport, path) = rest.split_once('/').unwrap();
        let (host, p) = hostport.split_once(':').unwrap();
        assert_eq!(host.split('.').next().unwrap(), service, "{url}");
        assert_eq!(p.parse::<u64>().unwrap(), port, "{url}");
        assert_eq!(format!("/{path}"), "/mcp", "{url}");
        let h = &spec["headersFrom"][0];
        assert_eq!(h["name"], "Authorization");
        assert_eq!(h["valueFrom"]["type"], "Secret");
        assert!(h.get("value").is_none(), "no token in the manifest");
    }
}

#[tokio::test]
async fn kagent_manifests_validate_against_the_kagent_crds_and_reference_real_tools() {
    let Some(dir) = crds_dir() else {
        println!(
            "skipping kagent_manifests_…: ../shared/data/kagent-crds/v0.9.12 is absent (kagent's CRDs are not vendored in this repository)"
        );
        return;
    };
    let m = manifests();
    for kind in ["RemoteMCPServer", "ModelConfig", "Agent"] {
        assert!(m.contains_key(kind), "tools/kagent has no {kind}");
    }
    check_cel_rules(&m);
    check_tools_against_catalog(&m);
    check_url_matches_the_chart(&m);

    let client = client().await;
    {
        // New API groups are briefly listed before they answer: keep real Helm out meanwhile.
        let _exclusive = crate::common::DISCOVERY_GAP.write().await;
        install_crds(&client, &dir).await;
    }
    let ns = TestNs::new("kagent").await;
    for kind in ["ModelConfig", "RemoteMCPServer", "Agent"] {
        for doc in &m[kind] {
            let mut doc = doc.clone();
            doc["metadata"]["namespace"] = Value::String(ns.name.clone());
            let api = api_for(&client, &ns.name, &doc).await;
            let obj: DynamicObject = serde_json::from_value(doc.clone()).unwrap();
            let created = api
                .create(&PostParams::default(), &obj)
                .await
                .unwrap_or_else(|e| panic!("the API server refused {kind}: {e}"));
            let created = serde_json::to_value(&created).unwrap();
            assert_kept(&doc["spec"], &created["spec"], &format!("{kind}.spec"));
        }
    }

    // The schemas are enforced: a protocol outside the enum is refused.
    let mut bad = m["RemoteMCPServer"][0].clone();
    bad["metadata"] = serde_json::json!({"name": "bad-protocol", "namespace": ns.name});
    bad["spec"]["protocol"] = Value::String("HTTP".into());
    let api = api_for(&client, &ns.name, &bad).await;
    match api
        .create(
            &PostParams::default(),
            &serde_json::from_value(bad).unwrap(),
        )
        .await
    {
        Err(kube::Error::Api(s)) => assert_eq!(s.code, 422, "{s:?}"),
        other => panic!("an invalid protocol was accepted: {other:?}"),
    }
}
