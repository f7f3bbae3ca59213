//! Helm interop with real Helm (PyPI helm-sdkpy through tests/py/helm_driver.py): chart lint,
//! chart ↔ stack_render parity, Helm seeing stacks aiops-mcp deployed and the other way round,
//! and the aiops-mcp chart installed with the permissions it means to grant.

use std::path::PathBuf;
use std::process::Command;

use aiops_mcp::cluster::Clusters;
use aiops_mcp::tools::{Ctx, Registry};
use k8s_openapi::api::core::v1::Secret;
use serde_json::{json, Value};

use crate::common::TestNs;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs the Helm driver; returns its JSON answer (and whether it exited 0).
fn helm(args: &[&str]) -> (bool, Value) {
    let _shared = crate::common::DISCOVERY_GAP.blocking_read();
    let py = repo().join(".venv/bin/python");
    assert!(
        py.exists(),
        "{} missing: tests/run installs the venv with helm-sdkpy",
        py.display()
    );
    let out = Command::new(py)
        .arg(repo().join("tests/py/helm_driver.py"))
        .args(args)
        .output()
        .expect("helm driver runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let v = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!(
            "helm {args:?}: {e}\nstdout: {stdout}\nstderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.success(), v)
}

pub(crate) async fn helm_async(args: &[&str]) -> (bool, Value) {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    tokio::task::spawn_blocking(move || helm(&args.iter().map(String::as_str).collect::<Vec<_>>()))
        .await
        .unwrap()
}

/// Helm's own history of a release: (revision, status, description) rows and the raw answer.
pub(crate) async fn history_rows(
    release: &str,
    namespace: &str,
) -> (Vec<(i64, String, String)>, Value) {
    let (ok, h) = helm_async(&["history", release, "--namespace", namespace]).await;
    assert!(ok, "{h}");
    let rows = h["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| {
            (
                x["revision"].as_i64().unwrap(),
                x["status"].as_str().unwrap().to_string(),
                x["description"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    (rows, h)
}

/// `install`, `upgrade` or `template` of a chart in this repository with `values`.
async fn helm_chart(
    action: &str,
    chart: &str,
    release: &str,
    namespace: &str,
    values: &Value,
) -> (bool, Value) {
    let f = values_file(values);
    let chart = repo().join(chart);
    helm_async(&[
        action,
        chart.to_str().unwrap(),
        "--release",
        release,
        "--namespace",
        namespace,
        "--values",
        f.0.to_str().unwrap(),
    ])
    .await
}

fn values_file(v: &Value) -> tempfile_path::TempPath {
    tempfile_path::write(&v.to_string())
}

/// A tiny temp-file helper (JSON is YAML, so Helm reads it as a values file).
mod tempfile_path {
    pub struct TempPath(pub std::path::PathBuf);
    impl Drop for TempPath {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }
    pub fn write(text: &str) -> TempPath {
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write(text.as_bytes());
        let p = std::env::temp_dir().join(format!("aiops-values-{:x}.json", h.finish()));
        std::fs::write(&p, text).unwrap();
        TempPath(p)
    }
}

fn ctx() -> Ctx {
    Ctx {
        clusters: Clusters::new(None, None),
        policy: std::sync::Arc::new(crate::mcp::permissive()),
        progress: None,
    }
}

/// Objects keyed by Kind/name, from a YAML stream.
fn objects(yaml: &str) -> std::collections::BTreeMap<String, Value> {
    yaml.split("\n---")
        .filter_map(|d| serde_norway::from_str::<Value>(d).ok())
        .filter(|v| v.is_object())
        .map(|v| {
            (
                format!(
                    "{}/{}",
                    v["kind"].as_str().unwrap_or_default(),
                    v["metadata"]["name"].as_str().unwrap_or_default()
                ),
                v,
            )
        })
        .collect()
}

#[test]
fn charts_lint_clean() {
    let chart = repo().join("charts/todo-stack");
    let (ok, v) = helm(&["lint", chart.to_str().unwrap()]);
    assert!(ok && v["ok"] == true, "{v}");
    let dev = repo().join("charts/todo-stack/values-dev.yaml");
    let (ok, v) = helm(&[
        "lint",
        chart.to_str().unwrap(),
        "--values",
        dev.to_str().unwrap(),
    ]);
    assert!(ok && v["ok"] == true, "{v}");
    let f = values_file(
        &json!({"auth": {"existingSecret": "aiops-token"}, "writeNamespace": "todo-app"}),
    );
    let (ok, v) = helm(&[
        "lint",
        repo().join("charts/aiops-mcp").to_str().unwrap(),
        "--values",
        f.0.to_str().unwrap(),
    ]);
    assert!(ok && v["ok"] == true, "{v}");
}

#[tokio::test]
async fn chart_renders_exactly_what_stack_render_renders() {
    let registry = Registry::new();
    let cases = [
        json!({}),
        json!({
            "imageRegistry": "ghcr.io/acme/", "imagePullPolicy": "Always",
            "backend": {"tag": "1.0.3-health500", "replicas": 4, "readOnlyRootFilesystem": false},
            "frontend": {"serviceType": "NodePort", "nodePort": 30080, "probePath": "/healthz"},
            "config": {"migrations": false, "logLevel": "debug"},
            "ingress": {"host": "todo.example.com", "tlsSecretName": "todo-tls"},
            "secret": {"name": "other-secrets"},
        }),
        json!({"ingress": {"enabled": false}}),
    ];
    for values in cases {
        let (ok, h) = helm_chart("template", "charts/todo-stack", "shop", "store", &values).await;
        assert!(ok, "{h}");
        let ours = registry
            .call(
                &ctx(),
                "stack_render",
                json!({"release": "shop", "namespace": "store", "values": values}),
            )
            .await
            .unwrap();
        let (a, b) = (
            objects(h["manifest"].as_str().unwrap()),
            objects(ours.structured["yaml"].as_str().unwrap()),
        );
        assert_eq!(
            a.keys().collect::<Vec<_>>(),
            b.keys().collect::<Vec<_>>(),
            "object sets differ for {values}"
        );
        for (k, v) in &a {
            assert_eq!(v, &b[k], "{k} differs for values {values}");
        }
    }
}

async fn stack_secret(ns: &TestNs) {
    let s: Secret = serde_json::from_value(json!({"metadata": {"name": "todo-secrets"}, "stringData": {
        "DATABASE_URL": "postgresql://todo:pw@db/todo", "BETTER_AUTH_SECRET": "x", "BETTER_AUTH_URL": "http://todo.local", "OPENAI_API_KEY": "sk-test"}})).unwrap();
    ns.api::<Secret>()
        .create(&Default::default(), &s)
        .await
        .unwrap();
}

fn quick() -> Value {
    json!({"frontend": {"replicas": 1}, "backend": {"replicas": 1}, "probes": {"readinessInitialDelaySeconds": 0, "readinessPeriodSeconds": 1}})
}

#[tokio::test]
async fn helm_manages_a_stack_deployed_by_aiops_mcp() {
    let ns = TestNs::new("helmsees").await;
    stack_secret(&ns).await;
    let r = Registry::new();
    let out = r
        .call(
            &ctx(),
            "stack_deploy",
            json!({"namespace": ns.name, "values": quick()}),
        )
        .await
        .unwrap();
    assert_eq!(out.structured["revision"], 1, "{}", out.text);

    let (ok, l) = helm_async(&["list", "--namespace", &ns.name]).await;
    assert!(ok, "{l}");
    let rel = &l["releases"][0];
    assert_eq!(
        (
            rel["name"].as_str(),
            rel["revision"].as_i64(),
            rel["status"].as_str()
        ),
        (Some("todo"), Some(1), Some("deployed")),
        "{l}"
    );
    assert!(
        rel["chart"]
            .as_str()
            .unwrap_or_default()
            .contains("todo-stack"),
        "{l}"
    );

    // helm upgrade on top of our release.
    let mut v = quick();
    v["backend"]["tag"] = json!("1.0.3-health500");
    let (ok, u) = helm_chart("upgrade", "charts/todo-stack", "todo", &ns.name, &v).await;
    assert!(ok && u["version"] == 2, "{u}");
    let st = r
        .call(&ctx(), "stack_status", json!({"namespace": ns.name}))
        .await
        .unwrap();
    assert!(
        st.text.contains("release revision 2 (deployed)")
            && st.text.contains("todo-backend:1.0.3-health500"),
        "{}",
        st.text
    );

    // helm rollback to our revision 1; aiops-mcp sees revision 3 and the old image.
    let (ok, rb) = helm_async(&["rollback", "todo", "1", "--namespace", &ns.name]).await;
    assert!(ok, "{rb}");
    let (_, h) = helm_async(&["history", "todo", "--namespace", &ns.name]).await;
    let hist: Vec<(i64, String)> = h["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| {
            (
                x["revision"].as_i64().unwrap(),
                x["status"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        hist,
        vec![
            (1, "superseded".into()),
            (2, "superseded".into()),
            (3, "deployed".into())
        ],
        "{h}"
    );
    let st = r
        .call(&ctx(), "stack_status", json!({"namespace": ns.name}))
        .await
        .unwrap();
    assert!(
        st.text.contains("release revision 3 (deployed)") && st.text.contains("todo-backend:1.0.0"),
        "{}",
        st.text
    );

    // And aiops-mcp deploys on top of Helm's revisions.
    let out = r
        .call(
            &ctx(),
            "stack_deploy",
            json!({"namespace": ns.name, "values": quick(), "wait": false}),
        )
        .await
        .unwrap();
    assert!(
        out.structured["revision"] == 4 || out.structured["outcome"] == "unchanged",
        "{}",
        out.text
    );
}

#[tokio::test]
async fn aiops_mcp_sees_a_stack_installed_by_helm() {
    let ns = TestNs::new("helminst").await;
    stack_secret(&ns).await;
    let (ok, i) = helm_chart("install", "charts/todo-stack", "todo", &ns.name, &quick()).await;
    assert!(ok && i["version"] == 1, "{i}");
    let r = Registry::new();
    let st = crate::common::wait_for(
        "helm-installed stack healthy",
        std::time::Duration::from_secs(60),
        || async {
            let st = r
                .call(&ctx(), "stack_status", json!({"namespace": ns.name}))
                .await
                .ok()?;
            (st.structured["verdict"] == "healthy").then_some(st)
        },
    )
    .await;
    assert!(
        st.text.contains("release revision 1 (deployed)"),
        "{}",
        st.text
    );
    // Deploying the same values through aiops-mcp changes no object.
    let out = r
        .call(
            &ctx(),
            "stack_deploy",
            json!({"namespace": ns.name, "values": quick()}),
        )
        .await
        .unwrap();
    let changed: Vec<&Value> = out.structured["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| !c["result"].as_str().unwrap().ends_with("unchanged"))
        .collect();
    assert!(
        changed.is_empty(),
        "helm-installed objects differ from ours: {}",
        out.text
    );
}

#[tokio::test]
async fn aiops_mcp_chart_installs_with_read_access_and_writes_only_in_the_stack_namespace() {
    let ns = TestNs::new("helmchart").await;
    let stack_ns = TestNs::new("helmwrite").await;
    let values =
        json!({"auth": {"existingSecret": "aiops-token"}, "writeNamespace": stack_ns.name});
    let (ok, i) = helm_chart("install", "charts/aiops-mcp", "aiops", &ns.name, &values).await;
    assert!(ok, "{i}");
    let sas = ns
        .api::<k8s_openapi::api::core::v1::ServiceAccount>()
        .list(&Default::default())
        .await
        .unwrap();
    let sa = sas
        .items
        .iter()
        .filter_map(|s| s.metadata.name.clone())
        .find(|n| n != "default")
        .expect("the chart's ServiceAccount");
    let who = format!("system:serviceaccount:{}:{sa}", ns.name);
    let can = |verb: &str, res: &str, namespace: Option<&str>| {
        let mut args = vec!["auth", "can-i", verb, res, "--as", who.as_str()];
        match namespace {
            Some(n) => args.extend(["-n", n]),
            None => args.push("--all-namespaces"),
        }
        crate::common::kubectl(&args).1.trim().to_string()
    };
    assert_eq!(can("list", "pods", None), "yes");
    assert_eq!(can("get", "pods/log", Some("default")), "yes");
    assert_eq!(can("create", "deployments", Some(&stack_ns.name)), "yes");
    assert_eq!(can("create", "deployments", Some("default")), "no");
    // The rollout tools work on StatefulSets and DaemonSets too.
    assert_eq!(
        can("patch", "statefulsets/scale", Some(&stack_ns.name)),
        "yes"
    );
    assert_eq!(can("patch", "daemonsets", Some(&stack_ns.name)), "yes");
    assert_eq!(
        can("list", "controllerrevisions", Some(&stack_ns.name)),
        "yes"
    );
    assert_eq!(can("list", "secrets", None), "no");
    let svc = ns
        .api::<k8s_openapi::api::core::v1::Service>()
        .list(&Default::default())
        .await
        .unwrap();
    assert!(svc.items.iter().any(|s| s
        .spec
        .as_ref()
        .and_then(|s| s.ports.as_ref())
        .is_some_and(|p| p.iter().any(|p| p.port == 8080))));
    let (ok, _) = helm_async(&["uninstall", "aiops", "--namespace", &ns.name]).await;
    assert!(ok);
}

#[tokio::test]
async fn helm_rollback_by_aiops_mcp_is_what_helm_history_shows() {
    let ns = TestNs::new("helmrb").await;
    stack_secret(&ns).await;
    let mut v1 = quick();
    v1["ingress"] = json!({"enabled": false});
    let (ok, i) = helm_chart("install", "charts/todo-stack", "todo", &ns.name, &v1).await;
    assert!(ok && i["version"] == 1, "{i}");
    let mut v2 = quick();
    v2["backend"]["tag"] = json!("1.0.1-bad-migration");
    v2["config"] = json!({"logLevel": "debug"});
    let (ok, u) = helm_chart("upgrade", "charts/todo-stack", "todo", &ns.name, &v2).await;
    assert!(ok && u["version"] == 2, "{u}");

    let r = Registry::new();
    let hist = r
        .call(
            &ctx(),
            "helm_history",
            json!({"release": "todo", "namespace": ns.name}),
        )
        .await
        .unwrap();
    assert!(
        hist.text
            .contains("backend.tag: unset → 1.0.1-bad-migration")
            && hist.text.contains("ingress.enabled: false → unset"),
        "{}",
        hist.text
    );
    // Drift Helm's three-way merge undoes: the frontend scaled by hand (both revisions say 1).
    r.call(
        &ctx(),
        "workload_scale",
        json!({"namespace": ns.name, "name": "todo-frontend", "replicas": 2}),
    )
    .await
    .unwrap();
    // Dry run: lists the changes, records nothing.
    let dry = r
        .call(
            &ctx(),
            "helm_rollback",
            json!({"release": "todo", "namespace": ns.name, "dry_run": true}),
        )
        .await
        .unwrap();
    assert!(
        dry.text.contains("Ingress/todo would be deleted"),
        "{}",
        dry.text
    );
    // Someone else takes revision 3 between our read and our write (a Secret of that name
    // without Helm's labels, so the read does not see it): refused, nothing applied.
    let secrets = ns.api::<k8s_openapi::api::core::v1::Secret>();
    let squatter: k8s_openapi::api::core::v1::Secret =
        serde_json::from_value(json!({"metadata": {"name": "sh.helm.release.v1.todo.v3"}}))
            .unwrap();
    secrets
        .create(&Default::default(), &squatter)
        .await
        .unwrap();
    let e = r
        .call(
            &ctx(),
            "helm_rollback",
            json!({"release": "todo", "namespace": ns.name, "to_revision": 1}),
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("changed while rolling back") && e.contains("nothing was applied"),
        "{e}"
    );
    assert!(
        ns.api::<k8s_openapi::api::networking::v1::Ingress>()
            .get_opt("todo")
            .await
            .unwrap()
            .is_some(),
        "the refused rollback deleted the Ingress"
    );
    secrets
        .delete("sh.helm.release.v1.todo.v3", &Default::default())
        .await
        .unwrap();

    let out = r
        .call(
            &ctx(),
            "helm_rollback",
            json!({"release": "todo", "namespace": ns.name, "to_revision": 1, "wait": true, "timeout_seconds": 90}),
        )
        .await
        .unwrap();
    assert_eq!(out.structured["new_revision"], 3, "{}", out.text);
    assert_eq!(
        out.structured["outcome"], "rolled back, complete",
        "{}",
        out.text
    );

    let (rows, h) = history_rows("todo", &ns.name).await;
    assert_eq!(
        rows.iter().map(|r| (r.0, r.1.as_str())).collect::<Vec<_>>(),
        vec![(1, "superseded"), (2, "superseded"), (3, "deployed")],
        "{h}"
    );
    assert_eq!(rows[2].2, "Rollback to 1", "{h}");

    // The live objects are revision 1's: Helm's own template of v1 matches them.
    let (ok, t) = helm_chart("template", "charts/todo-stack", "todo", &ns.name, &v1).await;
    assert!(ok, "{t}");
    let want = objects(t["manifest"].as_str().unwrap());
    let deps = ns
        .api::<k8s_openapi::api::apps::v1::Deployment>()
        .list(&Default::default())
        .await
        .unwrap();
    for d in deps.items {
        let name = d.metadata.name.clone().unwrap();
        assert_eq!(
            d.spec.replicas.map(i64::from),
            want[&format!("Deployment/{name}")]["spec"]["replicas"].as_i64(),
            "{name}: replicas not back to revision 1's"
        );
        let live = serde_json::to_value(&d.spec.template).unwrap();
        let w = &want[&format!("Deployment/{name}")]["spec"]["template"];
        assert_eq!(
            live["spec"]["containers"][0]["image"], w["spec"]["containers"][0]["image"],
            "{name}"
        );
        assert_eq!(
            live["spec"]["containers"][0]["env"], w["spec"]["containers"][0]["env"],
            "{name}"
        );
    }
    let cm = ns
        .api::<k8s_openapi::api::core::v1::ConfigMap>()
        .get("todo-config")
        .await
        .unwrap();
    assert_eq!(
        serde_json::to_value(&cm.data).unwrap(),
        want["ConfigMap/todo-config"]["data"],
        "ConfigMap back to revision 1"
    );
    assert!(ns
        .api::<k8s_openapi::api::networking::v1::Ingress>()
        .get_opt("todo")
        .await
        .unwrap()
        .is_none());
    // A missing revision is refused with the list.
    let e = r
        .call(
            &ctx(),
            "helm_rollback",
            json!({"release": "todo", "namespace": ns.name, "to_revision": 12}),
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("no revision 12") && e.contains("3 (deployed)"),
        "{e}"
    );
}
