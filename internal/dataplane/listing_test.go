package dataplane

import (
	"encoding/json"
	"net/http"
	"reflect"
	"testing"
)

func (e *env) tags(path string) (tagList, *response) {
	e.t.Helper()
	r := e.do(http.MethodGet, path).wantStatus(e.t, http.StatusOK)
	var tl tagList
	if err := json.Unmarshal(r.body, &tl); err != nil {
		e.t.Fatalf("tag list %s: %v", r.body, err)
	}
	return tl, r
}

func TestTags_Pagination(t *testing.T) {
	e := newEnv(t)
	img := e.pushImage("app", "1")
	all := []string{"a", "b", "c", "d", "e"}
	for _, tag := range []string{"e", "c", "a", "d", "b"} {
		e.putManifest("app", tag, img.manifest, mtOCIManifest).wantStatus(t, http.StatusCreated)
	}

	tl, r := e.tags("/v2/app/tags/list")
	if tl.Name != "app" || !reflect.DeepEqual(tl.Tags, all) || r.Header.Get("Link") != "" {
		t.Fatalf("all tags: %s, Link %q", r.body, r.Header.Get("Link"))
	}
	tl, r = e.tags("/v2/app/tags/list?n=2")
	if !reflect.DeepEqual(tl.Tags, []string{"a", "b"}) {
		t.Fatalf("n=2: %s", r.body)
	}
	r.wantHeader(t, "Link", `</v2/app/tags/list?last=b&n=2>; rel="next"`)
	tl, r = e.tags("/v2/app/tags/list?n=2&last=b")
	if !reflect.DeepEqual(tl.Tags, []string{"c", "d"}) {
		t.Fatalf("n=2&last=b: %s", r.body)
	}
	r.wantHeader(t, "Link", `</v2/app/tags/list?last=d&n=2>; rel="next"`)
	tl, r = e.tags("/v2/app/tags/list?n=2&last=d")
	if !reflect.DeepEqual(tl.Tags, []string{"e"}) || r.Header.Get("Link") != "" {
		t.Fatalf("last page: %s, Link %q", r.body, r.Header.Get("Link"))
	}
	tl, _ = e.tags("/v2/app/tags/list?last=c")
	if !reflect.DeepEqual(tl.Tags, []string{"d", "e"}) {
		t.Fatalf("last=c: %v", tl.Tags)
	}
	tl, r = e.tags("/v2/app/tags/list?n=5")
	if len(tl.Tags) != 5 || r.Header.Get("Link") != "" {
		t.Fatalf("n=5: %s, Link %q", r.body, r.Header.Get("Link"))
	}
	tl, r = e.tags("/v2/app/tags/list?n=0")
	if tl.Tags == nil || len(tl.Tags) != 0 || r.Header.Get("Link") != "" {
		t.Fatalf("n=0: %s, Link %q", r.body, r.Header.Get("Link"))
	}
	e.do(http.MethodGet, "/v2/app/tags/list?n=-1").wantError(t, http.StatusBadRequest, "UNSUPPORTED")
	e.do(http.MethodGet, "/v2/app/tags/list?n=x").wantError(t, http.StatusBadRequest, "UNSUPPORTED")
}

func TestTags_UnknownRepository(t *testing.T) {
	e := newEnv(t)
	e.do(http.MethodGet, "/v2/nope/tags/list").wantError(t, http.StatusNotFound, "NAME_UNKNOWN")
	e.do(http.MethodGet, "/v2/nope/tags/list?n=0").wantError(t, http.StatusNotFound, "NAME_UNKNOWN")
	// A repository with blobs but no tags lists no tags.
	e.pushBlob("untagged", []byte("x"))
	tl, _ := e.tags("/v2/untagged/tags/list")
	if tl.Tags == nil || len(tl.Tags) != 0 {
		t.Fatalf("untagged repository: %v", tl.Tags)
	}
}

func TestCatalog_PaginationPerRegistry(t *testing.T) {
	e := newEnv(t)
	for _, repo := range []string{"c", "a/x", "b"} {
		e.pushBlob(repo, []byte("x"))
	}
	e.pushBlob("elsewhere", []byte("x"), host(hostOther))

	catalogOf := func(path string) ([]string, *response) {
		r := e.do(http.MethodGet, path).wantStatus(t, http.StatusOK)
		var c catalog
		if err := json.Unmarshal(r.body, &c); err != nil {
			t.Fatal(err)
		}
		return c.Repositories, r
	}
	repos, _ := catalogOf("/v2/_catalog")
	if !reflect.DeepEqual(repos, []string{"a/x", "b", "c"}) {
		t.Fatalf("catalog %v", repos)
	}
	repos, r := catalogOf("/v2/_catalog?n=2")
	if !reflect.DeepEqual(repos, []string{"a/x", "b"}) {
		t.Fatalf("n=2: %v", repos)
	}
	r.wantHeader(t, "Link", `</v2/_catalog?last=b&n=2>; rel="next"`)
	repos, r = catalogOf("/v2/_catalog?n=2&last=b")
	if !reflect.DeepEqual(repos, []string{"c"}) || r.Header.Get("Link") != "" {
		t.Fatalf("n=2&last=b: %v, Link %q", repos, r.Header.Get("Link"))
	}
	repos, r = catalogOf("/v2/_catalog?n=0")
	if repos == nil || len(repos) != 0 || r.Header.Get("Link") != "" {
		t.Fatalf("n=0: %s", r.body)
	}
	r = e.do(http.MethodGet, "/v2/_catalog", host(hostOther)).wantStatus(t, http.StatusOK)
	if string(r.body) != `{"repositories":["elsewhere"]}` {
		t.Fatalf("other registry's catalog %s", r.body)
	}
}
