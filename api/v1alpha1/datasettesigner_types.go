package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// SignerSettings are what both signer kinds say about one Datasette instance: how long its
// tokens may live, and what may be minted with its key.
type SignerSettings struct {
	// maxSignedTokensTTL is the instance's max_signed_tokens_ttl setting, in whole seconds
	// written as a duration. Datasette refuses a token older than this whatever its own "d"
	// says, so the operator dates and renews every token by the shorter of the two.
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+h)?([0-9]+m)?([0-9]+s)?$`
	// +kubebuilder:validation:MinLength=2
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule="duration(self) > duration('0s')",message="maxSignedTokensTTL must be positive"
	// +optional
	MaxSignedTokensTTL *metav1.Duration `json:"maxSignedTokensTTL,omitempty"`

	// policy limits the tokens minted with this signer. Absent means no limits.
	// +optional
	Policy *SigningPolicy `json:"policy,omitempty"`

	// datasetteVersion is the Datasette release the instance runs, such as "1.0a19". Tokens
	// of this signer are minted as that release's own `datasette create-token` mints them
	// (its abbreviations), and a token that release would misread (restrictions it ignores,
	// actions it does not know) is refused with reason UnsupportedByDatasette. Releases newer
	// than the newest the operator knows take the newest rules. Absent: the newest release.
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:Pattern=`^[0-9]{1,4}\.[0-9]{1,4}(\.[0-9]{1,4})?((a|b|rc)[0-9]{1,4})?$`
	// +optional
	DatasetteVersion string `json:"datasetteVersion,omitempty"`

	// pluginActions are the actions the instance's plugins register, with their
	// abbreviations: tokens may name them, and they are abbreviated as the instance would.
	// +kubebuilder:validation:MaxItems=64
	// +listType=map
	// +listMapKey=name
	// +optional
	PluginActions []PluginAction `json:"pluginActions,omitempty"`

	// revocationPolicy says what happens to a token this signer no longer allows (its policy
	// tightened, its namespaceSelector no longer selects the namespace, or the signer was
	// deleted): Keep (the default) stops renewing it and leaves it in its Secret until it
	// expires; Remove also deletes the token's owned Secret, with an event.
	// +kubebuilder:validation:Enum=Keep;Remove
	// +optional
	RevocationPolicy RevocationPolicy `json:"revocationPolicy,omitempty"`
	// probe, when set, has the operator ask the live instance whether it accepts this key,
	// which release it runs and which max_signed_tokens_ttl it enforces (status.instance and
	// the InstanceVerified condition); a key rotation then waits for the instance. A
	// DatasetteSigner's probe is refused unless the manager runs with --allow-namespaced-probes.
	// +optional
	Probe *SignerProbe `json:"probe,omitempty"`

	// rolloutRestartTargets are the Datasette workloads that read this key (as
	// DATASETTE_SECRET), restarted as `kubectl rollout restart` does when the key changes. They
	// are in the signer's namespace (for a ClusterDatasetteSigner: its Secret's namespace).
	// +kubebuilder:validation:MaxItems=16
	// +listType=map
	// +listMapKey=kind
	// +listMapKey=name
	// +optional
	RolloutRestartTargets []RolloutRestartTarget `json:"rolloutRestartTargets,omitempty"`
}

// PluginAction is an action a Datasette plugin registers.
type PluginAction struct {
	// name is the action's name, such as "upload-csvs".
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=128
	// +kubebuilder:validation:Pattern=`^[^\s]+$`
	// +required
	Name string `json:"name"`

	// abbreviation is the short form the plugin registers, written into tokens in place of
	// the name. Absent: the plugin registers none, and the name is written in full.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:Pattern=`^[^\s]+$`
	// +optional
	Abbreviation string `json:"abbreviation,omitempty"`
}

// RevocationPolicy says what happens to a token its signer no longer allows.
type RevocationPolicy string

const (
	// RevocationPolicyKeep leaves the token in its Secret until it expires (the default).
	RevocationPolicyKeep RevocationPolicy = "Keep"
	// RevocationPolicyRemove deletes the token's owned Secret.
	RevocationPolicyRemove RevocationPolicy = "Remove"
)

// SigningPolicy limits what DatasetteTokens may mint with a signer. A token that breaks a rule
// is refused (Ready=False, reason PolicyViolation) and nothing is written.
type SigningPolicy struct {
	// actors limits the actor ids tokens may carry.
	// +optional
	Actors *ActorPolicy `json:"actors,omitempty"`

	// maxExpiresAfter is the longest expiresAfter a token may ask for. When set, a token must
	// set expiresAfter, no longer than this.
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+h)?([0-9]+m)?([0-9]+s)?$`
	// +kubebuilder:validation:MinLength=2
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule="duration(self) > duration('0s')",message="maxExpiresAfter must be positive"
	// +optional
	MaxExpiresAfter *metav1.Duration `json:"maxExpiresAfter,omitempty"`

	// requireRestrictions, when true, refuses tokens without at least one restriction.
	// +optional
	RequireRestrictions bool `json:"requireRestrictions,omitempty"`

	// allowedActions, when set, lists every action a token may name in its restrictions.
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=128
	// +listType=set
	// +optional
	AllowedActions []Action `json:"allowedActions,omitempty"`

	// minRenewalInterval is the shortest time between two renewals of a token: a token whose
	// spec would renew sooner is refused (RenewalTooFrequent). It can raise the operator's
	// --min-renewal-interval, never lower it.
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+h)?([0-9]+m)?([0-9]+s)?$`
	// +kubebuilder:validation:MinLength=2
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule="duration(self) > duration('0s')",message="minRenewalInterval must be positive"
	// +optional
	MinRenewalInterval *metav1.Duration `json:"minRenewalInterval,omitempty"`
}

// MaxActorPatternBytes bounds the length in bytes (UTF-8) of all of one policy's actor
// patterns, allowed and denied together: what matching an actor id costs the operator grows
// with it. It is the number in ActorPolicy's CEL rule.
const MaxActorPatternBytes = 16384

// ActorPolicy limits actor ids with glob patterns that match the whole actor id: * is any run
// of characters ("/" included), ? one character, [a-z] or [^a-z] a class, \c the character c.
// All its patterns, allowed and denied, may be at most 16384 bytes long together.
// +kubebuilder:validation:XValidation:rule="(has(self.allowed) ? self.allowed.map(p, size(bytes(p))).sum() : 0) + (has(self.denied) ? self.denied.map(p, size(bytes(p))).sum() : 0) <= 16384",message="the actor patterns, allowed and denied, may be at most 16384 bytes long together"
type ActorPolicy struct {
	// allowed lists the patterns an actor id must match. Absent means any actor.
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=64
	// +listType=set
	// +optional
	Allowed []ActorPattern `json:"allowed,omitempty"`

	// denied lists patterns no actor id may match; checked before allowed.
	// +kubebuilder:validation:MaxItems=64
	// +listType=set
	// +optional
	Denied []ActorPattern `json:"denied,omitempty"`
}

// ActorPattern is a glob pattern for whole actor ids: * is any run of characters ("/"
// included), ? one character, [abc], [a-z] or [^a-z] one character of a class (write ], - and
// \ escaped inside it), \c the character c. A malformed pattern is refused.
// +kubebuilder:validation:MinLength=1
// +kubebuilder:validation:MaxLength=1024
// +kubebuilder:validation:XValidation:rule="self.matches(r'^([^\\[\\\\]|\\\\.|\\[([\\^!]([^\\]\\\\\\-]|\\\\.)|([^\\]\\\\\\-\\^!]|\\\\.))(-([^\\]\\\\\\-]|\\\\.))?(([^\\]\\\\\\-]|\\\\.)(-([^\\]\\\\\\-]|\\\\.))?)*\\])*$')",message="malformed actor pattern: close every [ with ], escape ] - and backslash inside a class, and do not end with a lone backslash"
type ActorPattern string

// DatasetteSignerSpec describes one Datasette instance's signing key, kept in a Secret of the
// signer's namespace, for the DatasetteTokens of that namespace.
type DatasetteSignerSpec struct {
	// secretRef names the Secret, in this namespace, holding the instance's DATASETTE_SECRET.
	// +required
	SecretRef SecretKeyRef `json:"secretRef"`

	SignerSettings `json:",inline"`
}

// ClusterDatasetteSignerSpec describes one Datasette instance's signing key, kept in a Secret
// of any namespace (the platform team's), lent to DatasetteTokens in the namespaces selected.
type ClusterDatasetteSignerSpec struct {
	// secretRef names the Secret holding the instance's DATASETTE_SECRET, with its namespace.
	// +required
	SecretRef NamespacedSecretKeyRef `json:"secretRef"`

	// namespaceSelector selects the namespaces whose DatasetteTokens may use this signer;
	// {} selects every namespace.
	// +required
	NamespaceSelector *metav1.LabelSelector `json:"namespaceSelector"`

	SignerSettings `json:",inline"`
}

// NamespacedSecretKeyRef selects a key of a Secret in a given namespace.
type NamespacedSecretKeyRef struct {
	// namespace is the Secret's namespace.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	// +required
	Namespace string `json:"namespace"`

	SecretKeyRef `json:",inline"`
}

// DatasetteSignerStatus reports whether the signer can sign. It never holds the key.
type DatasetteSignerStatus struct {
	// observedGeneration is the metadata.generation the status was computed from; -1 until the
	// operator has seen the object.
	// +kubebuilder:default=-1
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// conditions hold Ready (reasons Ready, SecretNotFound, KeyMissing), Reconciling while the
	// Secret is awaited, and Stalled while a person must act.
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// instance is what the last probe learned about the instance (spec.probe).
	// +optional
	Instance *InstanceStatus `json:"instance,omitempty"`

	// restartedForKey is the resourceVersion of the signer's Secret at which its key took the
	// value that spec.rolloutRestartTargets were last restarted for (never the key).
	// +kubebuilder:validation:MaxLength=64
	// +optional
	RestartedForKey string `json:"restartedForKey,omitempty"`
}

// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=dssigner,categories=datasette
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`,priority=1
// +kubebuilder:printcolumn:name="Secret",type=string,JSONPath=`.spec.secretRef.name`
// +kubebuilder:printcolumn:name="Max TTL",type=string,JSONPath=`.spec.maxSignedTokensTTL`
// +kubebuilder:printcolumn:name="Datasette",type=string,JSONPath=`.spec.datasetteVersion`
// +kubebuilder:printcolumn:name="Version",type=string,JSONPath=`.status.instance.version`
// +kubebuilder:printcolumn:name="Instance",type=string,JSONPath=`.status.conditions[?(@.type=="InstanceVerified")].reason`
// +kubebuilder:printcolumn:name="Key",type=string,JSONPath=`.status.instance.keyState`,priority=1
// +kubebuilder:printcolumn:name="Probed",type=date,JSONPath=`.status.instance.probedAt`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`

