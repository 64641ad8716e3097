package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// target is one registry under test.
type target struct {
	name   string
	base   *url.URL
	client *http.Client
	// user and password fetch bearer tokens (moat); empty for registries
	// without authentication.
	user, password string
	service        string
	// tokens holds the Authorization header per repository, fetched once.
	tokens map[string]string
	// blobFile, when set, names the file or directory that holds a blob's
	// bytes in the registry's storage (see prune).
	blobFile func(dgst string) string
}

func newTarget(ctx context.Context, name, base, user, password string) (*target, error) {
	u, err := url.Parse(base)
	if err != nil {
		return nil, fmt.Errorf("%s URL %q: %w", name, base, err)
	}
	t := &target{name: name, base: u, client: newHTTPClient(), user: user, password: password, tokens: map[string]string{}}
	resp, err := t.waitReady(ctx, 30*time.Second)
	if err != nil {
		return nil, err
	}
	if user == "" {
		return t, nil
	}
	// The service name comes from the registry's own challenge, as a
	// client would read it.
	ch := parseChallenge(resp.Header.Get("WWW-Authenticate"))
	if resp.StatusCode != http.StatusUnauthorized || ch["realm"] == "" {
		return nil, fmt.Errorf("%s: GET /v2/ answered %d with challenge %q, want a 401 Bearer challenge", name, resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
	t.service = ch["service"]
	return t, nil
}

// waitReady polls GET /v2/ until the registry answers (the script starts
// the registries just before the driver).
func (t *target) waitReady(ctx context.Context, timeout time.Duration) (*http.Response, error) {
	deadline := time.Now().Add(timeout)
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, t.url("/v2/"), http.NoBody)
		if err != nil {
			return nil, err
		}
		resp, err := t.client.Do(req)
		if err == nil {
			drain(resp)
			return resp, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%s at %s not answering after %s: %w", t.name, t.base, timeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (t *target) url(path string) string {
	return t.base.Scheme + "://" + t.base.Host + path
}

// authorize fetches (once) a bearer token for pull and push on repo.
func (t *target) authorize(ctx context.Context, repo string) error {
	if t.user == "" || t.tokens[repo] != "" {
		return nil
	}
	q := url.Values{"service": {t.service}, "scope": {"repository:" + repo + ":pull,push,delete"}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, t.url("/oauth2/token?"+q.Encode()), http.NoBody)
	if err != nil {
		return err
	}
	req.SetBasicAuth(t.user, t.password)
	resp, err := t.client.Do(req)
	if err != nil {
		return fmt.Errorf("%s: token: %w", t.name, err)
	}
	defer drain(resp)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: token: status %d", t.name, resp.StatusCode)
	}
	var tok struct {
		Token       string `json:"token"`
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&tok); err != nil {
		return fmt.Errorf("%s: token response: %w", t.name, err)
	}
	if tok.Token == "" {
		tok.Token = tok.AccessToken
	}
	if tok.Token == "" {
		return fmt.Errorf("%s: token response carries no token", t.name)
	}
	t.tokens[repo] = "Bearer " + tok.Token
	return nil
}

// newRequest builds a request to path (absolute URLs, as in Location
// headers, are taken as they are) with the repository's credentials.
func (t *target) newRequest(ctx context.Context, method, repo, path string, body io.Reader) (*http.Request, error) {
	u := path
	if !strings.HasPrefix(path, "http://") && !strings.HasPrefix(path, "https://") {
		u = t.url(path)
	}
	if body == nil {
		body = http.NoBody
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return nil, err
	}
	if a := t.tokens[repo]; a != "" {
		req.Header.Set("Authorization", a)
	}
	return req, nil
}

// do sends the request and checks the status; the caller closes the body.
func (t *target) do(req *http.Request, want ...int) (*http.Response, error) {
	resp, err := t.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s: %s %s: %w", t.name, req.Method, req.URL.Path, err)
	}
	for _, w := range want {
		if resp.StatusCode == w {
			return resp, nil
		}
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	drain(resp)
	return nil, fmt.Errorf("%s: %s %s: status %d, want %v: %s", t.name, req.Method, req.URL.Path, resp.StatusCode, want, b)
}

// location resolves a Location header against the request URL.
func location(resp *http.Response) (string, error) {
	loc := resp.Header.Get("Location")
	if loc == "" {
		return "", fmt.Errorf("%s %s: no Location header", resp.Request.Method, resp.Request.URL.Path)
	}
	u, err := resp.Request.URL.Parse(loc)
	if err != nil {
		return "", fmt.Errorf("parsing Location %q: %w", loc, err)
	}
	return u.String(), nil
}

// drain reads what is left of a body so that the connection is reused.
func drain(resp *http.Response) {
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
}

// parseChallenge parses a `Bearer k="v",…` WWW-Authenticate value.
func parseChallenge(h string) map[string]string {
	out := map[string]string{}
	rest, ok := strings.CutPrefix(h, "Bearer ")
	if !ok {
		return out
	}
	for rest != "" {
		k, after, ok := strings.Cut(rest, `="`)
		if !ok {
			return out
		}
		v, after, ok := strings.Cut(after, `"`)
		if !ok {
			return out
		}
		out[strings.TrimSpace(k)] = v
		rest = strings.TrimPrefix(strings.TrimSpace(after), ",")
	}
	return out
}

// nextLink returns the target of a rel="next" Link header, or "".
func nextLink(h string) string {
	target, params, ok := strings.Cut(h, ";")
	if !ok || !strings.Contains(params, `rel="next"`) {
		return ""
	}
	target = strings.TrimSpace(target)
	if !strings.HasPrefix(target, "<") || !strings.HasSuffix(target, ">") {
		return ""
	}
	return strings.Trim(target, "<>")
}
