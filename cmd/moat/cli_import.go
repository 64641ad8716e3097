package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/moat-registry/moat/internal/model"
)

// importPasswordEnv holds the source registry's password when --password is
// not given (so it stays out of argv).
const importPasswordEnv = "MOAT_SOURCE_PASSWORD"

var importColumns = []column{
	{"STATUS", "status"}, {"SOURCE REGISTRY", "sourceRegistry"}, {"DIGEST", "digest"}, {"MANIFESTS", "manifests"},
}

// importSource is what --source and --registry name, as the importImage
// body's source.
type importSource struct {
	resourceID, registryURI, image string
	username, password             string
}

// parseImportSource reads az acr import's --source: "LOGIN_SERVER/repo:tag",
// or "repo:tag" with --registry naming the source registry (its resource id,
// or its name, resolved by resolveName).
func parseImportSource(source, registry string) (importSource, error) {
	if source == "" {
		return importSource{}, usagef("--source is required")
	}
	if registry != "" {
		return importSource{resourceID: registry, image: source}, nil
	}
	host, rest, ok := strings.Cut(source, "/")
	isHost := strings.ContainsAny(host, ".:") || host == "localhost" // docker's rule for a registry host
	if !ok || rest == "" || !isHost {
		return importSource{}, usagef("--source %q: give LOGIN_SERVER/repository:tag, or repository:tag with --registry SOURCE_REGISTRY", source)
	}
	return importSource{registryURI: host, image: rest}, nil
}

func newImportCmd(cio cliIO, out *outputOptions) *cobra.Command {
	var target registryRef
	var source, registry, username, password string
	var tags, repos []string
	var force, noProgress bool
	cmd := &cobra.Command{
		Use:   "import -n TARGET --source REGISTRY/repo:tag | --source repo:tag --registry SOURCE [-u USER -p PASSWORD] [-t repo:tag ...] [--repository repo ...] [--force]",
		Short: "Import an image (every platform and its referrers) from another registry of this deployment or any OCI registry",
		Long: "Import copies an image, by tag or digest, with every platform of an index and their referrers, into the\n" +
			"target registry. Within one deployment only metadata is copied; from any other OCI registry (--source\n" +
			"HOST[:PORT]/repo:tag, with --username/--password when it needs them) the server streams the layers.\n" +
			"A registry with exports disabled cannot be the source of an import into another registry. Without -t or\n" +
			"--repository the image keeps its name. On a terminal, progress goes to stderr (--no-progress silences it).",
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			src, err := parseImportSource(source, registry)
			if err != nil {
				return err
			}
			if username != "" && password == "" {
				password = os.Getenv(importPasswordEnv)
			}
			if (username == "") != (password == "") {
				return usagef("--username needs --password (or %s), and --password needs --username", importPasswordEnv)
			}
			if username != "" && src.resourceID != "" {
				return usagef("--username/--password are for a registry outside this deployment, not --registry")
			}
			src.username, src.password = username, password
			return withRegistry(cmd, out, &target, func(ctx context.Context, s *session, path string) error {
				if src.resourceID != "" && !strings.HasPrefix(src.resourceID, "/") {
					// A registry name: find its id as -n would.
					id, err := (&registryRef{name: src.resourceID}).path(ctx, s)
					if err != nil {
						return err
					}
					src.resourceID = id
				}
				body := importBody(src, tags, repos, force)
				var prog io.Writer
				if !noProgress {
					prog = cio.stderr
				}
				res, err := runImport(ctx, s, path+"/importImage", body, newProgressPrinter(prog))
				if err != nil {
					return err
				}
				return out.print(cio.stdout, res, importColumns)
			})
		},
	}
	target.addFlags(cmd.Flags())
	f := cmd.Flags()
	f.StringVar(&source, "source", "", "the source image: REGISTRY[:PORT]/repository:tag (or @digest), or repository:tag with --registry")
	f.StringVarP(&registry, "registry", "r", "", "the source registry's resource id or name (then --source is repository:tag)")
	f.StringVarP(&username, "username", "u", "", "user name for a source registry outside this deployment")
	f.StringVarP(&password, "password", "p", "", "password or token for a source registry outside this deployment (prefer "+importPasswordEnv+")")
	f.StringArrayVarP(&tags, "image", "t", nil, "target repository:tag (repeatable)")
	f.StringArrayVar(&repos, "repository", nil, "target repository to import into without a tag (repeatable)")
	f.BoolVar(&force, "force", false, "overwrite existing target tags (mode Force)")
	f.BoolVar(&noProgress, "no-progress", false, "do not report progress on stderr")
	return cmd
}

