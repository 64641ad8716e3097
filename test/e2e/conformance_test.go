package e2e

// Raw-HTTP tests grouped like the categories of the OCI distribution-spec
// conformance suite (pull, push, content discovery, content management) and
// its optional features (referrers, the tag parameter, sha512, upload
// cancel). They pin the statuses, headers and error codes the spec
// requires, so a change that would fail the suite fails here first.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func TestConformancePull(t *testing.T) {
	t.Parallel()
	s := shared
	s.logOnFailure(t)
	repo := uniqueRepo("conformance/pull")
	img := s.pushTestImage(t, repo, 2)
	s.putManifest(t, repo, "v1", mtOCIManifest, img.manifest)
	layer := img.layers[0]

	t.Run("ping", func(t *testing.T) {
		resp, body := s.do(t, request{method: http.MethodGet, path: "/v2/"})
		expectStatus(t, "GET /v2/", resp, body, http.StatusOK)
	})

	t.Run("blob HEAD and GET", func(t *testing.T) {
		for _, method := range []string{http.MethodHead, http.MethodGet} {
			resp, body := s.do(t, request{method: method, path: "/v2/" + repo + "/blobs/" + layer.Digest.String()})
			expectStatus(t, method+" blob", resp, body, http.StatusOK)
			if got := resp.Header.Get("Docker-Content-Digest"); got != layer.Digest.String() {
				t.Errorf("%s blob: Docker-Content-Digest %q, want %q", method, got, layer.Digest)
			}
			if got := resp.Header.Get("Content-Length"); got != strconv.FormatInt(layer.Size, 10) {
				t.Errorf("%s blob: Content-Length %q, want %d", method, got, layer.Size)
			}
			if method == http.MethodGet && digest.FromBytes(body) != layer.Digest {
				t.Errorf("GET blob: body does not match its digest")
			}
		}
	})

	t.Run("blob missing", func(t *testing.T) {
		missing := digest.FromBytes(randomBytes(32)).String()
		resp, body := s.do(t, request{method: http.MethodHead, path: "/v2/" + repo + "/blobs/" + missing})
		expectStatus(t, "HEAD missing blob", resp, body, http.StatusNotFound)
		resp, body = s.do(t, request{method: http.MethodGet, path: "/v2/" + repo + "/blobs/" + missing})
		expectError(t, "GET missing blob", resp, body, http.StatusNotFound, "BLOB_UNKNOWN")
	})

	t.Run("manifest by tag and digest", func(t *testing.T) {
		for _, ref := range []string{"v1", img.digest.String()} {
			for _, method := range []string{http.MethodHead, http.MethodGet} {
				resp, body := s.do(t, request{
					method: method,
					path:   "/v2/" + repo + "/manifests/" + ref,
					header: http.Header{"Accept": {mtOCIManifest, mtOCIIndex}},
				})
				what := method + " manifest " + ref
				expectStatus(t, what, resp, body, http.StatusOK)
				if got := resp.Header.Get("Docker-Content-Digest"); got != img.digest.String() {
					t.Errorf("%s: Docker-Content-Digest %q, want %q", what, got, img.digest)
				}
				if got := resp.Header.Get("Content-Type"); got != mtOCIManifest {
					t.Errorf("%s: Content-Type %q, want %q", what, got, mtOCIManifest)
				}
				if got := resp.Header.Get("Content-Length"); got != strconv.Itoa(len(img.manifest)) {
					t.Errorf("%s: Content-Length %q, want %d", what, got, len(img.manifest))
				}
				if method == http.MethodGet && !bytes.Equal(body, img.manifest) {
					t.Errorf("%s: body differs from what was pushed", what)
				}
			}
		}
	})

	t.Run("manifest missing", func(t *testing.T) {
		for _, ref := range []string{"missing-tag", digest.FromBytes(randomBytes(32)).String()} {
			resp, body := s.do(t, request{method: http.MethodHead, path: "/v2/" + repo + "/manifests/" + ref})
			expectStatus(t, "HEAD missing manifest", resp, body, http.StatusNotFound)
			resp, body = s.do(t, request{method: http.MethodGet, path: "/v2/" + repo + "/manifests/" + ref})
			expectError(t, "GET missing manifest "+ref, resp, body, http.StatusNotFound, "MANIFEST_UNKNOWN")
		}
	})

	t.Run("manifest bad digest reference", func(t *testing.T) {
		resp, body := s.do(t, request{method: http.MethodGet, path: "/v2/" + repo + "/manifests/sha256:baddigeststring"})
		if resp.StatusCode != http.StatusBadRequest && resp.StatusCode != http.StatusNotFound {
			t.Fatalf("GET manifest sha256:baddigeststring: status %d, want 400 or 404; body %.300s", resp.StatusCode, body)
		}
	})

	t.Run("range requests", func(t *testing.T) {
		data := randomBytes(2048)
		dgst := s.pushBlob(t, repo, data)
		cases := []struct {
			rng          string
			status       int
			start, end   int // inclusive, for 206
			contentRange string
		}{
			{"bytes=500-1499", http.StatusPartialContent, 500, 1499, "bytes 500-1499/2048"},
			{"bytes=500-", http.StatusPartialContent, 500, 2047, "bytes 500-2047/2048"},
			{"bytes=-500", http.StatusPartialContent, 1548, 2047, "bytes 1548-2047/2048"},
			{"bytes=2000-5000", http.StatusPartialContent, 2000, 2047, "bytes 2000-2047/2048"},
			{"bytes=500-0", http.StatusRequestedRangeNotSatisfiable, 0, 0, ""},
			{"bytes=5000-10000", http.StatusRequestedRangeNotSatisfiable, 0, 0, ""},
		}
		for _, c := range cases {
			resp, body := s.do(t, request{
				method: http.MethodGet,
				path:   "/v2/" + repo + "/blobs/" + dgst.String(),
				header: http.Header{"Range": {c.rng}},
			})
			if resp.StatusCode != c.status {
				t.Errorf("Range %s: status %d, want %d", c.rng, resp.StatusCode, c.status)
				continue
			}
			if c.status != http.StatusPartialContent {
				continue
			}
			if !bytes.Equal(body, data[c.start:c.end+1]) {
				t.Errorf("Range %s: body is not bytes %d-%d", c.rng, c.start, c.end)
			}
			if got := resp.Header.Get("Content-Range"); got != c.contentRange {
				t.Errorf("Range %s: Content-Range %q, want %q", c.rng, got, c.contentRange)
			}
			if got := resp.Header.Get("Content-Length"); got != strconv.Itoa(c.end-c.start+1) {
				t.Errorf("Range %s: Content-Length %q, want %d", c.rng, got, c.end-c.start+1)
			}
		}
	})
}

