// Package kubectlplugin is kubectl-datasette, the kubectl plugin for DatasetteTokens: status,
// renew, inspect and completion, each in kubectl's Options/Complete/Validate/Run shape, with
// kubectl's connection flags (k8s.io/cli-runtime's genericclioptions).
package kubectlplugin

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"sigs.k8s.io/controller-runtime/pkg/client"

	datasettev1alpha1 "github.com/datasette-token-operator/datasette-token-operator/api/v1alpha1"
	"github.com/datasette-token-operator/datasette-token-operator/internal/version"
)

// pageSize bounds each list request; lists are read page by page.
const pageSize = 500

// clientFactory gives the commands their namespace and API client, from kubectl's flags.
type clientFactory struct {
	flags *genericclioptions.ConfigFlags
	// newClient is replaced in tests; nil means from flags.
	newClient func() (client.Client, error)
}

// namespace is -n, or the kubeconfig context's namespace, or "default".
func (f *clientFactory) namespace() (string, error) {
	ns, _, err := f.flags.ToRawKubeConfigLoader().Namespace()
	if err != nil {
		return "", fmt.Errorf("reading the namespace from the kubeconfig: %w", err)
	}
	return ns, nil
}

func (f *clientFactory) client() (client.Client, error) {
	if f.newClient != nil {
		return f.newClient()
	}
	cfg, err := f.flags.ToRESTConfig()
	if err != nil {
		return nil, fmt.Errorf("loading the kubeconfig: %w", err)
	}
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{corev1.AddToScheme, datasettev1alpha1.AddToScheme} {
		if err := add(scheme); err != nil {
			return nil, err
		}
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return nil, fmt.Errorf("creating an API client: %w", err)
	}
	return c, nil
}

// NewCommand returns the kubectl-datasette command.
func NewCommand(streams genericiooptions.IOStreams) *cobra.Command {
	f := &clientFactory{flags: genericclioptions.NewConfigFlags(true)}
	cmd := &cobra.Command{
		Use:   "kubectl-datasette",
		Short: "Show, renew and inspect DatasetteTokens",
		Long: "kubectl datasette shows DatasetteTokens' readiness and dates, asks the operator to renew them, and\n" +
			"decodes the token a Secret holds without ever printing it or a signing key.",
		Version:       version.String(),
		SilenceUsage:  true,
		SilenceErrors: true,
		Annotations:   map[string]string{cobra.CommandDisplayNameAnnotation: "kubectl datasette"},
	}
	cmd.SetIn(streams.In)
	cmd.SetOut(streams.Out)
	cmd.SetErr(streams.ErrOut)
	f.flags.AddFlags(cmd.PersistentFlags())
	cmd.AddCommand(newStatusCommand(f, streams), newRenewCommand(f, streams), newInspectCommand(f, streams))
	return cmd
}

// completeTokenNames completes the names of DatasetteTokens in the command's namespace.
func completeTokenNames(f *clientFactory) func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
	return func(cmd *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
		ns, err := f.namespace()
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		c, err := f.client()
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		var list datasettev1alpha1.DatasetteTokenList
		if err := c.List(cmd.Context(), &list, client.InNamespace(ns), client.Limit(pageSize)); err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		var names []string
		for _, t := range list.Items {
			names = append(names, t.Name)
		}
		return names, cobra.ShellCompDirectiveNoFileComp
	}
}

// listTokens lists DatasetteTokens in ns ("" for all) matching selector, page by page.
func listTokens(ctx context.Context, c client.Client, ns, selector string) ([]datasettev1alpha1.DatasetteToken, error) {
	opts := []client.ListOption{client.Limit(pageSize)}
	if ns != "" {
		opts = append(opts, client.InNamespace(ns))
	}
	if selector != "" {
		sel, err := parseSelector(selector)
		if err != nil {
			return nil, err
		}
		opts = append(opts, client.MatchingLabelsSelector{Selector: sel})
	}
	var out []datasettev1alpha1.DatasetteToken
	cont := ""
	for {
		var list datasettev1alpha1.DatasetteTokenList
		if err := c.List(ctx, &list, append(opts, client.Continue(cont))...); err != nil {
			return nil, fmt.Errorf("listing DatasetteTokens: %w", err)
		}
		out = append(out, list.Items...)
		if cont = list.Continue; cont == "" {
			return out, nil
		}
	}
}
