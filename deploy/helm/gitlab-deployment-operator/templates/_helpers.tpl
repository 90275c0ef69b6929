{{/* Object names: fixed, as in deploy/ (the lease and RBAC names depend on them). */}}
{{- define "gdo.name" -}}gitlab-deployment-operator{{- end -}}

{{/* Labels of every object: deploy/'s (name, part-of) and Helm's. */}}
{{- define "gdo.labels" -}}
app.kubernetes.io/name: gitlab-deployment-operator
app.kubernetes.io/part-of: gitlab-deployment-operator
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{/* Pod selector, as in deploy/ (selectors are immutable: no release-specific label). */}}
{{- define "gdo.selector" -}}
app.kubernetes.io/name: gitlab-deployment-operator
app.kubernetes.io/component: operator
{{- end -}}
