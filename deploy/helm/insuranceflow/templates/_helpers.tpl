{{- define "insuranceflow.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "insuranceflow.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else if contains (include "insuranceflow.name" .) .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name (include "insuranceflow.name" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{- define "insuranceflow.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "insuranceflow.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* selectorLabels takes (dict "root" $ "component" "worker"). */}}
{{- define "insuranceflow.selectorLabels" -}}
app.kubernetes.io/name: {{ include "insuranceflow.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "insuranceflow.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "insuranceflow.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The Secret with the service's secrets: the given one, or the chart's. */}}
{{- define "insuranceflow.secretName" -}}
{{- if .Values.secrets.existingSecret }}
{{- .Values.secrets.existingSecret }}
{{- else if .Values.secrets.create }}
{{- include "insuranceflow.fullname" . }}
{{- else }}
{{- fail "name a Secret with the service's secrets (secrets.existingSecret), or set secrets.create for a throwaway cluster" }}
{{- end }}
{{- end }}

{{- define "insuranceflow.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end }}

{{/* Where secret files are mounted in the containers. */}}
{{- define "insuranceflow.secretsDir" -}}/etc/insuranceflow/secrets{{- end }}
{{- define "insuranceflow.temporalTLSDir" -}}/etc/insuranceflow/temporal-tls{{- end }}

{{/*
commonEnv is what the worker and the ingress share: the Temporal
connection, the store and the payload codec. Secrets only by secretKeyRef
or as files of the mounted Secret, never as values.
*/}}
{{- define "insuranceflow.commonEnv" -}}
- name: TEMPORAL_ADDRESS
  value: {{ required "temporal.address is required (host:port of the Temporal frontend)" .Values.temporal.address | quote }}
- name: TEMPORAL_NAMESPACE
  value: {{ .Values.temporal.namespace | quote }}
- name: TEMPORAL_GRPC_COMPRESSION
  value: {{ .Values.temporal.grpcCompression | default "gzip" | quote }}
{{- with .Values.temporal.taskQueue }}
- name: TASK_QUEUE
  value: {{ . | quote }}
{{- end }}
{{- if .Values.temporal.apiKey.existingSecret }}
- name: TEMPORAL_API_KEY
  valueFrom:
    secretKeyRef:
      name: {{ .Values.temporal.apiKey.existingSecret }}
      key: {{ .Values.temporal.apiKey.key }}
{{- end }}
{{- if .Values.temporal.tls.enabled }}
- name: TEMPORAL_TLS
  value: "true"
{{- if .Values.temporal.tls.existingSecret }}
- name: TEMPORAL_TLS_CLIENT_CERT_PATH
  value: {{ printf "%s/%s" (include "insuranceflow.temporalTLSDir" .) .Values.temporal.tls.certKey | quote }}
- name: TEMPORAL_TLS_CLIENT_KEY_PATH
  value: {{ printf "%s/%s" (include "insuranceflow.temporalTLSDir" .) .Values.temporal.tls.keyKey | quote }}
{{- with .Values.temporal.tls.caKey }}
- name: TEMPORAL_TLS_SERVER_CA_CERT_PATH
  value: {{ printf "%s/%s" (include "insuranceflow.temporalTLSDir" $) . | quote }}
{{- end }}
{{- end }}
{{- with .Values.temporal.tls.serverName }}
- name: TEMPORAL_TLS_SERVER_NAME
  value: {{ . | quote }}
{{- end }}
{{- end }}
- name: DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "insuranceflow.secretName" . }}
      key: database-url
{{- with .Values.notify.url }}
- name: NOTIFY_URL
  value: {{ . | quote }}
{{- with $.Values.notify.retryBudget }}
- name: NOTIFY_RETRY_BUDGET
  value: {{ . | quote }}
{{- end }}
{{- end }}
- name: PAYLOAD_KEYS_FILE
  value: {{ printf "%s/payload-keys" (include "insuranceflow.secretsDir" .) | quote }}
- name: PAYLOAD_REQUIRE_ENCRYPTION
  value: {{ .Values.payload.requireEncryption | quote }}
- name: HTTP_ADDR
  value: "0.0.0.0:8080"
{{- if .Values.metrics.enabled }}
- name: METRICS_ADDR
  value: {{ printf "0.0.0.0:%d" (int .Values.metrics.port) | quote }}
{{- end }}
{{- range $k, $v := .Values.env }}
- name: {{ $k }}
  value: {{ $v | quote }}
{{- end }}
{{- end }}

{{/* secretVolume mounts the Secret's file-shaped keys; items takes a list of keys. */}}
{{- define "insuranceflow.volumes" -}}
- name: secrets
  secret:
    secretName: {{ include "insuranceflow.secretName" .root }}
    defaultMode: 0440
    items:
    {{- range .items }}
      - key: {{ . }}
        path: {{ . }}
    {{- end }}
{{- if and .root.Values.temporal.tls.enabled .root.Values.temporal.tls.existingSecret }}
- name: temporal-tls
  secret:
    secretName: {{ .root.Values.temporal.tls.existingSecret }}
    defaultMode: 0440
{{- end }}
# The root file system is read-only; the Go runtime and TLS may want /tmp.
- name: tmp
  emptyDir:
    sizeLimit: 64Mi
{{- end }}

{{- define "insuranceflow.volumeMounts" -}}
- name: secrets
  mountPath: {{ include "insuranceflow.secretsDir" . }}
  readOnly: true
{{- if and .Values.temporal.tls.enabled .Values.temporal.tls.existingSecret }}
- name: temporal-tls
  mountPath: {{ include "insuranceflow.temporalTLSDir" . }}
  readOnly: true
{{- end }}
- name: tmp
  mountPath: /tmp
{{- end }}

{{/* probes: /healthz (alive) and /readyz (Temporal and the database answer) on the http port. */}}
{{- define "insuranceflow.probes" -}}
livenessProbe:
  httpGet:
    path: /healthz
    port: http
  {{- toYaml .Values.probes.liveness | nindent 2 }}
readinessProbe:
  httpGet:
    path: /readyz
    port: http
  {{- toYaml .Values.probes.readiness | nindent 2 }}
{{- end }}

{{- define "insuranceflow.ports" -}}
- name: http
  containerPort: 8080
  protocol: TCP
{{- if .Values.metrics.enabled }}
- name: metrics
  containerPort: {{ .Values.metrics.port }}
  protocol: TCP
{{- end }}
{{- end }}
