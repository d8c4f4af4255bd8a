{{/* The release's objects are named after it; "portico" alone when the
release is called portico, as in deploy/kubernetes. */}}
{{- define "portico.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "portico.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "portico.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "portico.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "portico.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name: the account to run as when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The host of url: the default of the ingress host and of the domains. */}}
{{- define "portico.urlHost" -}}
{{- $u := urlParse (required "url: the portal's public URL" .Values.url) -}}
{{- $host := regexReplaceAll ":[0-9]+$" (get $u "host") "" -}}
{{- if not $host -}}
{{- fail (printf "url: %q has no host name" .Values.url) -}}
{{- end -}}
{{- $host -}}
{{- end -}}

{{/* The domain sessions are served under, as the portal works it out:
--session-domain, else --ingress-domain, else the host of --url. */}}
{{- define "portico.sessionDomain" -}}
{{- .Values.sessionDomain | default .Values.ingressDomain | default (include "portico.urlHost" .) -}}
{{- end -}}

{{- define "portico.image" -}}
{{- printf "%s:%s" .repository (.tag | default .appVersion) -}}
{{- end -}}

{{- define "portico.configMapName" -}}
{{- .Values.existingConfigMap | default (printf "%s-config" (include "portico.fullname" .)) -}}
{{- end -}}

{{- define "portico.secretKeySecret" -}}
{{- .Values.secretKey.existingSecret | default (printf "%s-secret-key" (include "portico.fullname" .)) -}}
{{- end -}}

{{- define "portico.postgresqlName" -}}
{{- printf "%s-postgresql" (include "portico.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The Secret and key that hold the database URL. */}}
{{- define "portico.databaseSecret" -}}
{{- if .Values.postgresql.enabled -}}
{{- include "portico.postgresqlName" . -}}
{{- else -}}
{{- .Values.externalDatabase.existingSecret -}}
{{- end -}}
{{- end -}}
{{- define "portico.databaseKey" -}}
{{- if .Values.postgresql.enabled -}}url{{- else -}}{{- .Values.externalDatabase.urlKey -}}{{- end -}}
{{- end -}}

{{/* One of the two databases, and a runtime the chart can run. */}}
{{- define "portico.validate" -}}
{{- if and .Values.postgresql.enabled .Values.externalDatabase.existingSecret -}}
{{- fail "postgresql.enabled and externalDatabase.existingSecret: choose one database (set postgresql.enabled=false to use the external one)" -}}
{{- end -}}
{{- if and (not .Values.postgresql.enabled) (not .Values.externalDatabase.existingSecret) -}}
{{- fail "no database: set postgresql.enabled=true, or externalDatabase.existingSecret to a Secret holding the database URL" -}}
{{- end -}}
{{- if not (has .Values.runtime (list "kubernetes" "noop")) -}}
{{- fail (printf "runtime: %q is not kubernetes or noop (the local runtime runs outside Kubernetes: see deploy/systemd)" .Values.runtime) -}}
{{- end -}}
{{- end -}}

{{/* A probe of the portal's port: GET path, else a TCP connection. */}}
{{- define "portico.probe" -}}
{{- if .path }}
httpGet:
  path: {{ .path }}
  port: http
{{- else }}
tcpSocket:
  port: http
{{- end }}
{{- range $k := list "initialDelaySeconds" "periodSeconds" "timeoutSeconds" "failureThreshold" }}
{{- with index $ $k }}
{{ $k }}: {{ . }}
{{- end }}
{{- end }}
{{- end -}}
