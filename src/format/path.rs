//! Which pod a log file belongs to, from its path alone.
//!
//! The `namespace` and `pod` metric labels come from here, so they never
//! depend on log content (which can carry secrets). Kubernetes names cannot
//! contain `_`, which is what makes the kubelet's `_`-joined directory and
//! symlink names split unambiguously.

use std::path::Path;

/// The type lives in the shared model; this path stays for its users.
pub use crate::model::PodRef;

impl PodRef {
    /// Derives the pod from a log file path.
    ///
    /// Recognises `…/<ns>_<pod>_<uid>/<container>/<file>` (the kubelet's pods
    /// directory under any root, including rotated `N.log.20261124-101500`
    /// and `.gz` files) and `…/<pod>_<ns>_<container>-<id>.log` (the
    /// `/var/log/containers` symlinks). Anything else gets an empty namespace
    /// and the file name up to its first `.` as the pod, so `kubectl logs`
    /// output saved as `litellm-7f9c.log` is still reported under a name.
    pub(crate) fn from_path(path: &Path) -> PodRef {
        let file_name = path
            .file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default();
        let mut ancestors = path.ancestors().skip(1);
        let container_dir = ancestors.next().and_then(Path::file_name);
        let pod_dir = ancestors.next().and_then(Path::file_name);
        if let (Some(_), Some(pod_dir)) = (container_dir, pod_dir) {
            if let Some(pod) = from_pod_dir(&pod_dir.to_string_lossy()) {
                return pod;
            }
        }
        if let Some(pod) = from_container_symlink(&file_name) {
            return pod;
        }
        let stem = file_name.split('.').next().unwrap_or_default();
        PodRef::new("", stem)
    }
}

/// `<ns>_<pod>_<uid>` with a UUID-like uid.
fn from_pod_dir(dir: &str) -> Option<PodRef> {
    let mut parts = dir.split('_');
    let (ns, pod, uid) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || ns.is_empty() || pod.is_empty() || !looks_like_uid(uid) {
        return None;
    }
    Some(PodRef::new(ns, pod))
}

/// A pod UID: a UUID (`8-4-4-4-12` hex) or, for static pods, 32 hex digits.
fn looks_like_uid(uid: &str) -> bool {
    let b = uid.as_bytes();
    match b.len() {
        32 => b.iter().all(u8::is_ascii_hexdigit),
        36 => b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        }),
        _ => false,
    }
}

/// `<pod>_<ns>_<container>-<64 hex id>.log`; the kubelet truncates the name
/// to 255 bytes, so a long name may end in a cut-off id.
fn from_container_symlink(name: &str) -> Option<PodRef> {
    let stem = name.strip_suffix(".log")?;
    let mut parts = stem.split('_');
    let (pod, ns, container_and_id) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || pod.is_empty() || ns.is_empty() {
        return None;
    }
    let (container, id) = container_and_id.rsplit_once('-')?;
    let full_id = id.len() == 64 && id.bytes().all(|c| c.is_ascii_hexdigit());
    let truncated = name.len() >= 250 && id.bytes().all(|c| c.is_ascii_hexdigit());
    if container.is_empty() || !(full_id || truncated) {
        return None;
    }
    Some(PodRef::new(ns, pod))
}

#[cfg(test)]
mod tests {
    use super::*;

    const UID: &str = "8f14e45f-ceea-467f-a0e2-3bcd1a2b9c10";
    const ID: &str = "3f2a9c1e5b7d4f6a8c0e2b4d6f8a0c2e4b6d8f0a2c4e6b8d0f2a4c6e8b0d2f4a";

    fn pod(p: &str) -> PodRef {
        PodRef::from_path(Path::new(p))
    }

    #[test]
    fn pods_directory_layout() {
        let want = PodRef::new("llm", "litellm-7f9c6d5b8-x2x9q");
        for file in ["0.log", "3.log.20261124-101500", "3.log.20261124-101500.gz"] {
            assert_eq!(
                pod(&format!(
                    "/var/log/pods/llm_litellm-7f9c6d5b8-x2x9q_{UID}/litellm/{file}"
                )),
                want
            );
        }
        // Any root (kubelet podLogsDir) and a static pod's 32-hex uid.
        assert_eq!(
            pod("/mnt/logs/kube-system_etcd-node1_0123456789abcdef0123456789abcdef/etcd/0.log"),
            PodRef::new("kube-system", "etcd-node1")
        );
        assert_eq!(
            pod(&format!("llm_litellm-0_{UID}/c/0.log")),
            PodRef::new("llm", "litellm-0")
        );
    }

    #[test]
    fn containers_symlink_layout() {
        assert_eq!(
            pod(&format!(
                "/var/log/containers/litellm-7f9c6d5b8-x2x9q_llm_litellm-{ID}.log"
            )),
            PodRef::new("llm", "litellm-7f9c6d5b8-x2x9q")
        );
        // Truncated to 255 bytes by the kubelet: the id is cut.
        let long_pod = "p".repeat(170);
        let name = format!("{long_pod}_llm_container-with-a-long-name-{ID}");
        let truncated = format!("{}.log", &name[..251]);
        assert_eq!(truncated.len(), 255);
        assert_eq!(
            pod(&format!("/var/log/containers/{truncated}")),
            PodRef::new("llm", long_pod)
        );
    }

    #[test]
    fn anything_else_uses_the_file_stem() {
        assert_eq!(
            pod("/tmp/litellm-7f9c.log"),
            PodRef::new("", "litellm-7f9c")
        );
        assert_eq!(pod("out.txt.gz"), PodRef::new("", "out"));
        // Wrong uid shape, or names with too many underscores.
        assert_eq!(
            pod("/var/log/pods/llm_litellm_notauid/c/0.log"),
            PodRef::new("", "0")
        );
        assert_eq!(
            pod(&format!("/x/a_b_c_{UID}/c/0.log")),
            PodRef::new("", "0")
        );
        assert_eq!(
            pod(&format!("/var/log/containers/a_b_c_d-{ID}.log")),
            PodRef::new(
                "",
                "a_b_c_d-3f2a9c1e5b7d4f6a8c0e2b4d6f8a0c2e4b6d8f0a2c4e6b8d0f2a4c6e8b0d2f4a"
            )
        );
        assert_eq!(pod("/"), PodRef::new("", ""));
        assert_eq!(pod(""), PodRef::new("", ""));
    }

    #[test]
    fn display() {
        assert_eq!(PodRef::new("llm", "litellm-0").to_string(), "llm/litellm-0");
        assert_eq!(PodRef::new("", "litellm-0").to_string(), "litellm-0");
    }

    #[test]
    fn pod_ref_round_trips_through_serde() {
        let p = PodRef::new("llm", "litellm-0");
        let json = serde_json::to_string(&p).unwrap();
        assert_eq!(serde_json::from_str::<PodRef>(&json).unwrap(), p);
    }
}
