{{/* Chart name, overridable with nameOverride (also the Prometheus job name, see podmonitor.yaml). */}}
{{- define "litellm-sentinel.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Fully qualified app name: the release name when it already contains the chart name. */}}
{{- define "litellm-sentinel.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "litellm-sentinel.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Selector labels: stable for the life of a release (a DaemonSet selector is immutable). */}}
{{- define "litellm-sentinel.selectorLabels" -}}
app.kubernetes.io/name: {{ include "litellm-sentinel.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: node-agent
{{- end }}

{{- define "litellm-sentinel.labels" -}}
helm.sh/chart: {{ include "litellm-sentinel.chart" . }}
{{ include "litellm-sentinel.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: litellm-sentinel
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "litellm-sentinel.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "litellm-sentinel.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* repository:tag, or repository@digest when a digest is pinned. */}}
{{- define "litellm-sentinel.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/*
The agent's TOML: .Values.config with `listen` taken from metricsPort (the
container port, the probes and the PodMonitor must agree on it).
*/}}
{{- define "litellm-sentinel.configToml" -}}
{{- $cfg := deepCopy .Values.config }}
{{- $_ := set $cfg "listen" (printf "0.0.0.0:%d" (int .Values.metricsPort)) }}
{{- /* YAML numbers reach templates as float64 (toToml writes 2000.0): the
agent's numeric settings are integers, so whole numbers lose the ".0". */}}
{{- regexReplaceAll "(?m)^([ \t]*[A-Za-z0-9_]+ = -?[0-9]+)\\.0$" (toToml $cfg) "${1}" }}
{{- end }}

{{/*
The Prometheus rule groups: files/litellm-sentinel.rules.tmpl.yaml with its
placeholders filled in. scripts/gen-rules.py performs the same substitution
for users of the plain rule file; scripts/validate-manifests.sh checks that
both agree.
  @JOB_SELECTOR@   prometheusRule.jobSelector, default job="<chart name>"
                   (the job the PodMonitor's jobLabel produces)
  @CLUSTER_BY@     "<clusterLabel>, " (or nothing when clusterLabel is empty),
                   prepended to every by()/on() list
  @RUNBOOK_BASE@   prometheusRule.runbookUrlBase; without one the runbook_url
                   lines are dropped (no link to a page that does not exist)
*/}}
{{- define "litellm-sentinel.ruleGroups" -}}
{{- $job := .Values.prometheusRule.jobSelector | default (printf "job=%q" (include "litellm-sentinel.name" .)) }}
{{- $cluster := "" }}
{{- with .Values.prometheusRule.clusterLabel }}{{ $cluster = printf "%s, " . }}{{ end }}
{{- $text := .Files.Get "files/litellm-sentinel.rules.tmpl.yaml" }}
{{- $text = regexReplaceAll "(?s)^.*?\ngroups:\n" $text "groups:\n" }}
{{- if .Values.prometheusRule.runbookUrlBase }}
{{- $text = replace "@RUNBOOK_BASE@" .Values.prometheusRule.runbookUrlBase $text }}
{{- else }}
{{- $text = regexReplaceAll "(?m)^[ \t]*runbook_url: @RUNBOOK_BASE@.*\n" $text "" }}
{{- end }}
{{- $text = replace "@JOB_SELECTOR@" $job $text }}
{{- $text = replace "@CLUSTER_BY@" $cluster $text }}
{{- $text }}
{{- end }}
