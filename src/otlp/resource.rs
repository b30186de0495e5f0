//! Who pushes: the OTLP resource (`service.*`, `k8s.node.name`,
//! `OTEL_RESOURCE_ATTRIBUTES`) from the environment.

use super::config::{env, percent_decoded, OtlpError};
use super::SERVICE_NAME;

/// Who is pushing: becomes the OTLP resource.
///
/// The agent's own pod name is deliberately not sent as `k8s.pod.name`: that
/// attribute names the *watched* LiteLLM pod on each data point.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResourceInfo {
    /// `service.name`: `OTEL_SERVICE_NAME`, else a `service.name` in
    /// `OTEL_RESOURCE_ATTRIBUTES`, else `litellm-sentinel`.
    pub service_name: String,
    /// `service.version` (the crate version).
    pub service_version: String,
    /// `service.instance.id`: tells the agents apart in a backend that has
    /// no scrape target labels (the pod uid of a sidecar, the node of a node
    /// agent, else the host name).
    pub instance_id: Option<String>,
    /// `k8s.node.name`, from the Downward API (`NODE_NAME`).
    pub node_name: Option<String>,
    /// `OTEL_RESOURCE_ATTRIBUTES` (without `service.name`); they win over the
    /// attributes above on the same key.
    pub extra: Vec<(String, String)>,
}

