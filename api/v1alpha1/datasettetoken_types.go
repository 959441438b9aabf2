package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// DatasetteTokenSpec declares a Datasette API token and the Secret it is written to.
//
// Its fields mean what the same `datasette create-token` arguments mean.
// +kubebuilder:validation:XValidation:rule="!has(self.renewBefore) || has(self.expiresAfter)",message="renewBefore needs expiresAfter: a token that never expires is never renewed"
// +kubebuilder:validation:XValidation:rule="!has(self.renewBefore) || !has(self.expiresAfter) || duration(self.renewBefore) < duration(self.expiresAfter)",message="renewBefore must be shorter than expiresAfter"
// +kubebuilder:validation:XValidation:rule="has(self.signingSecretRef) != has(self.signerRef)",message="set exactly one of signerRef (recommended) and signingSecretRef"
type DatasetteTokenSpec struct {
	// actor is the actor id the token authenticates as: Datasette's actor "id"
	// (the ID argument of `datasette create-token`).
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=1024
	// +required
	Actor string `json:"actor"`

	// expiresAfter is the token's lifetime in whole seconds, written as a duration such as
	// "24h", "90m" or "1h30m" (create-token's --expires-after). Absent means the token never
	// expires. Datasette cannot revoke a token, so a short lifetime is the safest choice.
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+h)?([0-9]+m)?([0-9]+s)?$`
	// +kubebuilder:validation:MinLength=2
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule="duration(self) > duration('0s')",message="expiresAfter must be positive"
	// +optional
	ExpiresAfter *metav1.Duration `json:"expiresAfter,omitempty"`

	// renewBefore is how long before expiry the token is re-minted, in whole seconds written as
	// a duration. It must be shorter than expiresAfter. Absent means renewal once two thirds of
	// the lifetime has passed.
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+h)?([0-9]+m)?([0-9]+s)?$`
	// +kubebuilder:validation:MinLength=2
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule="duration(self) > duration('0s')",message="renewBefore must be positive"
	// +optional
	RenewBefore *metav1.Duration `json:"renewBefore,omitempty"`

	// restrictions narrow what the token may do, with the meaning of create-token's
	// -a, -d and -r options. Absent means the token may do whatever its actor may.
	// +optional
	Restrictions *Restrictions `json:"restrictions,omitempty"`

	// signerRef names the DatasetteSigner (in this namespace) or ClusterDatasetteSigner that
	// lends its Datasette instance's signing key, under its policy. Exactly one of signerRef
	// and signingSecretRef is set; signers are recommended, since the key then stays out of
	// the token's namespace.
	// +optional
	SignerRef *SignerReference `json:"signerRef,omitempty"`

	// signingSecretRef names the Secret, in this namespace, that holds the Datasette instance's
	// signing secret (its DATASETTE_SECRET). Exactly one of signerRef and signingSecretRef is set.
	// +optional
	SigningSecretRef *SecretKeyRef `json:"signingSecretRef,omitempty"`

	// secretName is the name of the Secret the token is written to, under the key "token".
	// Absent means the DatasetteToken's own name. The operator never overwrites a Secret
	// it did not create.
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	// +optional
	SecretName string `json:"secretName,omitempty"`

	// secretTemplate holds labels and annotations to put on the output Secret.
	// The DatasetteToken's own labels and annotations are never copied.
	// +optional
	SecretTemplate *SecretTemplate `json:"secretTemplate,omitempty"`

	// rolloutRestartTargets are workloads in this namespace that read the token and are
	// restarted, as `kubectl rollout restart` does, whenever the Secret's token changes after
	// its first issue (renewal, rotation, repair, spec change, renew-now). Use it when the
	// token reaches the workload as an environment variable.
	// +kubebuilder:validation:MaxItems=16
	// +listType=map
	// +listMapKey=kind
	// +listMapKey=name
	// +optional
	RolloutRestartTargets []RolloutRestartTarget `json:"rolloutRestartTargets,omitempty"`

	// suspend stops all minting, renewal and repair of this token while true: the Secret is
	// left as it is, even when its token expires. Setting it back to false resumes.
	// +optional
	Suspend bool `json:"suspend,omitempty"`

	// notAfter is when access ends (RFC 3339). No token is minted after it, and the last
	// token's lifetime is shortened so that it expires at notAfter (in whole seconds).
	// +optional
	NotAfter *metav1.Time `json:"notAfter,omitempty"`

	// deletionPolicy says what happens to the output Secret when the DatasetteToken is
	// deleted: Delete (the default) lets Kubernetes garbage-collect it; Retain keeps it,
	// released from the operator (owner reference and managed-by label removed).
	// +kubebuilder:validation:Enum=Delete;Retain
	// +optional
	DeletionPolicy DeletionPolicy `json:"deletionPolicy,omitempty"`
}

// DeletionPolicy says what happens to the output Secret when its DatasetteToken is deleted.
type DeletionPolicy string

const (
	// DeletionPolicyDelete lets the output Secret go with its DatasetteToken (the default).
	DeletionPolicyDelete DeletionPolicy = "Delete"
	// DeletionPolicyRetain keeps the output Secret, released from the operator.
	DeletionPolicyRetain DeletionPolicy = "Retain"
)

