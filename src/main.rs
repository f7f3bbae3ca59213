//! The `aiops-mcp` command line.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, ListParams};

#[derive(Parser, Debug)]
#[command(name = "aiops-mcp", version, about = "MCP server for Kubernetes operations")]
struct Cli {
    /// Kubeconfig file (default: $KUBECONFIG, then ~/.kube/config, then in-cluster).
    #[arg(long, global = true)]
    kubeconfig: Option<PathBuf>,
    /// Kubeconfig context (default: the current context).
    #[arg(long, global = true)]
    context: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Check that the cluster answers: server version and node readiness.
    Check,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Check => {
            let client = aiops_mcp::cluster::client(cli.kubeconfig.as_deref(), cli.context.as_deref()).await?;
            let v = client.apiserver_version().await?;
            let nodes = Api::<Node>::all(client).list(&ListParams::default()).await?;
            let ready = nodes
                .items
                .iter()
                .filter(|n| {
                    n.status.as_ref().and_then(|s| s.conditions.as_ref()).is_some_and(|cs| {
                        cs.iter().any(|c| c.type_ == "Ready" && c.status == "True")
                    })
                })
                .count();
            println!("server {} ({}), nodes ready {}/{}", v.git_version, v.platform, ready, nodes.items.len());
            Ok(())
        }
    }
}
