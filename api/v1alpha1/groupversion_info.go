// Package v1alpha1 contains the v1alpha1 API of the datasette.io group: DatasetteToken,
// DatasetteSigner and ClusterDatasetteSigner.
// +kubebuilder:object:generate=true
// +groupName=datasette.io
package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

var (
	// GroupVersion is the group and version used to register these objects.
	GroupVersion = schema.GroupVersion{Group: "datasette.io", Version: "v1alpha1"}

	// SchemeBuilder registers this group-version's types with a scheme.
	SchemeBuilder = runtime.NewSchemeBuilder(addKnownTypes)

	// AddToScheme adds the types in this group-version to the given scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)

func addKnownTypes(scheme *runtime.Scheme) error {
	scheme.AddKnownTypes(GroupVersion, &DatasetteToken{}, &DatasetteTokenList{},
		&DatasetteSigner{}, &DatasetteSignerList{}, &ClusterDatasetteSigner{}, &ClusterDatasetteSignerList{})
	metav1.AddToGroupVersion(scheme, GroupVersion)
	return nil
}