// DatasetteSigner lends one Datasette instance's signing key, kept in a Secret of its
// namespace, to the DatasetteTokens of that namespace, under a policy.
type DatasetteSigner struct {
	metav1.TypeMeta `json:",inline"`

	// metadata is standard object metadata.
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec describes the signing key and the policy.
	// +required
	Spec DatasetteSignerSpec `json:"spec"`

	// status reports whether the signer can sign.
	// +kubebuilder:default={}
	// +optional
	Status DatasetteSignerStatus `json:"status,omitempty"`
}

// +kubebuilder:object:root=true

// DatasetteSignerList is a list of DatasetteSigners.
type DatasetteSignerList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []DatasetteSigner `json:"items"`
}

// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=cdssigner,categories=datasette
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`,priority=1
// +kubebuilder:printcolumn:name="Namespace",type=string,JSONPath=`.spec.secretRef.namespace`
// +kubebuilder:printcolumn:name="Secret",type=string,JSONPath=`.spec.secretRef.name`
// +kubebuilder:printcolumn:name="Max TTL",type=string,JSONPath=`.spec.maxSignedTokensTTL`
// +kubebuilder:printcolumn:name="Datasette",type=string,JSONPath=`.spec.datasetteVersion`
// +kubebuilder:printcolumn:name="Version",type=string,JSONPath=`.status.instance.version`
// +kubebuilder:printcolumn:name="Instance",type=string,JSONPath=`.status.conditions[?(@.type=="InstanceVerified")].reason`
// +kubebuilder:printcolumn:name="Key",type=string,JSONPath=`.status.instance.keyState`,priority=1
// +kubebuilder:printcolumn:name="Probed",type=date,JSONPath=`.status.instance.probedAt`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`

// ClusterDatasetteSigner lends one Datasette instance's signing key, kept in a Secret of the
// platform team's namespace, to DatasetteTokens in the namespaces it selects, under a policy.
type ClusterDatasetteSigner struct {
	metav1.TypeMeta `json:",inline"`

	// metadata is standard object metadata.
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec describes the signing key, the namespaces served and the policy.
	// +required
	Spec ClusterDatasetteSignerSpec `json:"spec"`

	// status reports whether the signer can sign.
	// +kubebuilder:default={}
	// +optional
	Status DatasetteSignerStatus `json:"status,omitempty"`
}

// +kubebuilder:object:root=true

// ClusterDatasetteSignerList is a list of ClusterDatasetteSigners.
type ClusterDatasetteSignerList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ClusterDatasetteSigner `json:"items"`
}
