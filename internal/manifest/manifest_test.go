package manifest

import (
	"errors"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
)

var (
	dCfg   = digest.FromString("config")
	dL1    = digest.FromString("layer1")
	dL2    = digest.FromString("layer2")
	dChild = digest.FromString("child")
	dSubj  = digest.FromString("subject")
	d512   = digest.SHA512.FromString("layer512")
)

func desc(mt string, d digest.Digest) string {
	return `{"mediaType":"` + mt + `","digest":"` + d.String() + `","size":10}`
}

func TestParse(t *testing.T) {
	ociManifest := `{"schemaVersion":2,"mediaType":"` + MediaTypeOCIManifest + `","config":` + desc("application/vnd.oci.image.config.v1+json", dCfg) +
		`,"layers":[` + desc("application/vnd.oci.image.layer.v1.tar+gzip", dL1) + `,` + desc("application/vnd.oci.image.layer.v1.tar+gzip", dL2) + `,` + desc("application/vnd.oci.image.layer.v1.tar+gzip", dL1) + `]}`
	tests := []struct {
		name      string
		ct        string
		body      string
		wantErr   error
		errSubstr string
		check     func(t *testing.T, p *Parsed)
	}{
		{name: "oci manifest", ct: MediaTypeOCIManifest, body: ociManifest, check: func(t *testing.T, p *Parsed) {
			if p.MediaType != MediaTypeOCIManifest || len(p.Blobs) != 3 || p.Blobs[0] != dCfg || p.Blobs[1] != dL1 || p.Blobs[2] != dL2 {
				t.Fatalf("got %+v", p)
			}
			if p.ArtifactType != "application/vnd.oci.image.config.v1+json" {
				t.Fatalf("artifactType = %q, want the config media type", p.ArtifactType)
			}
		}},
		{name: "content type with parameters", ct: MediaTypeOCIManifest + "; charset=utf-8", body: ociManifest},
		{name: "no content type uses document", ct: "", body: ociManifest},
		{name: "oci manifest without mediaType uses content type", ct: MediaTypeOCIManifest,
			body: `{"schemaVersion":2,"config":` + desc("a/b", dCfg) + `,"layers":[]}`,
			check: func(t *testing.T, p *Parsed) {
				if p.MediaType != MediaTypeOCIManifest {
					t.Fatalf("media type %q", p.MediaType)
				}
			}},
		{name: "artifact with subject and artifactType", ct: MediaTypeOCIManifest,
			body: `{"schemaVersion":2,"mediaType":"` + MediaTypeOCIManifest + `","artifactType":"application/vnd.example.sbom","config":` + desc("application/vnd.oci.empty.v1+json", dCfg) +
				`,"layers":[` + desc("text/plain", d512) + `],"subject":` + desc(MediaTypeOCIIndex, dSubj) + `,"annotations":{"a":"b"}}`,
			check: func(t *testing.T, p *Parsed) {
				if p.Subject != dSubj || p.ArtifactType != "application/vnd.example.sbom" || p.Annotations["a"] != "b" || p.Blobs[1] != d512 {
					t.Fatalf("got %+v", p)
				}
			}},
		{name: "foreign layer skipped", ct: MediaTypeDockerManifest,
			body: `{"schemaVersion":2,"mediaType":"` + MediaTypeDockerManifest + `","config":` + desc("application/vnd.docker.container.image.v1+json", dCfg) +
				`,"layers":[{"mediaType":"application/vnd.docker.image.rootfs.foreign.diff.tar.gzip","digest":"` + dL1.String() + `","size":1,"urls":["https://example.invalid/x"]}]}`,
			check: func(t *testing.T, p *Parsed) {
				if len(p.Blobs) != 1 || p.ArtifactType != "" {
					t.Fatalf("got %+v", p)
				}
			}},
		{name: "oci index", ct: MediaTypeOCIIndex,
			body: `{"schemaVersion":2,"mediaType":"` + MediaTypeOCIIndex + `","manifests":[` + desc(MediaTypeOCIManifest, dChild) + `,` + desc(MediaTypeOCIManifest, dChild) + `]}`,
			check: func(t *testing.T, p *Parsed) {
				if len(p.Children) != 1 || p.Children[0] != dChild || len(p.Blobs) != 0 {
					t.Fatalf("got %+v", p)
				}
			}},
		{name: "empty index", ct: MediaTypeOCIIndex, body: `{"schemaVersion":2,"manifests":[]}`},
		{name: "docker list", ct: MediaTypeDockerList,
			body: `{"schemaVersion":2,"mediaType":"` + MediaTypeDockerList + `","manifests":[` + desc(MediaTypeDockerManifest, dChild) + `]}`},
		{name: "not json", ct: MediaTypeOCIManifest, body: `{`, wantErr: ErrInvalid},
		{name: "trailing data", ct: MediaTypeOCIManifest, body: ociManifest + `{}`, wantErr: ErrInvalid, errSubstr: "trailing"},
		{name: "json array", ct: MediaTypeOCIManifest, body: `[]`, wantErr: ErrInvalid},
		{name: "missing schemaVersion", ct: MediaTypeOCIManifest, body: `{"config":` + desc("a/b", dCfg) + `}`, wantErr: ErrInvalid, errSubstr: "schemaVersion"},
		{name: "schema 1", ct: "application/vnd.docker.distribution.manifest.v1+prettyjws", body: `{"schemaVersion":1,"fsLayers":[]}`, wantErr: ErrUnsupportedMediaType},
		{name: "schemaVersion 3", ct: MediaTypeOCIManifest, body: `{"schemaVersion":3}`, wantErr: ErrInvalid},
		{name: "unknown media type in document", ct: "", body: `{"schemaVersion":2,"mediaType":"application/x-foo"}`, wantErr: ErrUnsupportedMediaType},
		{name: "unknown content type", ct: "application/x-foo", body: `{"schemaVersion":2,"config":` + desc("a/b", dCfg) + `}`, wantErr: ErrUnsupportedMediaType},
		{name: "no type at all", ct: "", body: `{"schemaVersion":2,"config":` + desc("a/b", dCfg) + `}`, wantErr: ErrUnsupportedMediaType},
		{name: "content type disagrees", ct: MediaTypeOCIIndex, body: ociManifest, wantErr: ErrInvalid, errSubstr: "does not match"},
		{name: "shape disagrees with content type", ct: MediaTypeOCIIndex, body: `{"schemaVersion":2,"config":` + desc("a/b", dCfg) + `}`, wantErr: ErrInvalid},
		{name: "docker without mediaType", ct: MediaTypeDockerManifest, body: `{"schemaVersion":2,"config":` + desc("a/b", dCfg) + `,"layers":[]}`, wantErr: ErrInvalid},
		{name: "docker without layers", ct: MediaTypeDockerManifest, body: `{"schemaVersion":2,"mediaType":"` + MediaTypeDockerManifest + `","config":` + desc("a/b", dCfg) + `}`, wantErr: ErrInvalid, errSubstr: "layers"},
		{name: "missing config", ct: MediaTypeOCIManifest, body: `{"schemaVersion":2,"mediaType":"` + MediaTypeOCIManifest + `","layers":[]}`, wantErr: ErrInvalid, errSubstr: "config"},
		{name: "bad layer digest", ct: MediaTypeOCIManifest, body: `{"schemaVersion":2,"config":` + desc("a/b", dCfg) + `,"layers":[{"mediaType":"a/b","digest":"sha256:xyz","size":1}]}`, wantErr: ErrInvalid, errSubstr: "layers[0].digest"},
		{name: "layer without mediaType", ct: MediaTypeOCIManifest, body: `{"schemaVersion":2,"config":` + desc("a/b", dCfg) + `,"layers":[{"digest":"` + dL1.String() + `","size":1}]}`, wantErr: ErrInvalid, errSubstr: "mediaType"},
		{name: "negative size", ct: MediaTypeOCIManifest, body: `{"schemaVersion":2,"config":{"mediaType":"a/b","digest":"` + dCfg.String() + `","size":-1}}`, wantErr: ErrInvalid, errSubstr: "negative"},
		{name: "bad subject", ct: MediaTypeOCIManifest, body: `{"schemaVersion":2,"config":` + desc("a/b", dCfg) + `,"subject":{"mediaType":"a/b","digest":"nope","size":1}}`, wantErr: ErrInvalid, errSubstr: "subject"},
		{name: "index with layers", ct: MediaTypeOCIIndex, body: `{"schemaVersion":2,"manifests":[],"layers":[]}`, wantErr: ErrInvalid},
		{name: "index without manifests", ct: "", body: `{"schemaVersion":2,"mediaType":"` + MediaTypeOCIIndex + `"}`, wantErr: ErrInvalid},
		{name: "manifest with manifests", ct: "", body: `{"schemaVersion":2,"mediaType":"` + MediaTypeOCIManifest + `","manifests":[],"config":` + desc("a/b", dCfg) + `}`, wantErr: ErrInvalid},
		{name: "bad child digest", ct: MediaTypeOCIIndex, body: `{"schemaVersion":2,"manifests":[{"mediaType":"a/b","digest":"md5:abc","size":1}]}`, wantErr: ErrInvalid, errSubstr: "manifests[0]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Parse(tt.ct, []byte(tt.body))
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				if tt.errSubstr != "" && !strings.Contains(err.Error(), tt.errSubstr) {
					t.Fatalf("err %q does not mention %q", err, tt.errSubstr)
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if tt.check != nil {
				tt.check(t, p)
			}
		})
	}
}

