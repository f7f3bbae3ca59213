//! core/v1 Events written the way the kubelet writes them: source `kubelet` on the node, the pod
//! as involvedObject with a container fieldPath, and repeats folded into one Event whose `count`
//! and `lastTimestamp` grow.

use std::collections::HashMap;
use std::sync::Arc;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client};
use std::sync::Mutex;

use crate::sim::SimEvent;

/// Key of a folded event: the object, field path, reason and message.
type Key = (String, String, Option<String>, String, String);

#[derive(Clone)]
pub struct Recorder {
    client: Client,
    seen: Arc<Mutex<HashMap<Key, (String, i32)>>>,
}

impl Recorder {
    pub fn new(client: Client) -> Self {
        Recorder {
            client,
            seen: Default::default(),
        }
    }

    /// Records `e` about `pod` on `node`. Failures are logged, never fatal: the kubelet does not
    /// stop a pod because an Event could not be written.
    pub async fn record(&self, pod: &Pod, node: &str, e: &SimEvent) {
        let ns = pod.metadata.namespace.clone().unwrap_or_default();
        let name = pod.metadata.name.clone().unwrap_or_default();
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let key: Key = (
            ns.clone(),
            uid.clone(),
            e.field_path.clone(),
            e.reason.clone(),
            e.message.clone(),
        );
        let api: Api<Event> = Api::namespaced(self.client.clone(), &ns);
        let now = Time(Timestamp::now());
        // The lock is never held across an API call: pods record concurrently.
        let repeat = self
            .seen
            .lock()
            .unwrap()
            .get_mut(&key)
            .map(|(ev_name, count)| {
                *count += 1;
                (ev_name.clone(), *count)
            });
        if let Some((ev_name, count)) = repeat {
            let patch = serde_json::json!({"count": count, "lastTimestamp": now});
            match api
                .patch(&ev_name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => return,
                Err(err) => tracing::debug!(%err, "event patch failed; creating a new one"),
            }
        }
        let ev_name = format!("{name}.{:x}", Timestamp::now().as_nanosecond());
        let event = Event {
            metadata: ObjectMeta {
                name: Some(ev_name.clone()),
                namespace: Some(ns.clone()),
                ..Default::default()
            },
            involved_object: ObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Pod".into()),
                name: Some(name),
                namespace: Some(ns),
                uid: Some(uid),
                resource_version: pod.metadata.resource_version.clone(),
                field_path: e.field_path.clone(),
            },
            reason: Some(e.reason.clone()),
            message: Some(e.message.clone()),
            type_: Some(if e.warning { "Warning" } else { "Normal" }.into()),
            source: Some(EventSource {
                component: Some("kubelet".into()),
                host: Some(node.to_string()),
            }),
            reporting_component: Some("kubelet".into()),
            reporting_instance: Some(node.to_string()),
            count: Some(1),
            first_timestamp: Some(now.clone()),
            last_timestamp: Some(now),
            ..Default::default()
        };
        match api.create(&PostParams::default(), &event).await {
            Ok(_) => {
                self.seen.lock().unwrap().insert(key, (ev_name, 1));
            }
            Err(err) => tracing::warn!(%err, reason = %e.reason, "could not write event"),
        }
    }

    /// Forgets the folded events of a pod that is gone.
    pub fn forget(&self, uid: &str) {
        self.seen.lock().unwrap().retain(|k, _| k.1 != uid);
    }
}
