//! A gathered Prometheus registry as one OTLP export request: the same
//! names, units and values as a scrape (counters keep their `_total`
//! suffix), cumulative temporality.

use std::time::{SystemTime, UNIX_EPOCH};

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::{
    metric, number_data_point, summary_data_point, AggregationTemporality, Gauge, Histogram,
    HistogramDataPoint, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum, Summary,
    SummaryDataPoint,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prometheus::proto::{self as prom, MetricFamily, MetricType};

use super::resource::ResourceInfo;
use super::SERVICE_NAME;

/// The resource's attributes; `OTEL_RESOURCE_ATTRIBUTES` win on the same key.
fn resource_attributes(r: &ResourceInfo) -> Vec<KeyValue> {
    let mut attrs: Vec<(String, String)> = vec![
        ("service.name".into(), r.service_name.clone()),
        ("service.version".into(), r.service_version.clone()),
    ];
    if let Some(id) = &r.instance_id {
        attrs.push(("service.instance.id".into(), id.clone()));
    }
    if let Some(node) = &r.node_name {
        attrs.push(("k8s.node.name".into(), node.clone()));
    }
    for (k, v) in &r.extra {
        match attrs.iter_mut().find(|(key, _)| key == k) {
            Some(slot) => slot.1 = v.clone(),
            None => attrs.push((k.clone(), v.clone())),
        }
    }
    attrs.iter().map(|(k, v)| string_kv(k, v)).collect()
}

fn string_kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.to_string())),
        }),
        ..Default::default()
    }
}

/// The OTLP attribute key of a Prometheus label: Kubernetes labels follow the
/// semantic conventions, everything else keeps its name.
fn attribute_key(label: &str) -> &str {
    match label {
        "namespace" => "k8s.namespace.name",
        "pod" => "k8s.pod.name",
        other => other,
    }
}

fn attributes(m: &prom::Metric) -> Vec<KeyValue> {
    m.get_label()
        .iter()
        .map(|l| string_kv(attribute_key(l.name()), l.value()))
        .collect()
}

/// The OTLP unit from the Prometheus name's unit suffix (ignoring `_total`).
fn unit_for(name: &str) -> &'static str {
    let base = name.strip_suffix("_total").unwrap_or(name);
    if base.ends_with("_seconds") {
        "s"
    } else if base.ends_with("_bytes") {
        "By"
    } else {
        "1"
    }
}

