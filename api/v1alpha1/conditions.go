package v1alpha1

// The conditions the operator writes on DatasetteTokens and signers, their reasons, and the
// annotations people write to ask it for something. They are part of the API: the kubectl
// plugin, alerts, GitOps health checks and people's scripts read them.

// Condition types, in the style of Flux and kstatus: Ready says whether the object does its job;
// Reconciling is set beside Ready=False while waiting for something time can bring (kstatus:
// InProgress); Stalled beside Ready=False while only a person can fix what is wrong (kstatus:
// Failed).
const (
	// ConditionReady is True while the output Secret holds a valid token for the current spec
	// (for a signer: while it can sign).
	ConditionReady = "Ready"
	// ConditionReconciling is True while the operator waits for something that may still come.
	ConditionReconciling = "Reconciling"
	// ConditionStalled is True while reconciliation cannot progress without a person's action.
	ConditionStalled = "Stalled"
	// ConditionRestartTargetsReady reports the last restart of spec.rolloutRestartTargets.
	ConditionRestartTargetsReady = "RestartTargetsReady"
)

// Reasons of a DatasetteToken's Ready condition.
const (
	// ReasonIssued: the output Secret holds a valid token for the current spec.
	ReasonIssued = "Issued"
	// ReasonSuspended: spec.suspend is set; nothing is minted.
	ReasonSuspended = "Suspended"
	// ReasonEnded: spec.notAfter has passed; nothing more is minted.
	ReasonEnded = "Ended"
	// ReasonSigningSecretNotFound: the signing Secret does not exist (yet).
	ReasonSigningSecretNotFound = "SigningSecretNotFound"
	// ReasonSigningKeyMissing: the signing Secret lacks the key, or the key is empty.
	ReasonSigningKeyMissing = "SigningKeyMissing"
	// ReasonSignerNotFound: the signer named by spec.signerRef does not exist (yet).
	ReasonSignerNotFound = "SignerNotFound"
	// ReasonSignerNotReady: the signer cannot sign: its Secret or key is missing.
	ReasonSignerNotReady = "SignerNotReady"
	// ReasonNamespaceNotAllowed: the ClusterDatasetteSigner does not select this namespace.
	ReasonNamespaceNotAllowed = "NamespaceNotAllowed"
	// ReasonPolicyViolation: the spec breaks the signer's policy.
	ReasonPolicyViolation = "PolicyViolation"
	// ReasonSecretConflict: the output Secret exists and belongs to someone else.
	ReasonSecretConflict = "SecretConflict"
	// ReasonInvalidSpec: the spec cannot be minted as it is.
	ReasonInvalidSpec = "InvalidSpec"
	// ReasonSecretRejected: the API server refused to write the output Secret.
	ReasonSecretRejected = "SecretRejected"
)

// Reasons of the RestartTargetsReady condition.
const (
	// ReasonRestarted: every rollout restart target was restarted for the current token.
	ReasonRestarted = "Restarted"
	// ReasonTargetNotFound: a rollout restart target does not exist.
	ReasonTargetNotFound = "TargetNotFound"
	// ReasonTargetRejected: the API server refused to patch a rollout restart target (RBAC, say).
	ReasonTargetRejected = "TargetRejected"
)

// Reasons of a signer's Ready condition.
const (
	// ReasonSignerReady: the signer's Secret holds a key.
	ReasonSignerReady = "Ready"
	// ReasonSecretNotFound: the signer's Secret does not exist (yet).
	ReasonSecretNotFound = "SecretNotFound"
	// ReasonKeyMissing: the signer's Secret lacks the key, or it is empty.
	ReasonKeyMissing = "KeyMissing"
)

// Reasons of a DatasetteToken's Ready condition about its signer's live instance.
const (
	// ReasonInstanceRejectsKey: the signer's instance rejects the signer's key, and never
	// accepted it; nothing is minted until the key or the instance is fixed.
	ReasonInstanceRejectsKey = "InstanceRejectsKey"
	// ReasonRotationPending: the signer's key changed and its instance does not accept the new
	// one yet: the Secret keeps the token signed with the previous key, which the instance
	// still accepts.
	ReasonRotationPending = "RotationPending"
)

// Reasons of a DatasetteToken's Ready condition about the signer's Datasette release.
const (
	// ReasonUnsupportedByDatasette: the Datasette release of the signer's instance would misread
	// the token (it ignores restrictions, or fails on an action it does not know); nothing is
	// minted.
	ReasonUnsupportedByDatasette = "UnsupportedByDatasette"
)

// Reasons of the tenancy rules: the renewal floor, signers' policies and the restart gate.
const (
	// ReasonRenewalTooFrequent: the spec would renew the token more often than the renewal floor.
	ReasonRenewalTooFrequent = "RenewalTooFrequent"
	// ReasonInvalidPolicy: a signer's policy holds a malformed actor pattern, or actor patterns
	// longer together than the CRD allows (signer's Ready).
	ReasonInvalidPolicy = "InvalidPolicy"
	// ReasonRestartDeferred: the rollout restart targets were restarted less than the renewal
	// floor ago; the restart for the current token comes at the end of that interval.
	ReasonRestartDeferred = "RestartDeferred"
)

// ConditionInstanceVerified reports what the signer's live instance said at the last probe.
const ConditionInstanceVerified = "InstanceVerified"

// Reasons of a signer's InstanceVerified condition.
const (
	// ReasonKeyAccepted: the instance accepts the signer's key and agrees with its spec.
	ReasonKeyAccepted = "KeyAccepted"
	// ReasonKeyRejected: the instance does not accept a token signed with the signer's key.
	ReasonKeyRejected = "KeyRejected"
	// ReasonUnreachable: the instance did not answer as a Datasette instance does.
	ReasonUnreachable = "Unreachable"
	// ReasonSignedTokensDisabled: the instance's allow_signed_tokens setting is off.
	ReasonSignedTokensDisabled = "SignedTokensDisabled"
	// ReasonVersionMismatch: spec.datasetteVersion is not the release the instance runs.
	ReasonVersionMismatch = "VersionMismatch"
	// ReasonTTLMismatch: spec.maxSignedTokensTTL is longer than the instance's.
	ReasonTTLMismatch = "TTLMismatch"
	// ReasonProbeRefused: a DatasetteSigner's probe, while the manager does not run with
	// --allow-namespaced-probes; no request is made.
	ReasonProbeRefused = "ProbeRefused"
)

// Annotations people write on a DatasetteToken.
const (
	// AnnotationRenewRequestedAt on a DatasetteToken asks for a new token now; each new value
	// mints once (status.lastRenewRequest records the last one served).
	AnnotationRenewRequestedAt = "datasette.io/renew-requested-at"
)
