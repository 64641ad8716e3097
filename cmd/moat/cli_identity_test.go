package main

import (
	"net/url"
	"strings"
	"testing"
)

func TestIdentityTokenURL(t *testing.T) {
	base := tokenOptions{endpoint: "https://127.0.0.1:8443/msi/token", resource: "https://containerregistry.azure.net"}
	cases := []struct {
		name string
		mod  func(*tokenOptions)
		want url.Values
		err  string
	}{
		{name: "system-assigned", want: url.Values{"api-version": {"2019-08-01"}, "resource": {"https://containerregistry.azure.net"}}},
		{name: "client id", mod: func(o *tokenOptions) { o.clientID = "c1" },
			want: url.Values{"api-version": {"2019-08-01"}, "resource": {"https://containerregistry.azure.net"}, "client_id": {"c1"}}},
		{name: "resource id", mod: func(o *tokenOptions) { o.resourceID = "/subscriptions/s/x" },
			want: url.Values{"api-version": {"2019-08-01"}, "resource": {"https://containerregistry.azure.net"}, "mi_res_id": {"/subscriptions/s/x"}}},
		{name: "two selectors", mod: func(o *tokenOptions) { o.clientID, o.principalID = "a", "b" }, err: "at most one"},
		{name: "not a URL", mod: func(o *tokenOptions) { o.endpoint = "127.0.0.1:8443" }, err: "not an http(s) URL"},
		{name: "ftp", mod: func(o *tokenOptions) { o.endpoint = "ftp://h/msi/token" }, err: "not an http(s) URL"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o := base
			if c.mod != nil {
				c.mod(&o)
			}
			got, err := identityTokenURL(o)
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) || exitCode(err) != 2 {
					t.Fatalf("err %v, want a usage error containing %q", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			u, err := url.Parse(got)
			if err != nil {
				t.Fatal(err)
			}
			if u.Path != "/msi/token" || u.Query().Encode() != c.want.Encode() {
				t.Errorf("URL %s, want query %s", got, c.want.Encode())
			}
		})
	}
}
