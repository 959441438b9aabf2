package controllers

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
)

// apiRequest is one request a manager sent to the API server.
type apiRequest struct {
	// verb is get, list, watch, create, update, patch or delete.
	verb string
	// resource is the resource, with its subresource ("datasettetokens/status").
	resource  string
	namespace string
	name      string
	// code is the response's status code (0 when none came).
	code int
}

// requestLog records every request a manager sends to the API server.
type requestLog struct {
	mu       sync.Mutex
	requests []apiRequest
}

func (l *requestLog) record(req *http.Request, code int) {
	r := parseRequest(req)
	r.code = code
	l.mu.Lock()
	defer l.mu.Unlock()
	l.requests = append(l.requests, r)
}

// mark returns a position in the log, for since.
func (l *requestLog) mark() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.requests)
}

// since returns the requests recorded after mark that match.
func (l *requestLog) since(mark int, match func(apiRequest) bool) []apiRequest {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []apiRequest
	for _, r := range l.requests[mark:] {
		if match == nil || match(r) {
			out = append(out, r)
		}
	}
	return out
}

// summary counts requests after mark by "verb resource".
func (l *requestLog) summary(mark int) map[string]int {
	out := map[string]int{}
	for _, r := range l.since(mark, nil) {
		k := r.verb + " " + r.resource
		if r.code >= 300 {
			k += fmt.Sprintf(" (%d)", r.code)
		}
		out[k]++
	}
	return out
}

// parseRequest tells a request's verb, resource, namespace and name from its URL, as the API
// server's request info does.
func parseRequest(req *http.Request) apiRequest {
	parts := strings.Split(strings.Trim(req.URL.Path, "/"), "/")
	switch {
	case len(parts) >= 2 && parts[0] == "api":
		parts = parts[2:]
	case len(parts) >= 3 && parts[0] == "apis":
		parts = parts[3:]
	default:
		return apiRequest{verb: strings.ToLower(req.Method), resource: req.URL.Path}
	}
	watch := req.URL.Query().Get("watch") == "true" || req.URL.Query().Get("watch") == "1"
	if len(parts) > 0 && parts[0] == "watch" {
		watch, parts = true, parts[1:]
	}
	var r apiRequest
	if len(parts) >= 3 && parts[0] == "namespaces" {
		r.namespace, parts = parts[1], parts[2:]
	}
	if len(parts) > 0 {
		r.resource = parts[0]
	}
	if len(parts) > 1 {
		r.name = parts[1]
	}
	if len(parts) > 2 {
		r.resource += "/" + strings.Join(parts[2:], "/")
	}
	switch req.Method {
	case http.MethodGet:
		switch {
		case watch:
			r.verb = "watch"
		case r.name == "":
			r.verb = "list"
		default:
			r.verb = "get"
		}
	case http.MethodPost:
		r.verb = "create"
	case http.MethodPut:
		r.verb = "update"
	default:
		r.verb = strings.ToLower(req.Method)
	}
	return r
}

func isWrite(r apiRequest) bool { return r.verb != "get" && r.verb != "list" && r.verb != "watch" }