impl ResourceInfo {
    /// The resource from variables read through `lookup`: `OTEL_SERVICE_NAME`,
    /// `OTEL_RESOURCE_ATTRIBUTES`, `POD_UID`, `NODE_NAME`.
    pub(crate) fn from_lookup(
        lookup: &impl Fn(&str) -> Option<String>,
    ) -> Result<ResourceInfo, OtlpError> {
        let get = |name: &str| {
            lookup(name)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let mut extra = match get(env::RESOURCE_ATTRIBUTES) {
            Some(text) => parse_resource_attributes(&text)?,
            None => Vec::new(),
        };
        let from_attrs = extra
            .iter()
            .position(|(k, _)| k == "service.name")
            .map(|i| extra.remove(i).1);
        let node_name = get(env::NODE_NAME);
        let instance_id = get(env::POD_UID)
            .or_else(|| node_name.clone())
            .or_else(hostname);
        Ok(ResourceInfo {
            service_name: get(env::SERVICE_NAME)
                .or(from_attrs)
                .unwrap_or_else(|| SERVICE_NAME.to_string()),
            service_version: env!("CARGO_PKG_VERSION").to_string(),
            instance_id,
            node_name,
            extra,
        })
    }
}

/// The host name (the pod name in Kubernetes), `None` if it cannot be read.
fn hostname() -> Option<String> {
    // uname's nodename is what gethostname(2) returns on Linux.
    let uts = rustix::system::uname();
    uts.nodename()
        .to_str()
        .ok()
        .map(str::to_string)
        .filter(|h| !h.is_empty())
}

/// Parses `OTEL_RESOURCE_ATTRIBUTES` (`k=v,k2=v2`, values percent-decoded).
fn parse_resource_attributes(text: &str) -> Result<Vec<(String, String)>, OtlpError> {
    let mut out: Vec<(String, String)> = Vec::new();
    for (index, entry) in text.split(',').enumerate() {
        if entry.trim().is_empty() {
            continue;
        }
        let (key, value) = entry
            .split_once('=')
            .ok_or(OtlpError::MalformedResourceAttribute { index })?;
        let key = key.trim();
        if key.is_empty() {
            return Err(OtlpError::MalformedResourceAttribute { index });
        }
        let value = String::from_utf8_lossy(&percent_decoded(value.trim())).into_owned();
        match out.iter_mut().find(|(k, _)| k == key) {
            Some(slot) => slot.1 = value,
            None => out.push((key.to_string(), value)),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::super::config::env_var;
    use super::super::test_util::{lookup, resource, str_attr};
    use super::super::to_request;
    use super::*;

    #[test]
    fn resource_and_scope() {
        let req = to_request(&[], &resource(), 0, 0);
        let rm = &req.resource_metrics[0];
        let attrs = &rm.resource.as_ref().unwrap().attributes;
        assert_eq!(
            str_attr(attrs, "service.name").as_deref(),
            Some("litellm-sentinel")
        );
        assert_eq!(str_attr(attrs, "service.version").as_deref(), Some("9.9.9"));
        assert_eq!(str_attr(attrs, "k8s.node.name").as_deref(), Some("node-a"));
        assert_eq!(rm.scope_metrics.len(), 1);
        assert_eq!(
            rm.scope_metrics[0].scope.as_ref().unwrap().name,
            "litellm-sentinel"
        );
        assert!(rm.scope_metrics[0].metrics.is_empty());
        let no_node = ResourceInfo {
            node_name: None,
            ..resource()
        };
        let req = to_request(&[], &no_node, 0, 0);
        let attrs = &req.resource_metrics[0]
            .resource
            .as_ref()
            .unwrap()
            .attributes;
        assert!(str_attr(attrs, "k8s.node.name").is_none());
        assert_eq!(
            ResourceInfo::from_lookup(&env_var).unwrap().service_version,
            env!("CARGO_PKG_VERSION")
        );
    }

    #[test]
    fn resource_from_otel_variables_and_the_downward_api() {
        let attrs_of = |vars: &[(&str, &str)]| {
            let r = ResourceInfo::from_lookup(&lookup(vars)).unwrap();
            let req = to_request(&[], &r, 0, 0);
            req.resource_metrics[0].resource.clone().unwrap().attributes
        };
        // Node agent: the node is the instance.
        let a = attrs_of(&[(env::NODE_NAME, "node-a")]);
        assert_eq!(
            str_attr(&a, "service.instance.id").as_deref(),
            Some("node-a")
        );
        assert_eq!(str_attr(&a, "service.name").as_deref(), Some(SERVICE_NAME));
        // Sidecar: the pod uid wins over the node.
        let a = attrs_of(&[(env::NODE_NAME, "node-a"), (env::POD_UID, "5e0c-uid")]);
        assert_eq!(
            str_attr(&a, "service.instance.id").as_deref(),
            Some("5e0c-uid")
        );
        assert_eq!(str_attr(&a, "k8s.node.name").as_deref(), Some("node-a"));
        // OTEL_RESOURCE_ATTRIBUTES: percent-decoded, later entries win, they
        // override detected attributes; service.name from it unless
        // OTEL_SERVICE_NAME is set.
        let a = attrs_of(&[
            (env::NODE_NAME, "node-a"),
            (
                env::RESOURCE_ATTRIBUTES,
                "deployment.environment=prod, k8s.cluster.name=eu%2D1,service.name=from-attrs,team=a,team=llm,service.instance.id=custom",
            ),
        ]);
        assert_eq!(str_attr(&a, "service.name").as_deref(), Some("from-attrs"));
        assert_eq!(
            str_attr(&a, "deployment.environment").as_deref(),
            Some("prod")
        );
        assert_eq!(str_attr(&a, "k8s.cluster.name").as_deref(), Some("eu-1"));
        assert_eq!(str_attr(&a, "team").as_deref(), Some("llm"));
        assert_eq!(
            str_attr(&a, "service.instance.id").as_deref(),
            Some("custom")
        );
        assert_eq!(a.iter().filter(|kv| kv.key == "service.name").count(), 1);
        let a = attrs_of(&[
            (env::RESOURCE_ATTRIBUTES, "service.name=from-attrs"),
            (env::SERVICE_NAME, "llm-sentinel-eu"),
        ]);
        assert_eq!(
            str_attr(&a, "service.name").as_deref(),
            Some("llm-sentinel-eu")
        );
        // No Downward API at all: the host name identifies the instance.
        let a = attrs_of(&[]);
        assert_eq!(str_attr(&a, "service.instance.id"), hostname());
        assert!(
            ResourceInfo::from_lookup(&lookup(&[(env::RESOURCE_ATTRIBUTES, "a=1,oops")]))
                .is_err_and(|e| e == OtlpError::MalformedResourceAttribute { index: 1 })
        );
    }

    #[test]
    fn hostname_is_the_kernel_host_name() {
        let kernel = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
        assert_eq!(hostname().as_deref(), Some(kernel.trim()));
    }
}
