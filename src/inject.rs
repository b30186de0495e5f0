//! `litellm-sentinel inject`: adds the sidecar to LiteLLM workloads in a
//! stream of Kubernetes manifests, like `linkerd inject`.
//!
//! Input: a multi-document YAML stream (stdin). Output: the same stream with
//! every Deployment/StatefulSet (also inside a `kind: List`) whose pod runs
//! LiteLLM changed to run the sidecar: the `litellm-sentinel` container
//! (`run --role sidecar`, Downward API `POD_NAME`/`POD_NAMESPACE`, resources,
//! a locked-down securityContext), `shareProcessNamespace: true` (the sidecar
//! finds the engines in `/proc`), and a readinessProbe (or, `--probe
//! startup`, a startupProbe) of the LiteLLM container on the sidecar's `/gate`.
//!
//! Why it exists: the LiteLLM Helm chart (BerriAI `deploy/charts/litellm-helm`)
//! has `extraContainers`, but its probes are fixed to `/health/*` and it has no
//! `shareProcessNamespace`, so values alone cannot add the gate. Use it as a
//! Helm post-renderer or in a pipe:
//!
//! ```text
//! helm install litellm oci://… --post-renderer litellm-sentinel --post-renderer-args inject
//! kubectl get deploy litellm -o yaml | litellm-sentinel inject | kubectl apply -f -
//! ```
//!
//! Every document that is not changed is written back **byte for byte** (the
//! stream is split on `---` document markers here, not re-serialised), and a
//! workload that already has the sidecar is left as it is, so injecting twice
//! changes nothing. A changed document keeps its leading comments (Helm's
//! `# Source:` line); its body is re-emitted as YAML with the key order kept.

use std::fmt;

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{SerializeMap, SerializeSeq, Serializer};
use serde::{Deserialize, Serialize};

/// Which probe of the LiteLLM container points at `/gate`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ProbeKind {
    /// readinessProbe: no traffic until the engines answer (and, with `--gate
    /// startup`, for the rest of the process's life the gate stays open).
    Readiness,
    /// startupProbe: the kubelet waits for `/gate` once per container start;
    /// the chart's readinessProbe on `/health/readiness` stays as it is.
    Startup,
}

/// Options of `litellm-sentinel inject`.
#[derive(Clone, Debug, clap::Args)]
pub struct InjectOptions {
    /// Sidecar image.
    #[arg(long, default_value = DEFAULT_IMAGE)]
    pub image: String,
    /// Name of the sidecar container (a pod that has it is left alone).
    #[arg(long, default_value = "litellm-sentinel")]
    pub sidecar_name: String,
    /// A container with this name runs LiteLLM.
    #[arg(long, default_value = "litellm")]
    pub container_name: String,
    /// A container whose image (without registry path) starts with this runs
    /// LiteLLM, e.g. `litellm` matches `ghcr.io/berriai/litellm-database:main-v1.83.14`.
    #[arg(long, default_value = "litellm")]
    pub image_match: String,
    /// Which probe of the LiteLLM container to point at /gate.
    #[arg(long, value_enum, default_value = "readiness")]
    pub probe: ProbeKind,
    /// Port the sidecar listens on (/gate, /metrics).
    #[arg(long, default_value_t = 9465)]
    pub port: u16,
    /// /gate mode passed to the sidecar (startup or follow).
    #[arg(long, value_enum, default_value = "startup")]
    pub gate: crate::gate::GateMode,
}

/// The sidecar image of this release (the tag follows the crate version).
pub(crate) const DEFAULT_IMAGE: &str = concat!(
    "ghcr.io/litellm-sentinel/litellm-sentinel:",
    env!("CARGO_PKG_VERSION")
);

impl Default for InjectOptions {
    fn default() -> Self {
        InjectOptions {
            image: DEFAULT_IMAGE.into(),
            sidecar_name: "litellm-sentinel".into(),
            container_name: "litellm".into(),
            image_match: "litellm".into(),
            probe: ProbeKind::Readiness,
            port: 9465,
            gate: crate::gate::GateMode::Startup,
        }
    }
}

