package events

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// red is the redacted form of an address under the test key.
func red(addr string) string { return RedactEmail(testKey, addr) }

func TestRedact(t *testing.T) {
	jane := red("jane.doe@example.com")
	tests := []struct {
		name, in, want string
	}{
		{"no address", `{"a":"b","c":[1,"x\u00e9"]}`, `{"a":"b","c":[1,"x\u00e9"]}`},
		{"identity.email, trimmed and lower-cased as hashed",
			`{"identity":{"crm_contact_id":"c-1","email":" Jane.Doe@Example.com "}}`,
			`{"identity":{"crm_contact_id":"c-1","email":"` + jane + `"}}`},
		{"email member written with escapes", `{"\u0065mail" : "jane.doe\u0040example.com"}`, `{"\u0065mail" : "` + jane + `"}`},
		{"address in free text", `{"note":"write to Jane.Doe@Example.com, not the office"}`,
			`{"note":"write to ` + jane + `, not the office"}`},
		{"escaped text is written again", `{"note":"caf\u00e9 \"jane.doe\u0040example.com\""}`, `{"note":"café \"` + jane + `\""}`},
		{"address in a URL", `{"url":"https://shop.example/?u=jane.doe@example.com&x=1"}`, `{"url":"https://shop.example/?u=` + jane + `&x=1"}`},
		{"address as an object key", `{"jane.doe@example.com":1}`, `{"` + jane + `":1}`},
		{"broken JSON", `{"identity": {"email": "Jane.Doe@example.com", "crm`, `{"identity": {"email": "` + jane + `", "crm`},
		{"unterminated string stays unterminated", `{"email":"jane.doe@example.com`, `{"email":"` + jane},
		{"address outside strings", `{"identity": {email: jane.doe@example.com}}`, `{"identity": {email: ` + jane + `}}`},
		{"not JSON: a message key", ` Jane.Doe@Example.com`, ` ` + jane},
		{"two addresses, sentence end", `a@x.com,b@y.org.`, red("a@x.com") + `,` + red("b@y.org") + `.`},
		{"email member that holds an address but is not one", `{"email":"Jane <jane.doe@example.com>"}`, `{"email":"(redacted: not an email address)"}`},
		{"email member without an address is kept", `{"email":"unknown"}`, `{"email":"unknown"}`},
		{"a@b@c is one run", `x a@b@c.de y`, `x ` + red("a@b@c.de") + ` y`},
		{"a@b.@c is one run", `x a@b.@c.de. y`, `x ` + red("a@b.@c.de") + `. y`},
		{"bytes that are not UTF-8 stay", "\"\xffjane.doe@example.com\"", "\"\xff" + jane + "\""},
		{"no local part is no address", `@handle and user@`, `@handle and user@`},
	}
	d := newTestDecoder(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := []byte(tt.in)
			got := d.Redact(in)
			if string(got) != tt.want {
				t.Fatalf("Redact(%s)\n got %s\nwant %s", tt.in, got, tt.want)
			}
			if tt.in == tt.want && &got[0] != &in[0] {
				t.Error("a message without an address was copied")
			}
			if again := d.Redact(got); !bytes.Equal(again, got) {
				t.Errorf("redacting twice changes it again: %s", again)
			}
			if json.Valid(in) != json.Valid(got) {
				t.Errorf("JSON validity changed: %v before, %v after", json.Valid(in), json.Valid(got))
			}
		})
	}
}

// A redacted message decodes as the original does: the same event with
// the same email hash, or the same refusal. That is what makes a redacted
// dead letter replayable.
func TestRedactedMessageDecodesAlike(t *testing.T) {
	const addr = "Jane.Doe@Example.com"
	msgs := map[string]string{
		"identity.email":       edit(orderPlaced, "identity.email", " "+addr),
		"email-only identity":  `{"event_id":"f-1","type":"form.submitted","occurred_at":"2025-05-27T14:22:47Z","source":"hubspot","identity":{"email":"` + addr + `"},"properties":{"form_id":"f"}}`,
		"properties":           edit(orderPlaced, "properties.note", "call "+addr, "properties.contact", map[string]any{"Email": addr, "cc": []any{addr}}),
		"escaped":              strings.Replace(orderPlaced, `"x@example.com"`, `"jane.doe\u0040example.com"`, 1),
		"url":                  minimal(TypeWebVisit, `{"url":"https://shop.example/?u=`+addr+`","referrer":"mailto:`+addr+`"}`),
		"crm id is an address": edit(orderPlaced, "identity.crm_contact_id", addr),
		"event id":             edit(orderPlaced, "event_id", "msg-"+addr),
		// At their length limits: the redacted form is longer than the address.
		"event id of 128":        edit(orderPlaced, "event_id", strings.Repeat("m", 127-len(addr))+" "+addr),
		"anonymous id of 256":    edit(orderPlaced, "identity.anonymous_id", strings.Repeat("v", 255-len(addr))+" "+addr),
		"two in a crm id of 256": edit(orderPlaced, "identity.crm_contact_id", strings.Repeat("c", 255-2*len(addr)-1)+" "+addr+","+addr),
		"unknown currency":       edit(orderPlaced, "properties.currency", "XYZ"),
		"not an address":         edit(orderPlaced, "identity.email", "Jane <"+addr+">"),
		"two at signs":           edit(orderPlaced, "identity.email", "a@"+addr),
		"type is an address":     edit(orderPlaced, "type", addr),
		"invalid JSON":           `{"identity":{"email":"` + addr + `"`,
	}
	d := newTestDecoder(t)
	for name, msg := range msgs {
		t.Run(name, func(t *testing.T) {
			redacted := d.Redact([]byte(msg))
			if bytes.Contains(bytes.ToLower(redacted), []byte("jane.doe@")) {
				t.Fatalf("address left in %s", redacted)
			}
			want, wantErr := d.Decode([]byte(msg))
			got, gotErr := d.Decode(redacted)
			if wantErr != nil || gotErr != nil {
				var we, ge *Error
				if !errors.As(wantErr, &we) || !errors.As(gotErr, &ge) || we.Reason != ge.Reason || we.Field != ge.Field {
					t.Fatalf("original: %v; redacted: %v", wantErr, gotErr)
				}
				for _, e := range []*Error{we, ge} {
					if strings.Contains(strings.ToLower(e.Detail), "jane.doe@") {
						t.Errorf("detail repeats the address: %s", e.Detail)
					}
				}
				return
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("redacted message decodes to\n%+v\nthe original to\n%+v", got, want)
			}
			for _, needle := range []string{"jane.doe@", "example.com>"} {
				if where := findString(reflect.ValueOf(got), needle); where != "" {
					t.Errorf("raw address in Event.%s", where)
				}
			}
		})
	}
}

