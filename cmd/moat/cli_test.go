package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

func cliDecode(t *testing.T, s string) any {
	t.Helper()
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatal(err)
	}
	return v
}

func TestSetEdit(t *testing.T) {
	registry := `{"properties":{"policies":{"exportPolicy":{"status":"enabled"}},"publicNetworkAccess":"Enabled","networkRuleSet":{"ipRules":[{"value":"1.2.3.4"}]}}}`
	cases := []struct {
		name, doc, set, want, err string
	}{
		{name: "seed export policy", doc: registry, set: "properties.policies.exportPolicy.status=disabled",
			want: `{"properties":{"policies":{"exportPolicy":{"status":"disabled"}},"publicNetworkAccess":"Enabled","networkRuleSet":{"ipRules":[{"value":"1.2.3.4"}]}}}`},
		{name: "existing key's case kept", doc: registry, set: "Properties.Policies.ExportPolicy.Status=disabled",
			want: `{"properties":{"policies":{"exportPolicy":{"status":"disabled"}},"publicNetworkAccess":"Enabled","networkRuleSet":{"ipRules":[{"value":"1.2.3.4"}]}}}`},
		{name: "missing objects created", doc: `{}`, set: "properties.policies.softDeletePolicy.retentionDays=7",
			want: `{"properties":{"policies":{"softDeletePolicy":{"retentionDays":7}}}}`},
		{name: "JSON value", doc: `{}`, set: `tags={"a":"b"}`, want: `{"tags":{"a":"b"}}`},
		{name: "bool value", doc: `{}`, set: `properties.adminUserEnabled=true`, want: `{"properties":{"adminUserEnabled":true}}`},
		{name: "quoted string stays a string", doc: `{}`, set: `a="true"`, want: `{"a":"true"}`},
		{name: "value with =", doc: `{}`, set: `a=b=c`, want: `{"a":"b=c"}`},
		{name: "empty value", doc: `{"a":1}`, set: `a=`, want: `{"a":""}`},
		{name: "list index", doc: registry, set: "properties.networkRuleSet.ipRules[0].value=5.6.7.8",
			want: `{"properties":{"policies":{"exportPolicy":{"status":"enabled"}},"publicNetworkAccess":"Enabled","networkRuleSet":{"ipRules":[{"value":"5.6.7.8"}]}}}`},
		{name: "negative index", doc: `{"l":[1,2]}`, set: "l[-1]=3", want: `{"l":[1,3]}`},
		{name: "index out of range", doc: registry, set: "properties.networkRuleSet.ipRules[1].value=x", err: "properties.networkRuleSet.ipRules[1]: index out of range"},
		{name: "index into object", doc: registry, set: "properties[0]=x", err: "properties is not a list"},
		{name: "key into string", doc: registry, set: "properties.publicNetworkAccess.x=1", err: "properties.publicNetworkAccess is not an object"},
		{name: "no =", doc: `{}`, set: "properties.x", err: "want path=value"},
		{name: "empty key", doc: `{}`, set: "a..b=1", err: "empty key"},
		{name: "bad index", doc: `{}`, set: "a[x]=1", err: "not a list index"},
		{name: "unclosed index", doc: `{}`, set: "a[1=1", err: "not a list index"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e, err := parseSet(c.set)
			var got any
			if err == nil {
				got, err = e.apply(cliDecode(t, c.doc))
			}
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("err %v, want one containing %q", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if want := cliDecode(t, c.want); !reflect.DeepEqual(got, want) {
				t.Fatalf("got %v\nwant %v", got, want)
			}
		})
	}
}

func TestMatchKeyIsDeterministic(t *testing.T) {
	m := map[string]any{"Status": 1, "status": 2, "STATUS": 3}
	for range 20 {
		if k := matchKey(m, "sTaTuS"); k != "STATUS" {
			t.Fatalf("matchKey chose %q", k)
		}
	}
	if k := matchKey(m, "status"); k != "status" {
		t.Fatalf("an exact match must win, got %q", k)
	}
}

func FuzzSetEdit(f *testing.F) {
	f.Add(`{"properties":{"a":[1,{"b":2}]}}`, "properties.a[1].b=3")
	f.Add(`{}`, "a.b.c=disabled")
	f.Add(`[1]`, "a=1")
	f.Add(`{"a":[]}`, "a[-1]=1")
	f.Add(`null`, "x[0][1]=[")
	f.Fuzz(func(t *testing.T, doc, set string) {
		var v any
		if json.Unmarshal([]byte(doc), &v) != nil {
			return
		}
		e, err := parseSet(set)
		if err != nil {
			return
		}
		out, err := e.apply(v)
		if err != nil {
			return
		}
		if _, err := json.Marshal(out); err != nil {
			t.Fatalf("result is not JSON: %v", err)
		}
	})
}