// Kinds a signerRef may name.
const (
	// DatasetteSignerKind is the namespaced signer kind.
	DatasetteSignerKind = "DatasetteSigner"
	// ClusterDatasetteSignerKind is the cluster-scoped signer kind.
	ClusterDatasetteSignerKind = "ClusterDatasetteSigner"
)

// SignerReference names a DatasetteSigner in the token's namespace or a ClusterDatasetteSigner.
type SignerReference struct {
	// kind is DatasetteSigner or ClusterDatasetteSigner.
	// +kubebuilder:validation:Enum=DatasetteSigner;ClusterDatasetteSigner
	// +required
	Kind string `json:"kind"`

	// name is the signer's name.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	// +required
	Name string `json:"name"`
}

// RolloutRestartTarget names a workload, in the DatasetteToken's namespace, to restart when
// the token changes.
type RolloutRestartTarget struct {
	// kind is Deployment, StatefulSet or DaemonSet.
	// +kubebuilder:validation:Enum=Deployment;StatefulSet;DaemonSet
	// +required
	Kind string `json:"kind"`

	// name is the workload's name.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	// +required
	Name string `json:"name"`
}

// Action is a Datasette action name, such as "view-instance" or "insert-row".
// Built-in actions are written into the token as Datasette's abbreviations; other names
// (plugin actions) are written unchanged.
// +kubebuilder:validation:MinLength=1
// +kubebuilder:validation:MaxLength=256
type Action string

// Restrictions limit a token to the listed actions, instance-wide, per database or per
// resource (table or query). In all they hold at most 8 192 entries and actions and 131 072
// characters of names and actions: the operator mints no token with more JSON values or a
// larger payload than that, and the bounds keep what one object costs its memory small.
// +kubebuilder:validation:XValidation:rule="(has(self.all) ? size(self.all) : 0) + (has(self.databases) ? self.databases.map(d, 1 + size(d.actions)).sum() : 0) + (has(self.resources) ? self.resources.map(r, 1 + size(r.actions)).sum() : 0) <= 8192",message="restrictions hold more than 8192 entries and actions in all: the token would hold more JSON values than the operator mints (8192); list fewer restrictions"
// +kubebuilder:validation:XValidation:rule="(has(self.all) ? self.all.map(a, size(a)).sum() : 0) + (has(self.databases) ? self.databases.map(d, size(d.name) + d.actions.map(a, size(a)).sum()).sum() : 0) + (has(self.resources) ? self.resources.map(r, size(r.database) + size(r.resource) + r.actions.map(a, size(a)).sum()).sum() : 0) <= 131072",message="restrictions name more than 131072 characters in all (databases, resources and actions): the token's payload would be over the operator's 64 KiB limit; list fewer or shorter restrictions"
type Restrictions struct {
	// all lists actions allowed across the instance (create-token's -a ACTION).
	// +kubebuilder:validation:MaxItems=64
	// +listType=atomic
	// +optional
	All []Action `json:"all,omitempty"`

	// databases lists actions allowed within one database (create-token's -d DB ACTION).
	// +kubebuilder:validation:MaxItems=1024
	// +listType=map
	// +listMapKey=name
	// +optional
	Databases []DatabaseRestriction `json:"databases,omitempty"`

	// resources lists actions allowed on one table or query (create-token's -r DB RESOURCE ACTION).
	// +kubebuilder:validation:MaxItems=1024
	// +listType=map
	// +listMapKey=database
	// +listMapKey=resource
	// +optional
	Resources []ResourceRestriction `json:"resources,omitempty"`
}

// DatabaseRestriction allows actions within one database.
type DatabaseRestriction struct {
	// name is the database's name.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=1024
	// +required
	Name string `json:"name"`

	// actions are the actions allowed within the database, in order.
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=64
	// +listType=atomic
	// +required
	Actions []Action `json:"actions"`
}

// ResourceRestriction allows actions on one resource (a table or a canned query) of a database.
type ResourceRestriction struct {
	// database is the name of the database holding the resource.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=1024
	// +required
	Database string `json:"database"`

	// resource is the table or query name.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=1024
	// +required
	Resource string `json:"resource"`

	// actions are the actions allowed on the resource, in order.
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=64
	// +listType=atomic
	// +required
	Actions []Action `json:"actions"`
}

// SecretKeyRef selects a key of a Secret in the object's own namespace.
type SecretKeyRef struct {
	// name is the Secret's name.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	// +required
	Name string `json:"name"`

	// key is the key of the Secret's data holding the signing secret. Absent means
	// "DATASETTE_SECRET", so one Secret can feed both Datasette's environment and the operator.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[-._a-zA-Z0-9]+$`
	// +optional
	Key string `json:"key,omitempty"`
}

