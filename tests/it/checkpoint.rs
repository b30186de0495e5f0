//! Upgrading the agent keeps its counters: a state file written by the
//! previous release (checkpoint v1, real files under
//! tests/fixtures/state/) is read by the built agent, every pod counter and
//! probe state of it is in `/metrics` at once, and the agent writes it back
//! as v2, which the next start reads the same.

use std::time::Duration;

use litellm_sentinel::model::Operation;

use crate::support::{self, wait_until, AgentProc, LogTree};

/// The metric contract (DESIGN.md) for each counter name of the v1 file,
/// written out here, independently of the code under test.
type Label = Option<(&'static str, &'static str)>;

/// A series and its value: (metric name, labels, value).
type Sample = (String, Vec<(String, String)>, f64);

const SERIES: [(&str, &str, Label); 13] = [
    ("spend_batches_dropped", "spend_batches_dropped_total", None),
    ("spend_rows_requeued", "spend_rows_requeued_total", None),
    ("spend_rows_lost", "spend_rows_lost_total", None),
    ("budget_cache_misses", "budget_cache_misses_total", None),
    (
        "deployment_load_failures",
        "config_load_failures_total",
        Some(("kind", "deployments")),
    ),
    (
        "credential_load_failures",
        "config_load_failures_total",
        Some(("kind", "credentials")),
    ),
    (
        "engine_distro_fallbacks",
        "engine_distro_fallback_total",
        None,
    ),
    ("proxy_starts", "proxy_starts_total", None),
    ("requests_during_gap", "requests_during_gap_total", None),
    ("spend_updates_failed", "spend_updates_failed_total", None),
    ("engine_restarts", "engine_restarts_total", None),
    ("db_outages", "db_outages_total", None),
    (
        "requests_during_outage",
        "requests_during_outage_total",
        None,
    ),
];

/// `(labels, value)` of every pod series the v1 file holds, read from the
/// file itself (not through the code under test).
fn expected(raw: &serde_json::Value) -> Vec<Sample> {
    let mut out = Vec::new();
    for entry in raw["tracker"]["pods"].as_array().expect("pods") {
        let (pod, p) = (&entry[0], &entry[1]);
        let base = vec![
            (
                "namespace".to_string(),
                pod["namespace"].as_str().unwrap().to_string(),
            ),
            ("pod".to_string(), pod["pod"].as_str().unwrap().to_string()),
        ];
        let counts = p["counts"].as_object().expect("counts");
        for (name, v) in counts {
            if name == "db_connect_errors" {
                continue;
            }
            let (_, family, label) = SERIES
                .iter()
                .find(|s| s.0 == name)
                .unwrap_or_else(|| panic!("a counter the test does not know: {name}"));
            let mut labels = base.clone();
            if let Some((k, val)) = label {
                labels.push((k.to_string(), val.to_string()));
            }
            let v = v.as_u64().expect("a number") as f64;
            out.push((format!("litellm_sentinel_{family}"), labels, v));
        }
        let ops = counts["db_connect_errors"]
            .as_object()
            .expect("ops by name");
        for op in Operation::ALL {
            let v = ops.get(op.as_str()).and_then(|v| v.as_u64()).unwrap_or(0) as f64;
            let mut labels = base.clone();
            labels.push(("operation".into(), op.as_str().into()));
            out.push(("litellm_sentinel_db_connect_errors_total".into(), labels, v));
        }
        const TARGETS: [&str; 3] = ["engine", "proxy_readiness", "database"];
        for (t, up) in TARGETS
            .iter()
            .zip(p["probe_up"].as_array().expect("v1 array"))
        {
            if let Some(up) = up.as_bool() {
                let mut labels = base.clone();
                labels.push(("target".into(), t.to_string()));
                out.push((
                    "litellm_sentinel_engine_up".into(),
                    labels,
                    if up { 1.0 } else { 0.0 },
                ));
            }
        }
    }
    for h in raw["tracker"]["histograms"].as_array().expect("histograms") {
        let labels = vec![
            ("namespace".to_string(), h[0].as_str().unwrap().to_string()),
            ("method".to_string(), h[1].as_str().unwrap().to_string()),
        ];
        out.push((
            "litellm_sentinel_startup_gap_seconds_count".into(),
            labels.clone(),
            h[2]["count"].as_f64().unwrap(),
        ));
        out.push((
            "litellm_sentinel_startup_gap_seconds_sum".into(),
            labels,
            h[2]["sum"].as_f64().unwrap(),
        ));
    }
    out
}

fn assert_served(agent: &AgentProc, want: &[Sample], what: &str) {
    let body = agent.metrics();
    for (name, labels, v) in want {
        let l: Vec<(&str, &str)> = labels
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let got = support::metric(&body, name, &l);
        assert_eq!(got, Some(*v), "{what}: {name}{labels:?}");
    }
}

#[test]
fn a_v1_state_file_of_the_previous_release_keeps_every_counter() {
    for fixture in ["v1-node-b4f2cea.json", "v1-sidecar-b4f2cea.json"] {
        let bytes = std::fs::read(format!(
            "{}/tests/fixtures/state/{fixture}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .expect("fixture");
        let raw: serde_json::Value = serde_json::from_slice(&bytes).expect("json");
        assert_eq!(raw["version"], 1);
        let want = expected(&raw);
        assert!(
            want.iter().any(|w| w.2 > 0.0),
            "{fixture}: nothing to check"
        );

        let tree = LogTree::new();
        std::fs::create_dir_all(tree.pods()).expect("pods dir");
        let state = tree.state_file();
        std::fs::create_dir_all(state.parent().expect("state dir")).expect("state dir");
        std::fs::write(&state, &bytes).expect("state file");
        let port = support::free_port();
        let cfg = tree.config(port, "");
        let agent = AgentProc::start(&cfg, port);
        assert_served(&agent, &want, fixture);

        // Written back as v2 (by name), and read the same by the next start.
        wait_until("a v2 checkpoint", Duration::from_secs(10), || {
            std::fs::read(&state)
                .ok()
                .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
                .is_some_and(|v| v["version"] == 2)
        });
        let st = agent.sigterm();
        assert!(st.success(), "{fixture}: exit after SIGTERM: {st:?}");
        let v2: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&state).expect("v2 file")).expect("json");
        for pod in v2["tracker"]["pods"].as_array().expect("pods") {
            assert!(
                pod[1]["probe_up"].is_object(),
                "{fixture}: {}",
                pod[1]["probe_up"]
            );
        }
        use std::os::unix::fs::MetadataExt;
        let ino = std::fs::metadata(&state).expect("state file").ino();
        let agent = AgentProc::start(&cfg, port);
        assert_served(&agent, &want, &format!("{fixture}, after the v2 restart"));
        // Its first checkpoint replaces the file (a new inode): the agent is
        // past its start-up (main.rs installs its SIGTERM handler only after
        // the server answers: a SIGTERM before that kills it).
        wait_until(
            "the restarted agent's first checkpoint",
            Duration::from_secs(10),
            || std::fs::metadata(&state).is_ok_and(|m| m.ino() != ino),
        );
        let st = agent.sigterm();
        assert!(st.success(), "{fixture}: exit after SIGTERM: {st:?}");
    }
}
