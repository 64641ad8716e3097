package dataplane

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// FuzzBlobRange sends arbitrary Range headers to a blob GET: the answer is
// the whole blob, exactly the part its Content-Range names, or 416; never a
// server error.
func FuzzBlobRange(f *testing.F) {
	e := newEnv(f)
	blobBytes := bytes.Repeat([]byte("0123456789abcdef"), 128) // 2048 bytes
	d := e.pushBlob("app", blobBytes)
	for _, s := range []string{"bytes=0-0", "bytes=500-1499", "bytes=-500", "bytes=2000-5000", "bytes=500-0",
		"bytes=5000-10000", "bytes=0-1,5-6", "bytes=", "items=0-1", "bytes=-0", "bytes=1-"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, rng string) {
		req := httptest.NewRequest(http.MethodGet, "/v2/app/blobs/"+d.String(), nil)
		req.SetBasicAuth("admin", adminPassword)
		req.Header.Set("Range", rng)
		rec := httptest.NewRecorder()
		e.h.ServeHTTP(rec, req)
		switch rec.Code {
		case http.StatusOK:
			if !bytes.Equal(rec.Body.Bytes(), blobBytes) {
				t.Fatalf("Range %q: 200 with a different body", rng)
			}
		case http.StatusPartialContent:
			var start, end, size int64
			cr := rec.Header().Get("Content-Range")
			if _, err := fmt.Sscanf(cr, "bytes %d-%d/%d", &start, &end, &size); err == nil {
				if size != int64(len(blobBytes)) || start < 0 || end >= size || start > end ||
					!bytes.Equal(rec.Body.Bytes(), blobBytes[start:end+1]) {
					t.Fatalf("Range %q: Content-Range %q does not describe the body", rng, cr)
				}
			} else if !strings.HasPrefix(rec.Header().Get("Content-Type"), "multipart/byteranges") {
				t.Fatalf("Range %q: 206 with Content-Range %q", rng, cr)
			}
		case http.StatusRequestedRangeNotSatisfiable:
		default:
			t.Fatalf("Range %q: status %d", rng, rec.Code)
		}
	})
}

// FuzzServeHTTP sends arbitrary methods and paths through the whole
// handler: nothing panics, nothing is a server error, and every error is in
// the spec's JSON envelope.
func FuzzServeHTTP(f *testing.F) {
	e := newEnv(f)
	img := e.pushImage("lib/app", "1")
	e.putManifest("lib/app", "v1", img.manifest, mtOCIManifest).wantStatus(f, http.StatusCreated)
	loc := e.startUpload("lib/app")
	for _, s := range []struct{ method, path string }{
		{"GET", "/v2/"}, {"GET", "/v2/_catalog?n=1&last=a"}, {"GET", "/v2/lib/app/manifests/v1"},
		{"HEAD", "/v2/lib/app/manifests/" + img.digest.String()}, {"GET", "/v2/lib/app/blobs/" + img.layer.String()},
		{"DELETE", "/v2/lib/app/blobs/sha256:x"}, {"GET", "/v2/lib/app/tags/list?n=0"}, {"GET", loc},
		{"PATCH", loc}, {"PUT", loc + "?digest=sha512:00"}, {"POST", "/v2/lib/app/blobs/uploads/?mount=" + img.layer.String() + "&from=lib/app"},
		{"GET", "/v2/lib/app/referrers/" + img.digest.String() + "?artifactType=x"}, {"GET", "/oauth2/token?service=moat.localhost&scope=repository:a:pull"},
		{"POST", "/oauth2/token"}, {"POST", "/oauth2/exchange"}, {"GET", "/oauth2/exchange"}, {"GET", "/v2/Bad/manifests/x"}, {"BREW", "/v2/"}, {"GET", "/v2/a/manifests/.."},
	} {
		f.Add(s.method, s.path)
	}
	f.Fuzz(func(t *testing.T, method, path string) {
		req, err := http.NewRequest(method, "http://moat.localhost"+path, nil)
		if err != nil || req.URL.Path == "" {
			return // not a request a server could receive
		}
		req.SetBasicAuth("admin", adminPassword)
		rec := httptest.NewRecorder()
		e.h.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("%s %q: status %d: %s", method, path, rec.Code, rec.Body)
		}
		oauth := method == http.MethodPost && (req.URL.Path == "/oauth2/token" || req.URL.Path == "/oauth2/exchange")
		if rec.Code >= 400 && method != http.MethodHead && !oauth {
			var eb errorBody
			if err := json.Unmarshal(rec.Body.Bytes(), &eb); err != nil || len(eb.Errors) == 0 || eb.Errors[0].Code == "" {
				t.Fatalf("%s %q: status %d without the spec's error body: %s", method, path, rec.Code, rec.Body)
			}
		}
	})
}

// FuzzOAuthForms posts arbitrary bodies to the two OAuth2 endpoints: the
// answer is a token (200) or an RFC 6749 error with 400 or 401, never a
// server error and never another shape.
func FuzzOAuthForms(f *testing.F) {
	e := newEnv(f)
	rt := e.refreshToken(hostDefault, "moat.localhost")
	for _, s := range []string{
		"grant_type=refresh_token&service=moat.localhost&scope=repository%3Aa%3Apull&refresh_token=" + rt,
		"grant_type=password&service=moat.localhost&username=admin&password=x",
		"grant_type=password&service=moat.localhost",
		"grant_type=access_token&service=moat.localhost&access_token=a.b.c",
		"grant_type=refresh_token&service=moat.localhost&scope=repository%3AA%3Apull&refresh_token=" + rt,
		"service=moat.localhost&service=x", "%zz", "", "grant_type=refresh_token&service=moat.localhost&scope=registry%3Acatalog%3A%2A&refresh_token=" + rt,
	} {
		f.Add(false, s)
		f.Add(true, s)
	}
	f.Fuzz(func(t *testing.T, exchange bool, form string) {
		path := "/oauth2/token"
		if exchange {
			path = "/oauth2/exchange"
		}
		req := httptest.NewRequest(http.MethodPost, "http://moat.localhost"+path, strings.NewReader(form))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		rec := httptest.NewRecorder()
		e.h.ServeHTTP(rec, req)
		switch rec.Code {
		case http.StatusOK:
			var ok map[string]any
			if err := json.Unmarshal(rec.Body.Bytes(), &ok); err != nil || (ok["access_token"] == nil && ok["refresh_token"] == nil) {
				t.Fatalf("%s %q: 200 without a token: %s", path, form, rec.Body)
			}
		case http.StatusBadRequest, http.StatusUnauthorized, http.StatusTooManyRequests:
			// 429: the fuzzer's wrong passwords lock the client out, as
			// brute force should.
			var oe oauthError
			if err := json.Unmarshal(rec.Body.Bytes(), &oe); err != nil || oe.Error == "" {
				t.Fatalf("%s %q: %d without an OAuth error body: %s", path, form, rec.Code, rec.Body)
			}
			if rec.Code == http.StatusTooManyRequests && rec.Header().Get("Retry-After") == "" {
				t.Fatalf("%s %q: 429 without Retry-After", path, form)
			}
		default:
			t.Fatalf("%s %q: status %d: %s", path, form, rec.Code, rec.Body)
		}
	})
}
