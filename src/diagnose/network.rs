//! Service, Ingress and NetworkPolicy rows: no endpoints / selector mismatch (16), targetPort
//! mismatch (17), Ingress broken (18), NetworkPolicy isolation (19).

use super::{Ctx, Finding};

pub(crate) fn service_without_endpoints(_ctx: &Ctx) -> Vec<Finding> {
    vec![]
}
pub(crate) fn target_port_mismatch(_ctx: &Ctx) -> Vec<Finding> {
    vec![]
}
pub(crate) fn ingress_broken(_ctx: &Ctx) -> Vec<Finding> {
    vec![]
}
pub(crate) fn network_policy_isolation(_ctx: &Ctx) -> Vec<Finding> {
    vec![]
}
