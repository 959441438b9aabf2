package rbac

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	datasettev1alpha1 "github.com/datasette-token-operator/datasette-token-operator/api/v1alpha1"
)

// aggregate fills the ClusterRole name's rules from the ClusterRoles its aggregationRule selects,
// as kube-controller-manager's clusterrole-aggregation controller does (envtest runs no
// controller-manager, so the built-in admin, edit and view roles stay empty otherwise): the rules of
// every selected role, in name order, each once. The role's previous rules come back at cleanup.
func aggregate(t *testing.T, name string) {
	t.Helper()
	ctx := context.Background()
	var role rbacv1.ClusterRole
	if err := admin.Get(ctx, client.ObjectKey{Name: name}, &role); err != nil {
		t.Fatalf("getting ClusterRole %s: %v", name, err)
	}
	if role.AggregationRule == nil {
		t.Fatalf("ClusterRole %s has no aggregationRule", name)
	}
	var rules []rbacv1.PolicyRule
	for _, sel := range role.AggregationRule.ClusterRoleSelectors {
		s, err := metav1.LabelSelectorAsSelector(&sel)
		if err != nil {
			t.Fatal(err)
		}
		var list rbacv1.ClusterRoleList
		if err := admin.List(ctx, &list, client.MatchingLabelsSelector{Selector: s}); err != nil {
			t.Fatal(err)
		}
		slices.SortFunc(list.Items, func(a, b rbacv1.ClusterRole) int { return strings.Compare(a.Name, b.Name) })
		for _, r := range list.Items {
			if r.Name == name {
				continue
			}
			for _, rule := range r.Rules {
				if !slices.ContainsFunc(rules, func(have rbacv1.PolicyRule) bool { return equality.Semantic.DeepEqual(have, rule) }) {
					rules = append(rules, rule)
				}
			}
		}
	}
	previous := role.Rules
	role.Rules = rules
	if err := admin.Update(ctx, &role); err != nil {
		t.Fatalf("aggregating ClusterRole %s: %v", name, err)
	}
	t.Cleanup(func() {
		var r rbacv1.ClusterRole
		if err := admin.Get(ctx, client.ObjectKey{Name: name}, &r); err == nil {
			r.Rules = previous
			if err := admin.Update(ctx, &r); err != nil {
				t.Errorf("restoring ClusterRole %s: %v", name, err)
			}
		}
	})
}

// userClient is a client that acts as user (impersonation), with no group but system:authenticated.
func userClient(t *testing.T, user string) client.Client {
	t.Helper()
	cfg := rest.CopyConfig(adminCfg)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: user, Groups: []string{"system:authenticated"}}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// bind binds user to the built-in ClusterRole role, in ns, or cluster-wide when ns is "".
func bind(t *testing.T, ns, user, role string) {
	t.Helper()
	ref := rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role}
	subjects := []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: user}}
	meta := metav1.ObjectMeta{Namespace: ns, Name: user + "-" + role}
	var obj client.Object = &rbacv1.RoleBinding{ObjectMeta: meta, RoleRef: ref, Subjects: subjects}
	if ns == "" {
		obj = &rbacv1.ClusterRoleBinding{ObjectMeta: meta, RoleRef: ref, Subjects: subjects}
	}
	if err := admin.Create(context.Background(), obj); err != nil {
		t.Fatalf("binding %s to %s: %v", user, role, err)
	}
	t.Cleanup(func() { _ = admin.Delete(context.Background(), obj) })
}

