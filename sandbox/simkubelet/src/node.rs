//! Node registration and heartbeats: the Node object, its status (Ready, pressure conditions,
//! addresses, kubelet endpoint, capacity) and its Lease in kube-node-lease.
//!
//! Tests can make a node sick through annotations on the Node:
//! `sim.aiops-mcp.dev/not-ready: "true"` reports Ready=False, and
//! `sim.aiops-mcp.dev/pressure: "Memory,Disk,PID"` reports those pressure conditions True.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, Result};
use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::{
    DaemonEndpoint, Node, NodeAddress, NodeCondition, NodeDaemonEndpoints, NodeSystemInfo,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, Time};
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client};

pub const ANN_NOT_READY: &str = "sim.aiops-mcp.dev/not-ready";
pub const ANN_PRESSURE: &str = "sim.aiops-mcp.dev/pressure";

#[derive(Debug, Clone)]
pub struct NodeSpec {
    pub name: String,
    pub index: usize,
    pub kubelet_port: u16,
    pub cpu: String,
    pub memory: String,
    pub pods: String,
}

/// Creates the Node if needed (labels, capacity) and writes its first Ready status.
pub async fn register(client: &Client, n: &NodeSpec) -> Result<()> {
    let nodes: Api<Node> = Api::all(client.clone());
    let labels: BTreeMap<String, String> = [
        ("kubernetes.io/hostname", n.name.as_str()),
        ("kubernetes.io/os", "linux"),
        ("kubernetes.io/arch", "amd64"),
        ("beta.kubernetes.io/os", "linux"),
        ("beta.kubernetes.io/arch", "amd64"),
        ("node.kubernetes.io/instance-type", "sim.standard"),
        (
            "topology.kubernetes.io/zone",
            if n.index % 2 == 0 { "sim-a" } else { "sim-b" },
        ),
        ("sim.aiops-mcp.dev/node", "true"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let node = Node {
        metadata: ObjectMeta {
            name: Some(n.name.clone()),
            labels: Some(labels),
            ..Default::default()
        },
        ..Default::default()
    };
    match nodes.create(&PostParams::default(), &node).await {
        Ok(_) => tracing::info!(node = %n.name, "registered node"),
        Err(kube::Error::Api(s)) if s.code == 409 => {
            tracing::info!(node = %n.name, "node exists; taking it over")
        }
        Err(e) => return Err(e).context(format!("creating node {}", n.name)),
    }
    heartbeat(client, n).await
}

/// Patches the node status with fresh heartbeats, honouring the test annotations.
pub async fn heartbeat(client: &Client, n: &NodeSpec) -> Result<()> {
    let nodes: Api<Node> = Api::all(client.clone());
    let current = nodes
        .get(&n.name)
        .await
        .with_context(|| format!("reading node {}", n.name))?;
    let ann = current.metadata.annotations.clone().unwrap_or_default();
    let not_ready = ann.get(ANN_NOT_READY).is_some_and(|v| v == "true");
    let pressure: Vec<String> = ann
        .get(ANN_PRESSURE)
        .map(|v| v.split(',').map(|s| s.trim().to_string()).collect())
        .unwrap_or_default();
    let now = Timestamp::now();
    let old: BTreeMap<String, NodeCondition> = current
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default()
        .into_iter()
        .map(|c| (c.type_.clone(), c))
        .collect();
    let cond =
        |kind: &str, on: bool, reason_on: &str, msg_on: &str, reason_off: &str, msg_off: &str| {
            let status = if on { "True" } else { "False" }.to_string();
            let since = old
                .get(kind)
                .filter(|c| c.status == status)
                .and_then(|c| c.last_transition_time.clone())
                .unwrap_or(Time(now));
            NodeCondition {
                type_: kind.into(),
                status,
                last_heartbeat_time: Some(Time(now)),
                last_transition_time: Some(since),
                reason: Some(if on { reason_on } else { reason_off }.into()),
                message: Some(if on { msg_on } else { msg_off }.into()),
            }
        };
    let has = |p: &str| pressure.iter().any(|x| x == p);
    let conditions = vec![
        cond(
            "MemoryPressure",
            has("Memory"),
            "KubeletHasInsufficientMemory",
            "kubelet has insufficient memory available",
            "KubeletHasSufficientMemory",
            "kubelet has sufficient memory available",
        ),
        cond(
            "DiskPressure",
            has("Disk"),
            "KubeletHasDiskPressure",
            "kubelet has disk pressure",
            "KubeletHasNoDiskPressure",
            "kubelet has no disk pressure",
        ),
        cond(
            "PIDPressure",
            has("PID"),
            "KubeletHasInsufficientPID",
            "kubelet has insufficient PID available",
            "KubeletHasSufficientPID",
            "kubelet has sufficient PID available",
        ),
        cond(
            "Ready",
            !not_ready,
            "KubeletReady",
            "kubelet is posting ready status",
            "KubeletNotReady",
            "container runtime is down: PLEG is not healthy: pleg was last seen active 3m2s ago",
        ),
    ];
    let resources: BTreeMap<String, Quantity> = [
        ("cpu", &n.cpu),
        ("memory", &n.memory),
        ("pods", &n.pods),
        ("ephemeral-storage", &"100Gi".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), Quantity(v.clone())))
    .collect();
    let status = serde_json::json!({
        "status": {
            "conditions": conditions,
            "addresses": [
                NodeAddress { type_: "InternalIP".into(), address: "127.0.0.1".into() },
                NodeAddress { type_: "Hostname".into(), address: n.name.clone() },
            ],
            "daemonEndpoints": NodeDaemonEndpoints { kubelet_endpoint: Some(DaemonEndpoint { port: n.kubelet_port as i32 }) },
            "capacity": resources,
            "allocatable": resources,
            "nodeInfo": NodeSystemInfo {
                architecture: "amd64".into(),
                boot_id: format!("sim-boot-{}", n.index),
                container_runtime_version: "containerd://1.4.13-sim".into(),
                kernel_version: "6.1.0-sim".into(),
                kube_proxy_version: "v1.20.2".into(),
                kubelet_version: "v1.20.2-simkubelet".into(),
                machine_id: format!("sim{:029}", n.index),
                operating_system: "linux".into(),
                os_image: "simkubelet (aiops-mcp sandbox)".into(),
                system_uuid: format!("00000000-0000-0000-0000-{:012}", n.index),
                ..Default::default()
            },
        }
    });
    nodes
        .patch_status(&n.name, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .with_context(|| format!("patching status of node {}", n.name))?;
    renew_lease(client, n).await
}

async fn renew_lease(client: &Client, n: &NodeSpec) -> Result<()> {
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
    let spec = LeaseSpec {
        holder_identity: Some(n.name.clone()),
        lease_duration_seconds: Some(40),
        renew_time: Some(MicroTime(Timestamp::now())),
        ..Default::default()
    };
    let lease = Lease {
        metadata: ObjectMeta {
            name: Some(n.name.clone()),
            namespace: Some("kube-node-lease".into()),
            ..Default::default()
        },
        spec: Some(spec.clone()),
    };
    match leases.get_opt(&n.name).await? {
        None => {
            leases
                .create(&PostParams::default(), &lease)
                .await
                .context("creating node lease")?;
        }
        Some(_) => {
            let patch = serde_json::json!({"spec": spec});
            leases
                .patch(&n.name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .context("renewing node lease")?;
        }
    }
    Ok(())
}

/// Keeps heartbeats going every `every` until the process ends; errors are logged and retried.
pub async fn heartbeat_loop(client: Client, n: NodeSpec, every: Duration) {
    loop {
        tokio::time::sleep(every).await;
        if let Err(err) = heartbeat(&client, &n).await {
            tracing::warn!(node = %n.name, "heartbeat failed: {err:#}");
        }
    }
}
