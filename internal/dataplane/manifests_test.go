package dataplane

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
)

const (
	mtOCIManifest    = "application/vnd.oci.image.manifest.v1+json"
	mtOCIIndex       = "application/vnd.oci.image.index.v1+json"
	mtDockerManifest = "application/vnd.docker.distribution.manifest.v2+json"
	mtDockerList     = "application/vnd.docker.distribution.manifest.list.v2+json"
)

func index(mediaType string, children ...digest.Digest) []byte {
	ms := make([]any, 0, len(children))
	for _, c := range children {
		ms = append(ms, map[string]any{"mediaType": mtOCIManifest, "digest": c, "size": 100,
			"platform": map[string]string{"os": "linux", "architecture": "amd64"}})
	}
	b, err := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": mediaType, "manifests": ms})
	if err != nil {
		panic(err)
	}
	return b
}

// wantManifest checks GET and HEAD of repo:ref serve b with its type and
// digest.
func (e *env) wantManifest(repo, ref string, b []byte, mediaType string, d digest.Digest) {
	e.t.Helper()
	r := e.do(http.MethodGet, "/v2/"+repo+"/manifests/"+ref).wantStatus(e.t, http.StatusOK)
	if !bytes.Equal(r.body, b) {
		e.t.Fatalf("manifest %s:%s: body differs", repo, ref)
	}
	r.wantHeader(e.t, "Content-Type", mediaType).wantHeader(e.t, "Docker-Content-Digest", d.String())
	e.do(http.MethodHead, "/v2/"+repo+"/manifests/"+ref).wantStatus(e.t, http.StatusOK).
		wantHeader(e.t, "Content-Type", mediaType).
		wantHeader(e.t, "Content-Length", strconv.Itoa(len(b))).
		wantHeader(e.t, "Docker-Content-Digest", d.String())
}

func TestManifest_PushByTagAndPull(t *testing.T) {
	e := newEnv(t)
	img := e.pushImage("lib/app", "1")
	r := e.putManifest("lib/app", "v1", img.manifest, mtOCIManifest).wantStatus(t, http.StatusCreated)
	r.wantHeader(t, "Location", "/v2/lib/app/manifests/"+img.digest.String()).
		wantHeader(t, "Docker-Content-Digest", img.digest.String())
	if r.Header.Get("OCI-Subject") != "" {
		t.Error("OCI-Subject on a manifest without subject")
	}
	e.wantManifest("lib/app", "v1", img.manifest, mtOCIManifest, img.digest)
	e.wantManifest("lib/app", img.digest.String(), img.manifest, mtOCIManifest, img.digest)
	// Content-Type parameters are ignored; a missing mediaType is taken
	// from Content-Type.
	noMT := bytes.Replace(img.manifest, []byte(`"mediaType":"application/vnd.oci.image.manifest.v1+json",`), nil, 1)
	if bytes.Equal(noMT, img.manifest) {
		t.Fatal("test manifest has no top-level mediaType to remove")
	}
	e.putManifest("lib/app", "nomt", noMT, mtOCIManifest+"; charset=utf-8").wantStatus(t, http.StatusCreated)
	e.wantManifest("lib/app", "nomt", noMT, mtOCIManifest, digest.FromBytes(noMT))
}

func TestManifest_PushByDigestWithTagParams(t *testing.T) {
	e := newEnv(t)
	img := e.pushImage("app", "1")
	r := e.putManifest("app", img.digest.String()+"?tag=a&tag=b&tag=a", img.manifest, mtOCIManifest).wantStatus(t, http.StatusCreated)
	if got := r.Header.Values("OCI-Tag"); strings.Join(got, ",") != "a,b" {
		t.Errorf("OCI-Tag %q, want a and b", got)
	}
	e.wantManifest("app", "a", img.manifest, mtOCIManifest, img.digest)
	e.wantManifest("app", "b", img.manifest, mtOCIManifest, img.digest)
	e.putManifest("app", img.digest.String()+"?tag=-bad", img.manifest, mtOCIManifest).wantError(t, http.StatusBadRequest, "TAG_INVALID")
	many := strings.Repeat("&tag=x", maxTagParams+1)
	e.putManifest("app", img.digest.String()+"?"+many[1:], img.manifest, mtOCIManifest).
		wantError(t, http.StatusRequestURITooLong, "TAG_INVALID")
}

