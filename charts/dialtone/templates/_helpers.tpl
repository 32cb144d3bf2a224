{{/*
Names and labels shared by the chart's templates.
*/}}

{{/* The release's base name, at most 63 characters. */}}
{{- define "dialtone.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* The operator's Deployment, ServiceAccount, Service and RBAC objects. */}}
{{- define "dialtone.operatorName" -}}
{{- printf "%s-operator" (include "dialtone.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The Lease the operator replicas elect their leader with. */}}
{{- define "dialtone.leaseName" -}}
{{- printf "%s-leader" (include "dialtone.operatorName" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The image of the operator and of every component it starts. */}}
{{- define "dialtone.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end -}}

{{/* Labels that select the operator's pods (never change: a Deployment selector is immutable). */}}
{{- define "dialtone.selectorLabels" -}}
app.kubernetes.io/name: dialtone-operator
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* Standard labels of every object of the chart. */}}
{{- define "dialtone.labels" -}}
{{ include "dialtone.selectorLabels" . }}
app.kubernetes.io/component: operator
app.kubernetes.io/part-of: dialtone
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{/*
What the operator may do in a namespace it watches. Least privilege: each rule names the code
that needs it; no wildcards; no delete (owned objects go with their CallCenter through the
garbage collector, and the operator removes nothing on its own).
*/}}
{{- define "dialtone.operatorRules" -}}
# Controllers and the loader: read and watch the eight kinds (validation needs all of them).
- apiGroups: ["dialtone.dev"]
  resources:
    - callcenters
    - carriers
    - schedules
    - agents
    - callqueues
    - forwardingschemes
    - phonenumbers
    - blocklists
  verbs: ["get", "list", "watch"]
# Status writer: Ready and ResolvedRefs conditions and observedGeneration, by server-side apply
# on the status subresource.
- apiGroups: ["dialtone.dev"]
  resources:
    - callcenters/status
    - carriers/status
    - schedules/status
    - agents/status
    - callqueues/status
    - forwardingschemes/status
    - phonenumbers/status
    - blocklists/status
  verbs: ["get", "patch"]
# desired::common::Owner::reference: ownerReferences with blockOwnerDeletion need update on the
# owner's finalizers (the OwnerReferencesPermissionEnforcement admission plugin).
- apiGroups: ["dialtone.dev"]
  resources: ["callcenters/finalizers"]
  verbs: ["update"]
# desired::{router,reporter,media_node}: the Deployments, applied server-side (create on first
# apply) and watched so drift is repaired.
- apiGroups: ["apps"]
  resources: ["deployments"]
  verbs: ["get", "list", "watch", "create", "patch"]
# desired::{router,reporter,media_node,rbac}: Services, the components' ServiceAccounts, the
# SQLite and recordings volumes.
- apiGroups: [""]
  resources: ["services", "serviceaccounts", "persistentvolumeclaims"]
  verbs: ["get", "list", "watch", "create", "patch"]
# The loader checks prompt names against the prompts ConfigMap; the snapshot ConfigMap is
# watched for drift.
- apiGroups: [""]
  resources: ["configmaps"]
  verbs: ["get", "list", "watch"]
# The loader checks that referenced Secrets and keys exist; desired::snapshot copies the
# referenced keys into the snapshot Secret; controller::access reads the generated internal
# token's value from <callcenter>-internal-token so it stays the same across reconciles.
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get", "list", "watch"]
# desired::snapshot: the first publication creates the snapshot ConfigMap and Secret;
# controller::apply::create (desired::access::internal_token_secret) creates the generated
# internal token <callcenter>-internal-token once and never patches it. (Kubernetes cannot
# restrict create by name; create cannot overwrite an existing object.)
- apiGroups: [""]
  resources: ["configmaps", "secrets"]
  verbs: ["create"]
# desired::snapshot: later publications change the snapshot objects, and nothing else.
- apiGroups: [""]
  resources: ["configmaps", "secrets"]
  resourceNames: ["dialtone-snapshot"]
  verbs: ["patch"]
# controller::deletion_cost: list and watch the media-node pods (label selector), read their
# active calls on their ops port, and merge-patch their controller.kubernetes.io/pod-deletion-cost
# annotation (desired::scaling::pod_deletion_cost) so scale-down removes the idlest node.
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["list", "watch", "patch"]
# desired::{router,media_node}::disruption_budget.
- apiGroups: ["policy"]
  resources: ["poddisruptionbudgets"]
  verbs: ["get", "list", "watch", "create", "patch"]
# desired::scaling::autoscaler: the media nodes' HorizontalPodAutoscaler (campaign floors).
- apiGroups: ["autoscaling"]
  resources: ["horizontalpodautoscalers"]
  verbs: ["get", "list", "watch", "create", "patch"]
# desired::rbac: the components' Roles and RoleBindings. The operator holds every permission
# those Roles grant (read configmaps and secrets), so it needs neither escalate nor bind.
- apiGroups: ["rbac.authorization.k8s.io"]
  resources: ["roles", "rolebindings"]
  verbs: ["get", "list", "watch", "create", "patch"]
# The event recorder: Kubernetes Events for broken references and failed applies.
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- end -}}
