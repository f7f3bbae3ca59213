//! The sandbox behaves like a real cluster: the control plane's controllers plus simkubelet
//! produce the statuses, events and logs a kubelet would.

use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ContainerStatus, Endpoints, Event, Node, Pod};
use kube::api::{Api, ListParams, LogParams, Patch, PatchParams};

use crate::common::{kubectl, wait_for, TestNs};

const T: Duration = Duration::from_secs(60);

async fn pods(ns: &TestNs, selector: &str) -> Vec<Pod> {
    ns.api::<Pod>()
        .list(&ListParams::default().labels(selector))
        .await
        .unwrap()
        .items
}

fn statuses(p: &Pod) -> Vec<ContainerStatus> {
    p.status
        .as_ref()
        .and_then(|s| s.container_statuses.clone())
        .unwrap_or_default()
}

fn waiting_reason(cs: &ContainerStatus) -> Option<String> {
    cs.state.as_ref()?.waiting.as_ref()?.reason.clone()
}

/// Events of the namespace as (reason, message) pairs.
async fn events(ns: &TestNs) -> Vec<(String, String)> {
    ns.api::<Event>()
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|e| (e.reason.unwrap_or_default(), e.message.unwrap_or_default()))
        .collect()
}

async fn wait_event(ns: &TestNs, reason: &str, contains: &str) -> (String, String) {
    wait_for(
        &format!("event {reason} containing {contains:?}"),
        T,
        || async {
            events(ns)
                .await
                .into_iter()
                .find(|(r, m)| r == reason && m.contains(contains))
        },
    )
    .await
}

fn deployment(name: &str, image: &str, replicas: i32, extra_container_yaml: &str) -> String {
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}}}
spec:
  replicas: {replicas}
  progressDeadlineSeconds: 15
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      containers:
      - name: main
        image: {image}
{extra_container_yaml}"#
    )
}

#[tokio::test]
async fn nodes_are_ready_with_capacity_and_fresh_leases() {
    let client = crate::common::client().await;
    let nodes = Api::<Node>::all(client.clone())
        .list(&ListParams::default().labels("sim.aiops-mcp.dev/node=true"))
        .await
        .unwrap();
    assert!(
        nodes.items.len() >= 2,
        "expected the sandbox's 2 sim nodes, got {}",
        nodes.items.len()
    );
    for n in &nodes.items {
        let st = n.status.as_ref().unwrap();
        let ready = st
            .conditions
            .as_ref()
            .unwrap()
            .iter()
            .find(|c| c.type_ == "Ready")
            .unwrap();
        assert_eq!(ready.status, "True");
        assert!(st.allocatable.as_ref().unwrap().contains_key("cpu"));
        assert!(
            st.daemon_endpoints
                .as_ref()
                .unwrap()
                .kubelet_endpoint
                .as_ref()
                .unwrap()
                .port
                > 0
        );
        let name = n.metadata.name.as_deref().unwrap();
        let lease = Api::<Lease>::namespaced(client.clone(), "kube-node-lease")
            .get(name)
            .await
            .unwrap();
        assert_eq!(lease.spec.unwrap().holder_identity.as_deref(), Some(name));
    }
}