/// Why a stream could not be injected.
#[derive(Debug, thiserror::Error)]
pub enum InjectError {
    /// A document is not valid YAML.
    #[error("document {index} (line {line}) is not valid YAML: {message}")]
    Parse {
        /// 1-based document number in the stream.
        index: usize,
        /// 1-based line where the document starts.
        line: usize,
        message: String,
    },
    /// A changed document could not be written back.
    #[error("document {index}: cannot write the injected manifest: {message}")]
    Emit { index: usize, message: String },
}

/// What [`inject`] did: the output stream and the workloads it changed.
#[derive(Debug)]
pub struct Injected {
    /// The whole output stream.
    pub output: String,
    /// `Kind namespace/name` of every workload changed.
    pub changed: Vec<String>,
    /// Workloads that already had the sidecar (left untouched).
    pub already: Vec<String>,
}

/// Injects the sidecar into every LiteLLM workload of `input`.
pub fn inject(input: &str, opts: &InjectOptions) -> Result<Injected, InjectError> {
    let mut out = String::with_capacity(input.len() + 2048);
    let mut changed = Vec::new();
    let mut already = Vec::new();
    for (i, doc) in split_documents(input).into_iter().enumerate() {
        let index = i + 1;
        let parsed: Option<Yaml> = if doc.body().trim().is_empty() || only_comments(doc.body()) {
            None
        } else {
            Some(
                serde_saphyr::from_str(doc.text).map_err(|e| InjectError::Parse {
                    index,
                    line: doc.line,
                    message: e.to_string().lines().next().unwrap_or("").to_string(),
                })?,
            )
        };
        let Some(mut value) = parsed else {
            out.push_str(doc.text);
            continue;
        };
        let mut names = Vec::new();
        let mut had = Vec::new();
        visit_workloads(&mut value, &mut |w| match inject_workload(w, opts) {
            Outcome::Injected(n) => names.push(n),
            Outcome::AlreadyInjected(n) => had.push(n),
            Outcome::NotLiteLLM => {}
        });
        already.extend(had);
        if names.is_empty() {
            out.push_str(doc.text);
            continue;
        }
        let yaml = serde_saphyr::to_string_with_options(&value, emit_options()).map_err(|e| {
            InjectError::Emit {
                index,
                message: e.to_string(),
            }
        })?;
        out.push_str(doc.header());
        out.push_str(&yaml);
        if !yaml.ends_with('\n') {
            out.push('\n');
        }
        changed.extend(names);
    }
    Ok(Injected {
        output: out,
        changed,
        already,
    })
}

/// Block style with sequences indented under their key, as Helm charts and
/// most hand-written manifests are, so a changed document reads like the input.
fn emit_options() -> serde_saphyr::SerializerOptions {
    let mut o = serde_saphyr::SerializerOptions::default();
    o.compact_list_indent = false;
    // Long one-line values (URLs, images) stay on one line instead of `>-`.
    o.folded_wrap_chars = 4096;
    o
}

/// One document of the stream: its exact text (including its `---` line).
struct Document<'a> {
    text: &'a str,
    /// 1-based line of its first line.
    line: usize,
}

impl<'a> Document<'a> {
    /// The `---` line (if any) and the comment/blank lines before the content:
    /// kept as they are when the body is re-emitted.
    fn header(&self) -> &'a str {
        let mut end = 0;
        for (n, line) in self.text.split_inclusive('\n').enumerate() {
            let t = line.trim();
            let marker = n == 0 && is_marker(line);
            if marker && t != "---" && !t.starts_with("--- #") {
                break; // `--- {inline}`: content on the marker line
            }
            if marker || t.is_empty() || t.starts_with('#') {
                end += line.len();
            } else {
                break;
            }
        }
        &self.text[..end]
    }

    fn body(&self) -> &'a str {
        let h = self.header();
        &self.text[h.len()..]
    }
}

