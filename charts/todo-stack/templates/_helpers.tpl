{{/* Labels shared by every object; pass (list $ component version). */}}
{{- define "todo.labels" -}}
{{- $root := index . 0 -}}
app.kubernetes.io/instance: {{ $root.Release.Name }}
app.kubernetes.io/managed-by: Helm
app.kubernetes.io/name: todo
app.kubernetes.io/part-of: todo
app.kubernetes.io/version: {{ index . 2 | quote }}
helm.sh/chart: {{ printf "%s-%s" $root.Chart.Name $root.Chart.Version }}
{{- with index . 1 }}
app.kubernetes.io/component: {{ . }}
{{- end }}
{{- end -}}

{{/* Selector labels of a component; pass (list $ component). */}}
{{- define "todo.selector" -}}
app.kubernetes.io/component: {{ index . 1 }}
app.kubernetes.io/instance: {{ (index . 0).Release.Name }}
app.kubernetes.io/name: todo
{{- end -}}

{{/* Helm's ownership annotations (also written by aiops-mcp). */}}
{{- define "todo.annotations" -}}
meta.helm.sh/release-name: {{ .Release.Name }}
meta.helm.sh/release-namespace: {{ .Release.Namespace }}
{{- end -}}

{{/* image reference of a component values block; pass (list $ values). */}}
{{- define "todo.image" -}}
{{- $root := index . 0 -}}{{- $c := index . 1 -}}
{{- if $root.Values.imageRegistry -}}
{{ trimSuffix "/" $root.Values.imageRegistry }}/{{ $c.repository }}:{{ $c.tag }}
{{- else -}}
{{ $c.repository }}:{{ $c.tag }}
{{- end -}}
{{- end -}}

{{/* Public URL of the stack. */}}
{{- define "todo.publicUrl" -}}
{{- if .Values.ingress.tlsSecretName -}}https{{- else -}}http{{- end -}}://{{ .Values.ingress.host }}
{{- end -}}
