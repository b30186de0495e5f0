//! A pod's identity.

use std::fmt;

/// A pod's identity as used for labels and per-pod timelines. Derived from a
/// log file's path (`PodRef::from_path`, in `format`) or given (sidecar
/// Downward API), never from log content, which can carry secrets.
#[derive(
    Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct PodRef {
    /// Kubernetes namespace; empty when the path does not say.
    pub namespace: String,
    /// Pod name (or the file stem for a file outside the kubelet layout).
    pub pod: String,
}

impl PodRef {
    /// A pod reference from known names (sidecar Downward API, tests).
    pub fn new(namespace: impl Into<String>, pod: impl Into<String>) -> Self {
        PodRef {
            namespace: namespace.into(),
            pod: pod.into(),
        }
    }
}

impl fmt::Display for PodRef {
    /// `namespace/pod`, or just `pod` when the namespace is unknown.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.namespace.is_empty() {
            f.write_str(&self.pod)
        } else {
            write!(f, "{}/{}", self.namespace, self.pod)
        }
    }
}