func TestResourceTarget(t *testing.T) {
	const sub = "00000000-0000-0000-0000-000000000000"
	cases := []struct {
		name   string
		t      resourceTarget
		want   string
		errHas string
	}{
		{name: "seed", t: resourceTarget{group: "myResourceGroup", name: "myregistry", rtype: "Microsoft.ContainerRegistry/registries"},
			want: "/subscriptions/" + sub + "/resourceGroups/myResourceGroup/providers/Microsoft.ContainerRegistry/registries/myregistry"},
		{name: "namespace", t: resourceTarget{group: "g", name: "r", rtype: "registries", namespace: "Microsoft.ContainerRegistry"},
			want: "/subscriptions/" + sub + "/resourceGroups/g/providers/Microsoft.ContainerRegistry/registries/r"},
		{name: "parent", t: resourceTarget{group: "g", name: "p1", rtype: "Microsoft.ContainerRegistry/exportPipelines", parent: "registries/r"},
			want: "/subscriptions/" + sub + "/resourceGroups/g/providers/Microsoft.ContainerRegistry/registries/r/exportPipelines/p1"},
		{name: "ids", t: resourceTarget{ids: []string{"/subscriptions/s/resourceGroups/g"}}, want: "/subscriptions/s/resourceGroups/g"},
		{name: "ids and parts", t: resourceTarget{ids: []string{"/subscriptions/s"}, name: "x"}, errHas: "cannot be combined"},
		{name: "no type", t: resourceTarget{group: "g", name: "r"}, errHas: "--resource-type is required"},
		{name: "type without namespace", t: resourceTarget{group: "g", name: "r", rtype: "registries"}, errHas: "names no provider namespace"},
		{name: "dot-dot", t: resourceTarget{ids: []string{"/subscriptions/s/../../admin"}}, errHas: `segment ".."`},
		{name: "query in id", t: resourceTarget{ids: []string{"/subscriptions/s/resourceGroups/g?x=1"}}, errHas: "is not allowed"},
		{name: "not a subscription path", t: resourceTarget{ids: []string{"/providers/x"}}, errHas: "want /subscriptions/"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ids, err := c.t.resolve(sub)
			if c.errHas != "" {
				var ue *usageError
				if !errors.As(err, &ue) || !strings.Contains(err.Error(), c.errHas) {
					t.Fatalf("err %v, want a usage error containing %q", err, c.errHas)
				}
				return
			}
			if err != nil || len(ids) != 1 || ids[0] != c.want {
				t.Fatalf("got %v, %v; want %s", ids, err, c.want)
			}
		})
	}
}

func TestAPIVersionFor(t *testing.T) {
	var rt resourceTarget
	if v, err := rt.apiVersionFor("/subscriptions/s/resourceGroups/g"); err != nil || v != groupsAPIVersion {
		t.Fatalf("group: %q %v", v, err)
	}
	if v, err := rt.apiVersionFor("/subscriptions/s/resourceGroups/g/providers/Microsoft.ContainerRegistry/registries/r"); err != nil || v == "" {
		t.Fatalf("registry: %q %v", v, err)
	}
	if _, err := rt.apiVersionFor("/subscriptions/s/resourceGroups/g/providers/Microsoft.Network/privateEndpoints/p"); err == nil {
		t.Fatal("another provider's type needs --api-version")
	}
	rt.apiVersion = "2021-06-01-preview"
	if v, _ := rt.apiVersionFor("/x"); v != "2021-06-01-preview" {
		t.Fatalf("--api-version ignored: %q", v)
	}
}

