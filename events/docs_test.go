package events

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// eventsDoc is the producer documentation of contract v1.
var eventsDoc = filepath.Join("..", "docs", "EVENTS.md")

// jsonBlock matches a fenced ```json block of a Markdown file.
var jsonBlock = regexp.MustCompile("(?ms)^```json\\n(.*?)^```")

// TestDocsExamples decodes every JSON example of docs/EVENTS.md, so the
// documentation cannot drift from the decoder, and checks that the document
// shows every type and explains every reason.
func TestDocsExamples(t *testing.T) {
	doc, err := os.ReadFile(eventsDoc)
	if err != nil {
		t.Fatal(err)
	}
	d := newTestDecoder(t)
	blocks := jsonBlock.FindAllSubmatch(doc, -1)
	types := map[Type]int{}
	for i, m := range blocks {
		ev, err := d.Decode(m[1])
		if err != nil {
			t.Errorf("example %d of %s does not decode: %v\n%s", i+1, eventsDoc, err, m[1])
			continue
		}
		types[ev.Type]++
	}
	for _, typ := range append(append([]Type{}, CRMTypes...), CampaignTypes...) {
		if types[typ] != 1 {
			t.Errorf("%s has %d examples of %s, want 1", eventsDoc, types[typ], typ)
		}
	}
	for _, r := range Reasons() {
		if !strings.Contains(string(doc), "| `"+string(r)+"` |") {
			t.Errorf("%s has no row for reason %s", eventsDoc, r)
		}
	}
}
