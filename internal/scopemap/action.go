package scopemap

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Scope-map permissions, as ACR spells them after the repository.
const (
	ContentRead    = "content/read"
	ContentWrite   = "content/write"
	ContentDelete  = "content/delete"
	MetadataRead   = "metadata/read"
	MetadataWrite  = "metadata/write"
	repositoriesNS = "repositories/"
	gatewayNS      = "gateway/"
)

// Permissions lists the permissions a repository rule may name, in ACR's
// documentation order.
var Permissions = []string{ContentDelete, ContentRead, ContentWrite, MetadataRead, MetadataWrite}

// Docker token actions the permissions grant. pull, push and delete are the
// ones moat's data plane checks; metadata_read and metadata_write are ACR's,
// granted when a client asks for them.
const (
	DockerPull          = "pull"
	DockerPush          = "push"
	DockerDelete        = "delete"
	DockerMetadataRead  = "metadata_read"
	DockerMetadataWrite = "metadata_write"
)

// dockerAction maps a permission to the Docker action it grants.
var dockerAction = map[string]string{
	ContentRead:   DockerPull,
	ContentWrite:  DockerPush,
	ContentDelete: DockerDelete,
	MetadataRead:  DockerMetadataRead,
	MetadataWrite: DockerMetadataWrite,
}

// maxActionLen bounds one action string; a repository name is at most 255
// bytes.
const maxActionLen = 300

// Rule is one parsed scope-map action.
type Rule struct {
	// Repository is the repository name, or for a wildcard the prefix
	// including its trailing '/' ("samples/"), or "" for the root wildcard.
	Repository string
	// Wildcard is set for "prefix/*" and "*".
	Wildcard bool
	// Permission is one of Permissions.
	Permission string
}

// String is the action as ACR writes it.
func (r Rule) String() string {
	repo := r.Repository
	if r.Wildcard {
		repo += "*"
	}
	return repositoriesNS + repo + "/" + r.Permission
}

// Matches reports whether the rule applies to repository repo.
func (r Rule) Matches(repo string) bool {
	if r.Wildcard {
		return strings.HasPrefix(repo, r.Repository)
	}
	return repo == r.Repository
}

// ErrInvalidAction is wrapped by every ParseAction failure.
var ErrInvalidAction = errors.New("invalid scope map action")

// ParseAction parses one scope-map action such as
// "repositories/samples/hello/content/read" or "repositories/samples/*/content/write".
// The permission is the last two segments, so repository names may contain
// '/'.
func ParseAction(s string) (Rule, error) {
	if len(s) > maxActionLen {
		return Rule{}, fmt.Errorf("%w: %.40q… is longer than %d bytes", ErrInvalidAction, s, maxActionLen)
	}
	if strings.HasPrefix(s, gatewayNS) {
		return Rule{}, fmt.Errorf("%w: %q: gateway actions name a connected registry, which moat does not serve", ErrInvalidAction, s)
	}
	rest, ok := strings.CutPrefix(s, repositoriesNS)
	if !ok {
		return Rule{}, fmt.Errorf("%w: %q: want repositories/{repository}/{permission}", ErrInvalidAction, s)
	}
	last := strings.LastIndexByte(rest, '/')
	if last < 0 {
		return Rule{}, fmt.Errorf("%w: %q: want repositories/{repository}/{permission}", ErrInvalidAction, s)
	}
	prev := strings.LastIndexByte(rest[:last], '/')
	if prev < 0 {
		return Rule{}, fmt.Errorf("%w: %q: want repositories/{repository}/{permission}", ErrInvalidAction, s)
	}
	repo, perm := rest[:prev], rest[prev+1:]
	if !slices.Contains(Permissions, perm) {
		return Rule{}, fmt.Errorf("%w: %q: permission %q is not one of %s", ErrInvalidAction, s, perm, strings.Join(Permissions, ", "))
	}
	r, err := parseRepository(repo)
	if err != nil {
		return Rule{}, fmt.Errorf("%w: %q: %w", ErrInvalidAction, s, err)
	}
	r.Permission = perm
	return r, nil
}

// parseRepository reads the repository part of an action.
func parseRepository(repo string) (Rule, error) {
	if repo == "*" {
		return Rule{Wildcard: true}, nil
	}
	if prefix, ok := strings.CutSuffix(repo, "/*"); ok {
		if strings.Contains(prefix, "*") {
			return Rule{}, fmt.Errorf("repository %q: a wildcard may appear once, as the last segment (\"samples/*\")", repo)
		}
		if !ValidRepository(prefix) {
			return Rule{}, fmt.Errorf("repository prefix %q is not a valid repository name (lower-case letters, digits and . _ - separators)", prefix)
		}
		return Rule{Repository: prefix + "/", Wildcard: true}, nil
	}
	if strings.Contains(repo, "*") {
		return Rule{}, fmt.Errorf("repository %q: a wildcard must be the whole name (\"*\") or end the name after a '/' (\"samples/*\")", repo)
	}
	if !ValidRepository(repo) {
		return Rule{}, fmt.Errorf("repository %q is not a valid repository name (lower-case letters, digits and . _ - separators)", repo)
	}
	return Rule{Repository: repo}, nil
}

// ParseActions parses every action of a scope map; the first failure is
// returned with its index.
func ParseActions(actions []string) ([]Rule, error) {
	rules := make([]Rule, 0, len(actions))
	for i, a := range actions {
		r, err := ParseAction(a)
		if err != nil {
			return nil, fmt.Errorf("actions[%d]: %w", i, err)
		}
		rules = append(rules, r)
	}
	return rules, nil
}

// Grants returns the Docker actions rules grant on repository repo, each
// once, in the order pull, push, delete, metadata_read, metadata_write.
// It is the authorization decision for tokens, a pure function.
func Grants(rules []Rule, repo string) []string {
	var out []string
	for _, perm := range []string{ContentRead, ContentWrite, ContentDelete, MetadataRead, MetadataWrite} {
		for _, r := range rules {
			if r.Permission == perm && r.Matches(repo) {
				out = append(out, dockerAction[perm])
				break
			}
		}
	}
	return out
}

// maxRepositoryLen is the longest repository name clients can pull.
const maxRepositoryLen = 255

// ValidRepository reports whether s matches the distribution spec's
// repository name grammar
//
//	[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*
func ValidRepository(s string) bool {
	if s == "" || len(s) > maxRepositoryLen {
		return false
	}
	for _, c := range strings.Split(s, "/") {
		if !validComponent(c) {
			return false
		}
	}
	return true
}

func validComponent(c string) bool {
	if c == "" || !lowerAlnum(c[0]) || !lowerAlnum(c[len(c)-1]) {
		return false
	}
	for i := 1; i < len(c); {
		if lowerAlnum(c[i]) {
			i++
			continue
		}
		j := i
		for j < len(c) && !lowerAlnum(c[j]) {
			j++
		}
		sep := c[i:j]
		if sep != "." && sep != "_" && sep != "__" && strings.Trim(sep, "-") != "" {
			return false
		}
		i = j
	}
	return true
}

func lowerAlnum(b byte) bool { return b >= 'a' && b <= 'z' || b >= '0' && b <= '9' }
