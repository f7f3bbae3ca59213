//! aiops-mcp — a Model Context Protocol server for Kubernetes operations.
//!
//! The crate is organised as the architecture note describes: `cluster` holds the connection
//! to the API server (kubeconfig, contexts, in-cluster config, one TLS crypto provider).

pub mod agent;
pub mod cluster;
pub mod diagnose;
pub mod logs;
pub mod mcp;
pub mod policy;
pub mod rollout;
pub mod stack;
pub mod tools;
