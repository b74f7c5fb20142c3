package events

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"unicode/utf8"
)

// FuzzDecode feeds arbitrary bytes to the decoder. It must never panic; a
// refusal must be a *Error with a known Reason; an accepted message must be
// valid JSON by encoding/json's standard and give an Event whose columns
// hold what the contract promises.
func FuzzDecode(f *testing.F) {
	for _, dir := range []string{"good", "bad"} {
		files, _ := filepath.Glob(filepath.Join("testdata", dir, "*.json"))
		for _, file := range files {
			b, err := os.ReadFile(file)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(b)
		}
	}
	f.Add([]byte(orderPlaced))
	f.Add([]byte(`{"properties":{"Email":1,"a":[{"email":"x"}]}}`))
	f.Add([]byte(`{"event_id":"\ud83d\ude00\u0000"}`))
	f.Add([]byte(""))

	d := newTestDecoder(f)
	reasons := Reasons()
	f.Fuzz(func(t *testing.T, data []byte) {
		ev, err := d.Decode(data)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("error %v is %T, not *Error", err, err)
			}
			if !slices.Contains(reasons, e.Reason) {
				t.Fatalf("unknown reason %q in %v", e.Reason, err)
			}
			if e.Reason == ReasonInvalidJSON && json.Valid(data) && isObject(data) && utf8.Valid(data) && depth(data) <= maxDepth {
				t.Fatalf("refused as invalid_json a message encoding/json accepts: %v", err)
			}
			return
		}
		if !json.Valid(data) {
			t.Fatalf("accepted a message encoding/json refuses: %+v", ev)
		}
		if ev.EventID == "" {
			t.Fatal("accepted an empty EventID")
		}
		if !json.Valid(ev.Properties) || !isObject(ev.Properties) {
			t.Fatalf("Properties is not a JSON object: %q", ev.Properties)
		}
		if bytes.ContainsAny(ev.Properties, " \t\r\n") && !insideStrings(ev.Properties) {
			t.Fatalf("Properties not compact: %s", ev.Properties)
		}
		if hasEmailKey(ev.Properties) {
			t.Fatalf("Properties kept an email member: %s", ev.Properties)
		}
		if ev.Type.Topic() == "" {
			t.Fatalf("accepted type %q", ev.Type)
		}
		if ev.OccurredAt.Location().String() != "UTC" || ev.OccurredAt.After(testNow.Add(DefaultMaxFutureSkew)) {
			t.Fatalf("OccurredAt %v", ev.OccurredAt)
		}
		if ev.CRMContactID == "" && ev.AnonymousID == "" && ev.EmailHash == "" {
			t.Fatal("accepted an event without identity")
		}
		if ev.EmailHash != "" && len(ev.EmailHash) != 64 {
			t.Fatalf("EmailHash %q", ev.EmailHash)
		}
		if ev.Amount < 0 || math.IsInf(ev.Amount, 0) || math.IsNaN(ev.Amount) || ev.AmountOriginal < 0 {
			t.Fatalf("Amount %v, AmountOriginal %v", ev.Amount, ev.AmountOriginal)
		}
	})
}

func isObject(b []byte) bool {
	b = bytes.TrimSpace(b)
	return len(b) > 0 && b[0] == '{'
}

// depth returns the deepest nesting of valid JSON b.
func depth(b []byte) int {
	dec := json.NewDecoder(bytes.NewReader(b))
	cur, deepest := 0, 0
	for {
		tok, err := dec.Token()
		if err != nil {
			return deepest
		}
		switch tok {
		case json.Delim('{'), json.Delim('['):
			cur++
			deepest = max(deepest, cur)
		case json.Delim('}'), json.Delim(']'):
			cur--
		}
	}
}

// insideStrings reports whether every white space byte of the valid JSON b
// is inside a string.
func insideStrings(b []byte) bool {
	var out bytes.Buffer
	if err := json.Compact(&out, b); err != nil {
		return false
	}
	return out.Len() == len(b)
}

// hasEmailKey reports whether valid JSON b has an object member named email
// in any case at any depth.
func hasEmailKey(b []byte) bool {
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return false
	}
	var walk func(v any) bool
	walk = func(v any) bool {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				if len(k) == 5 && bytes.EqualFold([]byte(k), []byte("email")) || walk(x) {
					return true
				}
			}
		case []any:
			for _, x := range v {
				if walk(x) {
					return true
				}
			}
		}
		return false
	}
	return walk(v)
}
