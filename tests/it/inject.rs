//! `litellm-sentinel inject` as a user runs it (stdin → stdout), on a stream
//! shaped like `helm template` of the BerriAI litellm-helm chart
//! (tests/fixtures/inject/litellm-helm.yaml: ServiceAccount, Secret,
//! ConfigMap, Service, the Deployment, the migrations Job running the same
//! LiteLLM image, the helm-test Pod). The output's schema is checked with
//! kubernetes-validate by scripts/validate-inject.sh (`make test`).

use std::io::Write;
use std::process::{Command, Stdio};

const FIXTURE: &str = include_str!("../fixtures/inject/litellm-helm.yaml");

fn inject(input: &str, args: &[&str]) -> (String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_litellm-sentinel"))
        .arg("inject")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut stdin = child.stdin.take().expect("stdin");
    let text = input.to_string();
    let writer = std::thread::spawn(move || stdin.write_all(text.as_bytes()));
    let out = child.wait_with_output().expect("wait");
    writer.join().expect("writer").expect("write stdin");
    assert!(
        out.status.success(),
        "inject failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        String::from_utf8(out.stdout).expect("utf-8 stdout"),
        String::from_utf8(out.stderr).expect("utf-8 stderr"),
    )
}

/// The documents of a stream, split at `---` lines (each keeps its marker).
fn docs(stream: &str) -> Vec<String> {
    let mut v: Vec<String> = Vec::new();
    for line in stream.split_inclusive('\n') {
        if line.trim_end() == "---" || v.is_empty() {
            v.push(String::new());
        }
        v.last_mut().expect("a document").push_str(line);
    }
    v
}

#[test]
fn chart_stream_gets_the_sidecar_and_nothing_else_changes() {
    let (out, err) = inject(FIXTURE, &[]);
    assert!(err.contains("Deployment litellm: sidecar added"), "{err}");
    let (before, after) = (docs(FIXTURE), docs(&out));
    assert_eq!(before.len(), 7);
    assert_eq!(after.len(), 7);
    for (i, (b, a)) in before.iter().zip(&after).enumerate() {
        if b.contains("kind: Deployment") {
            assert_ne!(b, a);
            assert!(
                a.starts_with("---\n# Source: litellm-helm/templates/deployment.yaml\n"),
                "{a}"
            );
        } else {
            // Service, Secret, the migrations Job (same LiteLLM image, but a Job), the test Pod…
            assert_eq!(b, a, "document {i} changed");
        }
    }
    let deploy = after
        .iter()
        .find(|d| d.contains("kind: Deployment"))
        .expect("deployment");
    for want in [
        "shareProcessNamespace: true",
        "name: litellm-sentinel",
        "image: ghcr.io/litellm-sentinel/litellm-sentinel:0.1.0",
        "path: /gate",
        "port: 9465",
        "fieldPath: metadata.name",
        "fieldPath: metadata.namespace",
        "http://127.0.0.1:4000",
        // The chart's values survive the round trip as strings.
        "value: \"4000\"",
        "- \"2\"",
        "value: \"true\"",
        "path: /health/liveliness",
    ] {
        assert!(deploy.contains(want), "missing {want:?} in:\n{deploy}");
    }
    // readinessProbe now on /gate; the chart's startupProbe stays on /health/readiness.
    let readiness = deploy
        .split("readinessProbe:")
        .nth(1)
        .expect("readinessProbe");
    assert!(readiness.trim_start().starts_with("httpGet:\n") && readiness.contains("path: /gate"));
    let startup = deploy.split("startupProbe:").nth(1).expect("startupProbe");
    assert!(startup
        .split("path:")
        .nth(1)
        .is_some_and(|p| p.trim_start().starts_with("/health/readiness")));

    // Idempotent: a second pass changes nothing and says so.
    let (again, err2) = inject(&out, &[]);
    assert_eq!(again, out);
    assert!(err2.contains("already has the sidecar"), "{err2}");
}

#[test]
fn startup_probe_mode_and_custom_matching() {
    let (out, _) = inject(
        FIXTURE,
        &["--probe", "startup", "--gate", "follow", "--port", "9555"],
    );
    let deploy = docs(&out)
        .into_iter()
        .find(|d| d.contains("kind: Deployment"))
        .expect("deployment");
    let startup = deploy.split("startupProbe:").nth(1).expect("startupProbe");
    assert!(
        startup.contains("path: /gate") && startup.contains("port: 9555"),
        "{deploy}"
    );
    assert!(startup.contains("failureThreshold: 120"));
    let readiness = deploy
        .split("readinessProbe:")
        .nth(1)
        .expect("readinessProbe");
    assert!(readiness
        .split("path:")
        .nth(1)
        .is_some_and(|p| p.trim_start().starts_with("/health/readiness")));
    assert!(deploy.contains("- follow"), "{deploy}");

    // Nothing matches: the stream comes back byte-identical, with a note on stderr.
    let (none, err) = inject(
        FIXTURE,
        &[
            "--container-name",
            "gateway",
            "--image-match",
            "my-llm-proxy",
        ],
    );
    assert_eq!(none, FIXTURE);
    assert!(err.contains("nothing changed"), "{err}");
}

#[test]
fn kubectl_get_output_in_a_pipe() {
    // `kubectl get deploy litellm -o yaml`: one document, no marker, server fields.
    let one = FIXTURE
        .split("---\n")
        .find(|d| d.contains("kind: Deployment"))
        .expect("deployment")
        .replace("# Source: litellm-helm/templates/deployment.yaml\n", "")
        .replace(
            "spec:\n  replicas: 3",
            "spec:\n  progressDeadlineSeconds: 600\n  replicas: 3",
        )
        + "status:\n  availableReplicas: 3\n";
    let (out, err) = inject(&one, &[]);
    assert!(err.contains("sidecar added"), "{err}");
    assert!(out.contains("shareProcessNamespace: true") && out.contains("availableReplicas: 3"));
    // Bad YAML is an error naming the document, and nothing on stdout.
    let status = Command::new(env!("CARGO_BIN_EXE_litellm-sentinel"))
        .arg("inject")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            c.stdin
                .take()
                .expect("stdin")
                .write_all(b"a: 1\n---\nkind: Deployment\n  bad: [x\n")?;
            c.wait_with_output()
        })
        .expect("run");
    assert!(!status.status.success());
    assert!(status.stdout.is_empty());
    assert!(
        String::from_utf8_lossy(&status.stderr).contains("document 2"),
        "{:?}",
        status
    );
}