#[tokio::test]
async fn healthy_deployment_becomes_available_and_its_service_lists_the_pods() {
    let ns = TestNs::new("healthy").await;
    let probe = "        ports: [{containerPort: 80, name: http}]\n        readinessProbe: {httpGet: {path: /, port: http}, periodSeconds: 1}\n";
    ns.apply_yaml(&deployment("web", "nginx:1.25", 2, probe))
        .await;
    ns.apply_yaml("apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n  selector: {app: web}\n  ports: [{port: 80, targetPort: http}]\n").await;
    let deps = ns.api::<Deployment>();
    wait_for("web Available with 2 ready replicas", T, || async {
        let d = deps.get("web").await.ok()?;
        let st = d.status?;
        let available = st.conditions?.iter().any(|c| {
            c.type_.as_deref() == Some("Available") && c.status.as_deref() == Some("True")
        });
        (available && st.ready_replicas == Some(2)).then_some(())
    })
    .await;
    let ips: Vec<String> = pods(&ns, "app=web")
        .await
        .iter()
        .filter_map(|p| p.status.as_ref()?.pod_ip.clone())
        .collect();
    assert_eq!(ips.len(), 2);
    let eps = ns.api::<Endpoints>();
    wait_for("endpoints listing both pods", T, || async {
        let e = eps.get("web").await.ok()?;
        let addrs: Vec<String> = e
            .subsets?
            .iter()
            .flat_map(|s| s.addresses.clone().unwrap_or_default())
            .map(|a| a.ip)
            .collect();
        ips.iter().all(|ip| addrs.contains(ip)).then_some(())
    })
    .await;
    // Logs of a healthy pod come through the API server from simkubelet.
    let pod = pods(&ns, "app=web").await.remove(0);
    let logs = ns
        .api::<Pod>()
        .logs(pod.metadata.name.as_deref().unwrap(), &LogParams::default())
        .await
        .unwrap();
    assert!(logs.contains("Configuration complete"), "{logs}");
}

#[tokio::test]
async fn unknown_image_ends_in_image_pull_back_off_with_events() {
    let ns = TestNs::new("pull").await;
    ns.apply_yaml(&deployment(
        "ghost",
        "registry.example.com/team/ghost:9.9.9",
        1,
        "",
    ))
    .await;
    wait_for("ImagePullBackOff", T, || async {
        pods(&ns, "app=ghost")
            .await
            .iter()
            .flat_map(statuses)
            .find(|c| waiting_reason(c).as_deref() == Some("ImagePullBackOff"))
            .map(|_| ())
    })
    .await;
    let (_, msg) = wait_event(
        &ns,
        "Failed",
        "Failed to pull image \"registry.example.com/team/ghost:9.9.9\"",
    )
    .await;
    assert!(msg.contains("not found"), "{msg}");
    wait_event(&ns, "BackOff", "Back-off pulling image").await;
}

