// What the API answered, checked against the client's own types: every response body is
// decoded a second time with DisallowUnknownFields into the type the client decoded it into,
// its keys are compared case-sensitively with the type's JSON tags (Go's decoder matches
// keys case-insensitively, so "NodeId" would pass it), and the fields the client or the
// provider read must be present with the right JSON type.
package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"sort"
	"strings"
	"sync"
)

// exchange is one HTTP request and the response the API gave.
type exchange struct {
	method string
	path   string
	status int
	header http.Header
	body   []byte
}

// recorder is the client's transport: it keeps the last exchange for the checks.
type recorder struct {
	base http.RoundTripper
	mu   sync.Mutex
	last exchange
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := r.base.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	r.mu.Lock()
	r.last = exchange{req.Method, req.URL.RequestURI(), resp.StatusCode, resp.Header.Clone(), body}
	r.mu.Unlock()
	return resp, nil
}

func (r *recorder) lastExchange() exchange {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.last
}

// field is a JSON field a response must carry: a dotted path and its JSON kind
// ("string", "bool", "number", "array", "object").
type field struct {
	path string
	kind string
}

func fields(kind string, paths ...string) []field {
	out := make([]field, len(paths))
	for i, p := range paths {
		out[i] = field{p, kind}
	}
	return out
}

func concat(groups ...[]field) []field {
	var out []field
	for _, g := range groups {
		out = append(out, g...)
	}
	return out
}

// conform checks body against the client's type of into (a pointer) and the required fields.
func conform(body []byte, into any, required []field) error {
	var problems []string
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(into); err != nil {
		problems = append(problems, fmt.Sprintf("strict decode into %T: %v", into, err))
	} else if dec.More() {
		problems = append(problems, "data after the JSON value")
	}
	var raw any
	rawDec := json.NewDecoder(bytes.NewReader(body))
	rawDec.UseNumber()
	if err := rawDec.Decode(&raw); err != nil {
		return fmt.Errorf("not JSON: %v (body %q)", err, truncate(body))
	}
	problems = append(problems, exactKeys(raw, reflect.TypeOf(into), "")...)
	if obj, ok := raw.(map[string]any); ok {
		problems = append(problems, missing(obj, required)...)
	} else if len(required) > 0 {
		problems = append(problems, fmt.Sprintf("expected a JSON object, got %s", kindOf(raw)))
	}
	if len(problems) > 0 {
		return fmt.Errorf("%s (body %s)", strings.Join(problems, "; "), truncate(body))
	}
	return nil
}

// missing lists the required fields absent from obj or of another JSON kind.
func missing(obj map[string]any, required []field) []string {
	var problems []string
	for _, f := range required {
		var value any = obj
		found := true
		for _, part := range strings.Split(f.path, ".") {
			m, ok := value.(map[string]any)
			if !ok {
				found = false
				break
			}
			if value, found = m[part]; !found {
				break
			}
		}
		switch {
		case !found:
			problems = append(problems, fmt.Sprintf("missing field %q", f.path))
		case kindOf(value) != f.kind:
			problems = append(problems, fmt.Sprintf("field %q is %s, want %s", f.path, kindOf(value), f.kind))
		}
	}
	return problems
}

func kindOf(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case string:
		return "string"
	case bool:
		return "bool"
	case json.Number, float64:
		return "number"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	}
	return fmt.Sprintf("%T", v)
}

var unmarshaler = reflect.TypeOf((*json.Unmarshaler)(nil)).Elem()

// exactKeys lists the keys of raw that are not, letter for letter, a JSON field of t.
func exactKeys(raw any, t reflect.Type, path string) []string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	// Types with their own decoding (times, tailscale.Time) are leaves.
	if t.Implements(unmarshaler) || reflect.PointerTo(t).Implements(unmarshaler) {
		return nil
	}
	var problems []string
	switch t.Kind() {
	case reflect.Struct:
		obj, ok := raw.(map[string]any)
		if !ok {
			return nil // the strict decode reports the type mismatch
		}
		byName := map[string]reflect.Type{}
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if name == "-" || !f.IsExported() {
				continue
			}
			if name == "" {
				name = f.Name
			}
			byName[name] = f.Type
		}
		keys := make([]string, 0, len(obj))
		for k := range obj {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			ft, ok := byName[k]
			if !ok {
				hint := ""
				for name := range byName {
					if strings.EqualFold(name, k) {
						hint = fmt.Sprintf(" (the client's field is %q)", name)
					}
				}
				problems = append(problems, fmt.Sprintf("unknown field %q%s", path+k, hint))
				continue
			}
			problems = append(problems, exactKeys(obj[k], ft, path+k+".")...)
		}
	case reflect.Slice, reflect.Array:
		if items, ok := raw.([]any); ok {
			for i, item := range items {
				problems = append(problems, exactKeys(item, t.Elem(), fmt.Sprintf("%s%d.", path, i))...)
			}
		}
	case reflect.Map:
		if obj, ok := raw.(map[string]any); ok {
			for k, v := range obj {
				problems = append(problems, exactKeys(v, t.Elem(), path+k+".")...)
			}
		}
	}
	return problems
}

// truncate shortens a body for a message, with an auth key's secret (a key's "key") hidden:
// the report and the log never carry it.
func truncate(body []byte) string {
	var obj map[string]any
	if json.Unmarshal(body, &obj) == nil {
		if _, ok := obj["key"].(string); ok {
			obj["key"] = "[redacted]"
			if redacted, err := json.Marshal(obj); err == nil {
				body = redacted
			}
		}
	}
	const limit = 600
	if len(body) > limit {
		return string(body[:limit]) + "..."
	}
	return string(body)
}
