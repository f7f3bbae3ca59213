//! simkubelet — plays N Kubernetes nodes against a real kube-apiserver.
//!
//! It registers Nodes and keeps their heartbeats and Leases fresh, drives the status of every
//! pod the scheduler binds to them (per an image catalogue that says what each image does),
//! writes the kubelet's Events, and serves container logs on each node's kubelet port so that
//! `kubectl logs` works through the API server.

mod catalogue;
mod events;
mod logs;
mod node;
mod pods;
mod sim;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Parser;
use jiff::SignedDuration;

#[derive(Parser, Debug)]
#[command(version, about = "A simulated kubelet for the aiops-mcp sandbox")]
struct Args {
    /// Kubeconfig of the identity simkubelet uses (needs to write nodes, pods/status, events).
    #[arg(long, env = "KUBECONFIG")]
    kubeconfig: PathBuf,
    /// Number of nodes to play.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=64))]
    nodes: u16,
    /// Node name prefix; nodes are `<prefix>0`, `<prefix>1`, ….
    #[arg(long, default_value = "sim-node-")]
    node_prefix: String,
    /// Kubelet port of the first node; node i listens on base-port + i.
    #[arg(long, default_value_t = 10250)]
    base_port: u16,
    /// Image catalogue YAML.
    #[arg(long)]
    catalogue: PathBuf,
    /// CPU capacity of each node.
    #[arg(long, default_value = "4")]
    cpu: String,
    /// Memory capacity of each node.
    #[arg(long, default_value = "8Gi")]
    memory: String,
    /// Pod capacity of each node.
    #[arg(long, default_value = "250")]
    max_pods: String,
    /// First restart back-off (the kubelet uses 10 s; tests want ~1 s).
    #[arg(long, env = "SIMKUBELET_BACKOFF_BASE_MS", default_value_t = 1000)]
    backoff_base_ms: u64,
    /// Back-off cap (the kubelet uses 5 min).
    #[arg(long, env = "SIMKUBELET_BACKOFF_CAP_MS", default_value_t = 8000)]
    backoff_cap_ms: u64,
    /// Seconds between node heartbeats.
    #[arg(long, default_value_t = 10)]
    heartbeat_seconds: u64,
}

#[tokio::main]
async fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let args = Args::parse();
    let catalogue = Arc::new(catalogue::Catalogue::load(&args.catalogue)?);
    tracing::info!(images = catalogue.len(), "image catalogue loaded");
    let kubeconfig = kube::config::Kubeconfig::read_from(&args.kubeconfig)
        .with_context(|| format!("reading kubeconfig {}", args.kubeconfig.display()))?;
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await?;
    let client = kube::Client::try_from(config)?;
    let store = logs::LogStore::default();
    let recorder = events::Recorder::new(client.clone());
    let tunables = sim::Tunables {
        backoff_base: SignedDuration::from_millis(args.backoff_base_ms as i64),
        backoff_cap: SignedDuration::from_millis(
            args.backoff_cap_ms.max(args.backoff_base_ms) as i64
        ),
        ..Default::default()
    };
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..args.nodes as usize {
        let spec = node::NodeSpec {
            name: format!("{}{i}", args.node_prefix),
            index: i,
            kubelet_port: args.base_port + i as u16,
            cpu: args.cpu.clone(),
            memory: args.memory.clone(),
            pods: args.max_pods.clone(),
        };
        // Serve logs before the node says where to find them.
        let addr: SocketAddr = ([127, 0, 0, 1], spec.kubelet_port).into();
        let (s, n) = (store.clone(), spec.name.clone());
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding kubelet port {addr}"))?;
        tasks.spawn(async move { logs::serve(listener, s, n).await });
        node::register(&client, &spec).await?;
        let (c, sp) = (client.clone(), spec.clone());
        let every = Duration::from_secs(args.heartbeat_seconds.max(1));
        tasks.spawn(async move {
            node::heartbeat_loop(c, sp, every).await;
            Ok(())
        });
        let ctx = pods::Ctx {
            client: client.clone(),
            node: spec,
            catalogue: catalogue.clone(),
            logs: store.clone(),
            recorder: recorder.clone(),
            tunables,
            images: Default::default(),
            next_ip: Default::default(),
        };
        tasks.spawn(async move {
            pods::run_node(ctx).await;
            Ok(())
        });
    }
    tracing::info!(nodes = args.nodes, "simkubelet running");
    tokio::select! {
        r = tasks.join_next() => {
            match r {
                Some(Ok(Err(e))) => return Err(e),
                Some(Err(e)) => return Err(e.into()),
                _ => {}
            }
        }
        _ = tokio::signal::ctrl_c() => {}
    }
    Ok(())
}
