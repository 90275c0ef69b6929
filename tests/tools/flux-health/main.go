// Command flux-health evaluates a Flux Kustomization's spec.healthCheckExprs on objects with
// Flux's own code: the status reader of github.com/fluxcd/pkg/runtime/cel that
// kustomize-controller builds from healthCheckExprs, at the version go.mod pins (the one the
// kustomize-controller release named there uses). It prints what kustomize-controller's health
// check would see for each object: Current, InProgress, Failed, or Unknown when an expression
// cannot be evaluated (kustomize-controller keeps polling such an object until its timeout).
//
// Usage:
//
//	flux-health KUSTOMIZATIONS.yaml FILE[=STATUS]...
//
// KUSTOMIZATIONS.yaml must hold exactly one Kustomization with spec.healthCheckExprs. Each FILE
// is YAML or JSON: one object, a `---` stream, or a `kind: List`. With =STATUS every object in
// FILE must get that status. One JSON line per object on stdout; exit status 0 when every
// expectation holds, 1 when one does not, 2 on a usage or input error.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"

	"encoding/json"

	"github.com/fluxcd/pkg/apis/kustomize"
	fluxcel "github.com/fluxcd/pkg/runtime/cel"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	"sigs.k8s.io/yaml"
)

// kustomization is the part of a kustomize.toolkit.fluxcd.io Kustomization read here.
type kustomization struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name string `json:"name"`
	} `json:"metadata"`
	Spec struct {
		HealthCheckExprs []kustomize.CustomHealthCheck `json:"healthCheckExprs"`
	} `json:"spec"`
}

type result struct {
	Input   string `json:"input"`
	Name    string `json:"name,omitempty"`
	Status  string `json:"status"`
	Message string `json:"message,omitempty"`
	Error   string `json:"error,omitempty"`
	Want    string `json:"want,omitempty"`
	OK      bool   `json:"ok"`
}

func main() {
	code, err := run(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "flux-health:", err)
	}
	os.Exit(code)
}

func run(args []string) (int, error) {
	if len(args) < 2 {
		return 2, errors.New("usage: flux-health KUSTOMIZATIONS.yaml FILE[=STATUS]...")
	}
	checks, err := healthCheckExprs(args[0])
	if err != nil {
		return 2, err
	}
	// What kustomize-controller does with spec.healthCheckExprs: one status reader for them.
	newReader, err := fluxcel.NewStatusReader(checks)
	if err != nil {
		return 2, err
	}
	// The mapper is only used to fetch objects from a cluster; these are given.
	reader := newReader(nil)
	ctx := context.Background()
	code := 0
	for _, spec := range args[1:] {
		path, want, _ := strings.Cut(spec, "=")
		objs, err := readObjects(path)
		if err != nil {
			return 2, err
		}
		if len(objs) == 0 {
			return 2, fmt.Errorf("%s: no objects", path)
		}
		for _, obj := range objs {
			u := &unstructured.Unstructured{Object: obj}
			rs, err := reader.ReadStatusForObject(ctx, nil, u)
			if err != nil {
				return 2, fmt.Errorf("%s: %w", path, err)
			}
			r := result{
				Input:   path,
				Name:    u.GetName(),
				Status:  rs.Status.String(),
				Message: rs.Message,
				Want:    want,
			}
			if rs.Error != nil {
				r.Error = rs.Error.Error()
			}
			r.OK = want == "" || r.Status == want
			line, err := json.Marshal(r)
			if err != nil {
				return 2, err
			}
			fmt.Println(string(line))
			if !r.OK {
				code = 1
			}
		}
	}
	return code, nil
}

// healthCheckExprs reads the health-check expressions of the one Kustomization in path that
// has them.
func healthCheckExprs(path string) ([]kustomize.CustomHealthCheck, error) {
	docs, err := documents(path)
	if err != nil {
		return nil, err
	}
	var found []kustomization
	for _, doc := range docs {
		var k kustomization
		if err := yaml.Unmarshal([]byte(doc), &k); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		if k.Kind == "Kustomization" && strings.HasPrefix(k.APIVersion, "kustomize.toolkit.fluxcd.io/") &&
			len(k.Spec.HealthCheckExprs) > 0 {
			found = append(found, k)
		}
	}
	if len(found) != 1 {
		return nil, fmt.Errorf("%s: want one Kustomization with spec.healthCheckExprs, found %d", path, len(found))
	}
	return found[0].Spec.HealthCheckExprs, nil
}

var documentSeparator = regexp.MustCompile(`(?m)^---[ \t]*$`)

func documents(path string) ([]string, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return documentSeparator.Split(string(raw), -1), nil
}

// readObjects reads the objects of a file with integers as int64, as a client reading them
// from the API server has them (metadata.generation and status.observedGeneration are
// compared as integers by Flux).
func readObjects(path string) ([]map[string]any, error) {
	docs, err := documents(path)
	if err != nil {
		return nil, err
	}
	var objs []map[string]any
	for _, doc := range docs {
		j, err := yaml.YAMLToJSON([]byte(doc))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		var obj map[string]any
		if err := utiljson.Unmarshal(j, &obj); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		if obj == nil {
			continue
		}
		if items, ok := obj["items"].([]any); ok && strings.HasSuffix(fmt.Sprint(obj["kind"]), "List") {
			for _, item := range items {
				if m, ok := item.(map[string]any); ok {
					objs = append(objs, m)
				}
			}
			continue
		}
		objs = append(objs, obj)
	}
	return objs, nil
}