func TestRedactedEmailIsTakenAsTheHash(t *testing.T) {
	d := newTestDecoder(t)
	want := HashEmail(testKey, "jane@example.com")
	for _, v := range []string{red("jane@example.com"), " " + strings.ToUpper(red("jane@example.com")) + " "} {
		ev, err := d.Decode([]byte(edit(orderPlaced, "identity.email", v)))
		if err != nil || ev.EmailHash != want {
			t.Errorf("identity.email %q: hash %q, err %v; want %s", v, ev.EmailHash, err, want)
		}
	}
	for _, v := range []string{RedactedEmailPrefix + want[:63], RedactedEmailPrefix + want + "0", RedactedEmailPrefix + strings.Repeat("g", 64)} {
		_, err := d.Decode([]byte(edit(orderPlaced, "identity.email", v)))
		var e *Error
		if !errors.As(err, &e) || e.Field != "identity.email" {
			t.Errorf("identity.email %q accepted (%v), want invalid_field", v, err)
		}
	}
}

// Error details show <email> where the refused value held an address.
func TestErrorDetailsMaskAddresses(t *testing.T) {
	d := newTestDecoder(t)
	_, err := d.Decode([]byte(edit(orderPlaced, "properties.channel", "jane@example.com")))
	if err == nil || strings.Contains(err.Error(), "jane") || !strings.Contains(err.Error(), `"<email>" is not one of`) {
		t.Errorf("error %v, want the address masked", err)
	}
}

// FuzzRedact feeds arbitrary bytes to Redact: it must not panic, must leave
// nothing a second pass would redact, must keep JSON valid or invalid as it
// was, and a redacted message that decodes must decode as the original.
func FuzzRedact(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "*", "*.json"))
	for _, file := range files {
		if b, err := os.ReadFile(file); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte(`{"email":"a@b@c","x":"\u0040a@b.c\\","y":"q@r.s`))
	f.Add([]byte("\xffa@b.c \"x\":\"a@b\xc3\""))
	d := newTestDecoder(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		out := d.Redact(data)
		if again := d.Redact(out); !bytes.Equal(again, out) {
			t.Fatalf("%q redacted is %q, which still holds an address (%q)", data, out, again)
		}
		if bytes.IndexByte(data, '\\') < 0 { // escapes aside, every address seen in the input is gone
			lower := bytes.ToLower(out)
			forEachEmail(data, func(start, end int) {
				if bytes.Contains(lower, bytes.ToLower(data[start:end])) {
					t.Fatalf("address %q left in %q", data[start:end], out)
				}
			})
		}
		if json.Valid(data) != json.Valid(out) {
			t.Fatalf("JSON validity changed: %q became %q", data, out)
		}
		want, wantErr := d.Decode(data)
		got, gotErr := d.Decode(out)
		if wantErr == nil && gotErr == nil && !reflect.DeepEqual(got, want) {
			t.Fatalf("%q decodes to %+v, redacted %q to %+v", data, want, out, got)
		}
	})
}

// A redacted address counts as the shortest address it could stand for
// (3 characters) toward a field's length limit: the original's length is
// unknown, and a replay must not refuse what the original passed. So a
// redacted field is taken up to 73 characters (76 - 3) past the limit per
// address, for at most two addresses.
func TestRedactedFormCountsAsThreeCharacters(t *testing.T) {
	d := newTestDecoder(t)
	form := red("jane.doe@example.com")
	for _, tt := range []struct {
		id string
		ok bool
	}{
		{strings.Repeat("m", 125) + " " + form[:len(form)-1] + "x", false}, // not a redacted form
		{strings.Repeat("m", 124) + " " + form, true},                      // 125 + 3 = 128
		{strings.Repeat("m", 125) + " " + form, false},                     // 126 + 3 = 129
		{strings.Repeat("m", 40) + " " + form + " " + form, true},
		{strings.Repeat("m", 50) + " " + form + " " + form + " " + form, false}, // 53 + 3 + 3 + 76 = 135: only two count as 3
		{strings.Repeat(form, 20), false},
	} {
		_, err := d.Decode([]byte(edit(orderPlaced, "event_id", tt.id)))
		if (err == nil) != tt.ok {
			t.Errorf("event_id of %d characters: %v, want ok=%v", len(tt.id), err, tt.ok)
		}
	}
}
