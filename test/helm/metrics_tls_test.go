package helm

import (
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

func endpoint(t *testing.T, objs []*unstructured.Unstructured) map[string]any {
	t.Helper()
	sm := find(t, objs, "ServiceMonitor", namespace, fullname)
	eps, _, _ := unstructured.NestedSlice(sm.Object, "spec", "endpoints")
	if len(eps) != 1 {
		t.Fatalf("ServiceMonitor endpoints %v", eps)
	}
	return eps[0].(map[string]any)
}

// TestMetricsTLS: metrics.tls.secretName mounts the Secret, points --metrics-cert-path at it, and
// makes the ServiceMonitor verify the certificate with the Secret's CA for the Service's DNS name;
// without it the ServiceMonitor skips verification; an explicit tlsConfig wins.
func TestMetricsTLS(t *testing.T) {
	objs := render(t, loadChart(t), map[string]any{"metrics": map[string]any{
		"tls":            map[string]any{"secretName": "metrics-cert"},
		"serviceMonitor": map[string]any{"enabled": true},
	}})
	d := deployment(t, objs)
	c := d.Spec.Template.Spec.Containers[0]
	for _, arg := range []string{"--metrics-cert-path=/var/run/metrics-cert", "--metrics-cert-name=tls.crt", "--metrics-cert-key=tls.key"} {
		if !slices.Contains(c.Args, arg) {
			t.Errorf("args %v lack %s", c.Args, arg)
		}
	}
	if !slices.ContainsFunc(c.VolumeMounts, func(m corev1.VolumeMount) bool { return m.MountPath == "/var/run/metrics-cert" && m.ReadOnly }) {
		t.Errorf("mounts %v", c.VolumeMounts)
	}
	vol := slices.IndexFunc(d.Spec.Template.Spec.Volumes, func(v corev1.Volume) bool {
		return v.Secret != nil && v.Secret.SecretName == "metrics-cert"
	})
	if vol < 0 {
		t.Fatalf("no volume of Secret metrics-cert in %v", d.Spec.Template.Spec.Volumes)
	}
	for _, item := range d.Spec.Template.Spec.Volumes[vol].Secret.Items {
		if item.Key == "ca.crt" || strings.Contains(item.Path, "ca") {
			t.Errorf("the manager mounts %s, which it does not need", item.Key)
		}
	}
	tls := endpoint(t, objs)["tlsConfig"].(map[string]any)
	var svc corev1.Service
	decode(t, find(t, objs, "Service", namespace, fullname+"-metrics"), &svc)
	if tls["serverName"] != svc.Name+"."+namespace+".svc" || tls["insecureSkipVerify"] != nil {
		t.Errorf("tlsConfig %v, want serverName %s.%s.svc and verification", tls, svc.Name, namespace)
	}
	if ca, _, _ := unstructured.NestedString(tls, "ca", "secret", "name"); ca != "metrics-cert" {
		t.Errorf("tlsConfig CA from %q, want metrics-cert", ca)
	}

	plain := render(t, loadChart(t), map[string]any{"metrics": map[string]any{"serviceMonitor": map[string]any{"enabled": true}}})
	if tls := endpoint(t, plain)["tlsConfig"].(map[string]any); tls["insecureSkipVerify"] != true {
		t.Errorf("without a certificate: tlsConfig %v, want insecureSkipVerify", tls)
	}
	if args := deployment(t, plain).Spec.Template.Spec.Containers[0].Args; slices.ContainsFunc(args, func(a string) bool { return strings.HasPrefix(a, "--metrics-cert") }) {
		t.Errorf("without a certificate: args %v", args)
	}

	own := render(t, loadChart(t), map[string]any{"metrics": map[string]any{
		"tls":            map[string]any{"secretName": "metrics-cert"},
		"serviceMonitor": map[string]any{"enabled": true, "tlsConfig": map[string]any{"serverName": "custom"}},
	}})
	if tls := endpoint(t, own)["tlsConfig"].(map[string]any); tls["serverName"] != "custom" || tls["ca"] != nil {
		t.Errorf("an explicit tlsConfig: %v", tls)
	}
}

// TestServiceMonitorAuthorization: the ServiceMonitor authenticates with `authorization` (not the
// deprecated bearerTokenFile), naming a token Secret the chart renders in its namespace, of a
// ServiceAccount it renders, bound to the metrics-reader ClusterRole and nothing else.
func TestServiceMonitorAuthorization(t *testing.T) {
	objs := render(t, loadChart(t), map[string]any{"metrics": map[string]any{"serviceMonitor": map[string]any{"enabled": true}}})
	ep := endpoint(t, objs)
	if _, ok := ep["bearerTokenFile"]; ok {
		t.Error("the ServiceMonitor still uses bearerTokenFile")
	}
	auth, _ := ep["authorization"].(map[string]any)
	secretName, _, _ := unstructured.NestedString(auth, "credentials", "name")
	key, _, _ := unstructured.NestedString(auth, "credentials", "key")
	if auth["type"] != "Bearer" || key != "token" {
		t.Fatalf("authorization %v", auth)
	}
	var secret corev1.Secret
	decode(t, find(t, objs, "Secret", namespace, secretName), &secret)
	sa := secret.Annotations[corev1.ServiceAccountNameKey]
	if secret.Type != corev1.SecretTypeServiceAccountToken || sa == "" {
		t.Fatalf("Secret %s: type %s, service account %q", secretName, secret.Type, sa)
	}
	find(t, objs, "ServiceAccount", namespace, sa)
	var bound []string
	for _, o := range objs {
		if o.GetKind() != "ClusterRoleBinding" && o.GetKind() != "RoleBinding" {
			continue
		}
		var b rbacv1.ClusterRoleBinding
		decode(t, o, &b)
		for _, s := range b.Subjects {
			if s.Kind == "ServiceAccount" && s.Name == sa && s.Namespace == namespace {
				bound = append(bound, b.RoleRef.Name)
			}
		}
	}
	if !slices.Equal(bound, []string{fullname + "-metrics-reader"}) {
		t.Errorf("the scraper is bound to %v, want only %s-metrics-reader", bound, fullname)
	}
	var reader rbacv1.ClusterRole
	decode(t, find(t, objs, "ClusterRole", "", fullname+"-metrics-reader"), &reader)
	if got := ruleSet(reader.Rules); !slices.Equal(got, []string{"/metrics get"}) {
		t.Errorf("metrics-reader grants %v", got)
	}
}