func TestManifest_Sha512Digest(t *testing.T) {
	e := newEnv(t)
	img := e.pushImage("app", "1")
	d := digest.SHA512.FromBytes(img.manifest)
	e.putManifest("app", d.String()+"?tag=t512", img.manifest, mtOCIManifest).wantStatus(t, http.StatusCreated).
		wantHeader(t, "Docker-Content-Digest", d.String()).wantHeader(t, "Location", "/v2/app/manifests/"+d.String())
	e.wantManifest("app", d.String(), img.manifest, mtOCIManifest, d)
	e.wantManifest("app", "t512", img.manifest, mtOCIManifest, d)
}

func TestManifest_DigestMustMatch(t *testing.T) {
	e := newEnv(t)
	img := e.pushImage("app", "1")
	e.putManifest("app", img.digest.String(), append(img.manifest, ' ', ' '), mtOCIManifest).
		wantError(t, http.StatusBadRequest, "DIGEST_INVALID")
	e.putManifest("app", digest.SHA512.FromBytes(img.manifest).String(), append(img.manifest, ' '), mtOCIManifest).
		wantError(t, http.StatusBadRequest, "DIGEST_INVALID")
	e.putManifest("app", "sha256:baddigeststring", img.manifest, mtOCIManifest).wantError(t, http.StatusBadRequest, "DIGEST_INVALID")
	e.putManifest("app", "md5:abc", img.manifest, mtOCIManifest).wantError(t, http.StatusBadRequest, "DIGEST_INVALID")
	e.do(http.MethodGet, "/v2/app/manifests/"+img.digest.String()).wantError(t, http.StatusNotFound, "MANIFEST_UNKNOWN")
}

func TestManifest_ReferencesMustExist(t *testing.T) {
	e := newEnv(t)
	img := e.pushImage("app", "1")
	// The blobs are in "app", not in "other".
	e.putManifest("other", "v1", img.manifest, mtOCIManifest).wantError(t, http.StatusBadRequest, "MANIFEST_BLOB_UNKNOWN")
	e.do(http.MethodGet, "/v2/other/manifests/v1").wantError(t, http.StatusNotFound, "MANIFEST_UNKNOWN")

	// An index needs its children in the repository.
	idx := index(mtOCIIndex, img.digest)
	r := e.putManifest("app", "multi", idx, mtOCIIndex).wantError(t, http.StatusBadRequest, "MANIFEST_BLOB_UNKNOWN")
	if !strings.Contains(string(r.body), img.digest.String()) {
		t.Errorf("error does not name the missing child: %s", r.body)
	}
	e.putManifest("app", img.digest.String(), img.manifest, mtOCIManifest).wantStatus(t, http.StatusCreated)
	e.putManifest("app", "multi", idx, mtOCIIndex).wantStatus(t, http.StatusCreated)
	e.wantManifest("app", "multi", idx, mtOCIIndex, digest.FromBytes(idx))
}

func TestManifest_DockerFormats(t *testing.T) {
	e := newEnv(t)
	img := e.pushImage("app", "1")
	docker := bytes.Replace(img.manifest, []byte(mtOCIManifest), []byte(mtDockerManifest), 1)
	docker = bytes.Replace(docker, []byte("application/vnd.oci.image.config.v1+json"), []byte("application/vnd.docker.container.image.v1+json"), 1)
	e.putManifest("app", "docker", docker, mtDockerManifest).wantStatus(t, http.StatusCreated)
	e.wantManifest("app", "docker", docker, mtDockerManifest, digest.FromBytes(docker))
	list := index(mtDockerList, digest.FromBytes(docker))
	e.putManifest("app", "list", list, mtDockerList).wantStatus(t, http.StatusCreated)
	e.wantManifest("app", "list", list, mtDockerList, digest.FromBytes(list))
}

func TestManifest_Invalid(t *testing.T) {
	e := newEnv(t)
	img := e.pushImage("app", "1")
	e.putManifest("app", "v1", []byte("blablabla"), mtOCIManifest).wantError(t, http.StatusBadRequest, "MANIFEST_INVALID")
	e.putManifest("app", "v1", []byte{}, mtOCIManifest).wantError(t, http.StatusBadRequest, "MANIFEST_INVALID")
	e.putManifest("app", "v1", img.manifest, mtOCIIndex).wantError(t, http.StatusBadRequest, "MANIFEST_INVALID")
	e.putManifest("app", "v1", img.manifest, "application/vnd.docker.distribution.manifest.v1+json").wantStatus(t, http.StatusCreated)
	e.putManifest("app", "v2", []byte(`{"schemaVersion":2,"config":{}}`), "application/x-unknown").
		wantError(t, http.StatusBadRequest, "MANIFEST_INVALID")
	e.putManifest("app", "-v1", img.manifest, mtOCIManifest).wantError(t, http.StatusBadRequest, "TAG_INVALID")
}

