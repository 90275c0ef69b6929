// Command argocd-lua-health runs an Argo CD resource health check (health.lua) the way Argo
// CD's application controller runs one from argocd-cm: gopher-lua (Lua 5.1, the interpreter
// Argo CD embeds), the resource in the global `obj`, only the base, table and package
// libraries open (a customization without `resource.customizations.useOpenLibs`; Argo CD also
// gives such scripts a restricted `os`, left out here so a passing script needs none of it), a
// one-second deadline, and the returned table read as {status, message}, an unknown status
// becoming Unknown.
//
// Usage:
//
//	argocd-lua-health test DIR
//	    DIR/health.lua against every case of DIR/health_test.yaml, as Argo CD's own
//	    TestLuaHealthScript checks resource_customizations/: status and message must match.
//	argocd-lua-health eval SCRIPT FILE[=STATUS]...
//	    SCRIPT against every object in each FILE (YAML or JSON; a `kind: List`, such as
//	    `kubectl get -o yaml` prints for several objects, or a `---` stream gives several).
//	    With =STATUS, each object's health status must be STATUS.
//
// One JSON line per evaluated object on stdout. Exit status 0 when every expectation holds,
// 1 when one does not, 2 on a usage, input or script error.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	lua "github.com/yuin/gopher-lua"
	"sigs.k8s.io/yaml"
)

// Health is what Argo CD reads from the script's result (gitops-engine's health.HealthStatus).
type Health struct {
	Status  string `json:"status,omitempty"`
	Message string `json:"message,omitempty"`
}

// The statuses Argo CD accepts from a script; anything else becomes Unknown.
var validStatuses = map[string]bool{
	"Unknown": true, "Progressing": true, "Suspended": true,
	"Healthy": true, "Degraded": true, "Missing": true,
}

const invalidStatusMessage = "Lua returned an invalid health status"

type testFile struct {
	Tests []struct {
		InputPath    string `json:"inputPath"`
		HealthStatus Health `json:"healthStatus"`
	} `json:"tests"`
}

type result struct {
	Input   string  `json:"input"`
	Name    string  `json:"name,omitempty"`
	Health  Health  `json:"health"`
	Want    *Health `json:"want,omitempty"`
	OK      bool    `json:"ok"`
	Problem string  `json:"problem,omitempty"`
}

func main() {
	code, err := run(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "argocd-lua-health:", err)
	}
	os.Exit(code)
}

func run(args []string) (int, error) {
	if len(args) < 2 {
		return 2, errors.New("usage: argocd-lua-health test DIR | eval SCRIPT FILE[=STATUS]...")
	}
	switch args[0] {
	case "test":
		return runTests(args[1])
	case "eval":
		if len(args) < 3 {
			return 2, errors.New("usage: argocd-lua-health eval SCRIPT FILE[=STATUS]...")
		}
		return runEval(args[1], args[2:])
	}
	return 2, fmt.Errorf("unknown command %q", args[0])
}

func runTests(dir string) (int, error) {
	script, err := os.ReadFile(filepath.Join(dir, "health.lua"))
	if err != nil {
		return 2, err
	}
	raw, err := os.ReadFile(filepath.Join(dir, "health_test.yaml"))
	if err != nil {
		return 2, err
	}
	var tests testFile
	if err := yaml.UnmarshalStrict(raw, &tests); err != nil {
		return 2, fmt.Errorf("health_test.yaml: %w", err)
	}
	if len(tests.Tests) == 0 {
		return 2, errors.New("health_test.yaml has no tests")
	}
	code := 0
	for _, t := range tests.Tests {
		objs, err := readObjects(filepath.Join(dir, t.InputPath))
		if err != nil {
			return 2, err
		}
		if len(objs) != 1 {
			return 2, fmt.Errorf("%s: want one object, found %d", t.InputPath, len(objs))
		}
		want := t.HealthStatus
		r := check(string(script), t.InputPath, objs[0], &want, true)
		code = max(code, emit(r))
	}
	return code, nil
}

