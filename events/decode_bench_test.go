package events

// Choosing the JSON reader of the ingest hot path (measured 2026-11-29,
// go1.26.8 linux/amd64, 2 cores of an AMD EPYC VM shared with other builds,
// so expect ±20 %; median of 5 runs of 1 s, the mix of BenchmarkDecode:
// the 15 testdata/good samples compacted, 331–497 bytes, 411 on average).
//
// The library rows are a lower bound: unmarshal the envelope into a struct
// with properties as json.RawMessage, unmarshal the properties into a struct
// of the known keys, time.Parse occurred_at, copy properties. They check no
// rule and hash no email. The last row is the real Decode, with every rule
// checked and HMAC-SHA256 of the email on 7 of the 15 messages.
//
//	reader                                  ns/op   B/op  allocs/op
//	encoding/json (go1.26.8)                 6454   1343         26
//	github.com/goccy/go-json v0.10.5         2899   1409         10
//	github.com/goccy/go-json v0.12.0         1964    863         16
//	github.com/bytedance/sonic v1.15.5       3206   1337         11
//	  sonic.ConfigStd                        4164   1518         20
//	github.com/valyala/fastjson v1.6.10      2118    526         11
//	events lexer (lexer.go), full Decode     1304    274          2
//
// The lexer wins by 1.5x over the best library's lower bound and allocates
// twice per message (one block for every string column, one for
// Properties), which keeps GC quiet at 250k events/s. It also keeps the
// properties span raw, so Event.Properties is a copy, not a re-encoding. It
// is plain bounds-checked Go with no unsafe, no assembly and no JIT (sonic
// needs amd64/arm64 and compiles decoders at run time; goccy/go-json has
// open reports of panics on malformed input, goccy/go-json#445, #575, #604),
// and FuzzDecode checks it against encoding/json. So no JSON library is a
// dependency. Syntax alone (parse without the checks) costs about 335 ns
// per message; json.Valid alone costs about 1270 ns.
//
// In this package's own harness (direct call, no global sink) the same
// machine gives, median of 5:
//
//	BenchmarkDecode          970 ns/op  274 B/op  2 allocs/op
//	BenchmarkDecodePretty   1190 ns/op  311 B/op  2 allocs/op
//	BenchmarkDecodeInvalid   505 ns/op  113 B/op  2 allocs/op
//
// Run them with go test ./events -run XXX -bench Decode.

import (
	"os"
	"path/filepath"
	"testing"
)

// benchMix loads the samples of dir, compacted when compact is set.
func benchMix(b *testing.B, dir string, compact bool) [][]byte {
	b.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", dir, "*.json"))
	if err != nil || len(files) == 0 {
		b.Fatalf("no samples in testdata/%s: %v", dir, err)
	}
	var mix [][]byte
	for _, f := range files {
		msg, err := os.ReadFile(f)
		if err != nil {
			b.Fatal(err)
		}
		if compact {
			msg = compactJSON(b, msg)
		}
		mix = append(mix, msg)
	}
	return mix
}

func runDecode(b *testing.B, mix [][]byte, wantErr bool) {
	d := newTestDecoder(b)
	size := 0
	for _, msg := range mix {
		size += len(msg)
		if _, err := d.Decode(msg); (err != nil) != wantErr {
			b.Fatalf("Decode(%s) = %v", msg, err)
		}
	}
	b.SetBytes(int64(size / len(mix)))
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		d.Decode(mix[i%len(mix)])
	}
}

// BenchmarkDecode is the hot path: valid compact messages of all 15 types,
// as producers send them.
func BenchmarkDecode(b *testing.B) {
	runDecode(b, benchMix(b, "good", true), false)
}

// BenchmarkDecodePretty decodes the same messages pretty-printed, which
// takes the slower path that compacts Properties.
func BenchmarkDecodePretty(b *testing.B) {
	runDecode(b, benchMix(b, "good", false), false)
}

// BenchmarkDecodeInvalid decodes refused messages: the cost of a flood of
// dead letters.
func BenchmarkDecodeInvalid(b *testing.B) {
	runDecode(b, benchMix(b, "bad", false), true)
}
