package main

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestParseImportSource(t *testing.T) {
	tests := []struct {
		source, registry string
		want             importSource
		wantErr          bool
	}{
		{source: "a.localhost:8443/app:v1", want: importSource{registryURI: "a.localhost:8443", image: "app:v1"}},
		{source: "a.example.test/team/app@sha256:abc", want: importSource{registryURI: "a.example.test", image: "team/app@sha256:abc"}},
		{source: "localhost/app", want: importSource{registryURI: "localhost", image: "app"}},
		{source: "app:v1", registry: "/subscriptions/s/resourceGroups/g/providers/Microsoft.ContainerRegistry/registries/a",
			want: importSource{resourceID: "/subscriptions/s/resourceGroups/g/providers/Microsoft.ContainerRegistry/registries/a", image: "app:v1"}},
		{source: "app:v1", registry: "a", want: importSource{resourceID: "a", image: "app:v1"}},
		{source: "app:v1", wantErr: true},
		{source: "team/app:v1", wantErr: true},
		{source: "a.example.test/", wantErr: true},
		{source: "", registry: "a", wantErr: true},
	}
	for _, tc := range tests {
		got, err := parseImportSource(tc.source, tc.registry)
		if (err != nil) != tc.wantErr || !tc.wantErr && got != tc.want {
			t.Errorf("parseImportSource(%q, %q) = %+v, %v", tc.source, tc.registry, got, err)
		}
	}
}

func TestImportBody(t *testing.T) {
	tests := []struct {
		src   importSource
		tags  []string
		repos []string
		force bool
		want  string
	}{
		{src: importSource{registryURI: "a.x", image: "app:v1"}, tags: []string{"b:1"},
			want: `{"mode":"NoForce","source":{"registryUri":"a.x","sourceImage":"app:v1"},"targetTags":["b:1"]}`},
		{src: importSource{resourceID: "/id", image: "app@sha256:1"}, repos: []string{"r"}, force: true,
			want: `{"mode":"Force","source":{"resourceId":"/id","sourceImage":"app@sha256:1"},"untaggedTargetRepositories":["r"]}`},
	}
	for _, tc := range tests {
		b, err := json.Marshal(importBody(tc.src, tc.tags, tc.repos, tc.force))
		if err != nil || string(b) != tc.want {
			t.Errorf("importBody = %s, %v; want %s", b, err, tc.want)
		}
	}
}

func TestImportBodyCredentials(t *testing.T) {
	b, err := json.Marshal(importBody(importSource{registryURI: "127.0.0.1:5000", image: "a:1", username: "u", password: "p"}, nil, nil, false))
	want := `{"mode":"NoForce","source":{"credentials":{"password":"p","username":"u"},"registryUri":"127.0.0.1:5000","sourceImage":"a:1"}}`
	if err != nil || string(b) != want {
		t.Errorf("importBody = %s, %v; want %s", b, err, want)
	}
}

func TestProgressLine(t *testing.T) {
	var b strings.Builder
	report := progressLine(&b)
	report(importProgress{Manifests: 3})
	report(importProgress{Manifests: 3}) // unchanged: not rewritten
	report(importProgress{Manifests: 5, BlobsTotal: 4, BlobsDone: 1, BytesTotal: 4 << 20, BytesDone: 1 << 20})
	report(importProgress{BytesTotal: -1})
	want := "\rimporting: 3 manifests\x1b[K\rimporting:  25%  1.0 MiB / 4.0 MiB  1/4 blobs  5 manifests\x1b[K\n"
	if b.String() != want {
		t.Errorf("progress output %q, want %q", b.String(), want)
	}
	var silent strings.Builder
	r := newProgressPrinter(&silent) // not a terminal
	r(importProgress{Manifests: 1})
	r(importProgress{BytesTotal: -1})
	if silent.Len() != 0 {
		t.Errorf("progress written to a non-terminal: %q", silent.String())
	}
}