func TestConformancePush(t *testing.T) {
	t.Parallel()
	s := shared
	s.logOnFailure(t)
	repo := uniqueRepo("conformance/push")

	blobGet := func(t *testing.T, repo string, dgst digest.Digest, want []byte) {
		t.Helper()
		resp, body := s.do(t, request{method: http.MethodGet, path: "/v2/" + repo + "/blobs/" + dgst.String()})
		expectStatus(t, "GET blob "+dgst.String(), resp, body, http.StatusOK)
		if !bytes.Equal(body, want) {
			t.Fatalf("GET blob %s: body differs from what was pushed", dgst)
		}
	}
	blobAbsent := func(t *testing.T, repo string, dgst digest.Digest) {
		t.Helper()
		resp, body := s.do(t, request{method: http.MethodHead, path: "/v2/" + repo + "/blobs/" + dgst.String()})
		expectStatus(t, "HEAD blob that must not exist "+dgst.String(), resp, body, http.StatusNotFound)
	}

	t.Run("post then put", func(t *testing.T) {
		data := randomBytes(1000)
		dgst := s.pushBlob(t, repo, data)
		blobGet(t, repo, dgst, data)
	})

	t.Run("post with digest", func(t *testing.T) {
		data := randomBytes(1000)
		dgst := digest.FromBytes(data)
		resp, body := s.do(t, request{
			method: http.MethodPost,
			path:   "/v2/" + repo + "/blobs/uploads/?digest=" + dgst.String(),
			body:   data,
			header: http.Header{"Content-Type": {mtOctetStream}},
		})
		expectStatus(t, "monolithic POST", resp, body, http.StatusCreated)
		if resp.Header.Get("Location") == "" {
			t.Errorf("monolithic POST: no Location")
		}
		blobGet(t, repo, dgst, data)
	})

	t.Run("chunked", func(t *testing.T) {
		resp, body := s.do(t, request{method: http.MethodPost, path: "/v2/" + repo + "/blobs/uploads/"})
		expectStatus(t, "upload POST", resp, body, http.StatusAccepted)
		loc := s.location(t, resp)
		chunk := 1024
		if m := resp.Header.Get("OCI-Chunk-Min-Length"); m != "" {
			n, err := strconv.Atoi(m)
			if err != nil || n <= 0 {
				t.Fatalf("OCI-Chunk-Min-Length %q is not a positive integer", m)
			}
			chunk = max(chunk, n)
		}
		data := randomBytes(3*chunk - 5)
		dgst := digest.FromBytes(data)
		patch := func(loc string, from, to int) (*http.Response, []byte) {
			return s.do(t, request{
				method: http.MethodPatch,
				path:   loc,
				body:   data[from : to+1],
				header: http.Header{
					"Content-Type":  {mtOctetStream},
					"Content-Range": {fmt.Sprintf("%d-%d", from, to)},
				},
			})
		}
		// A chunk that skips ahead is refused.
		resp, body = patch(loc, chunk, 2*chunk-1)
		expectStatus(t, "out-of-order first chunk", resp, body, http.StatusRequestedRangeNotSatisfiable)

		resp, body = patch(loc, 0, chunk-1)
		expectStatus(t, "first chunk", resp, body, http.StatusAccepted)
		if got, want := resp.Header.Get("Range"), fmt.Sprintf("0-%d", chunk-1); got != want {
			t.Errorf("first chunk: Range %q, want %q", got, want)
		}
		loc = s.location(t, resp)

		// Replaying the chunk is refused too.
		resp, body = patch(loc, 0, chunk-1)
		expectStatus(t, "replayed chunk", resp, body, http.StatusRequestedRangeNotSatisfiable)

		resp, body = s.do(t, request{method: http.MethodGet, path: loc})
		expectStatus(t, "upload status", resp, body, http.StatusNoContent)
		if got, want := resp.Header.Get("Range"), fmt.Sprintf("0-%d", chunk-1); got != want {
			t.Errorf("upload status: Range %q, want %q", got, want)
		}
		loc = s.location(t, resp)

		resp, body = patch(loc, chunk, 2*chunk-1)
		expectStatus(t, "second chunk", resp, body, http.StatusAccepted)
		loc = s.location(t, resp)

		// The last chunk rides on the closing PUT.
		resp, body = s.do(t, request{
			method: http.MethodPut,
			path:   withQuery(loc, "digest="+dgst.String()),
			body:   data[2*chunk:],
			header: http.Header{
				"Content-Type":  {mtOctetStream},
				"Content-Range": {fmt.Sprintf("%d-%d", 2*chunk, len(data)-1)},
			},
		})
		expectStatus(t, "closing PUT with last chunk", resp, body, http.StatusCreated)
		if got := resp.Header.Get("Docker-Content-Digest"); got != "" && got != dgst.String() {
			t.Errorf("closing PUT: Docker-Content-Digest %q, want %q", got, dgst)
		}
		blobGet(t, repo, dgst, data)
	})

	t.Run("stream", func(t *testing.T) {
		data := randomBytes(5000)
		dgst := digest.FromBytes(data)
		loc := s.startUpload(t, repo)
		resp, body := s.do(t, request{method: http.MethodPatch, path: loc, body: data, header: http.Header{"Content-Type": {mtOctetStream}}})
		expectStatus(t, "streamed PATCH", resp, body, http.StatusAccepted)
		if got, want := resp.Header.Get("Range"), fmt.Sprintf("0-%d", len(data)-1); got != want {
			t.Errorf("streamed PATCH: Range %q, want %q", got, want)
		}
		loc = s.location(t, resp)
		resp, body = s.do(t, request{method: http.MethodPut, path: withQuery(loc, "digest="+dgst.String())})
		expectStatus(t, "closing PUT", resp, body, http.StatusCreated)
		blobGet(t, repo, dgst, data)
	})

	t.Run("empty blob", func(t *testing.T) {
		dgst := s.pushBlob(t, repo, []byte{})
		if dgst != digest.FromBytes(nil) {
			t.Fatalf("empty blob digest %s", dgst)
		}
		resp, body := s.do(t, request{method: http.MethodGet, path: "/v2/" + repo + "/blobs/" + dgst.String()})
		expectStatus(t, "GET empty blob", resp, body, http.StatusOK)
		if len(body) != 0 || resp.Header.Get("Content-Length") != "0" {
			t.Errorf("GET empty blob: %d bytes, Content-Length %q", len(body), resp.Header.Get("Content-Length"))
		}
	})

	t.Run("bad digest", func(t *testing.T) {
		data := randomBytes(3000)
		wrong := digest.FromBytes(randomBytes(16))

		loc := s.startUpload(t, repo)
		resp, body := s.do(t, request{method: http.MethodPut, path: withQuery(loc, "digest="+wrong.String()), body: data})
		expectError(t, "PUT with mismatched digest", resp, body, http.StatusBadRequest, "DIGEST_INVALID")

		resp, body = s.do(t, request{method: http.MethodPost, path: "/v2/" + repo + "/blobs/uploads/?digest=" + wrong.String(), body: data})
		expectError(t, "monolithic POST with mismatched digest", resp, body, http.StatusBadRequest, "DIGEST_INVALID")

		loc = s.startUpload(t, repo)
		resp, body = s.do(t, request{method: http.MethodPatch, path: loc, body: data, header: http.Header{"Content-Range": {fmt.Sprintf("0-%d", len(data)-1)}}})
		expectStatus(t, "PATCH", resp, body, http.StatusAccepted)
		resp, body = s.do(t, request{method: http.MethodPut, path: withQuery(s.location(t, resp), "digest="+wrong.String())})
		expectError(t, "chunked close with mismatched digest", resp, body, http.StatusBadRequest, "DIGEST_INVALID")

		// Nothing was stored under either digest.
		blobAbsent(t, repo, wrong)
		blobAbsent(t, repo, digest.FromBytes(data))
	})

	t.Run("mount", func(t *testing.T) {
		from := uniqueRepo("conformance/push-from")
		data := randomBytes(700)
		dgst := s.pushBlob(t, from, data)
		blobAbsent(t, repo, dgst)
		resp, body := s.do(t, request{method: http.MethodPost, path: "/v2/" + repo + "/blobs/uploads/?mount=" + dgst.String() + "&from=" + from})
		expectStatus(t, "mount", resp, body, http.StatusCreated)
		if got := s.location(t, resp); got != "/v2/"+repo+"/blobs/"+dgst.String() {
			t.Errorf("mount: Location %q, want the blob in the target repository", got)
		}
		blobGet(t, repo, dgst, data)

		// A blob the source does not have: the registry opens an upload
		// instead.
		missing := digest.FromBytes(randomBytes(16))
		resp, body = s.do(t, request{method: http.MethodPost, path: "/v2/" + repo + "/blobs/uploads/?mount=" + missing.String() + "&from=" + from})
		expectStatus(t, "mount of a missing blob", resp, body, http.StatusAccepted)
		s.location(t, resp)

		// Without from, either answer is allowed.
		resp, body = s.do(t, request{method: http.MethodPost, path: "/v2/" + uniqueRepo("conformance/push-anon") + "/blobs/uploads/?mount=" + dgst.String()})
		if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusAccepted {
			t.Errorf("mount without from: status %d, want 201 or 202; body %.300s", resp.StatusCode, body)
		}
	})

	t.Run("cancel", func(t *testing.T) {
		loc := s.startUpload(t, repo)
		resp, body := s.do(t, request{method: http.MethodPatch, path: loc, body: randomBytes(100)})
		expectStatus(t, "PATCH", resp, body, http.StatusAccepted)
		loc = s.location(t, resp)
		resp, body = s.do(t, request{method: http.MethodDelete, path: loc})
		expectStatus(t, "cancel upload", resp, body, http.StatusNoContent)
		resp, body = s.do(t, request{method: http.MethodGet, path: loc})
		expectError(t, "status of a cancelled upload", resp, body, http.StatusNotFound, "BLOB_UPLOAD_UNKNOWN")
		resp, body = s.do(t, request{method: http.MethodPut, path: withQuery(loc, "digest="+digest.FromBytes(nil).String())})
		expectError(t, "closing a cancelled upload", resp, body, http.StatusNotFound, "BLOB_UPLOAD_UNKNOWN")
	})

	t.Run("manifest", func(t *testing.T) {
		img := s.pushTestImage(t, repo, 1)
		resp := s.putManifest(t, repo, "latest", mtOCIManifest, img.manifest)
		if got := resp.Header.Get("Docker-Content-Digest"); got != img.digest.String() {
			t.Errorf("manifest PUT: Docker-Content-Digest %q, want %q", got, img.digest)
		}
		loc := s.location(t, resp)
		resp, body := s.do(t, request{method: http.MethodGet, path: loc, header: http.Header{"Accept": {mtOCIManifest}}})
		expectStatus(t, "GET manifest at Location", resp, body, http.StatusOK)
		if !bytes.Equal(body, img.manifest) {
			t.Errorf("manifest at Location differs from what was pushed")
		}
		// By digest, and with no layers at all.
		s.putManifest(t, repo, img.digest.String(), mtOCIManifest, img.manifest)
		noLayers := imageManifest(img.config, nil, nil, map[string]string{"nonce": randomHex(4)})
		s.putManifest(t, repo, "no-layers", mtOCIManifest, noLayers)
	})

	t.Run("tag parameter", func(t *testing.T) {
		img := s.pushTestImage(t, repo, 1)
		resp, body := s.do(t, request{
			method: http.MethodPut,
			path:   "/v2/" + repo + "/manifests/" + img.digest.String() + "?tag=tp-one&tag=tp-two",
			body:   img.manifest,
			header: http.Header{"Content-Type": {mtOCIManifest}},
		})
		expectStatus(t, "manifest PUT with tag parameters", resp, body, http.StatusCreated)
		var got []string
		for _, v := range resp.Header.Values("OCI-Tag") {
			for _, tag := range strings.Split(v, ",") {
				got = append(got, strings.TrimSpace(tag))
			}
		}
		slices.Sort(got)
		if !slices.Equal(got, []string{"tp-one", "tp-two"}) {
			t.Errorf("OCI-Tag headers %q, want tp-one and tp-two", got)
		}
		for _, tag := range []string{"tp-one", "tp-two"} {
			resp, body := s.do(t, request{method: http.MethodHead, path: "/v2/" + repo + "/manifests/" + tag})
			expectStatus(t, "HEAD "+tag, resp, body, http.StatusOK)
			if resp.Header.Get("Docker-Content-Digest") != img.digest.String() {
				t.Errorf("tag %s does not point at the pushed manifest", tag)
			}
		}
	})

	t.Run("sha512", func(t *testing.T) {
		cfg := []byte(`{"architecture":"arm64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}`)
		layer := randomBytes(1500)
		cfgDigest := s.pushBlobAlgo(t, repo, cfg, digest.SHA512)
		layerDigest := s.pushBlobAlgo(t, repo, layer, digest.SHA512)
		resp, body := s.do(t, request{method: http.MethodHead, path: "/v2/" + repo + "/blobs/" + layerDigest.String()})
		expectStatus(t, "HEAD sha512 blob", resp, body, http.StatusOK)
		if got := resp.Header.Get("Docker-Content-Digest"); got != layerDigest.String() {
			t.Errorf("HEAD sha512 blob: Docker-Content-Digest %q, want %q", got, layerDigest)
		}
		blobGet(t, repo, layerDigest, layer)

		m := imageManifest(
			ocispec.Descriptor{MediaType: mtOCIConfig, Digest: cfgDigest, Size: int64(len(cfg))},
			[]ocispec.Descriptor{{MediaType: mtOCILayer, Digest: layerDigest, Size: int64(len(layer))}},
			nil, nil)
		mDigest := digest.SHA512.FromBytes(m)
		resp = s.putManifest(t, repo, mDigest.String(), mtOCIManifest, m)
		if got := resp.Header.Get("Docker-Content-Digest"); got != "" && got != mDigest.String() {
			t.Errorf("PUT sha512 manifest: Docker-Content-Digest %q, want %q", got, mDigest)
		}
		resp, body = s.do(t, request{method: http.MethodGet, path: "/v2/" + repo + "/manifests/" + mDigest.String(), header: http.Header{"Accept": {mtOCIManifest}}})
		expectStatus(t, "GET sha512 manifest", resp, body, http.StatusOK)
		if !bytes.Equal(body, m) {
			t.Errorf("GET sha512 manifest: body differs")
		}
		if got := resp.Header.Get("Docker-Content-Digest"); got != mDigest.String() {
			t.Errorf("GET sha512 manifest: Docker-Content-Digest %q, want %q", got, mDigest)
		}
	})

	t.Run("docker schema 2", func(t *testing.T) {
		cfg := []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}`)
		layer := randomBytes(800)
		m := mustJSON(map[string]any{
			"schemaVersion": 2,
			"mediaType":     mtDockerManifest,
			"config":        map[string]any{"mediaType": mtDockerConfig, "digest": s.pushBlob(t, repo, cfg), "size": len(cfg)},
			"layers":        []any{map[string]any{"mediaType": mtDockerLayer, "digest": s.pushBlob(t, repo, layer), "size": len(layer)}},
		})
		s.putManifest(t, repo, "docker", mtDockerManifest, m)
		list := mustJSON(map[string]any{
			"schemaVersion": 2,
			"mediaType":     mtDockerList,
			"manifests": []any{map[string]any{
				"mediaType": mtDockerManifest, "digest": digest.FromBytes(m), "size": len(m),
				"platform": map[string]string{"architecture": "amd64", "os": "linux"},
			}},
		})
		s.putManifest(t, repo, "docker-list", mtDockerList, list)
		for tag, mt := range map[string]string{"docker": mtDockerManifest, "docker-list": mtDockerList} {
			resp, body := s.do(t, request{method: http.MethodGet, path: "/v2/" + repo + "/manifests/" + tag, header: http.Header{"Accept": {mtDockerManifest, mtDockerList}}})
			expectStatus(t, "GET "+tag, resp, body, http.StatusOK)
			if got := resp.Header.Get("Content-Type"); got != mt {
				t.Errorf("GET %s: Content-Type %q, want %q", tag, got, mt)
			}
		}
	})
}

func TestConformanceContentDiscovery(t *testing.T) {
	t.Parallel()
	s := shared
	s.logOnFailure(t)
	repo := uniqueRepo("conformance/discovery")
	img := s.pushTestImage(t, repo, 1)
	tags := []string{"a1", "b2", "c3", "d4", "e5", "latest"}
	for _, tag := range tags {
		s.putManifest(t, repo, tag, mtOCIManifest, img.manifest)
	}

	t.Run("tags list", func(t *testing.T) {
		got := listTags(t, s, repo, "")
		if !slices.Equal(got, tags) {
			t.Fatalf("tags %v, want %v (sorted)", got, tags)
		}
	})

	t.Run("tags list pagination", func(t *testing.T) {
		resp, body := s.do(t, request{method: http.MethodGet, path: "/v2/" + repo + "/tags/list?n=2"})
		expectStatus(t, "tags n=2", resp, body, http.StatusOK)
		if got := decodeTags(t, body); !slices.Equal(got, tags[:2]) {
			t.Errorf("n=2: tags %v, want %v", got, tags[:2])
		}
		if link := resp.Header.Get("Link"); !strings.Contains(link, `rel="next"`) {
			t.Errorf("n=2: Link header %q has no rel=\"next\"", link)
		}
		resp, body = s.do(t, request{method: http.MethodGet, path: "/v2/" + repo + "/tags/list?last=b2"})
		expectStatus(t, "tags last=b2", resp, body, http.StatusOK)
		if got := decodeTags(t, body); !slices.Equal(got, tags[2:]) {
			t.Errorf("last=b2: tags %v, want %v", got, tags[2:])
		}
		// Following Link headers page by page yields every tag once.
		if got := listTags(t, s, repo, "n=1"); !slices.Equal(got, tags) {
			t.Errorf("paged by Link: tags %v, want %v", got, tags)
		}
		resp, body = s.do(t, request{method: http.MethodGet, path: "/v2/" + repo + "/tags/list?n=0"})
		expectStatus(t, "tags n=0", resp, body, http.StatusOK)
		if got := decodeTags(t, body); len(got) != 0 {
			t.Errorf("n=0: tags %v, want none", got)
		}
	})

	t.Run("tags list of unknown repository", func(t *testing.T) {
		resp, body := s.do(t, request{method: http.MethodGet, path: "/v2/" + uniqueRepo("conformance/never") + "/tags/list"})
		if resp.StatusCode == http.StatusOK {
			if got := decodeTags(t, body); len(got) != 0 {
				t.Errorf("unknown repository lists tags %v", got)
			}
			return
		}
		expectError(t, "tags of unknown repository", resp, body, http.StatusNotFound, "NAME_UNKNOWN")
	})

	t.Run("catalog", func(t *testing.T) {
		other := uniqueRepo("conformance/discovery-other")
		s.pushBlob(t, other, randomBytes(10))
		s.putManifest(t, other, "x", mtOCIManifest, s.pushTestImage(t, other, 0).manifest)
		all := listCatalog(t, s, "")
		for _, r := range []string{repo, other} {
			if !slices.Contains(all, r) {
				t.Errorf("catalog %v lacks %q", all, r)
			}
		}
		if !slices.IsSorted(all) {
			t.Errorf("catalog is not sorted: %v", all)
		}
		// Other tests add repositories concurrently, so the paged listing
		// is checked for order, uniqueness and the two known names.
		paged := listCatalog(t, s, "n=1")
		for i := 1; i < len(paged); i++ {
			if paged[i-1] >= paged[i] {
				t.Fatalf("catalog paged by n=1 is not strictly sorted at %d: %v", i, paged)
			}
		}
		for _, r := range []string{repo, other} {
			if !slices.Contains(paged, r) {
				t.Errorf("catalog paged by n=1 lacks %q", r)
			}
		}
	})

	t.Run("referrers", func(t *testing.T) {
		testReferrersRaw(t, s, repo, img)
	})

	t.Run("referrers of unknown subject", func(t *testing.T) {
		for _, r := range []string{repo, uniqueRepo("conformance/never")} {
			idx := getReferrers(t, s, r, digest.FromBytes(randomBytes(8)), "")
			if len(idx.Manifests) != 0 {
				t.Errorf("referrers of an unknown subject in %s: %d entries", r, len(idx.Manifests))
			}
		}
	})
}

// testReferrersRaw attaches referrers of two artifact types to img (by the
// manifest's artifactType field, by its config media type, and an index)
// and checks the listing and the artifactType filter.
func testReferrersRaw(t *testing.T, s *server, repo string, img testImage) {
	empty := []byte("{}")
	emptyDesc := ocispec.Descriptor{MediaType: mtEmptyJSON, Digest: s.pushBlob(t, repo, empty), Size: int64(len(empty))}
	subject := img.desc
	const typeA, typeB = "application/vnd.moat.test.a", "application/vnd.moat.test.b"

	type ref struct {
		desc ocispec.Descriptor
		body []byte
	}
	var want []ref
	push := func(mediaType string, body []byte, artifactType string, annotations map[string]string) {
		t.Helper()
		dgst := digest.FromBytes(body)
		resp := s.putManifest(t, repo, dgst.String(), mediaType, body)
		if got := resp.Header.Get("OCI-Subject"); got != subject.Digest.String() {
			t.Errorf("PUT referrer: OCI-Subject %q, want %q", got, subject.Digest)
		}
		want = append(want, ref{ocispec.Descriptor{MediaType: mediaType, Digest: dgst, Size: int64(len(body)), ArtifactType: artifactType, Annotations: annotations}, body})
	}

	// artifactType in the manifest, empty config.
	ann := map[string]string{"org.example.n": "1"}
	m1 := mustJSON(ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: mtOCIManifest, ArtifactType: typeA,
		Config: emptyDesc, Layers: []ocispec.Descriptor{emptyDesc}, Subject: &subject, Annotations: ann,
	})
	push(mtOCIManifest, m1, typeA, ann)
	// artifact type from the config media type.
	cfg := []byte(`{"kind":"b"}`)
	cfgDesc := ocispec.Descriptor{MediaType: typeB, Digest: s.pushBlob(t, repo, cfg), Size: int64(len(cfg))}
	m2 := mustJSON(ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: mtOCIManifest,
		Config: cfgDesc, Layers: []ocispec.Descriptor{}, Subject: &subject,
	})
	push(mtOCIManifest, m2, typeB, nil)
	// an index referrer.
	idx := mustJSON(ocispec.Index{
		Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: mtOCIIndex, ArtifactType: typeA,
		Manifests: []ocispec.Descriptor{}, Subject: &subject, Annotations: map[string]string{"org.example.n": "3"},
	})
	push(mtOCIIndex, idx, typeA, map[string]string{"org.example.n": "3"})

	check := func(filter string) {
		t.Helper()
		got := getReferrers(t, s, repo, subject.Digest, filter)
		var expect []ocispec.Descriptor
		for _, r := range want {
			if filter == "" || r.desc.ArtifactType == filter {
				expect = append(expect, r.desc)
			}
		}
		if len(got.Manifests) != len(expect) {
			t.Fatalf("referrers (artifactType=%q): %d entries, want %d: %+v", filter, len(got.Manifests), len(expect), got.Manifests)
		}
		for _, e := range expect {
			i := slices.IndexFunc(got.Manifests, func(d ocispec.Descriptor) bool { return d.Digest == e.Digest })
			if i < 0 {
				t.Errorf("referrers (artifactType=%q) lack %s", filter, e.Digest)
				continue
			}
			d := got.Manifests[i]
			if d.MediaType != e.MediaType || d.Size != e.Size || d.ArtifactType != e.ArtifactType {
				t.Errorf("referrer %s: got %s/%d/%q, want %s/%d/%q", e.Digest, d.MediaType, d.Size, d.ArtifactType, e.MediaType, e.Size, e.ArtifactType)
			}
			for k, v := range e.Annotations {
				if d.Annotations[k] != v {
					t.Errorf("referrer %s: annotation %s=%q, want %q", e.Digest, k, d.Annotations[k], v)
				}
			}
		}
	}
	check("")
	check(typeA)
	check(typeB)

	// A referrer whose subject does not exist (yet) is accepted.
	ghost := ocispec.Descriptor{MediaType: mtOCIManifest, Digest: digest.FromBytes(randomBytes(8)), Size: 100}
	m3 := mustJSON(ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: mtOCIManifest, ArtifactType: typeA,
		Config: emptyDesc, Layers: []ocispec.Descriptor{emptyDesc}, Subject: &ghost,
	})
	resp := s.putManifest(t, repo, digest.FromBytes(m3).String(), mtOCIManifest, m3)
	if got := resp.Header.Get("OCI-Subject"); got != ghost.Digest.String() {
		t.Errorf("PUT referrer of a missing subject: OCI-Subject %q, want %q", got, ghost.Digest)
	}
	if got := getReferrers(t, s, repo, ghost.Digest, ""); len(got.Manifests) != 1 || got.Manifests[0].Digest != digest.FromBytes(m3) {
		t.Errorf("referrers of a missing subject: %+v", got.Manifests)
	}

	// Deleting a referrer removes it from the list.
	resp, body := s.do(t, request{method: http.MethodDelete, path: "/v2/" + repo + "/manifests/" + want[1].desc.Digest.String()})
	expectStatus(t, "DELETE referrer", resp, body, http.StatusAccepted)
	want = slices.Delete(want, 1, 2)
	check("")
}

func getReferrers(t *testing.T, s *server, repo string, subject digest.Digest, artifactType string) ocispec.Index {
	t.Helper()
	path := "/v2/" + repo + "/referrers/" + subject.String()
	if artifactType != "" {
		path += "?artifactType=" + url.QueryEscape(artifactType)
	}
	resp, body := s.do(t, request{method: http.MethodGet, path: path})
	expectStatus(t, "GET referrers", resp, body, http.StatusOK)
	if ct := resp.Header.Get("Content-Type"); ct != mtOCIIndex {
		t.Errorf("referrers: Content-Type %q, want %q", ct, mtOCIIndex)
	}
	if artifactType != "" {
		if got := resp.Header.Get("OCI-Filters-Applied"); got != "artifactType" {
			t.Errorf("referrers with artifactType: OCI-Filters-Applied %q, want artifactType", got)
		}
	}
	var idx ocispec.Index
	if err := json.Unmarshal(body, &idx); err != nil {
		t.Fatalf("referrers body: %v: %.300s", err, body)
	}
	if idx.SchemaVersion != 2 || idx.MediaType != mtOCIIndex {
		t.Errorf("referrers: schemaVersion %d mediaType %q, want 2 and %q", idx.SchemaVersion, idx.MediaType, mtOCIIndex)
	}
	if idx.Manifests == nil && !bytes.Contains(body, []byte(`"manifests":[]`)) {
		t.Errorf("referrers: manifests must be a list, even when empty: %.300s", body)
	}
	return idx
}

func decodeTags(t testing.TB, body []byte) []string {
	t.Helper()
	var tl struct {
		Name string   `json:"name"`
		Tags []string `json:"tags"`
	}
	if err := json.Unmarshal(body, &tl); err != nil {
		t.Fatalf("tags list body: %v: %.300s", err, body)
	}
	return tl.Tags
}

// listTags pages through the tags list by its Link headers.
func listTags(t testing.TB, s *server, repo, query string) []string {
	t.Helper()
	var all []string
	path := "/v2/" + repo + "/tags/list"
	if query != "" {
		path += "?" + query
	}
	for pages := 0; path != ""; pages++ {
		if pages > 1000 {
			t.Fatalf("tags list: more than 1000 pages")
		}
		resp, body := s.do(t, request{method: http.MethodGet, path: path})
		expectStatus(t, "GET "+path, resp, body, http.StatusOK)
		all = append(all, decodeTags(t, body)...)
		path = nextLink(t, resp)
	}
	return all
}

// listCatalog pages through the catalog by its Link headers.
func listCatalog(t testing.TB, s *server, query string) []string {
	t.Helper()
	var all []string
	path := "/v2/_catalog"
	if query != "" {
		path += "?" + query
	}
	for pages := 0; path != ""; pages++ {
		if pages > 1000 {
			t.Fatalf("catalog: more than 1000 pages")
		}
		resp, body := s.do(t, request{method: http.MethodGet, path: path})
		expectStatus(t, "GET "+path, resp, body, http.StatusOK)
		var c struct {
			Repositories []string `json:"repositories"`
		}
		if err := json.Unmarshal(body, &c); err != nil {
			t.Fatalf("catalog body: %v: %.300s", err, body)
		}
		all = append(all, c.Repositories...)
		path = nextLink(t, resp)
	}
	return all
}

// nextLink returns the path of the rel="next" Link, or "".
func nextLink(t testing.TB, resp *http.Response) string {
	t.Helper()
	link := resp.Header.Get("Link")
	if link == "" {
		return ""
	}
	target, params, ok := strings.Cut(link, ";")
	target = strings.TrimSpace(target)
	if !ok || !strings.HasPrefix(target, "<") || !strings.HasSuffix(target, ">") || !strings.Contains(params, `rel="next"`) {
		t.Fatalf("Link header %q is not <url>; rel=\"next\"", link)
	}
	u, err := url.Parse(strings.Trim(target, "<>"))
	if err != nil {
		t.Fatalf("Link target %q: %v", target, err)
	}
	if u.Host != "" && u.Host != resp.Request.Host && u.Host != resp.Request.URL.Host {
		t.Fatalf("Link target %q points at another host", target)
	}
	if u.RawQuery == "" {
		return u.EscapedPath()
	}
	return u.EscapedPath() + "?" + u.RawQuery
}

func TestConformanceContentManagement(t *testing.T) {
	t.Parallel()
	s := shared
	s.logOnFailure(t)
	repo := uniqueRepo("conformance/management")
	img := s.pushTestImage(t, repo, 1)
	s.putManifest(t, repo, "keep", mtOCIManifest, img.manifest)
	s.putManifest(t, repo, "drop", mtOCIManifest, img.manifest)

	t.Run("delete tag", func(t *testing.T) {
		resp, body := s.do(t, request{method: http.MethodDelete, path: "/v2/" + repo + "/manifests/drop"})
		expectStatus(t, "DELETE tag", resp, body, http.StatusAccepted)
		resp, body = s.do(t, request{method: http.MethodGet, path: "/v2/" + repo + "/manifests/drop"})
		expectError(t, "GET deleted tag", resp, body, http.StatusNotFound, "MANIFEST_UNKNOWN")
		resp, body = s.do(t, request{method: http.MethodHead, path: "/v2/" + repo + "/manifests/keep"})
		expectStatus(t, "HEAD the other tag", resp, body, http.StatusOK)
		if got := listTags(t, s, repo, ""); !slices.Equal(got, []string{"keep"}) {
			t.Errorf("tags after deleting one: %v", got)
		}
	})

	t.Run("delete manifest", func(t *testing.T) {
		resp, body := s.do(t, request{method: http.MethodDelete, path: "/v2/" + repo + "/manifests/" + img.digest.String()})
		expectStatus(t, "DELETE manifest", resp, body, http.StatusAccepted)
		for _, ref := range []string{img.digest.String(), "keep"} {
			resp, body = s.do(t, request{method: http.MethodGet, path: "/v2/" + repo + "/manifests/" + ref})
			expectError(t, "GET deleted manifest by "+ref, resp, body, http.StatusNotFound, "MANIFEST_UNKNOWN")
		}
		resp, body = s.do(t, request{method: http.MethodDelete, path: "/v2/" + repo + "/manifests/" + img.digest.String()})
		expectError(t, "DELETE it again", resp, body, http.StatusNotFound, "MANIFEST_UNKNOWN")
	})

	t.Run("delete blob", func(t *testing.T) {
		dgst := img.layers[0].Digest
		resp, body := s.do(t, request{method: http.MethodDelete, path: "/v2/" + repo + "/blobs/" + dgst.String()})
		expectStatus(t, "DELETE blob", resp, body, http.StatusAccepted)
		resp, body = s.do(t, request{method: http.MethodGet, path: "/v2/" + repo + "/blobs/" + dgst.String()})
		expectError(t, "GET deleted blob", resp, body, http.StatusNotFound, "BLOB_UNKNOWN")
		resp, body = s.do(t, request{method: http.MethodDelete, path: "/v2/" + repo + "/blobs/" + dgst.String()})
		expectError(t, "DELETE it again", resp, body, http.StatusNotFound, "BLOB_UNKNOWN")
	})
}
