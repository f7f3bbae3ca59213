//! The one integration-test binary. Every test runs against the sandbox cluster that
//! `tests/run` starts (KUBECONFIG points at it), each in its own namespace.

mod agent;
mod common;
mod diagnose;
mod external;
mod helm;
mod kagent;
mod logs;
mod mcp;
mod mcp_extras;
mod rollout;
mod sandbox;
mod stack;
