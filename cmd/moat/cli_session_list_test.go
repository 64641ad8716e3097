package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
)

// session.list follows nextLink, and an empty collection comes back as an
// empty, non-nil list, which every list command prints as [] (never null).
func TestSessionListPagesAndEmpty(t *testing.T) {
	var srv *httptest.Server
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("api-version") != "v1" {
			http.Error(w, "no api-version", http.StatusBadRequest)
			return
		}
		switch r.URL.Path {
		case "/empty":
			_, _ = w.Write([]byte(`{"value":[]}`))
		case "/paged":
			_ = json.NewEncoder(w).Encode(map[string]any{"value": []any{"a"}, "nextLink": srv.URL + "/paged2?api-version=v1"})
		case "/paged2":
			_, _ = w.Write([]byte(`{"value":["b"]}`))
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	s := &session{prof: profile{Server: srv.URL}, http: srv.Client()}
	items, err := s.list(t.Context(), "/empty", "v1")
	if err != nil || items == nil || len(items) != 0 {
		t.Fatalf("empty list: %#v, %v; want a non-nil empty list", items, err)
	}
	if b, _ := json.Marshal(items); string(b) != "[]" {
		t.Errorf("an empty list encodes as %s", b)
	}
	items, err = s.list(t.Context(), "/paged", "v1")
	if err != nil || len(items) != 2 || items[0] != "a" || items[1] != "b" {
		t.Fatalf("paged list: %#v, %v", items, err)
	}
}