/// Converts a gathered registry into one OTLP export request: one resource,
/// one scope, one OTLP metric per non-empty family, cumulative temporality.
///
/// `start_time_unix_nano` is when the cumulative series started (the agent's
/// start); `now_unix_nano` stamps every point that carries no timestamp.
pub fn to_request(
    families: &[MetricFamily],
    resource: &ResourceInfo,
    start_time_unix_nano: u64,
    now_unix_nano: u64,
) -> ExportMetricsServiceRequest {
    let metrics = families
        .iter()
        .filter_map(|f| convert_family(f, start_time_unix_nano, now_unix_nano))
        .collect();
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(Resource {
                attributes: resource_attributes(resource),
                ..Default::default()
            }),
            scope_metrics: vec![ScopeMetrics {
                scope: Some(InstrumentationScope {
                    // The scope is the instrumenting code, whatever the service is called.
                    name: SERVICE_NAME.to_string(),
                    version: resource.service_version.clone(),
                    ..Default::default()
                }),
                metrics,
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    }
}

/// One family as an OTLP metric; `None` when it has no series.
fn convert_family(f: &MetricFamily, start: u64, now: u64) -> Option<Metric> {
    let series = f.get_metric();
    if series.is_empty() {
        return None;
    }
    let time = |m: &prom::Metric| match u64::try_from(m.timestamp_ms()) {
        Ok(ms) if ms > 0 => ms.saturating_mul(1_000_000),
        _ => now,
    };
    let number = |m: &prom::Metric, start: u64, v: f64| NumberDataPoint {
        attributes: attributes(m),
        start_time_unix_nano: start,
        time_unix_nano: time(m),
        value: Some(number_data_point::Value::AsDouble(v)),
        ..Default::default()
    };
    let cumulative = AggregationTemporality::Cumulative as i32;
    let data = match f.get_field_type() {
        MetricType::COUNTER => metric::Data::Sum(Sum {
            data_points: series
                .iter()
                .map(|m| number(m, start, m.get_counter().get_value()))
                .collect(),
            aggregation_temporality: cumulative,
            is_monotonic: true,
        }),
        MetricType::GAUGE => metric::Data::Gauge(Gauge {
            data_points: series
                .iter()
                .map(|m| number(m, 0, m.get_gauge().get_value()))
                .collect(),
        }),
        // The prometheus crate has no untyped metric (its text encoder refuses
        // them), so no family of ours is untyped: nothing to convert.
        MetricType::UNTYPED => return None,
        MetricType::HISTOGRAM => metric::Data::Histogram(Histogram {
            data_points: series
                .iter()
                .map(|m| {
                    let h = m.get_histogram();
                    let (explicit_bounds, bucket_counts, count) = histogram_buckets(h);
                    HistogramDataPoint {
                        attributes: attributes(m),
                        start_time_unix_nano: start,
                        time_unix_nano: time(m),
                        count,
                        sum: Some(h.get_sample_sum()),
                        bucket_counts,
                        explicit_bounds,
                        ..Default::default()
                    }
                })
                .collect(),
            aggregation_temporality: cumulative,
        }),
        MetricType::SUMMARY => metric::Data::Summary(Summary {
            data_points: series
                .iter()
                .map(|m| {
                    let s = m.get_summary();
                    SummaryDataPoint {
                        attributes: attributes(m),
                        start_time_unix_nano: start,
                        time_unix_nano: time(m),
                        count: s.sample_count(),
                        sum: s.sample_sum(),
                        quantile_values: s
                            .get_quantile()
                            .iter()
                            .map(|q| summary_data_point::ValueAtQuantile {
                                quantile: q.quantile(),
                                value: q.value(),
                            })
                            .collect(),
                        ..Default::default()
                    }
                })
                .collect(),
        }),
    };
    Some(Metric {
        name: f.name().to_string(),
        description: f.help().to_string(),
        unit: unit_for(f.name()).to_string(),
        data: Some(data),
        ..Default::default()
    })
}

/// Prometheus cumulative buckets → OTLP `(explicit_bounds, bucket_counts, count)`.
///
/// OTLP counts each bucket on its own and has one more bucket than bounds
/// (the overflow above the last bound), so `+Inf` is not a bound. Malformed
/// input (bounds not increasing, NaN, counts going down) never panics: such
/// buckets are merged into the next one, and `count` is raised if needed so
/// that the bucket counts always add up to it.
fn histogram_buckets(h: &prom::Histogram) -> (Vec<f64>, Vec<u64>, u64) {
    let mut bounds = Vec::new();
    let mut counts = Vec::new();
    let mut below = 0u64;
    for b in h.get_bucket() {
        let ub = b.upper_bound();
        if !ub.is_finite() || bounds.last().is_some_and(|last| ub <= *last) {
            continue;
        }
        let cumulative = b.cumulative_count().max(below);
        bounds.push(ub);
        counts.push(cumulative - below);
        below = cumulative;
    }
    let count = h.get_sample_count().max(below);
    counts.push(count - below);
    (bounds, counts, count)
}

/// Nanoseconds since the Unix epoch (0 if the clock is before 1970).
pub fn unix_nanos_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {

    use opentelemetry_proto::tonic::metrics::v1::{metric, AggregationTemporality};
    use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry};
    use prost::Message;

    use super::super::test_util::{find, number, resource, str_attr};
    use super::*;
    use crate::metrics::Metrics;

    #[test]
    fn counters_become_monotonic_cumulative_sums_with_k8s_attributes() {
        let r = Registry::new();
        let c = IntCounterVec::new(
            Opts::new(
                "litellm_sentinel_db_connect_errors_total",
                "DB calls that failed.",
            ),
            &["namespace", "pod", "operation"],
        )
        .unwrap();
        r.register(Box::new(c.clone())).unwrap();
        // Label values as messy as real pods get: unicode, quotes, empty.
        c.with_label_values(&["llm", "litellm-7d9f\u{e9}\"x", "spend_logs_queue"])
            .inc_by(3);
        c.with_label_values(&["", "p", "budget"]).inc();
        let req = to_request(&r.gather(), &resource(), 1_000, 5_000);
        let m = find(&req, "litellm_sentinel_db_connect_errors_total");
        assert_eq!(m.unit, "1");
        assert_eq!(m.description, "DB calls that failed.");
        let Some(metric::Data::Sum(sum)) = &m.data else {
            panic!("not a sum: {m:?}")
        };
        assert!(sum.is_monotonic);
        assert_eq!(
            sum.aggregation_temporality,
            AggregationTemporality::Cumulative as i32
        );
        assert_eq!(sum.data_points.len(), 2);
        let p = sum
            .data_points
            .iter()
            .find(|p| str_attr(&p.attributes, "operation").as_deref() == Some("spend_logs_queue"))
            .unwrap();
        assert_eq!(number(p), 3.0);
        assert_eq!((p.start_time_unix_nano, p.time_unix_nano), (1_000, 5_000));
        assert_eq!(
            str_attr(&p.attributes, "k8s.namespace.name").as_deref(),
            Some("llm")
        );
        assert_eq!(
            str_attr(&p.attributes, "k8s.pod.name").as_deref(),
            Some("litellm-7d9f\u{e9}\"x")
        );
        assert!(str_attr(&p.attributes, "namespace").is_none());
        assert!(str_attr(&p.attributes, "pod").is_none());
    }

    #[test]
    fn gauges_keep_name_and_get_units_from_the_suffix() {
        let r = Registry::new();
        let lag = IntGauge::new("litellm_sentinel_tail_lag_bytes", "Lag.").unwrap();
        lag.set(4096);
        r.register(Box::new(lag)).unwrap();
        let req = to_request(&r.gather(), &resource(), 1, 2);
        let m = find(&req, "litellm_sentinel_tail_lag_bytes");
        assert_eq!(m.unit, "By");
        let Some(metric::Data::Gauge(g)) = &m.data else {
            panic!("not a gauge")
        };
        assert_eq!(number(&g.data_points[0]), 4096.0);
        assert!(g.data_points[0].attributes.is_empty());
        assert_eq!(unit_for("litellm_sentinel_in_startup_gap_seconds"), "s");
        assert_eq!(unit_for("litellm_sentinel_x_seconds_total"), "s");
        assert_eq!(unit_for("litellm_sentinel_bytes_read_total"), "1");
        assert_eq!(unit_for("litellm_sentinel_pods_tracked"), "1");
    }

    #[test]
    fn histograms_get_per_bucket_counts_without_inf() {
        let r = Registry::new();
        let h = HistogramVec::new(
            HistogramOpts::new("litellm_sentinel_probe_duration_seconds", "Probe time.")
                .buckets(vec![0.01, 0.1, 1.0]),
            &["target"],
        )
        .unwrap();
        r.register(Box::new(h.clone())).unwrap();
        for v in [0.005, 0.05, 0.05, 0.5, 7.0] {
            h.with_label_values(&["engine"]).observe(v);
        }
        let req = to_request(&r.gather(), &resource(), 10, 20);
        let m = find(&req, "litellm_sentinel_probe_duration_seconds");
        assert_eq!(m.unit, "s");
        let Some(metric::Data::Histogram(hist)) = &m.data else {
            panic!("not a histogram")
        };
        assert_eq!(
            hist.aggregation_temporality,
            AggregationTemporality::Cumulative as i32
        );
        let p = &hist.data_points[0];
        assert_eq!(p.explicit_bounds, vec![0.01, 0.1, 1.0]);
        assert_eq!(p.bucket_counts, vec![1, 2, 1, 1]);
        assert_eq!(p.count, 5);
        assert!((p.sum.unwrap() - 7.605).abs() < 1e-9);
        assert_eq!(str_attr(&p.attributes, "target").as_deref(), Some("engine"));
    }

    fn prom_hist(buckets: &[(f64, u64)], count: u64) -> prom::Histogram {
        let mut h = prom::Histogram::default();
        h.set_sample_count(count);
        h.set_sample_sum(1.0);
        h.set_bucket(
            buckets
                .iter()
                .map(|(ub, c)| {
                    let mut b = prom::Bucket::default();
                    b.set_upper_bound(*ub);
                    b.set_cumulative_count(*c);
                    b
                })
                .collect(),
        );
        h
    }

    #[test]
    fn explicit_inf_bucket_and_malformed_buckets_never_break_the_invariant() {
        // An explicit +Inf bucket (other exporters write one) is the overflow bucket.
        let (b, c, n) = histogram_buckets(&prom_hist(&[(1.0, 2), (5.0, 3), (f64::INFINITY, 4)], 4));
        assert_eq!((b, c, n), (vec![1.0, 5.0], vec![2, 1, 1], 4));
        // Garbage: NaN bound, bounds going down, counts going down, count too small.
        let (b, c, n) = histogram_buckets(&prom_hist(
            &[(1.0, 5), (f64::NAN, 9), (0.5, 6), (2.0, 3), (3.0, 8)],
            2,
        ));
        assert_eq!(b, vec![1.0, 2.0, 3.0]);
        assert_eq!(c.len(), b.len() + 1);
        assert_eq!(c.iter().sum::<u64>(), n);
        assert_eq!(n, 8);
        // No buckets at all.
        assert_eq!(histogram_buckets(&prom_hist(&[], 7)), (vec![], vec![7], 7));
    }

    #[test]
    fn the_real_registry_converts_with_the_same_names() {
        let tracker =
            crate::timeline::SharedTracker::new(crate::timeline::Tracker::new(Default::default()));
        let metrics = Metrics::new(tracker).unwrap();
        metrics.agent.otlp_export_failures.inc();
        let families = metrics.gather();
        let req = to_request(&families, &resource(), 1, 2);
        let names: Vec<&str> = req.resource_metrics[0].scope_metrics[0]
            .metrics
            .iter()
            .map(|m| m.name.as_str())
            .collect();
        for f in &families {
            if !f.get_metric().is_empty() {
                assert!(names.contains(&f.name()), "{} missing", f.name());
            }
        }
        let m = find(&req, "litellm_sentinel_otlp_export_failures_total");
        let Some(metric::Data::Sum(s)) = &m.data else {
            panic!("not a sum")
        };
        assert_eq!(number(&s.data_points[0]), 1.0);
        // Round trip through the wire format.
        let decoded = ExportMetricsServiceRequest::decode(&req.encode_to_vec()[..]).unwrap();
        assert_eq!(decoded, req);
    }
}
