//! Workload-level rows: rollout stalled (13), FailedCreate (14), scaled to zero (15), HPA (21),
//! Job failed (23), PVC pending (11), node not ready (22).

use super::{Ctx, Finding};

pub(crate) fn rollout_stalled(_ctx: &Ctx) -> Vec<Finding> {
    vec![]
}
pub(crate) fn failed_create(_ctx: &Ctx) -> Vec<Finding> {
    vec![]
}
pub(crate) fn scaled_to_zero(_ctx: &Ctx) -> Vec<Finding> {
    vec![]
}
pub(crate) fn hpa_not_scaling(_ctx: &Ctx) -> Vec<Finding> {
    vec![]
}
pub(crate) fn job_failed(_ctx: &Ctx) -> Vec<Finding> {
    vec![]
}
pub(crate) fn pvc_pending(_ctx: &Ctx) -> Vec<Finding> {
    vec![]
}
pub(crate) fn node_not_ready(_ctx: &Ctx) -> Vec<Finding> {
    vec![]
}
