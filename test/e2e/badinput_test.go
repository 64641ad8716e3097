package e2e

// The bad-input list of issue 2: every malformed request gets the spec's
// status and error code, nothing partial becomes visible, and the server
// keeps serving.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func TestBadInput(t *testing.T) {
	t.Parallel()
	s := shared
	s.logOnFailure(t)
	repo := uniqueRepo("badinput")
	img := s.pushTestImage(t, repo, 1)

	// tagAbsent checks that a refused manifest left nothing behind.
	tagAbsent := func(t *testing.T, ref string) {
		t.Helper()
		resp, body := s.do(t, request{method: http.MethodHead, path: "/v2/" + repo + "/manifests/" + ref})
		expectStatus(t, "HEAD "+ref+" after a refused PUT", resp, body, http.StatusNotFound)
	}

	t.Run("malformed manifests", func(t *testing.T) {
		missingBlob := ocispec.Descriptor{MediaType: mtOCILayer, Digest: digest.FromBytes(randomBytes(8)), Size: 8}
		missingChild := ocispec.Descriptor{MediaType: mtOCIManifest, Digest: digest.FromBytes(randomBytes(8)), Size: 100}
		cases := []struct {
			name      string
			mediaType string
			body      []byte
			codes     []string
		}{
			{"truncated JSON", mtOCIManifest, []byte(`{"schemaVersion":2,"mediaType":`), []string{"MANIFEST_INVALID"}},
			{"not an object", mtOCIManifest, []byte(`[1,2,3]`), []string{"MANIFEST_INVALID"}},
			{"schema version 1", mtOCIManifest, bytes.Replace(img.manifest, []byte(`"schemaVersion":2`), []byte(`"schemaVersion":1`), 1), []string{"MANIFEST_INVALID"}},
			{"no config", mtOCIManifest, []byte(`{"schemaVersion":2,"mediaType":"` + mtOCIManifest + `","layers":[]}`), []string{"MANIFEST_INVALID"}},
			{"media type differs from Content-Type", mtOCIIndex, img.manifest, []string{"MANIFEST_INVALID"}},
			{"descriptor with a malformed digest", mtOCIManifest,
				bytes.Replace(img.manifest, []byte(img.layers[0].Digest.String()), []byte("sha256:nothex"), 1),
				[]string{"MANIFEST_INVALID", "DIGEST_INVALID"}},
			{"layer not in the repository", mtOCIManifest,
				imageManifest(img.config, []ocispec.Descriptor{missingBlob}, nil, nil),
				[]string{"MANIFEST_BLOB_UNKNOWN", "MANIFEST_INVALID"}},
			{"index child not in the repository", mtOCIIndex,
				mustJSON(ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: mtOCIIndex, Manifests: []ocispec.Descriptor{missingChild}}),
				[]string{"MANIFEST_BLOB_UNKNOWN", "MANIFEST_UNKNOWN", "MANIFEST_INVALID"}},
		}
		for i, c := range cases {
			tag := fmt.Sprintf("malformed-%d", i)
			resp, body := s.do(t, request{
				method: http.MethodPut,
				path:   "/v2/" + repo + "/manifests/" + tag,
				body:   c.body,
				header: http.Header{"Content-Type": {c.mediaType}},
			})
			expectError(t, c.name, resp, body, http.StatusBadRequest, c.codes...)
			tagAbsent(t, tag)
		}
	})

	t.Run("digest does not match", func(t *testing.T) {
		// The conformance suite's bad-digest image: trailing bytes change
		// the digest of what is sent.
		body := append(append([]byte{}, img.manifest...), "  "...)
		resp, rbody := s.do(t, request{
			method: http.MethodPut,
			path:   "/v2/" + repo + "/manifests/" + img.digest.String(),
			body:   body,
			header: http.Header{"Content-Type": {mtOCIManifest}},
		})
		expectError(t, "manifest PUT under another digest", resp, rbody, http.StatusBadRequest, "DIGEST_INVALID")
		tagAbsent(t, img.digest.String())
		tagAbsent(t, digest.FromBytes(body).String())

		resp, rbody = s.do(t, request{
			method: http.MethodPut,
			path:   "/v2/" + repo + "/manifests/sha256:baddigeststring",
			body:   img.manifest,
			header: http.Header{"Content-Type": {mtOCIManifest}},
		})
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("manifest PUT to sha256:baddigeststring: status %d, want 400; body %.300s", resp.StatusCode, rbody)
		}
	})

	t.Run("unknown media type", func(t *testing.T) {
		const unknown = "application/vnd.example.unknown+json"
		var noMediaType map[string]any
		if err := json.Unmarshal(img.manifest, &noMediaType); err != nil {
			t.Fatal(err)
		}
		delete(noMediaType, "mediaType")
		withUnknown := maps.Clone(noMediaType)
		withUnknown["mediaType"] = unknown
		cases := []struct {
			name        string
			contentType string
			body        []byte
		}{
			{"unknown mediaType in the manifest", unknown, mustJSON(withUnknown)},
			{"no mediaType and an unknown Content-Type", unknown, mustJSON(noMediaType)},
			{"no mediaType and no Content-Type", "", mustJSON(noMediaType)},
		}
		for i, c := range cases {
			tag := fmt.Sprintf("unknown-type-%d", i)
			h := http.Header{}
			if c.contentType != "" {
				h.Set("Content-Type", c.contentType)
			}
			resp, body := s.do(t, request{method: http.MethodPut, path: "/v2/" + repo + "/manifests/" + tag, body: c.body, header: h})
			if resp.StatusCode == http.StatusUnsupportedMediaType {
				expectError(t, c.name, resp, body, http.StatusUnsupportedMediaType, "MANIFEST_INVALID", "UNSUPPORTED")
			} else {
				expectError(t, c.name, resp, body, http.StatusBadRequest, "MANIFEST_INVALID", "UNSUPPORTED")
			}
			tagAbsent(t, tag)
		}
	})

	t.Run("oversized manifest", func(t *testing.T) {
		big := imageManifest(img.config, img.layers, nil, map[string]string{"pad": strings.Repeat("x", 4<<20)})
		resp, body := s.do(t, request{
			method: http.MethodPut,
			path:   "/v2/" + repo + "/manifests/too-big",
			body:   big,
			header: http.Header{"Content-Type": {mtOCIManifest}},
		})
		expectError(t, "manifest over 4 MiB", resp, body, http.StatusRequestEntityTooLarge, "MANIFEST_INVALID", "SIZE_INVALID")
		tagAbsent(t, "too-big")
	})

	t.Run("bad ranges", func(t *testing.T) {
		dgst := img.layers[0].Digest
		for _, rng := range []string{"bytes=abc", "bytes=10-5", "bytes=999999-", "items=0-1", "bytes=-0"} {
			resp, body := s.do(t, request{method: http.MethodGet, path: "/v2/" + repo + "/blobs/" + dgst.String(), header: http.Header{"Range": {rng}}})
			switch resp.StatusCode {
			case http.StatusRequestedRangeNotSatisfiable:
			case http.StatusOK: // a Range header that does not parse may be ignored (RFC 9110)
				if digest.FromBytes(body) != dgst {
					t.Errorf("Range %q: 200 with a body that is not the blob", rng)
				}
			default:
				t.Errorf("Range %q: status %d, want 416 (or 200 ignoring it)", rng, resp.StatusCode)
			}
		}
		loc := s.startUpload(t, repo)
		for _, cr := range []string{"abc", "5-2", "0-9999", "10-19"} {
			resp, body := s.do(t, request{method: http.MethodPatch, path: loc, body: randomBytes(10), header: http.Header{"Content-Range": {cr}}})
			if resp.StatusCode != http.StatusRequestedRangeNotSatisfiable && resp.StatusCode != http.StatusBadRequest {
				t.Errorf("PATCH Content-Range %q: status %d, want 416 or 400; body %.300s", cr, resp.StatusCode, body)
			}
		}
		// The upload is still usable from offset 0.
		resp, body := s.do(t, request{method: http.MethodGet, path: loc})
		expectStatus(t, "upload status after refused chunks", resp, body, http.StatusNoContent)
		if r := resp.Header.Get("Range"); r != "" && r != "0-0" && r != "0--1" {
			t.Errorf("upload status after refused chunks: Range %q, want nothing received", r)
		}
	})

	t.Run("invalid repository names", func(t *testing.T) {
		long := strings.Repeat("a", 256)
		for _, name := range []string{"Upper/x", "UPPER", "a/../x", "a/%2e%2e/x", "a//b", "-lead", "trail-", "a..b", long} {
			resp, body := s.do(t, request{method: http.MethodPost, path: "/v2/" + name + "/blobs/uploads/"})
			if resp.StatusCode == http.StatusNotFound {
				expectError(t, "upload to "+name, resp, body, http.StatusNotFound, "NAME_UNKNOWN", "NAME_INVALID")
			} else {
				expectError(t, "upload to "+name, resp, body, http.StatusBadRequest, "NAME_INVALID")
			}
			resp, body = s.do(t, request{method: http.MethodGet, path: "/v2/" + name + "/manifests/latest"})
			if resp.StatusCode != http.StatusBadRequest && resp.StatusCode != http.StatusNotFound {
				t.Errorf("GET manifest of %q: status %d, want 400 or 404; body %.300s", name, resp.StatusCode, body)
			}
		}
		resp, body := s.do(t, request{method: http.MethodPost, path: "/v2/../x/blobs/uploads/"})
		if resp.StatusCode < 400 || resp.StatusCode >= 500 {
			t.Errorf("upload to /v2/../x: status %d, want a 4xx; body %.300s", resp.StatusCode, body)
		}
	})

	t.Run("invalid tags", func(t *testing.T) {
		for _, tag := range []string{"-lead", ".dot", strings.Repeat("t", 129), "a:b"} {
			resp, body := s.do(t, request{
				method: http.MethodPut,
				path:   "/v2/" + repo + "/manifests/" + tag,
				body:   img.manifest,
				header: http.Header{"Content-Type": {mtOCIManifest}},
			})
			if resp.StatusCode != http.StatusBadRequest && resp.StatusCode != http.StatusNotFound {
				t.Errorf("PUT manifest with tag %q: status %d, want 400; body %.300s", tag, resp.StatusCode, body)
			}
		}
	})

	t.Run("invalid digests", func(t *testing.T) {
		for _, d := range []string{"sha256:abc", "sha256:" + strings.Repeat("g", 64), "md5:d41d8cd98f00b204e9800998ecf8427e", "nodigest"} {
			resp, body := s.do(t, request{method: http.MethodGet, path: "/v2/" + repo + "/blobs/" + d})
			if resp.StatusCode == http.StatusNotFound {
				expectError(t, "GET blob "+d, resp, body, http.StatusNotFound, "BLOB_UNKNOWN", "DIGEST_INVALID")
			} else {
				expectError(t, "GET blob "+d, resp, body, http.StatusBadRequest, "DIGEST_INVALID", "UNSUPPORTED")
			}
		}
		loc := s.startUpload(t, repo)
		resp, body := s.do(t, request{method: http.MethodPut, path: withQuery(loc, "digest=sha256:nothex"), body: []byte("x")})
		expectError(t, "closing an upload with a malformed digest", resp, body, http.StatusBadRequest, "DIGEST_INVALID")
	})

	t.Run("unknown upload ids", func(t *testing.T) {
		for _, id := range []string{"00000000-0000-0000-0000-000000000000", "no-such-upload", "z"} {
			path := "/v2/" + repo + "/blobs/uploads/" + id
			for _, method := range []string{http.MethodGet, http.MethodPatch, http.MethodPut, http.MethodDelete} {
				p := path
				if method == http.MethodPut {
					p += "?digest=" + digest.FromBytes(nil).String()
				}
				resp, body := s.do(t, request{method: method, path: p})
				if resp.StatusCode == http.StatusBadRequest {
					expectError(t, method+" "+id, resp, body, http.StatusBadRequest, "BLOB_UPLOAD_INVALID")
					continue
				}
				expectError(t, method+" upload "+id, resp, body, http.StatusNotFound, "BLOB_UPLOAD_UNKNOWN")
			}
		}
		// An id that tries to climb out of the upload directory reaches
		// nothing.
		for _, id := range []string{"..%2f..%2fetc", "%2e%2e", "..%5c..%5cetc"} {
			resp, body := s.do(t, request{method: http.MethodPatch, path: "/v2/" + repo + "/blobs/uploads/" + id, body: []byte("x")})
			if resp.StatusCode != http.StatusNotFound && resp.StatusCode != http.StatusBadRequest {
				t.Errorf("PATCH upload %q: status %d, want 404 or 400; body %.300s", id, resp.StatusCode, body)
			}
		}
		// An upload opened in one repository cannot be used from another.
		loc := s.startUpload(t, repo)
		other := uniqueRepo("badinput-other")
		stolen := strings.Replace(loc, "/v2/"+repo+"/", "/v2/"+other+"/", 1)
		if stolen == loc {
			t.Fatalf("upload location %q does not contain the repository path", loc)
		}
		resp, body := s.do(t, request{method: http.MethodPatch, path: stolen, body: []byte("x")})
		expectError(t, "upload used from another repository", resp, body, http.StatusNotFound, "BLOB_UPLOAD_UNKNOWN")
	})

	t.Run("unknown registry", func(t *testing.T) {
		port := s.addr[strings.LastIndex(s.addr, ":"):]
		for _, host := range []string{"nosuchregistry.localhost" + port, "nosuchregistry.localhost"} {
			resp, body := s.do(t, request{method: http.MethodGet, path: "/v2/" + repo + "/manifests/" + img.digest.String(), host: host})
			expectError(t, "GET on an unknown registry", resp, body, http.StatusNotFound, "NAME_UNKNOWN")
			resp, body = s.do(t, request{method: http.MethodPost, path: "/v2/" + repo + "/blobs/uploads/", host: host})
			expectError(t, "upload to an unknown registry", resp, body, http.StatusNotFound, "NAME_UNKNOWN")
		}
	})

	t.Run("server still healthy", func(t *testing.T) {
		resp, body := s.do(t, request{method: http.MethodGet, path: "/healthz", auth: "none"})
		expectStatus(t, "/healthz", resp, body, http.StatusOK)
		log, err := os.ReadFile(s.logPath)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(log, []byte("panic")) {
			t.Errorf("the server log mentions a panic")
		}
	})
}