// SecretTemplate holds metadata to put on the output Secret. Keys follow Kubernetes' rules
// for label and annotation keys (an optional DNS-subdomain prefix and "/", then a name of at
// most 63 characters); keys removed from the template are removed from the Secret.
type SecretTemplate struct {
	// labels to put on the output Secret.
	// +kubebuilder:validation:MaxProperties=64
	// +kubebuilder:validation:XValidation:rule="self.all(k, size(k) <= 317 && k.matches('^([a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$'))",message="label keys must be valid Kubernetes label keys: [prefix/]name, the name at most 63 characters of [-A-Za-z0-9_.], starting and ending alphanumeric"
	// +optional
	Labels map[string]LabelValue `json:"labels,omitempty"`

	// annotations to put on the output Secret. Keys of kubernetes.io/service-account.* are
	// refused: they belong to ServiceAccount token Secrets, which the operator never writes.
	// +kubebuilder:validation:MaxProperties=64
	// +kubebuilder:validation:XValidation:rule="!self.exists(k, k.startsWith('kubernetes.io/service-account.'))",message="kubernetes.io/service-account.* annotations belong to ServiceAccount token Secrets: the operator writes none"
	// +kubebuilder:validation:XValidation:rule="self.all(k, size(k) <= 317 && k.matches('^([a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$'))",message="annotation keys must be valid Kubernetes annotation keys: [prefix/]name, the name at most 63 characters of [-A-Za-z0-9_.], starting and ending alphanumeric"
	// +optional
	Annotations map[string]AnnotationValue `json:"annotations,omitempty"`
}

// LabelValue is a Kubernetes label value: at most 63 characters of [-A-Za-z0-9_.], starting
// and ending alphanumeric, or empty.
// +kubebuilder:validation:MaxLength=63
// +kubebuilder:validation:Pattern=`^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$`
type LabelValue string

// AnnotationValue is an annotation value on the output Secret, at most 4 KiB (64 of them fit
// within Kubernetes' 256 KiB limit on a Secret's annotations).
// +kubebuilder:validation:MaxLength=4096
type AnnotationValue string

// DatasetteTokenStatus reports the token the operator last minted. It never holds the token.
type DatasetteTokenStatus struct {
	// observedGeneration is the metadata.generation the status was computed from; -1 until the
	// operator has seen the object, so that kstatus (Flux, Argo CD, cli-utils) reads a new token
	// as InProgress.
	// +kubebuilder:default=-1
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// conditions hold Ready; Stalled while a person must act; Reconciling while waiting for
	// something time can bring (a signing Secret or signer that does not exist yet); and
	// RestartTargetsReady when rolloutRestartTargets are set.
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// secretName is the Secret the token is written to.
	// +optional
	SecretName string `json:"secretName,omitempty"`

	// issuedAt is when the current token was minted (its "t" claim).
	// +optional
	IssuedAt *metav1.Time `json:"issuedAt,omitempty"`

	// expiresAt is when the current token stops being accepted; absent for a token that never expires.
	// +optional
	ExpiresAt *metav1.Time `json:"expiresAt,omitempty"`

	// renewalTime is when the operator will mint the next token; absent for a token that never
	// expires, is suspended or has ended.
	// +optional
	RenewalTime *metav1.Time `json:"renewalTime,omitempty"`

	// lastRenewRequest is the last value of the datasette.io/renew-requested-at annotation that
	// the operator acted on; a value longer than 64 bytes is recorded as "sha256:" and its
	// digest.
	// +kubebuilder:validation:MaxLength=128
	// +optional
	LastRenewRequest string `json:"lastRenewRequest,omitempty"`

	// lastMintReason says why the current token was minted: issue, renewal, rotation, repair or
	// manual (a renew-now request). A renew-now request right after a manual mint waits for the
	// renewal floor.
	// +optional
	LastMintReason string `json:"lastMintReason,omitempty"`

	// restartedFor is the issue time of the token the rollout restart targets were last
	// restarted (or first started) for; when it differs from issuedAt, a restart is due.
	// +optional
	RestartedFor *metav1.Time `json:"restartedFor,omitempty"`
}

// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=dstok,categories=datasette
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`,priority=1
// +kubebuilder:printcolumn:name="Actor",type=string,JSONPath=`.spec.actor`
// +kubebuilder:printcolumn:name="Secret",type=string,JSONPath=`.status.secretName`
// +kubebuilder:printcolumn:name="Expires",type=string,JSONPath=`.status.expiresAt`
// +kubebuilder:printcolumn:name="Suspended",type=boolean,JSONPath=`.spec.suspend`
// +kubebuilder:printcolumn:name="Signer",type=string,JSONPath=`.spec.signerRef.name`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`

// DatasetteToken is a Datasette API token (dstok_…) that the operator mints, writes into a
// Secret, renews before expiry and re-mints when the signing secret rotates.
type DatasetteToken struct {
	metav1.TypeMeta `json:",inline"`

	// metadata is standard object metadata.
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec declares the token.
	// +required
	Spec DatasetteTokenSpec `json:"spec"`

	// status reports the token last minted.
	// +kubebuilder:default={}
	// +optional
	Status DatasetteTokenStatus `json:"status,omitempty"`
}

// +kubebuilder:object:root=true

// DatasetteTokenList is a list of DatasetteTokens.
type DatasetteTokenList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []DatasetteToken `json:"items"`
}
