package main

import (
	"context"
	"fmt"
	"strings"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
	"google.golang.org/grpc"

	"github.com/insuranceflow/insuranceflow/workflows"
)

// searchAttributeLister is the part of Temporal's operator service the
// startup check uses.
type searchAttributeLister interface {
	ListSearchAttributes(ctx context.Context, in *operatorservice.ListSearchAttributesRequest, opts ...grpc.CallOption) (*operatorservice.ListSearchAttributesResponse, error)
}

// SearchAttributesError is returned at start when the namespace lacks the
// custom search attributes the workflows set, or has them with another
// type. Without them every workflow start would fail, so the worker refuses
// to start and says how to create them.
type SearchAttributesError struct {
	Namespace string
	// Cloud says the namespace is on Temporal Cloud, where search
	// attributes are added with tcld (or the Cloud UI), not the operator
	// API; the message then puts that command first.
	Cloud     bool
	Missing   []string          // names, in workflows.SearchAttributeNames order
	WrongType map[string]string // name -> the type it has
}

func (e *SearchAttributesError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "namespace %q does not have the search attributes the policy workflow sets", e.Namespace)
	for _, name := range workflows.SearchAttributeNames() {
		if t, ok := e.WrongType[name]; ok {
			fmt.Fprintf(&b, "\n  %s has type %s, want Keyword: delete it (temporal operator search-attribute remove --namespace %s --name %s) and create it again", name, t, e.Namespace, name)
		}
	}
	if len(e.Missing) == 0 {
		return b.String()
	}
	fmt.Fprintf(&b, "\n  missing %s.", strings.Join(e.Missing, ", "))
	selfHosted := func() {
		b.WriteString("\n  On a self-hosted cluster (or the dev server) create them with:")
		for _, name := range e.Missing {
			fmt.Fprintf(&b, "\n    temporal operator search-attribute create --namespace %s --name %s --type Keyword", e.Namespace, name)
		}
	}
	cloud := func() {
		b.WriteString("\n  On Temporal Cloud add them with tcld (or in the Cloud UI, Namespaces > " + e.Namespace + " > Edit > Custom search attributes):")
		fmt.Fprintf(&b, "\n    tcld namespace search-attributes add --namespace %s", e.Namespace)
		for _, name := range e.Missing {
			fmt.Fprintf(&b, " --search-attribute %s=Keyword", name)
		}
	}
	if e.Cloud {
		cloud()
		selfHosted()
	} else {
		selfHosted()
		cloud()
	}
	return b.String()
}

// checkSearchAttributes verifies that the namespace has every custom search
// attribute of workflows.SearchAttributeNames, as a Keyword.
func checkSearchAttributes(ctx context.Context, ops searchAttributeLister, namespace string, cloud bool) error {
	resp, err := ops.ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: namespace})
	if err != nil {
		return fmt.Errorf("list search attributes of namespace %q: %w", namespace, err)
	}
	have := resp.GetCustomAttributes()
	e := &SearchAttributesError{Namespace: namespace, Cloud: cloud, WrongType: map[string]string{}}
	for _, name := range workflows.SearchAttributeNames() {
		t, ok := have[name]
		switch {
		case !ok:
			e.Missing = append(e.Missing, name)
		case t != enumspb.INDEXED_VALUE_TYPE_KEYWORD:
			e.WrongType[name] = t.String()
		}
	}
	if len(e.Missing) > 0 || len(e.WrongType) > 0 {
		return e
	}
	return nil
}
