package yamlcheck_test

import (
	"strings"
	"testing"
	"time"

	"github.com/kpibridge/kpibridge/internal/yamlcheck"
)

type inner struct {
	MaxRows int           `yaml:"max_rows"`
	MaxWait time.Duration `yaml:"max_wait"`
	Ratio   float64       `yaml:"ratio"`
	On      bool          `yaml:"on"`
}

type file struct {
	Brokers []string          `yaml:"brokers"`
	Batch   inner             `yaml:"batch"`
	Rates   map[string]inner  `yaml:"rates"`
	Name    string            `yaml:"name"`
	Labels  map[string]string `yaml:"labels"`
}

func TestEveryProblemAtItsLine(t *testing.T) {
	src := `brokers: a:1, b:2
batch:
  max_rwos: 3
  max_wait: soon
  ratio: high
  on: maybe
rates:
  x: {max_rows: 1.5}
name: [a, b]
labels: nope
colour: red
`
	d := yamlcheck.Check("f.yml", []byte(src), &file{})
	err := d.Err()
	for _, want := range []string{
		`f.yml:1: brokers: want a list, got the text "a:1, b:2": write it as a YAML list, [a:1, b:2]`,
		`f.yml:3: batch.max_rwos: unknown key "max_rwos"; did you mean "max_rows"?`,
		`f.yml:4: batch.max_wait: want a duration such as 30s, 5m or 1h, got "soon"`,
		`f.yml:5: batch.ratio: want a number, got "high"`,
		`f.yml:6: batch.on: want true or false, got "maybe"`,
		`f.yml:8: rates.x.max_rows: want a whole number, got "1.5"`,
		`f.yml:9: name: want a text value, got a list`,
		`f.yml:10: labels: want a section of keys and values, got "nope"`,
		`f.yml:11: colour: unknown key "colour" (known here: batch, brokers, labels, name, rates)`,
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	if d.Line("batch.max_wait") != 4 || d.Line("rates.x.max_rows") != 8 || d.Line("batch.nothing") != 2 {
		t.Errorf("lines: %v", d.Lines)
	}
	if !d.Has("batch.max_rows") { // the misspelled key probably meant it
		t.Error("a misspelled key does not cover the key it meant")
	}
}

func TestValidFileHasNoProblems(t *testing.T) {
	d := yamlcheck.Check("f.yml", []byte("brokers: [a:1]\nbatch: {max_rows: 10, max_wait: 1s, ratio: 0.5, on: true}\n"), &file{})
	if err := d.Err(); err != nil {
		t.Fatal(err)
	}
	if d := yamlcheck.Check("f.yml", []byte("a: [b\n"), &file{}); d.Err() == nil || !strings.Contains(d.Err().Error(), "f.yml:1: not valid YAML") {
		t.Errorf("syntax error: %v", d.Err())
	}
}
