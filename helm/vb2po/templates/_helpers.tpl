{{/* Names and labels shared by every object of the chart. */}}

{{- define "vb2po.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* <release>-vb2po, or the release name alone when it already contains the chart name. */}}
{{- define "vb2po.fullname" -}}
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

{{- define "vb2po.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "vb2po.selectorLabels" -}}
app.kubernetes.io/name: {{ include "vb2po.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "vb2po.labels" -}}
helm.sh/chart: {{ include "vb2po.chart" . }}
{{ include "vb2po.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: vb2po
{{- end }}

{{/* Selector labels of one component; call with (dict "root" $ "component" "producer"). */}}
{{- define "vb2po.componentSelectorLabels" -}}
{{ include "vb2po.selectorLabels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "vb2po.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "vb2po.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "vb2po.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* Refuse values that would put a secret into the ConfigMap. */}}
{{- define "vb2po.settingsWithoutSecrets" -}}
{{- $settings := .Values.settings | default dict }}
{{- range $key := list "companies" "invoice_clients" }}
{{- if hasKey $settings $key }}
{{- fail (printf "settings.%s carries secrets (ODBC strings, client keys): put it into the Secret named by secrets.existingSecret as VB2PO_%s (JSON), not into values" $key (upper $key)) }}
{{- end }}
{{- end }}
{{- $poweroffice := $settings.poweroffice | default dict }}
{{- range $key := list "application_key" "subscription_key" }}
{{- if hasKey $poweroffice $key }}
{{- fail (printf "settings.poweroffice.%s is a secret: put it into the Secret named by secrets.existingSecret as VB2PO_POWEROFFICE__%s, not into values" $key (upper $key)) }}
{{- end }}
{{- end }}
{{- toYaml (omit $settings "metrics_port") }}
{{- end }}

{{/*
The Deployment (or StatefulSet) of one component; call with (dict "root" $ "component" "producer"
"values" .Values.producer "replicas" 1 "strategy" "Recreate" "kind" "Deployment").
A StatefulSet gives each consumer a stable name, which becomes its static group membership
(consumer.instance_id): a restarted pod takes its partitions back without a rebalance.
*/}}
{{- define "vb2po.deployment" -}}
{{- $root := .root }}
{{- $values := $root.Values }}
{{- $component := .component }}
{{- $c := .values }}
{{- $kind := .kind | default "Deployment" }}
{{- if not (has $kind (list "Deployment" "StatefulSet")) }}
{{- fail (printf "%s.kind must be Deployment or StatefulSet, not %q" $component $kind) }}
{{- end }}
{{- $admin := and $values.adminApi.enabled (eq $values.adminApi.component $component) }}
apiVersion: apps/v1
kind: {{ $kind }}
metadata:
  name: {{ include "vb2po.fullname" $root }}-{{ $component }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "vb2po.labels" $root | nindent 4 }}
    app.kubernetes.io/component: {{ $component }}
spec:
  replicas: {{ .replicas }}
  revisionHistoryLimit: 5
  {{- if eq $kind "StatefulSet" }}
  serviceName: {{ include "vb2po.fullname" $root }}-{{ $component }}-pods
  # all pods start and stop together, as a Deployment's do: their names matter, not their order
  podManagementPolicy: Parallel
  updateStrategy:
    type: RollingUpdate
  {{- else }}
  strategy:
    type: {{ .strategy }}
  {{- end }}
  selector:
    matchLabels:
      {{- include "vb2po.componentSelectorLabels" (dict "root" $root "component" $component) | nindent 6 }}
  template:
    metadata:
      labels:
        {{- include "vb2po.labels" $root | nindent 8 }}
        app.kubernetes.io/component: {{ $component }}
        {{- with $c.podLabels }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      annotations:
        # a changed settings file rolls the pods
        checksum/settings: {{ include (print $root.Template.BasePath "/configmap-settings.yaml") $root | sha256sum }}
        {{- with $c.podAnnotations }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
    spec:
      serviceAccountName: {{ include "vb2po.serviceAccountName" $root }}
      automountServiceAccountToken: false
      terminationGracePeriodSeconds: {{ $values.terminationGracePeriodSeconds }}
      {{- with $values.imagePullSecrets }}
      imagePullSecrets:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      securityContext:
        {{- toYaml $values.podSecurityContext | nindent 8 }}
      containers:
        - name: {{ $component }}
          image: {{ include "vb2po.image" $root | quote }}
          imagePullPolicy: {{ $values.image.pullPolicy }}
          command: ["vb2po", "{{ $component }}"]
          env:
            - name: VB2PO_CONFIG
              value: /etc/vb2po/settings.yaml
            - name: VB2PO_METRICS_PORT
              value: {{ $values.metrics.port | quote }}
            - name: VB2PO_METRICS_BIND_ADDRESS
              value: {{ $values.metrics.bindAddress | quote }}
            {{- if eq $component "consumer" }}
            # each replica takes 1/replicas of PowerOffice's rate limit
            - name: VB2PO_CONSUMER__INSTANCES
              value: {{ $values.consumer.replicas | quote }}
            {{- end }}
            {{- if eq $kind "StatefulSet" }}
            # static group membership: the pod name (<fullname>-consumer-0, -1, ...) stays across restarts
            - name: VB2PO_CONSUMER__INSTANCE_ID
              valueFrom:
                fieldRef:
                  fieldPath: metadata.name
            {{- end }}
            {{- if $admin }}
            - name: VB2PO_ADMIN__ENABLED
              value: "true"
            - name: VB2PO_ADMIN__BIND_ADDRESS
              value: "0.0.0.0"
            - name: VB2PO_ADMIN__PORT
              value: {{ $values.adminApi.port | quote }}
            {{- end }}
            - name: PYTHONDONTWRITEBYTECODE
              value: "1"
            - name: PYTHONUNBUFFERED
              value: "1"
            - name: TMPDIR
              value: /tmp
            {{- range $values.secrets.env }}
            - name: {{ .name }}
              valueFrom:
                secretKeyRef:
                  name: {{ .secretName }}
                  key: {{ .key }}
            {{- end }}
            {{- with $c.extraEnv }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
          {{- with $values.secrets.existingSecret }}
          envFrom:
            - secretRef:
                name: {{ . }}
          {{- end }}
          ports:
            - name: metrics
              containerPort: {{ $values.metrics.port }}
              protocol: TCP
            {{- if $admin }}
            - name: admin
              containerPort: {{ $values.adminApi.port }}
              protocol: TCP
            {{- end }}
          livenessProbe:
            httpGet:
              path: {{ $values.probes.liveness.path }}
              port: metrics
            initialDelaySeconds: {{ $values.probes.liveness.initialDelaySeconds }}
            periodSeconds: {{ $values.probes.liveness.periodSeconds }}
            timeoutSeconds: {{ $values.probes.liveness.timeoutSeconds }}
            failureThreshold: {{ $values.probes.liveness.failureThreshold }}
          readinessProbe:
            httpGet:
              path: {{ $values.probes.readiness.path }}
              port: metrics
            initialDelaySeconds: {{ $values.probes.readiness.initialDelaySeconds }}
            periodSeconds: {{ $values.probes.readiness.periodSeconds }}
            timeoutSeconds: {{ $values.probes.readiness.timeoutSeconds }}
            failureThreshold: {{ $values.probes.readiness.failureThreshold }}
          resources:
            {{- toYaml $c.resources | nindent 12 }}
          securityContext:
            {{- toYaml $values.securityContext | nindent 12 }}
          volumeMounts:
            - name: settings
              mountPath: /etc/vb2po
              readOnly: true
            - name: tmp
              mountPath: /tmp
            {{- with $values.extraVolumeMounts }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
      volumes:
        - name: settings
          configMap:
            name: {{ include "vb2po.fullname" $root }}-settings
        - name: tmp
          emptyDir:
            sizeLimit: {{ $values.tmpSizeLimit }}
        {{- with $values.extraVolumes }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      {{- with $c.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $c.affinity }}
      affinity:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $c.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
{{- end }}