func TestManifest_TooLarge(t *testing.T) {
	e := newEnv(t)
	big := bytes.Repeat([]byte(" "), manifestMaxForTest+1)
	e.putManifest("app", "big", big, mtOCIManifest).wantError(t, http.StatusRequestEntityTooLarge, "MANIFEST_INVALID")
	e.putManifest("app", "big", big, mtOCIManifest, chunkedBody(big)).wantError(t, http.StatusRequestEntityTooLarge, "MANIFEST_INVALID")
}

// manifestMaxForTest is the default limit (4 MiB).
const manifestMaxForTest = 4 << 20

func TestManifest_LargeButAllowed(t *testing.T) {
	e := newEnv(t)
	img := e.pushImage("app", "1")
	ann := map[string]string{}
	for i := range 390 {
		ann["large-annotation-"+strconv.Itoa(i)] = strings.Repeat("A", 10000)
	}
	m := imageManifest(img.config, int64(len(`{"architecture":"amd64","os":"linux","seed":"1"}`)), img.layer, int64(len("layer 1")), "", ann)
	e.putManifest("app", "large", m, mtOCIManifest).wantStatus(t, http.StatusCreated)
	e.wantManifest("app", "large", m, mtOCIManifest, digest.FromBytes(m))
}

func TestManifest_GetErrors(t *testing.T) {
	e := newEnv(t)
	e.do(http.MethodGet, "/v2/app/manifests/.INVALID_MANIFEST_NAME").wantError(t, http.StatusNotFound, "MANIFEST_UNKNOWN")
	e.do(http.MethodGet, "/v2/app/manifests/missing").wantError(t, http.StatusNotFound, "MANIFEST_UNKNOWN")
	e.do(http.MethodHead, "/v2/app/manifests/missing").wantStatus(t, http.StatusNotFound)
	e.do(http.MethodGet, "/v2/app/manifests/sha256:totallywrong").wantError(t, http.StatusBadRequest, "DIGEST_INVALID")
	e.do(http.MethodGet, "/v2/app/manifests/"+digest.FromString("x").String()).wantError(t, http.StatusNotFound, "MANIFEST_UNKNOWN")
}

func TestManifest_Delete(t *testing.T) {
	e := newEnv(t)
	img := e.pushImage("app", "1")
	e.putManifest("app", "v1", img.manifest, mtOCIManifest).wantStatus(t, http.StatusCreated)
	e.putManifest("app", "v2", img.manifest, mtOCIManifest).wantStatus(t, http.StatusCreated)

	e.do(http.MethodDelete, "/v2/app/manifests/v1").wantStatus(t, http.StatusAccepted)
	e.do(http.MethodGet, "/v2/app/manifests/v1").wantError(t, http.StatusNotFound, "MANIFEST_UNKNOWN")
	e.wantManifest("app", "v2", img.manifest, mtOCIManifest, img.digest)
	e.do(http.MethodDelete, "/v2/app/manifests/v1").wantError(t, http.StatusNotFound, "MANIFEST_UNKNOWN")

	e.do(http.MethodDelete, "/v2/app/manifests/"+img.digest.String()).wantStatus(t, http.StatusAccepted)
	e.do(http.MethodHead, "/v2/app/manifests/"+img.digest.String()).wantStatus(t, http.StatusNotFound)
	e.do(http.MethodHead, "/v2/app/manifests/v2").wantStatus(t, http.StatusNotFound)
	e.do(http.MethodDelete, "/v2/app/manifests/"+img.digest.String()).wantError(t, http.StatusNotFound, "MANIFEST_UNKNOWN")
	e.do(http.MethodDelete, "/v2/app/manifests/sha256:nope").wantError(t, http.StatusBadRequest, "DIGEST_INVALID")
}