// importBody is the importImage request.
func importBody(src importSource, tags, repos []string, force bool) map[string]any {
	s := map[string]any{"sourceImage": src.image}
	if src.resourceID != "" {
		s["resourceId"] = src.resourceID
	} else {
		s["registryUri"] = src.registryURI
	}
	if src.username != "" {
		s["credentials"] = map[string]any{"username": src.username, "password": src.password}
	}
	body := map[string]any{"source": s, "mode": "NoForce"}
	if force {
		body["mode"] = "Force"
	}
	if len(tags) > 0 {
		body["targetTags"] = tags
	}
	if len(repos) > 0 {
		body["untaggedTargetRepositories"] = repos
	}
	return body
}

// importProgress is the progress of a running import (the 202 body).
type importProgress struct {
	Manifests  int64 `json:"manifests"`
	BlobsTotal int64 `json:"blobsTotal"`
	BlobsDone  int64 `json:"blobsDone"`
	BytesTotal int64 `json:"bytesTotal"`
	BytesDone  int64 `json:"bytesDone"`
}

// runImport POSTs the import and follows its operation, reporting progress
// as the server counts it.
func runImport(ctx context.Context, s *session, path string, body any, report func(importProgress)) (any, error) {
	u := s.prof.Server + (&url.URL{Path: path}).EscapedPath() + "?api-version=" + url.QueryEscape(model.Latest().String())
	status, hdr, b, err := s.send(ctx, http.MethodPost, u, body)
	if err != nil {
		return nil, err
	}
	if status >= 300 {
		return nil, armError(status, hdr.Get("x-ms-error-code"), b)
	}
	loc := hdr.Get("Location")
	if status != http.StatusAccepted || loc == "" {
		return decodeAnswer(http.MethodPost, b)
	}
	if err := s.sameServer(loc); err != nil {
		return nil, err
	}
	delay := pollDelay(hdr)
	defer report(importProgress{BytesTotal: -1}) // ends the progress line
	for range maxPolls {
		if err := sleepCtx(ctx, delay); err != nil {
			return nil, err
		}
		status, hdr, b, err := s.send(ctx, http.MethodGet, loc, nil)
		if err != nil {
			return nil, err
		}
		delay = pollDelay(hdr)
		switch {
		case status == http.StatusAccepted:
			var run struct {
				Progress importProgress `json:"progress"`
			}
			if json.Unmarshal(b, &run) == nil {
				report(run.Progress)
			}
			continue
		case status == http.StatusRequestTimeout, status == http.StatusTooManyRequests, status >= 500:
			continue
		case status >= 300:
			return nil, armError(status, hdr.Get("x-ms-error-code"), b)
		}
		return decodeAnswer(http.MethodGet, b)
	}
	return nil, failf("OperationTimedOut", "the import at %s did not finish", loc)
}

// newProgressPrinter reports progress on w when w is a terminal: one line
// rewritten in place and ended when the import ends. Elsewhere (a pipe, a
// log, a script reading stderr for the one-line error) it reports nothing.
func newProgressPrinter(w io.Writer) func(importProgress) {
	f, ok := w.(*os.File)
	if !ok {
		return func(importProgress) {}
	}
	if fi, err := f.Stat(); err != nil || fi.Mode()&os.ModeCharDevice == 0 {
		return func(importProgress) {}
	}
	return progressLine(w)
}

// progressLine rewrites one terminal line with each new progress; the end
// (BytesTotal < 0) ends the line.
func progressLine(w io.Writer) func(importProgress) {
	var last string
	return func(p importProgress) {
		if p.BytesTotal < 0 {
			if last != "" {
				_, _ = fmt.Fprintln(w)
			}
			return
		}
		line := formatProgress(p)
		if line == last {
			return
		}
		last = line
		_, _ = fmt.Fprintf(w, "\r%s\x1b[K", line)
	}
}

// formatProgress is the progress line.
func formatProgress(p importProgress) string {
	if p.BlobsTotal == 0 {
		return fmt.Sprintf("importing: %d manifests", p.Manifests)
	}
	pct := 100
	if p.BytesTotal > 0 {
		pct = int(p.BytesDone * 100 / p.BytesTotal)
	}
	return fmt.Sprintf("importing: %3d%%  %s / %s  %d/%d blobs  %d manifests", pct, mib(p.BytesDone), mib(p.BytesTotal), p.BlobsDone, p.BlobsTotal, p.Manifests)
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }
