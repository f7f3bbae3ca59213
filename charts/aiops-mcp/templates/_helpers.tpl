{{/* Chart name, overridable. */}}
{{- define "aiops-mcp.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name of the release's objects: <release>-<chart>, or <release> when the
release name already contains the chart name. 63 characters at most (DNS label).
*/}}
{{- define "aiops-mcp.fullname" -}}
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

{{/* chart label value: <name>-<version>. */}}
{{- define "aiops-mcp.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels that select the server's pods (never change them after install). */}}
{{- define "aiops-mcp.selectorLabels" -}}
app.kubernetes.io/name: {{ include "aiops-mcp.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Labels on every object. */}}
{{- define "aiops-mcp.labels" -}}
helm.sh/chart: {{ include "aiops-mcp.chart" . }}
{{ include "aiops-mcp.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: mcp-server
{{- end }}

{{/* Name of the ServiceAccount the server runs as. */}}
{{- define "aiops-mcp.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "aiops-mcp.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* Image reference: repository:tag, the tag defaulting to the appVersion. */}}
{{- define "aiops-mcp.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}

{{/*
Host header values the server accepts on /mcp: the Service's DNS names plus
.Values.allowedHosts, comma-separated for --allowed-hosts.
*/}}
{{- define "aiops-mcp.allowedHosts" -}}
{{- $svc := include "aiops-mcp.fullname" . }}
{{- $ns := .Release.Namespace }}
{{- $hosts := list $svc (printf "%s.%s" $svc $ns) (printf "%s.%s.svc" $svc $ns) (printf "%s.%s.svc.%s" $svc $ns .Values.clusterDomain) }}
{{- concat $hosts .Values.allowedHosts | uniq | join "," }}
{{- end }}

{{/* Whether the write Role is created: a write namespace, RBAC on, not read-only. */}}
{{- define "aiops-mcp.writeEnabled" -}}
{{- if and .Values.rbac.create .Values.writeNamespace (not .Values.readOnly) }}true{{ end }}
{{- end }}

{{/* ClusterRole(Binding) name: cluster-wide, so it carries the release namespace. */}}
{{- define "aiops-mcp.clusterRoleName" -}}
{{- printf "%s-%s-read" (include "aiops-mcp.fullname" .) .Release.Namespace }}
{{- end }}
