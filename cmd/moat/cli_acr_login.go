package main

// moat acr login: a refresh token for one registry's data plane, made from
// the stored management login the way az acr login does it (the Entra token
// is exchanged at the registry's POST /oauth2/exchange).
//
// Decisions:
//
//   - The exchange goes to the deployment's server URL with the registry's
//     login server as Host: every registry is served on the same listener,
//     so this works without DNS for {name}.{domain}.
//   - The address clients must use is the login server plus the server
//     URL's port when that is not 443 (moat often listens on 8443); it is
//     what --expose-token prints as loginServer and the docker config key.
//   - Without --expose-token the token is written to the docker config
//     ($DOCKER_CONFIG/config.json, else ~/.docker/config.json) as the auth of
//     user 00000000-0000-0000-0000-000000000000, keeping every other entry;
//     the file is written atomically with mode 0600.

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/moat-registry/moat/internal/atomicfile"
	"github.com/moat-registry/moat/internal/identity"
	"github.com/moat-registry/moat/internal/model"
)

func newACRLoginCmd(cio cliIO, out *outputOptions) *cobra.Command {
	var r registryRef
	var expose bool
	cmd := &cobra.Command{
		Use:   "login -n NAME [-g RG] [--expose-token]",
		Short: "Log in to a registry's data plane with a refresh token (for docker-style clients)",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withRegistry(cmd, out, &r, func(ctx context.Context, s *session, path string) error {
				reg, err := s.call(ctx, http.MethodGet, path, model.Latest().String(), nil)
				if err != nil {
					return err
				}
				login, _ := lookupPath(reg, "properties.loginServer").(string)
				if login == "" {
					return failf("InvalidResponse", "registry %q has no properties.loginServer", r.name)
				}
				addr, err := registryAddress(s.prof.Server, login)
				if err != nil {
					return err
				}
				rt, err := exchangeToken(ctx, s, addr, login)
				if err != nil {
					return err
				}
				if expose {
					return out.print(cio.stdout, map[string]any{"accessToken": rt, "loginServer": addr}, nil)
				}
				file, err := writeDockerAuth(addr, identity.RefreshTokenUser, rt)
				if err != nil {
					return err
				}
				_, err = fmt.Fprintf(cio.stdout, "Login Succeeded (%s, credentials in %s)\n", addr, file)
				return err
			})
		},
	}
	r.addFlags(cmd.Flags())
	cmd.Flags().BoolVarP(&expose, "expose-token", "t", false, "print the refresh token as JSON instead of writing the docker config")
	return cmd
}

// lookupPath reads a dotted path from a decoded JSON object.
func lookupPath(v any, path string) any {
	for _, k := range strings.Split(path, ".") {
		m, _ := v.(map[string]any)
		v = m[k]
	}
	return v
}

// registryAddress is host[:port] docker-style clients use for login: the
// login server on the port of server when that is not the https default.
func registryAddress(server, login string) (string, error) {
	u, err := url.Parse(server)
	if err != nil || u.Host == "" {
		return "", failf("InvalidProfile", "the profile's server %q is not a URL; run moat login again", server)
	}
	if p := u.Port(); p != "" && p != "443" {
		return login + ":" + p, nil
	}
	return login, nil
}

// exchangeToken exchanges the session's Entra token for a refresh token of
// the registry reached as addr, whose service name is login.
func exchangeToken(ctx context.Context, s *session, addr, login string) (string, error) {
	form := url.Values{
		"grant_type":   {"access_token"},
		"service":      {login},
		"tenant":       {s.prof.Tenant},
		"access_token": {s.prof.AccessToken},
	}
	if s.prof.Tenant == "" || s.prof.Tenant == defaultTenant {
		form.Del("tenant") // "organizations" names no tenant; the token's own tid decides
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.prof.Server+"/oauth2/exchange", strings.NewReader(form.Encode()))
	if err != nil {
		return "", failf("InvalidProfile", "%v", err)
	}
	req.Host = addr
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := s.http.Do(req)
	if err != nil {
		return "", failf("ConnectionFailed", "POST %s/oauth2/exchange: %v", addr, err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return "", failf("ConnectionFailed", "reading the answer of %s/oauth2/exchange: %v", addr, err)
	}
	var ans struct {
		RefreshToken string `json:"refresh_token"`
		Error        string `json:"error"`
		Description  string `json:"error_description"`
		Errors       []struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"errors"`
	}
	_ = json.Unmarshal(b, &ans) // an unreadable body leaves the fields empty
	switch {
	case resp.StatusCode == http.StatusOK && ans.RefreshToken != "":
		return ans.RefreshToken, nil
	case ans.Error != "":
		return "", failf("LoginFailed", "%s: %s", ans.Error, oneLine(ans.Description))
	case len(ans.Errors) > 0: // the data plane's own envelope (network denial, unknown registry)
		return "", failf(ans.Errors[0].Code, "%s", oneLine(ans.Errors[0].Message))
	}
	return "", failf("LoginFailed", "%s/oauth2/exchange answered %d %s", addr, resp.StatusCode, http.StatusText(resp.StatusCode))
}

// dockerConfigPath is $DOCKER_CONFIG/config.json or ~/.docker/config.json.
func dockerConfigPath() (string, error) {
	if d := os.Getenv("DOCKER_CONFIG"); d != "" {
		return filepath.Join(d, "config.json"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", failf("InvalidArgument", "finding the docker config (set DOCKER_CONFIG): %v", err)
	}
	return filepath.Join(home, ".docker", "config.json"), nil
}

// writeDockerAuth sets auths[addr] in the docker config to user:pass,
// keeping everything else in the file, and returns the file's path.
func writeDockerAuth(addr, user, pass string) (string, error) {
	path, err := dockerConfigPath()
	if err != nil {
		return "", err
	}
	cfg := map[string]any{}
	b, err := os.ReadFile(path) //nolint:gosec // G304: the user's docker config
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return "", fmt.Errorf("reading %s: %w", path, err)
	default:
		if len(strings.TrimSpace(string(b))) > 0 {
			if err := json.Unmarshal(b, &cfg); err != nil {
				return "", failf("InvalidDockerConfig", "%s is not a JSON object: %v", path, err)
			}
		}
	}
	auths, _ := cfg["auths"].(map[string]any)
	if auths == nil {
		auths = map[string]any{}
	}
	auths[addr] = map[string]any{"auth": base64.StdEncoding.EncodeToString([]byte(user + ":" + pass))}
	cfg["auths"] = auths
	out, err := json.MarshalIndent(cfg, "", "\t")
	if err != nil {
		return "", fmt.Errorf("encoding the docker config: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", fmt.Errorf("creating %s: %w", filepath.Dir(path), err)
	}
	if err := atomicfile.Write(path, append(out, '\n'), 0o600); err != nil {
		return "", fmt.Errorf("writing %s: %w", path, err)
	}
	return path, nil
}