func runEval(scriptPath string, specs []string) (int, error) {
	script, err := os.ReadFile(scriptPath)
	if err != nil {
		return 2, err
	}
	code := 0
	for _, spec := range specs {
		path, status, hasWant := strings.Cut(spec, "=")
		objs, err := readObjects(path)
		if err != nil {
			return 2, err
		}
		if len(objs) == 0 {
			return 2, fmt.Errorf("%s: no objects", path)
		}
		for _, obj := range objs {
			var want *Health
			if hasWant {
				want = &Health{Status: status}
			}
			code = max(code, emit(check(string(script), path, obj, want, false)))
		}
	}
	return code, nil
}

// check runs the script on obj and compares with want (the message too when withMessage).
func check(script, input string, obj map[string]any, want *Health, withMessage bool) result {
	r := result{Input: input, Want: want}
	if md, ok := obj["metadata"].(map[string]any); ok {
		r.Name, _ = md["name"].(string)
	}
	health, err := evalHealth(script, obj)
	if err != nil {
		r.Problem = err.Error()
		return r
	}
	r.Health = health
	r.OK = want == nil ||
		(health.Status == want.Status && (!withMessage || health.Message == want.Message))
	return r
}

func emit(r result) int {
	line, err := json.Marshal(r)
	if err != nil {
		fmt.Fprintln(os.Stderr, "argocd-lua-health:", err)
		return 2
	}
	fmt.Println(string(line))
	switch {
	case r.Problem != "":
		return 2
	case !r.OK:
		return 1
	}
	return 0
}

// evalHealth runs script with obj as the global `obj`, in a state set up as Argo CD's
// controller sets up one for an argocd-cm health customization.
func evalHealth(script string, obj map[string]any) (Health, error) {
	l := lua.NewState(lua.Options{SkipOpenLibs: true})
	defer l.Close()
	for _, lib := range []struct {
		name string
		open lua.LGFunction
	}{
		{lua.LoadLibName, lua.OpenPackage},
		{lua.BaseLibName, lua.OpenBase},
		{lua.TabLibName, lua.OpenTable},
	} {
		if err := l.CallByParam(lua.P{Fn: l.NewFunction(lib.open), NRet: 0, Protect: true},
			lua.LString(lib.name)); err != nil {
			return Health{}, err
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	l.SetContext(ctx)
	l.SetGlobal("obj", toLua(l, obj))
	if err := l.DoString(script); err != nil {
		return Health{}, fmt.Errorf("script failed: %w", err)
	}
	ret := l.Get(-1)
	switch ret.Type() {
	case lua.LTNil:
		return Health{}, nil
	case lua.LTTable:
	default:
		return Health{}, fmt.Errorf("expect table output from Lua script, not %s", ret.Type())
	}
	tbl := ret.(*lua.LTable)
	var h Health
	for field, dst := range map[string]*string{"status": &h.Status, "message": &h.Message} {
		switch v := tbl.RawGetString(field).(type) {
		case *lua.LNilType:
		case lua.LString:
			*dst = string(v)
		default:
			return Health{}, fmt.Errorf("%s is a %s, not a string", field, v.Type())
		}
	}
	if !validStatuses[h.Status] {
		return Health{Status: "Unknown", Message: invalidStatusMessage}, nil
	}
	return h, nil
}

// toLua converts a decoded JSON value to Lua as Argo CD does: objects and arrays to tables
// (arrays 1-based), numbers to numbers.
func toLua(l *lua.LState, v any) lua.LValue {
	switch x := v.(type) {
	case bool:
		return lua.LBool(x)
	case float64:
		return lua.LNumber(x)
	case int64:
		return lua.LNumber(x)
	case string:
		return lua.LString(x)
	case []any:
		t := l.CreateTable(len(x), 0)
		for _, item := range x {
			t.Append(toLua(l, item))
		}
		return t
	case map[string]any:
		t := l.CreateTable(0, len(x))
		for k, item := range x {
			t.RawSetH(lua.LString(k), toLua(l, item))
		}
		return t
	}
	return lua.LNil
}

var documentSeparator = regexp.MustCompile(`(?m)^---[ \t]*$`)

// readObjects reads the objects of a YAML or JSON file: each document, and each item of a
// `kind: List`.
func readObjects(path string) ([]map[string]any, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var objs []map[string]any
	for _, doc := range documentSeparator.Split(string(raw), -1) {
		var obj map[string]any
		if err := yaml.Unmarshal([]byte(doc), &obj); err != nil {
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