func TestIsKnownMediaType(t *testing.T) {
	for mt, want := range map[string]bool{
		MediaTypeOCIManifest: true, MediaTypeOCIIndex + ";charset=utf-8": true, MediaTypeDockerManifest: true,
		MediaTypeDockerList: true, "application/json": false, "": false, "application/vnd.docker.distribution.manifest.v1+prettyjws": false,
	} {
		if got := IsKnownMediaType(mt); got != want {
			t.Errorf("IsKnownMediaType(%q) = %v", mt, got)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add(MediaTypeOCIManifest, []byte(`{"schemaVersion":2,"config":`+desc("a/b", dCfg)+`,"layers":[`+desc("a/b", dL1)+`]}`))
	f.Add(MediaTypeOCIIndex, []byte(`{"schemaVersion":2,"manifests":[`+desc(MediaTypeOCIManifest, dChild)+`],"subject":`+desc("a/b", dSubj)+`}`))
	f.Add("", []byte(`{"schemaVersion":2,"mediaType":"`+MediaTypeDockerList+`","manifests":[]}`))
	f.Add("text/plain", []byte(`{"schemaVersion":1}`))
	f.Add("", []byte(`null`))
	f.Fuzz(func(t *testing.T, ct string, body []byte) {
		p, err := Parse(ct, body)
		if err != nil {
			if !errors.Is(err, ErrInvalid) && !errors.Is(err, ErrUnsupportedMediaType) {
				t.Fatalf("error not classified: %v", err)
			}
			return
		}
		if !IsKnownMediaType(p.MediaType) {
			t.Fatalf("accepted unknown media type %q", p.MediaType)
		}
		for _, d := range append(append([]digest.Digest{}, p.Blobs...), p.Children...) {
			if d.Validate() != nil {
				t.Fatalf("invalid digest %q accepted", d)
			}
		}
		if p.Subject != "" && p.Subject.Validate() != nil {
			t.Fatalf("invalid subject %q accepted", p.Subject)
		}
	})
}
