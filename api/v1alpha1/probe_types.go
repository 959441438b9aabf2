package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// SignerProbe says where the signer's live Datasette instance answers, so that the operator
// can ask it whether it accepts the signer's key, which release it runs and which token
// settings it enforces.
type SignerProbe struct {
	// url is the instance's base URL, http or https, by a fully-qualified name (for example
	// http://datasette.prod.svc.cluster.local:8001: a shorter name is completed by the
	// operator's DNS search path, and datasette.prod.svc could be a Service of a namespace
	// named svc). The operator GETs /-/actor.json, /-/versions.json and /-/settings.json below
	// it, with a token of its own that expires in 60 s, and connects only to addresses its
	// probe address policy allows.
	// +kubebuilder:validation:MinLength=8
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:Pattern=`^https?://[^\s?#]+$`
	// +kubebuilder:validation:XValidation:rule="isURL(self)",message="url must be an absolute http or https URL"
	// +required
	URL string `json:"url"`

	// interval is how often the instance is probed (every 5 s instead while a rotation waits
	// for it). Default 5m, at least 10s.
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+h)?([0-9]+m)?([0-9]+s)?$`
	// +kubebuilder:validation:MinLength=2
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('10s')",message="interval must be at least 10s"
	// +kubebuilder:validation:XValidation:rule="duration(self) <= duration('24h')",message="interval must be at most 24h"
	// +kubebuilder:default="5m"
	// +optional
	Interval *metav1.Duration `json:"interval,omitempty"`

	// caBundle holds the PEM certificates an https instance's chain must end in; absent means
	// the system's roots.
	// +kubebuilder:validation:MaxLength=65536
	// +optional
	CABundle string `json:"caBundle,omitempty"`

	// actor is the actor id of the probe token; default datasette-token-operator.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	// +optional
	Actor string `json:"actor,omitempty"`

	// rotationTimeout bounds how long, after the signer's key changed, its tokens keep the
	// token signed with the previous key while the instance does not yet accept the new one.
	// After it, they are re-minted anyway. Default 10m.
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+h)?([0-9]+m)?([0-9]+s)?$`
	// +kubebuilder:validation:MinLength=2
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('10s')",message="rotationTimeout must be at least 10s"
	// +kubebuilder:validation:XValidation:rule="duration(self) <= duration('24h')",message="rotationTimeout must be at most 24h"
	// +kubebuilder:default="10m"
	// +optional
	RotationTimeout *metav1.Duration `json:"rotationTimeout,omitempty"`
}

// KeyState says what the signer's instance makes of the signer's current key, for its tokens.
// +kubebuilder:validation:Enum=Accepted;Rejected;RotationPending;RotationTimedOut
type KeyState string

// Key states.
const (
	// KeyStateAccepted: the instance accepts the key of keyResourceVersion.
	KeyStateAccepted KeyState = "Accepted"
	// KeyStateRejected: the instance rejects the key, and never accepted one of this signer's
	// since the operator started watching: tokens mint nothing.
	KeyStateRejected KeyState = "Rejected"
	// KeyStateRotationPending: the key changed after the instance accepted the previous one,
	// and the instance does not accept the new one yet: tokens keep their token.
	KeyStateRotationPending KeyState = "RotationPending"
	// KeyStateRotationTimedOut: the instance did not accept the new key within
	// probe.rotationTimeout: tokens were re-minted anyway.
	KeyStateRotationTimedOut KeyState = "RotationTimedOut"
)

// InstanceStatus is what the last probe learned about the signer's Datasette instance.
type InstanceStatus struct {
	// version is the Datasette release the instance reports.
	// +kubebuilder:validation:MaxLength=64
	// +optional
	Version string `json:"version,omitempty"`

	// maxSignedTokensTTL is the instance's max_signed_tokens_ttl; absent when it sets none or
	// it is not known.
	// +optional
	MaxSignedTokensTTL *metav1.Duration `json:"maxSignedTokensTTL,omitempty"`

	// allowSignedTokens is the instance's allow_signed_tokens; absent when not known.
	// +optional
	AllowSignedTokens *bool `json:"allowSignedTokens,omitempty"`

	// probedAt is when the instance was last probed.
	// +optional
	ProbedAt *metav1.Time `json:"probedAt,omitempty"`

	// keyState says what the instance makes of the signer's current key, for its tokens.
	// +optional
	KeyState KeyState `json:"keyState,omitempty"`

	// keyResourceVersion is the resourceVersion of the signer's Secret whose key keyState
	// describes (never the key).
	// +kubebuilder:validation:MaxLength=64
	// +optional
	KeyResourceVersion string `json:"keyResourceVersion,omitempty"`

	// rotationStartedAt is when the operator saw the key change while the instance accepted
	// the previous one; set while keyState is RotationPending or RotationTimedOut.
	// +optional
	RotationStartedAt *metav1.Time `json:"rotationStartedAt,omitempty"`
}
