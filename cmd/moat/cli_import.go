package main

import (
	"context"
	"net/http"
	"strings"

	"github.com/spf13/cobra"

	"github.com/moat-registry/moat/internal/model"
)

var importColumns = []column{
	{"STATUS", "status"}, {"SOURCE REGISTRY", "sourceRegistry"}, {"DIGEST", "digest"}, {"MANIFESTS", "manifests"},
}

// importSource is what --source and --registry name, as the importImage
// body's source.
type importSource struct {
	resourceID, registryURI, image string
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
	var source, registry string
	var tags, repos []string
	var force bool
	cmd := &cobra.Command{
		Use:   "import -n TARGET --source LOGIN_SERVER/repo:tag | --source repo:tag --registry SOURCE [-t repo:tag ...] [--repository repo ...] [--force]",
		Short: "Import an image (every platform and its referrers) from another registry of this deployment",
		Long: "Import copies an image, by tag or digest, with every platform of an index and their referrers, into the\n" +
			"target registry. Within one deployment only metadata is copied. A registry with exports disabled cannot\n" +
			"be the source of an import into another registry. Without -t or --repository the image keeps its name.",
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			src, err := parseImportSource(source, registry)
			if err != nil {
				return err
			}
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
				res, err := s.call(ctx, http.MethodPost, path+"/importImage", model.Latest().String(), body)
				if err != nil {
					return err
				}
				return out.print(cio.stdout, res, importColumns)
			})
		},
	}
	target.addFlags(cmd.Flags())
	f := cmd.Flags()
	f.StringVar(&source, "source", "", "the source image: LOGIN_SERVER/repository:tag (or @digest), or repository:tag with --registry")
	f.StringVarP(&registry, "registry", "r", "", "the source registry's resource id or name (then --source is repository:tag)")
	f.StringArrayVarP(&tags, "image", "t", nil, "target repository:tag (repeatable)")
	f.StringArrayVar(&repos, "repository", nil, "target repository to import into without a tag (repeatable)")
	f.BoolVar(&force, "force", false, "overwrite existing target tags (mode Force)")
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
