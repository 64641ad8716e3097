package e2e

// The Docker token flow as clients run it: anonymous request → 401 with a
// Bearer challenge → GET the realm with Basic credentials → bearer token.

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

func TestAuth(t *testing.T) {
	t.Parallel()
	s := shared
	s.logOnFailure(t)
	repo := uniqueRepo("auth")
	s.pushBlob(t, repo, randomBytes(10))

	t.Run("anonymous is challenged", func(t *testing.T) {
		resp, body := s.do(t, request{method: http.MethodGet, path: "/v2/", auth: "none"})
		expectError(t, "anonymous GET /v2/", resp, body, http.StatusUnauthorized, "UNAUTHORIZED")
		c := parseChallenge(t, resp)
		if want := s.url("/oauth2/token"); c["realm"] != want {
			t.Errorf("realm %q, want %q", c["realm"], want)
		}
		if c["service"] == "" {
			t.Errorf("challenge has no service: %v", c)
		}

		resp, body = s.do(t, request{method: http.MethodGet, path: "/v2/" + repo + "/tags/list", auth: "none"})
		expectError(t, "anonymous tags list", resp, body, http.StatusUnauthorized, "UNAUTHORIZED")
		if c := parseChallenge(t, resp); c["scope"] != "repository:"+repo+":pull" {
			t.Errorf("scope %q, want repository:%s:pull", c["scope"], repo)
		}

		resp, body = s.do(t, request{method: http.MethodPost, path: "/v2/" + repo + "/blobs/uploads/", auth: "none"})
		expectError(t, "anonymous upload", resp, body, http.StatusUnauthorized, "UNAUTHORIZED")
		if c := parseChallenge(t, resp); !strings.HasPrefix(c["scope"], "repository:"+repo+":") || !strings.Contains(c["scope"], "push") {
			t.Errorf("upload scope %q, want repository:%s:…push…", c["scope"], repo)
		}
	})

	t.Run("wrong password", func(t *testing.T) {
		resp, body := s.doBasic(t, http.MethodGet, "/v2/", adminUser, "wrong")
		expectError(t, "wrong password on /v2/", resp, body, http.StatusUnauthorized, "UNAUTHORIZED")
		resp, body = s.doBasic(t, http.MethodGet, "/oauth2/token?service="+url.QueryEscape(s.service(t))+"&scope=repository:"+repo+":pull", adminUser, "wrong")
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("token with a wrong password: status %d, want 401; body %.300s", resp.StatusCode, body)
		}
		resp, body = s.doBasic(t, http.MethodGet, "/v2/", "nobody", s.password)
		expectError(t, "unknown user", resp, body, http.StatusUnauthorized, "UNAUTHORIZED")
	})

	t.Run("token flow", func(t *testing.T) {
		pull := s.token(t, "repository:"+repo+":pull")
		resp, body := s.do(t, request{method: http.MethodGet, path: "/v2/" + repo + "/tags/list", auth: pull})
		if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusNotFound {
			t.Errorf("tags list with a pull token: status %d; body %.300s", resp.StatusCode, body)
		}
		// A pull token does not allow a push.
		resp, body = s.do(t, request{method: http.MethodPost, path: "/v2/" + repo + "/blobs/uploads/", auth: pull})
		if resp.StatusCode != http.StatusUnauthorized && resp.StatusCode != http.StatusForbidden {
			t.Errorf("upload with a pull-only token: status %d, want 401 or 403; body %.300s", resp.StatusCode, body)
		}
		// Nor access to another repository.
		resp, body = s.do(t, request{method: http.MethodGet, path: "/v2/" + repo + "-other/tags/list", auth: pull})
		if resp.StatusCode != http.StatusUnauthorized && resp.StatusCode != http.StatusForbidden {
			t.Errorf("another repository with a scoped token: status %d, want 401 or 403; body %.300s", resp.StatusCode, body)
		}

		push := s.token(t, "repository:"+repo+":pull,push")
		resp, body = s.do(t, request{method: http.MethodPost, path: "/v2/" + repo + "/blobs/uploads/", auth: push})
		expectStatus(t, "upload with a push token", resp, body, http.StatusAccepted)

		resp, body = s.do(t, request{method: http.MethodGet, path: "/v2/", auth: "not-a-token"})
		expectError(t, "garbage bearer token", resp, body, http.StatusUnauthorized, "UNAUTHORIZED")
	})
}

// parseChallenge parses a `Bearer k="v",…` WWW-Authenticate header.
func parseChallenge(t testing.TB, resp *http.Response) map[string]string {
	t.Helper()
	h := resp.Header.Get("WWW-Authenticate")
	rest, ok := strings.CutPrefix(h, "Bearer ")
	if !ok {
		t.Fatalf("WWW-Authenticate %q is not a Bearer challenge", h)
	}
	out := map[string]string{}
	for rest != "" {
		k, after, ok := strings.Cut(rest, `="`)
		if !ok {
			t.Fatalf("WWW-Authenticate %q does not parse", h)
		}
		v, after, ok := strings.Cut(after, `"`)
		if !ok {
			t.Fatalf("WWW-Authenticate %q does not parse", h)
		}
		out[strings.TrimSpace(k)] = v
		rest = strings.TrimPrefix(strings.TrimSpace(after), ",")
	}
	return out
}

func (s *server) doBasic(t testing.TB, method, path, user, password string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, s.url(path), http.NoBody)
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth(user, password)
	resp, err := s.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", method, path, err)
	}
	return resp, b
}

// service is the service name the registry challenges with.
func (s *server) service(t testing.TB) string {
	t.Helper()
	resp, _ := s.do(t, request{method: http.MethodGet, path: "/v2/", auth: "none"})
	return parseChallenge(t, resp)["service"]
}

// token fetches a bearer token for scope with the admin credentials.
func (s *server) token(t testing.TB, scope string) string {
	t.Helper()
	q := url.Values{"service": {s.service(t)}, "scope": {scope}}
	resp, body := s.doBasic(t, http.MethodGet, "/oauth2/token?"+q.Encode(), adminUser, s.password)
	expectStatus(t, "GET /oauth2/token", resp, body, http.StatusOK)
	var tok struct {
		Token       string `json:"token"`
		AccessToken string `json:"access_token"`
		ExpiresIn   int    `json:"expires_in"`
	}
	if err := json.Unmarshal(body, &tok); err != nil {
		t.Fatalf("token response: %v: %.300s", err, body)
	}
	if tok.Token == "" && tok.AccessToken == "" {
		t.Fatalf("token response has neither token nor access_token: %.300s", body)
	}
	if tok.Token == "" {
		return tok.AccessToken
	}
	return tok.Token
}