// TestTenantRolesAggregate: with config/rbac's tenant roles installed and the built-in admin, edit
// and view roles aggregated, a user bound only to edit in a namespace creates a DatasetteToken
// there (but no DatasetteSigner); one bound to view reads tokens and signers and creates neither;
// one bound to admin creates a DatasetteSigner; and admin, even cluster-wide, grants no
// ClusterDatasetteSigner. Before the aggregation the same edit user is refused, so the test sees
// what the labels do.
func TestTenantRolesAggregate(t *testing.T) {
	requireEnvtest(t)
	ctx := context.Background()
	inst := mustRender(t, filepath.Join(repoRoot, "config", "default"))
	var tenantRoles int
	for _, o := range inst.objects {
		r, ok := o.(*rbacv1.ClusterRole)
		if !ok || !hasAggregateLabel(r.Labels) {
			continue
		}
		tenantRoles++
		obj := r.DeepCopy()
		if err := admin.Create(ctx, obj); err != nil {
			t.Fatalf("creating ClusterRole %s: %v", r.Name, err)
		}
		t.Cleanup(func() { _ = admin.Delete(ctx, obj) })
	}
	if tenantRoles == 0 {
		t.Fatal("config/default has no aggregated ClusterRole")
	}
	ns := newNamespace(t, "tenant-")
	bind(t, ns, "alice", "edit")
	bind(t, ns, "bob", "view")
	bind(t, ns, "carol", "admin")
	bind(t, "", "dave", "admin")
	alice, bob, carol, dave := userClient(t, "alice"), userClient(t, "bob"), userClient(t, "carol"), userClient(t, "dave")

	token := func(name string) *datasettev1alpha1.DatasetteToken {
		return &datasettev1alpha1.DatasetteToken{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec: datasettev1alpha1.DatasetteTokenSpec{
				Actor:            "tenant",
				SigningSecretRef: &datasettev1alpha1.SecretKeyRef{Name: "signing"},
				SecretName:       name,
			},
		}
	}
	signer := func(name string) *datasettev1alpha1.DatasetteSigner {
		return &datasettev1alpha1.DatasetteSigner{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec:       datasettev1alpha1.DatasetteSignerSpec{SecretRef: datasettev1alpha1.SecretKeyRef{Name: "signing"}},
		}
	}

	// The control: edit is empty until aggregated.
	if err := alice.Create(ctx, token("before")); !apierrors.IsForbidden(err) {
		t.Fatalf("before aggregation, edit created a DatasetteToken (err %v): the test cannot see the aggregation", err)
	}
	for _, r := range []string{"admin", "edit", "view"} {
		aggregate(t, r)
	}

	expect := func(who string, err error, allowed bool, what string) {
		t.Helper()
		switch {
		case allowed && err != nil:
			t.Errorf("%s cannot %s: %v", who, what, err)
		case !allowed && !apierrors.IsForbidden(err):
			t.Errorf("%s may %s (err %v), want forbidden", who, what, err)
		}
	}
	expect("edit", alice.Create(ctx, token("by-edit")), true, "create a DatasetteToken")
	expect("edit", alice.Delete(ctx, token("by-edit")), true, "delete a DatasetteToken")
	expect("edit", alice.List(ctx, &datasettev1alpha1.DatasetteSignerList{}, client.InNamespace(ns)), true, "list DatasetteSigners")
	expect("edit", alice.Create(ctx, signer("by-edit")), false, "create a DatasetteSigner")

	if err := admin.Create(ctx, token("existing")); err != nil {
		t.Fatal(err)
	}
	expect("view", bob.Get(ctx, client.ObjectKey{Namespace: ns, Name: "existing"}, &datasettev1alpha1.DatasetteToken{}), true, "get a DatasetteToken")
	expect("view", bob.List(ctx, &datasettev1alpha1.DatasetteTokenList{}, client.InNamespace(ns)), true, "list DatasetteTokens")
	expect("view", bob.List(ctx, &datasettev1alpha1.DatasetteSignerList{}, client.InNamespace(ns)), true, "list DatasetteSigners")
	expect("view", bob.Create(ctx, token("by-view")), false, "create a DatasetteToken")
	expect("view", bob.Delete(ctx, token("existing")), false, "delete a DatasetteToken")
	expect("view", bob.Create(ctx, signer("by-view")), false, "create a DatasetteSigner")

	expect("admin", carol.Create(ctx, signer("by-admin")), true, "create a DatasetteSigner")
	expect("admin", carol.Create(ctx, token("by-admin")), true, "create a DatasetteToken")

	// Neither the namespace's admin nor a cluster-wide admin touches ClusterDatasetteSigners.
	expect("admin (namespace)", carol.List(ctx, &datasettev1alpha1.ClusterDatasetteSignerList{}), false, "list ClusterDatasetteSigners")
	expect("admin (cluster-wide)", dave.List(ctx, &datasettev1alpha1.ClusterDatasetteSignerList{}), false, "list ClusterDatasetteSigners")
	expect("admin (cluster-wide)", dave.Create(ctx, &datasettev1alpha1.ClusterDatasetteSigner{
		ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("by-admin-%s", ns)},
	}), false, "create a ClusterDatasetteSigner")
	// view never reaches the signing key: the Secrets.
	expect("view", bob.Get(ctx, client.ObjectKey{Namespace: ns, Name: "signing"}, &corev1.Secret{}), false, "read a Secret")
}

func hasAggregateLabel(l map[string]string) bool {
	for k := range l {
		if strings.HasPrefix(k, "rbac.authorization.k8s.io/aggregate-to-") {
			return true
		}
	}
	return false
}