func TestRegistrySettings(t *testing.T) {
	cases := []struct {
		name string
		set  func(r *registrySettings)
		want string
	}{
		{name: "nothing", set: func(*registrySettings) {}, want: `{}`},
		{name: "public off means Deny", set: func(r *registrySettings) { r.publicNetwork = boolFlag{true, false} },
			want: `{"publicNetworkAccess":"Disabled","networkRuleSet":{"defaultAction":"Deny"}}`},
		{name: "explicit action wins", set: func(r *registrySettings) { r.publicNetwork = boolFlag{true, false}; r.defaultAction = "Allow" },
			want: `{"publicNetworkAccess":"Disabled","networkRuleSet":{"defaultAction":"Allow"}}`},
		{name: "public on leaves the action", set: func(r *registrySettings) { r.publicNetwork = boolFlag{true, true} },
			want: `{"publicNetworkAccess":"Enabled"}`},
		{name: "the rest", set: func(r *registrySettings) {
			r.trustedServices, r.exports, r.admin, r.anonPull = boolFlag{true, false}, boolFlag{true, false}, boolFlag{true, true}, boolFlag{true, true}
		}, want: `{"networkRuleBypassOptions":"None","policies":{"exportPolicy":{"status":"disabled"}},"adminUserEnabled":true,"anonymousPullEnabled":true}`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var r registrySettings
			c.set(&r)
			got, err := r.properties()
			if err != nil {
				t.Fatal(err)
			}
			if want := cliDecode(t, c.want); !reflect.DeepEqual(any(got), want) {
				gb, _ := json.Marshal(got)
				t.Fatalf("got %s, want %s", gb, c.want)
			}
		})
	}
	r := registrySettings{defaultAction: "Maybe"}
	if _, err := r.properties(); exitCode(err) != 2 {
		t.Fatalf("bad --default-action: %v", err)
	}
	var b boolFlag
	if err := b.Set("yes"); err == nil {
		t.Fatal(`"yes" accepted as a boolean`)
	}
}

func TestOutputFormats(t *testing.T) {
	v := cliDecode(t, `[{"name":"a","sku":{"name":"Premium"},"n":1,"on":true},{"name":"bb","sku":{"name":"Basic"},"n":2.5,"on":null}]`)
	cols := []column{{"NAME", "name"}, {"SKU", "sku.name"}}
	cases := []struct {
		name string
		o    outputOptions
		cols []column
		want string
	}{
		{name: "table with columns", o: outputOptions{format: "table"}, cols: cols,
			want: "NAME  SKU\n----  -------\na     Premium\nbb    Basic\n"},
		{name: "table of scalar fields", o: outputOptions{format: "table"},
			want: "n    name  on\n---  ----  ----\n1    a     true\n2.5  bb\n"},
		{name: "tsv", o: outputOptions{format: "tsv"}, cols: cols, want: "1\ta\ttrue\n2.5\tbb\t\n"},
		{name: "query then table", o: outputOptions{format: "table", query: "[].name"}, cols: cols, want: "Result\n------\na\nbb\n"},
		{name: "query tsv", o: outputOptions{format: "tsv", query: "[0].sku.name"}, want: "Premium\n"},
		{name: "json", o: outputOptions{format: "json", query: "[1].sku"}, want: "{\n  \"name\": \"Basic\"\n}\n"},
		{name: "none", o: outputOptions{format: "none"}, want: ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := c.o.print(&buf, v, c.cols); err != nil {
				t.Fatal(err)
			}
			if buf.String() != c.want {
				t.Fatalf("got\n%q\nwant\n%q", buf.String(), c.want)
			}
		})
	}
	for _, o := range []outputOptions{{format: "yaml"}, {format: "json", query: "[?"}} {
		if err := o.print(&bytes.Buffer{}, v, nil); exitCode(err) != 2 {
			t.Fatalf("%+v: %v, want a usage error", o, err)
		}
	}
}

func TestExitCode(t *testing.T) {
	cases := []struct {
		err  error
		want int
	}{
		{nil, 0},
		{failf("BadRequest", "x"), 1},
		{errors.New("dial tcp: refused"), 1},
		{usagef("--name is required"), 2},
		{errors.New(`unknown command "frob" for "moat"`), 2},
		{errors.New("unknown flag: --frob"), 2},
		{&checkError{code: 100, msg: "rules failed"}, 100},
		{fmt.Errorf("wrapped: %w", &checkError{code: 100, msg: "rules failed"}), 100},
	}
	for _, c := range cases {
		if got := exitCode(c.err); got != c.want {
			t.Errorf("exitCode(%v) = %d, want %d", c.err, got, c.want)
		}
	}
}

func TestARMError(t *testing.T) {
	cases := []struct {
		status     int
		header     string
		body, want string
	}{
		{400, "", `{"error":{"code":"InvalidIpRule","message":"bad\nvalue"}}`, "InvalidIpRule: bad value"},
		{409, "FromHeader", `{"error":{"code":"InBody","message":"m"}}`, "FromHeader: m"},
		{404, "", ``, "NotFound: the server answered 404 Not Found"},
		{502, "", `<html>`, "BadGateway: the server answered 502 Bad Gateway"},
	}
	for _, c := range cases {
		if got := armError(c.status, c.header, []byte(c.body)).Error(); got != c.want {
			t.Errorf("armError(%d, %q, %q) = %q, want %q", c.status, c.header, c.body, got, c.want)
		}
	}
}