/// `---` at the start of a line, alone or followed by whitespace.
fn is_marker(line: &str) -> bool {
    line.strip_prefix("---")
        .is_some_and(|rest| rest.is_empty() || rest.starts_with([' ', '\t', '\r', '\n']))
}

fn only_comments(text: &str) -> bool {
    text.lines().all(|l| {
        let t = l.trim();
        t.is_empty() || t.starts_with('#') || t == "..."
    })
}

/// Splits a stream at `---` marker lines; each marker starts a new document.
/// Concatenating the pieces gives the input back exactly.
fn split_documents(input: &str) -> Vec<Document<'_>> {
    let mut docs = Vec::new();
    let (mut start, mut start_line, mut pos) = (0, 1, 0);
    for (n, line) in input.split_inclusive('\n').enumerate() {
        if is_marker(line) && pos > start {
            docs.push(Document {
                text: &input[start..pos],
                line: start_line,
            });
            start = pos;
            start_line = n + 1;
        }
        pos += line.len();
    }
    if pos > start || docs.is_empty() {
        docs.push(Document {
            text: &input[start..],
            line: start_line,
        });
    }
    docs
}

enum Outcome {
    Injected(String),
    AlreadyInjected(String),
    NotLiteLLM,
}

/// Calls `f` on every Deployment/StatefulSet in `v` (the document, or the
/// items of a `kind: List`).
fn visit_workloads(v: &mut Yaml, f: &mut dyn FnMut(&mut Yaml)) {
    let kind = v.get("kind").and_then(Yaml::as_str).unwrap_or("");
    match kind {
        "Deployment" | "StatefulSet" => f(v),
        k if k == "List" || k.ends_with("List") => {
            if let Some(Yaml::Seq(items)) = v.get_mut("items") {
                for item in items {
                    visit_workloads(item, f);
                }
            }
        }
        _ => {}
    }
}

fn workload_name(w: &Yaml) -> String {
    let kind = w.get("kind").and_then(Yaml::as_str).unwrap_or("?");
    let meta = w.get("metadata");
    let name = meta
        .and_then(|m| m.get("name"))
        .and_then(Yaml::as_str)
        .unwrap_or("?");
    match meta.and_then(|m| m.get("namespace")).and_then(Yaml::as_str) {
        Some(ns) => format!("{kind} {ns}/{name}"),
        None => format!("{kind} {name}"),
    }
}

/// The image's name without registry path, tag or digest.
fn image_name(image: &str) -> &str {
    let last = image.rsplit('/').next().unwrap_or(image);
    let last = last.split('@').next().unwrap_or(last);
    last.split(':').next().unwrap_or(last)
}

fn runs_litellm(c: &Yaml, opts: &InjectOptions) -> bool {
    let name = c.get("name").and_then(Yaml::as_str).unwrap_or("");
    let image = c.get("image").and_then(Yaml::as_str).unwrap_or("");
    if name == opts.sidecar_name || image_name(image).starts_with("litellm-sentinel") {
        return false;
    }
    name == opts.container_name
        || (!opts.image_match.is_empty() && image_name(image).starts_with(&opts.image_match))
}

fn inject_workload(w: &mut Yaml, opts: &InjectOptions) -> Outcome {
    let name = workload_name(w);
    let Some(pod) = w
        .get_mut("spec")
        .and_then(|s| s.get_mut("template"))
        .and_then(|t| t.get_mut("spec"))
    else {
        return Outcome::NotLiteLLM;
    };
    let Some(Yaml::Seq(containers)) = pod.get("containers") else {
        return Outcome::NotLiteLLM;
    };
    if containers
        .iter()
        .any(|c| c.get("name").and_then(Yaml::as_str) == Some(opts.sidecar_name.as_str()))
    {
        return Outcome::AlreadyInjected(name);
    }
    let Some(target) = containers.iter().position(|c| runs_litellm(c, opts)) else {
        return Outcome::NotLiteLLM;
    };
    let proxy_port = proxy_port(&containers[target]);
    pod.set("shareProcessNamespace", Yaml::Bool(true));
    let Some(Yaml::Seq(containers)) = pod.get_mut("containers") else {
        return Outcome::NotLiteLLM;
    };
    let probe_key = match opts.probe {
        ProbeKind::Readiness => "readinessProbe",
        ProbeKind::Startup => "startupProbe",
    };
    containers[target].set(probe_key, gate_probe(opts));
    containers.push(sidecar_container(opts, proxy_port));
    // An emptyDir outlives a restart of the sidecar container: the open latch is kept there.
    let volume = map(vec![
        ("name", s(STATE_VOLUME)),
        ("emptyDir", map(vec![("sizeLimit", s("1Mi"))])),
    ]);
    match pod.get_mut("volumes") {
        Some(Yaml::Seq(v)) => v.push(volume),
        _ => pod.set("volumes", Yaml::Seq(vec![volume])),
    }
    Outcome::Injected(name)
}

