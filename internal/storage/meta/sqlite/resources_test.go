package sqlite

import (
	"testing"

	"github.com/moat-registry/moat/internal/storage/meta"
	"github.com/moat-registry/moat/internal/storage/meta/metatest"
)

func TestResourceConformance(t *testing.T) {
	metatest.RunResources(t, func(t *testing.T) meta.Store { return newStore(t) })
}
