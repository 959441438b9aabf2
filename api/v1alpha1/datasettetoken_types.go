package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// DatasetteTokenSpec declares a Datasette API token and the Secret it is written to.
//
// Its fields mean what the same `datasette create-token` arguments mean.
// +kubebuilder:validation:XValidation:rule="!has(self.renewBefore) || has(self.expiresAfter)",message="renewBefore needs expiresAfter: a token that never expires is never renewed"
// +kubebuilder:validation:XValidation:rule="!has(self.renewBefore) || !has(self.expiresAfter) || duration(self.renewBefore) < duration(self.expiresAfter)",message="renewBefore must be shorter than expiresAfter"
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

	// signingSecretRef names the Secret, in this namespace, that holds the Datasette instance's
	// signing secret (its DATASETTE_SECRET).
	// +required
	SigningSecretRef SecretKeyRef `json:"signingSecretRef"`

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
}

// Action is a Datasette action name, such as "view-instance" or "insert-row".
// Built-in actions are written into the token as Datasette's abbreviations; other names
// (plugin actions) are written unchanged.
// +kubebuilder:validation:MinLength=1
// +kubebuilder:validation:MaxLength=256
type Action string

// Restrictions limit a token to the listed actions, instance-wide, per database or per
// resource (table or query).
type Restrictions struct {
	// all lists actions allowed across the instance (create-token's -a ACTION).
	// +listType=atomic
	// +optional
	All []Action `json:"all,omitempty"`

	// databases lists actions allowed within one database (create-token's -d DB ACTION).
	// +listType=map
	// +listMapKey=name
	// +optional
	Databases []DatabaseRestriction `json:"databases,omitempty"`

	// resources lists actions allowed on one table or query (create-token's -r DB RESOURCE ACTION).
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
	// +listType=atomic
	// +required
	Actions []Action `json:"actions"`
}

// SecretKeyRef selects a key of a Secret in the DatasetteToken's namespace.
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

// SecretTemplate holds metadata to put on the output Secret.
type SecretTemplate struct {
	// labels to put on the output Secret.
	// +optional
	Labels map[string]string `json:"labels,omitempty"`

	// annotations to put on the output Secret.
	// +optional
	Annotations map[string]string `json:"annotations,omitempty"`
}

// DatasetteTokenStatus reports the token the operator last minted. It never holds the token.
type DatasetteTokenStatus struct {
	// observedGeneration is the metadata.generation the status was computed from.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// conditions hold the Ready condition (and Stalled while a person must act).
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

	// renewalTime is when the operator will mint the next token; absent for a token that never expires.
	// +optional
	RenewalTime *metav1.Time `json:"renewalTime,omitempty"`
}

// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=dstok,categories=datasette
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`,priority=1
// +kubebuilder:printcolumn:name="Actor",type=string,JSONPath=`.spec.actor`
// +kubebuilder:printcolumn:name="Secret",type=string,JSONPath=`.status.secretName`
// +kubebuilder:printcolumn:name="Expires",type=string,JSONPath=`.status.expiresAt`
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
