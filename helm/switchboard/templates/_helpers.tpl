{{/*
Names, labels and shared values of the Switchboard chart. Every template takes its names and
labels from here, so no label block is written twice.
*/}}

{{/* The chart's name. */}}
{{- define "switchboard.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The release's full name: the release name, with the chart name unless it holds it. */}}
{{- define "switchboard.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* A component's object name: (dict "root" $ "component" "operator"). */}}
{{- define "switchboard.componentName" -}}
{{- printf "%s-%s" (include "switchboard.fullname" .root) .component | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Selector labels of a component: (dict "root" $ "component" "operator"). */}}
{{- define "switchboard.selectorLabels" -}}
app.kubernetes.io/name: {{ include "switchboard.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* All labels of a component's objects: (dict "root" $ "component" "operator"). */}}
{{- define "switchboard.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "switchboard.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/part-of: switchboard
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
{{- with .root.Values.global.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* The operator's ServiceAccount. */}}
{{- define "switchboard.serviceAccountName" -}}
{{- if .Values.operator.serviceAccount.create -}}
{{- default (include "switchboard.componentName" (dict "root" . "component" "operator")) .Values.operator.serviceAccount.name -}}
{{- else -}}
{{- required "operator.serviceAccount.name is required when operator.serviceAccount.create is false" .Values.operator.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* An image reference from (dict "repository" r "tag" t "digest" d) and the chart. */}}
{{- define "switchboard.imageRef" -}}
{{- if .digest -}}
{{- printf "%s@%s" .repository .digest -}}
{{- else -}}
{{- printf "%s:%s" .repository .tag -}}
{{- end -}}
{{- end -}}

{{/* The Switchboard image (operator and sidecar unless the sidecar names its own). */}}
{{- define "switchboard.image" -}}
{{- $image := .Values.global.image -}}
{{- include "switchboard.imageRef" (dict "repository" $image.repository "tag" (default .Chart.AppVersion $image.tag) "digest" $image.digest) -}}
{{- end -}}

{{/* The sidecar's image: sidecar.image fields, else the Switchboard image. */}}
{{- define "switchboard.sidecarImage" -}}
{{- $global := .Values.global.image -}}
{{- $own := .Values.sidecar.image -}}
{{- if or $own.repository $own.tag -}}
{{- $tag := default (default .Chart.AppVersion $global.tag) $own.tag -}}
{{- include "switchboard.imageRef" (dict "repository" (default $global.repository $own.repository) "tag" $tag "digest" "") -}}
{{- else -}}
{{- include "switchboard.image" . -}}
{{- end -}}
{{- end -}}

{{/* The ledger's Redis URL, or nothing when there is none. */}}
{{- define "switchboard.ledgerURL" -}}
{{- if .Values.redis.externalURL -}}
{{- .Values.redis.externalURL -}}
{{- else if .Values.redis.enabled -}}
{{- printf "redis://%s.%s.svc:%d/0" (include "switchboard.componentName" (dict "root" . "component" "redis")) .Release.Namespace (int .Values.redis.port) -}}
{{- end -}}
{{- end -}}

{{/* The Secret holding the webhook's serving certificate (ca.crt, tls.crt, tls.key). */}}
{{- define "switchboard.webhookSecretName" -}}
{{- printf "%s-tls" (include "switchboard.componentName" (dict "root" . "component" "webhook")) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Where the injector config file and the webhook certificate are mounted in the operator. */}}
{{- define "switchboard.configDir" -}}/etc/switchboard/config{{- end -}}
{{- define "switchboard.certDir" -}}/etc/switchboard/tls{{- end -}}

{{/* The DNS names and IPs the webhook's serving certificate must hold, as a dict. */}}
{{- define "switchboard.webhookCertNames" -}}
{{- $service := include "switchboard.componentName" (dict "root" . "component" "webhook") -}}
{{- $dns := list $service (printf "%s.%s" $service .Release.Namespace) (printf "%s.%s.svc" $service .Release.Namespace) (printf "%s.%s.svc.cluster.local" $service .Release.Namespace) -}}
{{- $ips := list -}}
{{- with .Values.webhook.url -}}
{{- $host := (urlParse .).hostname -}}
{{- if or (regexMatch "^[0-9.]+$" $host) (contains ":" $host) -}}
{{- $ips = append $ips $host -}}
{{- else -}}
{{- $dns = append $dns $host -}}
{{- end -}}
{{- end -}}
{{- toYaml (dict "cn" (printf "%s.%s.svc" $service .Release.Namespace) "dns" $dns "ips" $ips) -}}
{{- end -}}

{{/*
The webhook's CA and serving certificate (base64, as in a Secret's data) generated by the chart:
those of the existing Secret when it holds all three for the same names and is valid for 30 more
days (so an upgrade does not rotate them), else new ones. Computed once per render and kept
under .Values, because the Secret and the webhook configuration must share one CA.
*/}}
{{- define "switchboard.webhookTLS" -}}
{{- if not (hasKey .Values "__webhookTLS") -}}
{{- $names := include "switchboard.webhookCertNames" . | fromYaml -}}
{{- $namesKey := concat $names.dns $names.ips | join "," | sha256sum -}}
{{- $days := int .Values.webhook.certificate.validityDays -}}
{{- $secret := lookup "v1" "Secret" .Release.Namespace (include "switchboard.webhookSecretName" .) -}}
{{- $data := dig "data" dict $secret -}}
{{- $annotations := dig "metadata" "annotations" dict $secret -}}
{{- $notAfter := get $annotations "switchboard.dev/not-after" -}}
{{- $fresh := and $notAfter (gt ((toDate "2006-01-02T15:04:05Z07:00" $notAfter).Unix) (now | dateModify "+720h").Unix) -}}
{{- $tls := dict -}}
{{- if and (get $data "ca.crt") (get $data "tls.crt") (get $data "tls.key") $fresh (eq (get $annotations "switchboard.dev/cert-names") $namesKey) -}}
{{- $tls = dict "ca.crt" (get $data "ca.crt") "tls.crt" (get $data "tls.crt") "tls.key" (get $data "tls.key") "notAfter" $notAfter -}}
{{- else -}}
{{- $ca := genCA (printf "%s-webhook-ca" (include "switchboard.fullname" .)) $days -}}
{{- $cert := genSignedCert $names.cn $names.ips $names.dns $days $ca -}}
{{- $expires := now | dateModify (printf "+%dh" (mul $days 24)) | date "2006-01-02T15:04:05Z07:00" -}}
{{- $tls = dict "ca.crt" ($ca.Cert | b64enc) "tls.crt" ($cert.Cert | b64enc) "tls.key" ($cert.Key | b64enc) "notAfter" $expires -}}
{{- end -}}
{{- $_ := set $tls "namesKey" $namesKey -}}
{{- $_ := set .Values "__webhookTLS" $tls -}}
{{- end -}}
{{- toYaml (get .Values "__webhookTLS") -}}
{{- end -}}

{{/* The path the operator serves pod injection on (kopf: "/" + the handler's id). */}}
{{- define "switchboard.webhookPath" -}}/inject{{- end -}}
