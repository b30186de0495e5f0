//! The gate's Prometheus families (`engines_discovered`, `engines_up`,
//! `litellm_build_info`), rendered from [`Gates`] at scrape time.

use std::collections::HashMap;

use prometheus::core::{Collector, Desc};
use prometheus::proto::{self, MetricFamily, MetricType};

use super::SharedGates;

/// `engines_discovered`, `engines_up` and `litellm_build_info`, rendered
/// from [`Gates`] at scrape time.
pub struct GateCollector {
    gates: SharedGates,
    descs: Vec<Desc>,
}

const FAMILIES: [(&str, &str, &[&str]); 3] = [
    (
        "engines_discovered",
        "Prisma query-engine processes found in the pod in the last probe round (one per Uvicorn worker).",
        &["namespace", "pod"],
    ),
    (
        "engines_up",
        "Of the engines found, how many answered a raw SELECT 1 in the last probe round.",
        &["namespace", "pod"],
    ),
    (
        "litellm_build_info",
        "1, labelled with the LiteLLM version the pod's /health/readiness reports (else its installed litellm package, read through /proc).",
        &["namespace", "pod", "version"],
    ),
];

impl GateCollector {
    /// A collector over `gates`.
    pub fn new(gates: SharedGates) -> Result<GateCollector, prometheus::Error> {
        let descs = FAMILIES
            .iter()
            .map(|(n, help, labels)| {
                Desc::new(
                    format!("{}{n}", crate::metrics::PREFIX),
                    help.to_string(),
                    labels.iter().map(|s| s.to_string()).collect(),
                    HashMap::new(),
                )
            })
            .collect::<Result<_, _>>()?;
        Ok(GateCollector { gates, descs })
    }
}

impl Collector for GateCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let g = crate::sync::lock(&self.gates);
        let mut pods: Vec<_> = g.pods().collect();
        pods.sort_by(|a, b| a.0.cmp(b.0));
        let mut fams: [Vec<proto::Metric>; 3] = Default::default();
        for (pod, p) in pods {
            let base = [
                ("namespace", pod.namespace.as_str()),
                ("pod", pod.pod.as_str()),
            ];
            if let Some(r) = &p.engines {
                fams[0].push(crate::metrics::gauge(&base, f64::from(r.discovered)));
                fams[1].push(crate::metrics::gauge(&base, f64::from(r.up)));
            }
            if let Some(v) = &p.version {
                fams[2].push(crate::metrics::gauge(
                    &[base[0], base[1], ("version", v.as_str())],
                    1.0,
                ));
            }
        }
        FAMILIES
            .iter()
            .zip(fams)
            .filter(|(_, m)| !m.is_empty())
            .map(|((n, help, _), metrics)| {
                let mut f = MetricFamily::default();
                f.set_name(format!("{}{n}", crate::metrics::PREFIX));
                f.set_help(help.to_string());
                f.set_field_type(MetricType::GAUGE);
                f.set_metric(metrics);
                f
            })
            .collect()
    }
}