/// LiteLLM's port: the container port named `http`, else the first, else 4000.
fn proxy_port(c: &Yaml) -> u64 {
    let Some(Yaml::Seq(ports)) = c.get("ports") else {
        return 4000;
    };
    let port = |p: &Yaml| p.get("containerPort").and_then(Yaml::as_u64);
    ports
        .iter()
        .find(|p| p.get("name").and_then(Yaml::as_str) == Some("http"))
        .and_then(port)
        .or_else(|| ports.iter().find_map(port))
        .unwrap_or(4000)
}

/// The sidecar's emptyDir (gate latch across sidecar restarts).
const STATE_VOLUME: &str = "litellm-sentinel-state";
const STATE_DIR: &str = "/run/litellm-sentinel";

fn s(v: &str) -> Yaml {
    Yaml::Str(v.to_string())
}

fn map(pairs: Vec<(&str, Yaml)>) -> Yaml {
    Yaml::Map(pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
}

fn gate_probe(opts: &InjectOptions) -> Yaml {
    let http_get = map(vec![
        ("path", s("/gate")),
        ("port", Yaml::Int(i64::from(opts.port))),
    ]);
    match opts.probe {
        // The sidecar's gate is a latch by default, so a short period costs
        // nothing once open and shortens the time to Ready.
        ProbeKind::Readiness => map(vec![
            ("httpGet", http_get),
            ("periodSeconds", Yaml::Int(5)),
            ("timeoutSeconds", Yaml::Int(3)),
            ("failureThreshold", Yaml::Int(2)),
        ]),
        // Up to 10 minutes for the engines of every worker to answer.
        ProbeKind::Startup => map(vec![
            ("httpGet", http_get),
            ("periodSeconds", Yaml::Int(5)),
            ("timeoutSeconds", Yaml::Int(3)),
            ("failureThreshold", Yaml::Int(120)),
        ]),
    }
}

fn field_env(name: &str, path: &str) -> Yaml {
    map(vec![
        ("name", s(name)),
        (
            "valueFrom",
            map(vec![("fieldRef", map(vec![("fieldPath", s(path))]))]),
        ),
    ])
}

fn sidecar_container(opts: &InjectOptions, proxy_port: u64) -> Yaml {
    let args = [
        "run".to_string(),
        "--role".into(),
        "sidecar".into(),
        "--listen".into(),
        format!("0.0.0.0:{}", opts.port),
        "--proxy-url".into(),
        format!("http://127.0.0.1:{proxy_port}"),
        "--gate".into(),
        opts.gate.as_str().into(),
        "--gate-state-file".into(),
        format!("{STATE_DIR}/gate.json"),
    ];
    let http = |path: &str| {
        map(vec![
            ("path", s(path)),
            ("port", Yaml::Int(i64::from(opts.port))),
        ])
    };
    map(vec![
        ("name", s(&opts.sidecar_name)),
        ("image", s(&opts.image)),
        ("imagePullPolicy", s("IfNotPresent")),
        ("args", Yaml::Seq(args.iter().map(|a| s(a)).collect())),
        (
            "env",
            Yaml::Seq(vec![
                field_env("POD_NAME", "metadata.name"),
                field_env("POD_NAMESPACE", "metadata.namespace"),
            ]),
        ),
        (
            "ports",
            Yaml::Seq(vec![map(vec![
                ("name", s("sentinel")),
                ("containerPort", Yaml::Int(i64::from(opts.port))),
                ("protocol", s("TCP")),
            ])]),
        ),
        (
            "volumeMounts",
            Yaml::Seq(vec![map(vec![
                ("name", s(STATE_VOLUME)),
                ("mountPath", s(STATE_DIR)),
            ])]),
        ),
        (
            "livenessProbe",
            map(vec![
                ("httpGet", http("/healthz")),
                ("periodSeconds", Yaml::Int(20)),
                ("timeoutSeconds", Yaml::Int(3)),
            ]),
        ),
        (
            "resources",
            map(vec![
                (
                    "requests",
                    map(vec![("cpu", s("10m")), ("memory", s("16Mi"))]),
                ),
                (
                    "limits",
                    map(vec![("cpu", s("100m")), ("memory", s("64Mi"))]),
                ),
            ]),
        ),
        (
            "securityContext",
            map(vec![
                ("runAsUser", Yaml::Int(65532)),
                ("runAsGroup", Yaml::Int(65532)),
                ("runAsNonRoot", Yaml::Bool(true)),
                ("allowPrivilegeEscalation", Yaml::Bool(false)),
                ("readOnlyRootFilesystem", Yaml::Bool(true)),
                ("privileged", Yaml::Bool(false)),
                (
                    "capabilities",
                    map(vec![("drop", Yaml::Seq(vec![s("ALL")]))]),
                ),
                ("seccompProfile", map(vec![("type", s("RuntimeDefault"))])),
            ]),
        ),
    ])
}

/// A YAML value that keeps mapping order (manifests are read by people).
#[derive(Clone, Debug, PartialEq)]
enum Yaml {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Str(String),
    Seq(Vec<Yaml>),
    Map(Vec<(String, Yaml)>),
}

impl Yaml {
    fn get(&self, key: &str) -> Option<&Yaml> {
        match self {
            Yaml::Map(m) => m.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    fn get_mut(&mut self, key: &str) -> Option<&mut Yaml> {
        match self {
            Yaml::Map(m) => m.iter_mut().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// Replaces `key`'s value in place, or appends it.
    fn set(&mut self, key: &str, value: Yaml) {
        if let Yaml::Map(m) = self {
            match m.iter_mut().find(|(k, _)| k == key) {
                Some((_, v)) => *v = value,
                None => m.push((key.to_string(), value)),
            }
        }
    }

    fn as_str(&self) -> Option<&str> {
        match self {
            Yaml::Str(s) => Some(s),
            _ => None,
        }
    }

    fn as_u64(&self) -> Option<u64> {
        match self {
            Yaml::Int(i) => u64::try_from(*i).ok(),
            Yaml::UInt(u) => Some(*u),
            _ => None,
        }
    }
}

impl Serialize for Yaml {
    fn serialize<S: Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        match self {
            Yaml::Null => ser.serialize_unit(),
            Yaml::Bool(b) => ser.serialize_bool(*b),
            Yaml::Int(i) => ser.serialize_i64(*i),
            Yaml::UInt(u) => ser.serialize_u64(*u),
            Yaml::Float(f) => ser.serialize_f64(*f),
            Yaml::Str(s) => ser.serialize_str(s),
            Yaml::Seq(items) => {
                let mut seq = ser.serialize_seq(Some(items.len()))?;
                for i in items {
                    seq.serialize_element(i)?;
                }
                seq.end()
            }
            Yaml::Map(pairs) => {
                let mut m = ser.serialize_map(Some(pairs.len()))?;
                for (k, v) in pairs {
                    m.serialize_entry(k, v)?;
                }
                m.end()
            }
        }
    }
}

impl<'de> Deserialize<'de> for Yaml {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(YamlVisitor)
    }
}

struct YamlVisitor;

impl<'de> Visitor<'de> for YamlVisitor {
    type Value = Yaml;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Yaml, E> {
        Ok(Yaml::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Yaml, E> {
        Ok(Yaml::Int(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Yaml, E> {
        Ok(i64::try_from(v).map_or(Yaml::UInt(v), Yaml::Int))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Yaml, E> {
        Ok(Yaml::Float(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Yaml, E> {
        Ok(Yaml::Str(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Yaml, E> {
        Ok(Yaml::Str(v))
    }
    fn visit_unit<E>(self) -> Result<Yaml, E> {
        Ok(Yaml::Null)
    }
    fn visit_none<E>(self) -> Result<Yaml, E> {
        Ok(Yaml::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Yaml, D::Error> {
        Yaml::deserialize(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Yaml, A::Error> {
        let mut v = Vec::new();
        while let Some(x) = a.next_element()? {
            v.push(x);
        }
        Ok(Yaml::Seq(v))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Yaml, A::Error> {
        let mut v: Vec<(String, Yaml)> = Vec::new();
        while let Some((k, val)) = a.next_entry::<YamlKey, Yaml>()? {
            v.push((k.0, val));
        }
        Ok(Yaml::Map(v))
    }
}

/// A mapping key: Kubernetes keys are strings; a scalar key of another type
/// (`80: x`) keeps its text.
struct YamlKey(String);

impl<'de> Deserialize<'de> for YamlKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Yaml::deserialize(d)? {
            Yaml::Str(s) => Ok(YamlKey(s)),
            Yaml::Int(i) => Ok(YamlKey(i.to_string())),
            Yaml::UInt(u) => Ok(YamlKey(u.to_string())),
            Yaml::Bool(b) => Ok(YamlKey(b.to_string())),
            Yaml::Float(f) => Ok(YamlKey(f.to_string())),
            Yaml::Null => Ok(YamlKey("null".into())),
            _ => Err(de::Error::custom("a mapping key must be a scalar")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OTHER: &str = "# Source: litellm/templates/service.yaml\napiVersion: v1\nkind: Service\nmetadata:\n  name: litellm   # odd spacing, kept\nspec:\n  ports:\n    - port: 4000\n      targetPort: http\n";

    const DEPLOY: &str = r#"# Source: litellm/templates/deployment.yaml
apiVersion: apps/v1
kind: Deployment
metadata:
  name: litellm
  namespace: llm
spec:
  template:
    spec:
      containers:
        - name: litellm
          image: "ghcr.io/berriai/litellm-database:main-v1.83.14"
          args:
            - --port
            - "4000"
          ports:
            - name: http
              containerPort: 4000
          env:
            - name: STORE_MODEL_IN_DB
              value: "true"
            - name: FLAG
              value: "on"
          readinessProbe:
            httpGet:
              path: /health/readiness
              port: http
"#;

    fn stream() -> String {
        format!("---\n{OTHER}---\n{DEPLOY}")
    }

    #[test]
    fn split_reassembles_exactly() {
        for input in [
            stream(),
            String::new(),
            "a: 1".into(),
            "---\n---\n".into(),
            "--- # c\na: 1\n---x: 2\n--- \r\nb: 3\r\n".into(),
        ] {
            let docs = split_documents(&input);
            let joined: String = docs.iter().map(|d| d.text).collect();
            assert_eq!(joined, input);
        }
        // `---x` is not a marker; `--- ` is.
        assert_eq!(
            split_documents("--- # c\na: 1\n---x: 2\n--- \nb: 3\n").len(),
            2
        );
    }

    #[test]
    fn injects_litellm_and_leaves_the_rest_byte_identical() {
        let input = stream();
        let out = inject(&input, &InjectOptions::default()).unwrap();
        assert_eq!(out.changed, vec!["Deployment llm/litellm".to_string()]);
        assert!(
            out.output.starts_with(&format!(
                "---\n{OTHER}---\n# Source: litellm/templates/deployment.yaml\n"
            )),
            "{}",
            out.output
        );
        let docs = split_documents(&out.output);
        let v: Yaml = serde_saphyr::from_str(docs[1].text).unwrap();
        let pod = v
            .get("spec")
            .unwrap()
            .get("template")
            .unwrap()
            .get("spec")
            .unwrap();
        assert_eq!(pod.get("shareProcessNamespace"), Some(&Yaml::Bool(true)));
        let Some(Yaml::Seq(cs)) = pod.get("containers") else {
            panic!()
        };
        assert_eq!(cs.len(), 2);
        let probe = cs[0].get("readinessProbe").unwrap().get("httpGet").unwrap();
        assert_eq!(probe.get("path").unwrap().as_str(), Some("/gate"));
        assert_eq!(probe.get("port"), Some(&Yaml::Int(9465)));
        // Strings that look like other types stay strings.
        let Some(Yaml::Seq(args)) = cs[0].get("args") else {
            panic!()
        };
        assert_eq!(args[1], Yaml::Str("4000".into()));
        let Some(Yaml::Seq(env)) = cs[0].get("env") else {
            panic!()
        };
        assert_eq!(env[0].get("value"), Some(&Yaml::Str("true".into())));
        assert_eq!(env[1].get("value"), Some(&Yaml::Str("on".into())));
        let side = &cs[1];
        assert_eq!(side.get("name").unwrap().as_str(), Some("litellm-sentinel"));
        let Some(Yaml::Seq(sargs)) = side.get("args") else {
            panic!()
        };
        let sargs: Vec<_> = sargs.iter().filter_map(Yaml::as_str).collect();
        assert_eq!(
            sargs,
            [
                "run",
                "--role",
                "sidecar",
                "--listen",
                "0.0.0.0:9465",
                "--proxy-url",
                "http://127.0.0.1:4000",
                "--gate",
                "startup",
                "--gate-state-file",
                "/run/litellm-sentinel/gate.json"
            ]
        );
        let Some(Yaml::Seq(vols)) = pod.get("volumes") else {
            panic!()
        };
        assert_eq!(
            vols.last().and_then(|v| v.get("name")),
            Some(&s("litellm-sentinel-state"))
        );
        // Idempotent.
        let again = inject(&out.output, &InjectOptions::default()).unwrap();
        assert_eq!(again.output, out.output);
        assert!(again.changed.is_empty());
        assert_eq!(again.already, vec!["Deployment llm/litellm".to_string()]);
    }

    #[test]
    fn everything_but_the_injected_parts_means_the_same_after_the_round_trip() {
        let tricky = DEPLOY.replace(
            "          args:\n",
            "          command:\n            - sh\n            - -c\n            - |\n              echo 'a: b' # not a comment\n              exec litellm \"$@\"\n          args:\n            - \"null\"\n            - \"0x1F\"\n            - \"1e3\"\n            - \"~\"\n            - \"yes\"\n            - \"- dash\"\n            - \"url: http://x\"\n            - \"\"\n",
        );
        assert_ne!(tricky, DEPLOY);
        let before: Yaml = serde_saphyr::from_str(&tricky).unwrap();
        let out = inject(&tricky, &InjectOptions::default()).unwrap();
        // Kubernetes reads YAML 1.1 (sigs.k8s.io/yaml): `yes`, `on`, `~` unquoted
        // would not be strings there.
        for quoted in [
            "\"yes\"", "\"on\"", "\"~\"", "\"null\"", "\"4000\"", "\"true\"",
        ] {
            let single = quoted.replace('"', "'");
            assert!(
                out.output.contains(quoted) || out.output.contains(&single),
                "{quoted} unquoted in:\n{}",
                out.output
            );
        }
        let mut after: Yaml = serde_saphyr::from_str(&out.output).unwrap();
        let pod = after
            .get_mut("spec")
            .and_then(|s| s.get_mut("template"))
            .and_then(|t| t.get_mut("spec"))
            .unwrap();
        let Yaml::Map(fields) = pod else { panic!() };
        // DEPLOY has no volumes: the list is the injected emptyDir alone.
        fields.retain(|(k, _)| k != "shareProcessNamespace" && k != "volumes");
        let Some(Yaml::Seq(cs)) = pod.get_mut("containers") else {
            panic!()
        };
        assert_eq!(
            cs.pop().and_then(|c| c.get("name").cloned()),
            Some(s("litellm-sentinel"))
        );
        let original_probe = before
            .get("spec")
            .unwrap()
            .get("template")
            .unwrap()
            .get("spec")
            .unwrap()
            .get("containers")
            .and_then(|c| match c {
                Yaml::Seq(v) => v[0].get("readinessProbe").cloned(),
                _ => None,
            })
            .unwrap();
        cs[0].set("readinessProbe", original_probe);
        assert_eq!(after, before, "{}", out.output);
    }

    #[test]
    fn startup_probe_flag_keeps_the_readiness_probe() {
        let opts = InjectOptions {
            probe: ProbeKind::Startup,
            ..Default::default()
        };
        let out = inject(DEPLOY, &opts).unwrap();
        let v: Yaml = serde_saphyr::from_str(&out.output).unwrap();
        let c = &match v
            .get("spec")
            .unwrap()
            .get("template")
            .unwrap()
            .get("spec")
            .unwrap()
            .get("containers")
        {
            Some(Yaml::Seq(cs)) => cs.clone(),
            _ => panic!(),
        }[0];
        let path = |k: &str| {
            c.get(k)
                .unwrap()
                .get("httpGet")
                .unwrap()
                .get("path")
                .unwrap()
                .as_str()
                .map(str::to_owned)
        };
        assert_eq!(path("startupProbe").as_deref(), Some("/gate"));
        assert_eq!(path("readinessProbe").as_deref(), Some("/health/readiness"));
    }

    #[test]
    fn matching_rules_and_non_targets() {
        let opts = InjectOptions::default();
        let c = |name: &str, image: &str| map(vec![("name", s(name)), ("image", s(image))]);
        assert!(runs_litellm(
            &c("proxy", "ghcr.io/berriai/litellm:main-stable"),
            &opts
        ));
        assert!(runs_litellm(
            &c(
                "proxy",
                "docker.litellm.ai/berriai/litellm-database@sha256:abc"
            ),
            &opts
        ));
        assert!(runs_litellm(&c("litellm", "registry.local/gw:1"), &opts));
        assert!(!runs_litellm(&c("redis", "redis:7"), &opts));
        assert!(!runs_litellm(
            &c(
                "sentinel",
                "ghcr.io/litellm-sentinel/litellm-sentinel:0.1.0"
            ),
            &opts
        ));
        // Not a workload, a workload without LiteLLM, garbage: untouched or an error.
        let cm = "apiVersion: v1\nkind: ConfigMap\ndata:\n  litellm: yes\n";
        assert_eq!(inject(cm, &opts).unwrap().output, cm);
        let redis = "kind: Deployment\nspec:\n  template:\n    spec:\n      containers:\n      - name: redis\n        image: redis:7\n";
        assert_eq!(inject(redis, &opts).unwrap().output, redis);
        let only_comments = "---\n# nothing here\n---\n";
        assert_eq!(inject(only_comments, &opts).unwrap().output, only_comments);
        let bad = "kind: Deployment\n  bad: [indent\n";
        assert!(matches!(
            inject(bad, &opts),
            Err(InjectError::Parse { index: 1, .. })
        ));
    }

    #[test]
    fn lists_are_injected_item_by_item() {
        let list = format!(
            "apiVersion: v1\nkind: List\nitems:\n{}",
            DEPLOY
                .lines()
                .skip(1)
                .map(|l| if l.starts_with("apiVersion") {
                    format!("- {l}\n")
                } else {
                    format!("  {l}\n")
                })
                .collect::<String>()
        );
        let out = inject(&list, &InjectOptions::default()).unwrap();
        assert_eq!(out.changed.len(), 1, "{}", out.output);
        assert!(out.output.contains("shareProcessNamespace: true"));
    }
}