#[tokio::test]
async fn crashing_image_reaches_crash_loop_back_off_and_previous_logs_show_the_crash() {
    let ns = TestNs::new("crash").await;
    ns.apply_yaml(&deployment("panicky", "crasher:1.0", 1, ""))
        .await;
    let pod_name = wait_for("CrashLoopBackOff with 2+ restarts", T, || async {
        pods(&ns, "app=panicky").await.into_iter().find_map(|p| {
            let cs = statuses(&p).into_iter().next()?;
            (cs.restart_count >= 2 && waiting_reason(&cs).as_deref() == Some("CrashLoopBackOff"))
                .then(|| p.metadata.name.clone().unwrap())
        })
    })
    .await;
    let p = ns.api::<Pod>().get(&pod_name).await.unwrap();
    let last = statuses(&p)[0]
        .last_state
        .clone()
        .unwrap()
        .terminated
        .unwrap();
    assert_eq!((last.reason.as_deref(), last.exit_code), (Some("Error"), 2));
    let prev = ns
        .api::<Pod>()
        .logs(
            &pod_name,
            &LogParams {
                previous: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(
        prev.contains("panic: assignment to entry in nil map"),
        "previous logs: {prev}"
    );
    wait_event(&ns, "BackOff", "Back-off restarting failed container").await;
    // kubectl shows it the way users know it.
    let (ok, out) = kubectl(&["-n", &ns.name, "get", "pod", &pod_name, "--no-headers"]);
    assert!(
        ok && (out.contains("CrashLoopBackOff")
            || out.contains("Error")
            || out.contains("Running")),
        "{out}"
    );
}

#[tokio::test]
async fn missing_env_var_crashes_the_backend_with_a_python_traceback() {
    let ns = TestNs::new("env").await;
    ns.apply_yaml(&deployment(
        "backend",
        "todo-backend:1.0.0",
        1,
        "        env: [{name: BETTER_AUTH_SECRET, value: x}]\n",
    ))
    .await;
    let pod_name = wait_for("a restarted backend", T, || async {
        pods(&ns, "app=backend").await.into_iter().find_map(|p| {
            (statuses(&p).first()?.restart_count >= 1).then(|| p.metadata.name.clone().unwrap())
        })
    })
    .await;
    let prev = ns
        .api::<Pod>()
        .logs(
            &pod_name,
            &LogParams {
                previous: true,
                tail_lines: Some(3),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(
        prev.trim_end().ends_with("KeyError: 'DATABASE_URL'"),
        "{prev}"
    );
}

#[tokio::test]
async fn missing_secret_key_is_a_create_container_config_error() {
    let ns = TestNs::new("cfgerr").await;
    ns.apply_yaml("apiVersion: v1\nkind: Secret\nmetadata: {name: app}\nstringData: {OTHER: x}\n")
        .await;
    let env = "        env:\n        - name: DATABASE_URL\n          valueFrom: {secretKeyRef: {name: app, key: DATABASE_URL}}\n";
    ns.apply_yaml(&deployment("cfg", "nginx:1.25", 1, env))
        .await;
    let msg = wait_for("CreateContainerConfigError", T, || async {
        pods(&ns, "app=cfg")
            .await
            .iter()
            .flat_map(statuses)
            .find_map(|c| {
                let w = c.state?.waiting?;
                (w.reason.as_deref() == Some("CreateContainerConfigError"))
                    .then(|| w.message.unwrap_or_default())
            })
    })
    .await;
    assert_eq!(
        msg,
        format!("couldn't find key DATABASE_URL in Secret {}/app", ns.name)
    );
    wait_event(&ns, "Failed", "Error: couldn't find key DATABASE_URL").await;
}

#[tokio::test]
async fn low_memory_limit_is_oom_killed() {
    let ns = TestNs::new("oom").await;
    ns.apply_yaml(&deployment(
        "tight",
        "nginx:1.25",
        1,
        "        resources: {limits: {memory: 4Mi}}\n",
    ))
    .await;
    let t = wait_for("lastState OOMKilled", T, || async {
        pods(&ns, "app=tight")
            .await
            .iter()
            .flat_map(statuses)
            .find_map(|c| c.last_state?.terminated)
    })
    .await;
    assert_eq!((t.reason.as_deref(), t.exit_code), (Some("OOMKilled"), 137));
}

#[tokio::test]
async fn wrong_readiness_path_is_running_not_ready_with_unhealthy_events() {
    let ns = TestNs::new("ready").await;
    let probe = "        ports: [{containerPort: 3000}]\n        env: [{name: BETTER_AUTH_SECRET, value: x}]\n        readinessProbe: {httpGet: {path: /, port: 3000}, periodSeconds: 1}\n";
    ns.apply_yaml(&deployment(
        "fe",
        "todo-frontend:1.0.1-moved-readiness",
        1,
        probe,
    ))
    .await;
    ns.apply_yaml("apiVersion: v1\nkind: Service\nmetadata: {name: fe}\nspec:\n  selector: {app: fe}\n  ports: [{port: 3000}]\n").await;
    wait_event(
        &ns,
        "Unhealthy",
        "Readiness probe failed: HTTP probe failed with statuscode: 404",
    )
    .await;
    let p = pods(&ns, "app=fe").await.remove(0);
    let st = p.status.clone().unwrap();
    assert_eq!(st.phase.as_deref(), Some("Running"));
    assert!(!statuses(&p)[0].ready);
    let ip = st.pod_ip.unwrap();
    let eps = ns.api::<Endpoints>();
    wait_for("pod under notReadyAddresses", T, || async {
        let e = eps.get("fe").await.ok()?;
        e.subsets?
            .iter()
            .flat_map(|s| s.not_ready_addresses.clone().unwrap_or_default())
            .find(|a| a.ip == ip)
            .map(|_| ())
    })
    .await;
}

#[tokio::test]
async fn pod_requesting_more_cpu_than_any_node_stays_pending() {
    let ns = TestNs::new("sched").await;
    ns.apply_yaml(&deployment(
        "huge",
        "nginx:1.25",
        1,
        "        resources: {requests: {cpu: \"64\"}}\n",
    ))
    .await;
    let (_, msg) = wait_event(&ns, "FailedScheduling", "Insufficient cpu").await;
    assert!(msg.contains("0/"), "{msg}");
    let p = pods(&ns, "app=huge").await.remove(0);
    assert_eq!(p.status.unwrap().phase.as_deref(), Some("Pending"));
}

#[tokio::test]
async fn resource_quota_makes_the_replica_set_report_failed_create() {
    let ns = TestNs::new("quota").await;
    ns.apply_yaml("apiVersion: v1\nkind: ResourceQuota\nmetadata: {name: two-pods}\nspec: {hard: {pods: \"1\"}}\n").await;
    // The quota controller has to compute usage before admission enforces it.
    wait_for("quota status", T, || async {
        let q = ns
            .api::<k8s_openapi::api::core::v1::ResourceQuota>()
            .get("two-pods")
            .await
            .ok()?;
        q.status?.hard.map(|_| ())
    })
    .await;
    ns.apply_yaml(&deployment("many", "nginx:1.25", 3, ""))
        .await;
    let rs_api = ns.api::<ReplicaSet>();
    let msg = wait_for("ReplicaFailure condition", T, || async {
        let rs = rs_api
            .list(&ListParams::default().labels("app=many"))
            .await
            .ok()?
            .items
            .pop()?;
        rs.status?
            .conditions?
            .into_iter()
            .find(|c| {
                c.type_.as_deref() == Some("ReplicaFailure")
                    && c.reason.as_deref() == Some("FailedCreate")
            })
            .and_then(|c| c.message)
    })
    .await;
    assert!(msg.contains("exceeded quota"), "{msg}");
    wait_event(&ns, "FailedCreate", "exceeded quota").await;
}

#[tokio::test]
async fn init_container_failure_blocks_the_pod_in_init_crash_loop() {
    let ns = TestNs::new("init").await;
    let yaml = r#"apiVersion: v1
kind: Pod
metadata: {name: backend, labels: {app: backend}}
spec:
  initContainers:
  - name: migrate
    image: todo-backend:1.0.1-bad-migration
    command: [alembic, upgrade, head]
  containers:
  - name: backend
    image: todo-backend:1.0.1-bad-migration
"#;
    ns.apply_yaml(yaml).await;
    let api = ns.api::<Pod>();
    // `previous` is the instance before the current one: wait for a restart.
    wait_for(
        "init container restarted and in CrashLoopBackOff",
        T,
        || async {
            let p = api.get("backend").await.ok()?;
            let init = p.status?.init_container_statuses?.into_iter().next()?;
            (init.restart_count >= 1
                && waiting_reason(&init).as_deref() == Some("CrashLoopBackOff"))
            .then_some(())
        },
    )
    .await;
    let prev = api
        .logs(
            "backend",
            &LogParams {
                container: Some("migrate".into()),
                previous: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(prev.contains("DuplicateColumn"), "{prev}");
    let (ok, out) = kubectl(&["-n", &ns.name, "get", "pod", "backend", "--no-headers"]);
    assert!(ok && out.contains("Init:"), "{out}");
}

#[tokio::test]
async fn rolling_update_to_a_crashing_image_stalls_and_rollout_undo_restores_it() {
    let ns = TestNs::new("rollout").await;
    let probe = "        readinessProbe: {httpGet: {path: /, port: 80}, periodSeconds: 1}\n";
    let yaml = deployment("app", "nginx:1.25", 2, probe).replace("  progressDeadlineSeconds: 15\n", "  progressDeadlineSeconds: 10\n  strategy: {rollingUpdate: {maxUnavailable: 0, maxSurge: 1}}\n");
    ns.apply_yaml(&yaml).await;
    let deps = ns.api::<Deployment>();
    let available = || async {
        let st = deps.get("app").await.ok()?.status?;
        (st.ready_replicas == Some(2)
            && st.updated_replicas == Some(2)
            && st.unavailable_replicas.unwrap_or(0) == 0)
            .then_some(())
    };
    wait_for("first rollout complete", T, available).await;
    let patch = serde_json::json!({"spec": {"template": {"spec": {"containers": [{"name": "main", "image": "crasher:1.0"}]}}}});
    deps.patch("app", &PatchParams::default(), &Patch::Strategic(&patch))
        .await
        .unwrap();
    wait_for("ProgressDeadlineExceeded", T, || async {
        let conds = deps.get("app").await.ok()?.status?.conditions?;
        conds
            .iter()
            .any(|c| {
                c.type_.as_deref() == Some("Progressing")
                    && c.reason.as_deref() == Some("ProgressDeadlineExceeded")
            })
            .then_some(())
    })
    .await;
    // The old ReplicaSet still serves.
    let d = deps.get("app").await.unwrap();
    assert_eq!(d.status.as_ref().unwrap().available_replicas, Some(2));
    let (ok, out) = kubectl(&["-n", &ns.name, "rollout", "undo", "deployment/app"]);
    assert!(ok, "{out}");
    wait_for("Available on the old image after undo", T, || async {
        let d = deps.get("app").await.ok()?;
        let image = d.spec.template.spec.as_ref()?.containers[0].image.clone()?;
        let st = d.status?;
        let progressing = st.conditions?.iter().any(|c| {
            c.type_.as_deref() == Some("Progressing")
                && c.reason.as_deref() == Some("NewReplicaSetAvailable")
        });
        (image == "nginx:1.25"
            && progressing
            && st.updated_replicas == Some(2)
            && st.ready_replicas == Some(2))
        .then_some(())
    })
    .await;
}

#[tokio::test]
async fn restricted_user_can_only_view_its_namespace() {
    let ctx = ["--context", "sandbox-restricted"];
    let (ok, out) = kubectl(&[&ctx[..], &["-n", "sandbox-restricted", "get", "pods"]].concat());
    assert!(ok, "{out}");
    let (ok, out) = kubectl(&[&ctx[..], &["-n", "default", "get", "pods"]].concat());
    assert!(!ok && out.contains("forbidden"), "{out}");
    let (ok, out) = kubectl(
        &[
            &ctx[..],
            &["-n", "sandbox-restricted", "create", "configmap", "x"],
        ]
        .concat(),
    );
    assert!(!ok && out.contains("forbidden"), "{out}");
}

#[tokio::test]
async fn deleted_pods_are_removed_by_the_kubelet() {
    let ns = TestNs::new("delete").await;
    ns.apply_yaml("apiVersion: v1\nkind: Pod\nmetadata: {name: sleeper}\nspec:\n  containers:\n  - {name: c, image: 'busybox:1.36', command: [sleep, infinity]}\n").await;
    let api = ns.api::<Pod>();
    wait_for("sleeper running", T, || async {
        (api.get("sleeper").await.ok()?.status?.phase? == "Running").then_some(())
    })
    .await;
    api.delete("sleeper", &Default::default()).await.unwrap();
    wait_for("sleeper gone", T, || async {
        api.get_opt("sleeper").await.ok()?.is_none().then_some(())
    })
    .await;
    wait_event(&ns, "Killing", "Stopping container c").await;
}