func TestManifest_SubjectAndReferrers(t *testing.T) {
	e := newEnv(t)
	img := e.pushImage("app", "1")
	e.putManifest("app", "v1", img.manifest, mtOCIManifest).wantStatus(t, http.StatusCreated)

	// A referrer with an artifactType, one without (its config type counts),
	// and one whose subject does not exist (allowed).
	empty := e.pushBlob("app", []byte("{}"))
	sbom := map[string]any{
		"schemaVersion": 2, "mediaType": mtOCIManifest, "artifactType": "application/vnd.example.sbom",
		"config":      map[string]any{"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty, "size": 2},
		"layers":      []any{map[string]any{"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty, "size": 2}},
		"subject":     map[string]any{"mediaType": mtOCIManifest, "digest": img.digest, "size": len(img.manifest)},
		"annotations": map[string]string{"org.example": "sbom"},
	}
	sbomBytes, _ := json.Marshal(sbom)
	sig := imageManifest(img.config, int64(len(`{"architecture":"amd64","os":"linux","seed":"1"}`)), img.layer, int64(len("layer 1")),
		img.digest, map[string]string{"org.example": "sig"})
	orphan := imageManifest(img.config, int64(len(`{"architecture":"amd64","os":"linux","seed":"1"}`)), img.layer, int64(len("layer 1")),
		digest.FromString("missing subject"), nil)

	for _, m := range [][]byte{sbomBytes, sig} {
		e.putManifest("app", digest.FromBytes(m).String(), m, mtOCIManifest).wantStatus(t, http.StatusCreated).
			wantHeader(t, "OCI-Subject", img.digest.String())
	}
	e.putManifest("app", "orphan", orphan, mtOCIManifest).wantStatus(t, http.StatusCreated).
		wantHeader(t, "OCI-Subject", digest.FromString("missing subject").String())

	type desc struct {
		MediaType    string            `json:"mediaType"`
		Digest       digest.Digest     `json:"digest"`
		Size         int64             `json:"size"`
		ArtifactType string            `json:"artifactType"`
		Annotations  map[string]string `json:"annotations"`
	}
	var got struct {
		SchemaVersion int    `json:"schemaVersion"`
		MediaType     string `json:"mediaType"`
		Manifests     []desc `json:"manifests"`
	}
	list := func(query string) *response {
		r := e.do(http.MethodGet, "/v2/app/referrers/"+img.digest.String()+query).wantStatus(t, http.StatusOK).
			wantHeader(t, "Content-Type", mtOCIIndex)
		got.Manifests = nil
		if err := json.Unmarshal(r.body, &got); err != nil {
			t.Fatal(err)
		}
		return r
	}
	r := list("")
	if got.SchemaVersion != 2 || got.MediaType != mtOCIIndex || len(got.Manifests) != 2 {
		t.Fatalf("referrers %s", r.body)
	}
	want := map[digest.Digest]desc{
		digest.FromBytes(sbomBytes): {mtOCIManifest, digest.FromBytes(sbomBytes), int64(len(sbomBytes)), "application/vnd.example.sbom", map[string]string{"org.example": "sbom"}},
		digest.FromBytes(sig):       {mtOCIManifest, digest.FromBytes(sig), int64(len(sig)), "application/vnd.oci.image.config.v1+json", map[string]string{"org.example": "sig"}},
	}
	for _, m := range got.Manifests {
		w := want[m.Digest]
		if m.MediaType != w.MediaType || m.Size != w.Size || m.ArtifactType != w.ArtifactType || m.Annotations["org.example"] != w.Annotations["org.example"] {
			t.Errorf("descriptor %+v, want %+v", m, w)
		}
	}
	if r.Header.Get("OCI-Filters-Applied") != "" {
		t.Error("OCI-Filters-Applied without a filter")
	}

	r = list("?artifactType=application/vnd.example.sbom")
	r.wantHeader(t, "OCI-Filters-Applied", "artifactType")
	if len(got.Manifests) != 1 || got.Manifests[0].Digest != digest.FromBytes(sbomBytes) {
		t.Errorf("filtered referrers %s", r.body)
	}

	// Unknown subjects and unknown repositories have no referrers, never 404.
	e.do(http.MethodGet, "/v2/app/referrers/"+digest.FromString("none").String()).wantStatus(t, http.StatusOK)
	r = e.do(http.MethodGet, "/v2/nothing/here/referrers/"+digest.FromString("none").String()).wantStatus(t, http.StatusOK)
	if !strings.Contains(string(r.body), `"manifests":[]`) {
		t.Errorf("empty referrers %s", r.body)
	}
	e.do(http.MethodGet, "/v2/app/referrers/"+digest.FromString("missing subject").String()).wantStatus(t, http.StatusOK)
	e.do(http.MethodGet, "/v2/app/referrers/sha256:bad").wantError(t, http.StatusBadRequest, "DIGEST_INVALID")
	e.do(http.MethodGet, "/v2/app/referrers/v1").wantError(t, http.StatusBadRequest, "DIGEST_INVALID")
}
