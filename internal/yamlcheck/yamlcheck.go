// Package yamlcheck reads a YAML file the way a person wrote it: it
// decodes it into yaml.Node once, walks the nodes against the Go type the
// file fills (its yaml tags), and reports every problem at once, each with
// the line and path of the offending key and what was expected instead —
// never a Go type name or the YAML decoder's own wording. It also records
// the line of every key path, so that later checks of values (Validate)
// can name lines too. Configuration and KPI catalog share it.
package yamlcheck

import (
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Problem is one thing wrong in a file.
type Problem struct {
	Line int
	Path string // dotted key path, list items as [i]: kpis[2].measure.field
	Msg  string
	// Suggest is the key path a misspelled key probably meant: checks of
	// values leave it alone, since it is missing only by the typo.
	Suggest string
}

// Doc is a parsed file: its nodes, and the line of each key path.
type Doc struct {
	File     string
	Root     *yaml.Node
	Lines    map[string]int
	Problems []Problem
}

// Check parses b and walks it against the type of v (a pointer to the
// struct the file fills). A syntax error is the only problem returned then.
func Check(file string, b []byte, v any) *Doc {
	d := &Doc{File: file, Lines: map[string]int{}}
	var root yaml.Node
	if err := yaml.Unmarshal(b, &root); err != nil {
		line := 0
		if m := lineRe.FindStringSubmatch(err.Error()); m != nil {
			line, _ = strconv.Atoi(m[1])
		}
		d.Problems = append(d.Problems, Problem{Line: line, Msg: "not valid YAML: " + clean(err.Error())})
		return d
	}
	if len(root.Content) == 0 {
		return d // an empty file: every default
	}
	d.Root = root.Content[0]
	d.walk(d.Root, reflect.TypeOf(v).Elem(), "")
	return d
}

var (
	lineRe  = regexp.MustCompile(`line (\d+)`)
	linePfx = regexp.MustCompile(`^(yaml: )?(line \d+: )?`)
)

func clean(s string) string { return linePfx.ReplaceAllString(s, "") }

// Err joins the problems, sorted by line, as "file:line: path: message".
func (d *Doc) Err() error {
	if len(d.Problems) == 0 {
		return nil
	}
	sort.SliceStable(d.Problems, func(i, j int) bool { return d.Problems[i].Line < d.Problems[j].Line })
	errs := make([]error, len(d.Problems))
	for i, p := range d.Problems {
		errs[i] = errors.New(d.Format(p.Line, p.Path, p.Msg))
	}
	return errors.Join(errs...)
}

// Format writes one problem: file:line: path: message.
func (d *Doc) Format(line int, path, msg string) string {
	where := d.File
	if line > 0 {
		where += ":" + strconv.Itoa(line)
	}
	if path == "" {
		return where + ": " + msg
	}
	return where + ": " + path + ": " + msg
}

// Line is the line of path, or of its nearest ancestor the file has
// (a value left at its default has no line of its own); 0 if none.
func (d *Doc) Line(path string) int {
	for p := path; p != ""; {
		if l, ok := d.Lines[p]; ok {
			return l
		}
		i := strings.LastIndexAny(p, ".[")
		if i < 0 {
			break
		}
		p = p[:i]
	}
	return 0
}

// Has reports whether a problem was found at path or below it, or a
// misspelled key probably meant it.
func (d *Doc) Has(path string) bool {
	under := func(p string) bool {
		return p == path || strings.HasPrefix(p, path+".") || strings.HasPrefix(p, path+"[")
	}
	for _, p := range d.Problems {
		if under(p.Path) || (p.Suggest != "" && under(p.Suggest)) {
			return true
		}
	}
	return false
}

func (d *Doc) bad(n *yaml.Node, path, format string, args ...any) {
	d.Problems = append(d.Problems, Problem{Line: n.Line, Path: path, Msg: fmt.Sprintf(format, args...)})
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

var (
	unmarshaler = reflect.TypeOf((*yaml.Unmarshaler)(nil)).Elem()
	durationT   = reflect.TypeOf(time.Duration(0))
)

// walk checks n against t at path.
func (d *Doc) walk(n *yaml.Node, t reflect.Type, path string) {
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if reflect.PointerTo(t).Implements(unmarshaler) {
		// The type checks itself; keep its message, not its decoder prefix.
		if err := n.Decode(reflect.New(t).Interface()); err != nil {
			var te *yaml.TypeError
			msg := err.Error()
			if errors.As(err, &te) && len(te.Errors) > 0 {
				msg = te.Errors[0]
			}
			d.bad(n, path, "%s", clean(msg))
		}
		return
	}
	if t == durationT {
		if _, err := time.ParseDuration(n.Value); n.Kind != yaml.ScalarNode || err != nil {
			d.bad(n, path, "want a duration such as 30s, 5m or 1h, got %s", shown(n))
		}
		return
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			d.bad(n, path, "want a section of keys (%s), got %s", strings.Join(fieldNames(t), ", "), shown(n))
			return
		}
		fields := fieldsOf(t)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			p := join(path, k.Value)
			d.Lines[p] = k.Line
			f, ok := fields[k.Value]
			if !ok {
				msg, near := unknownKey(k.Value, fieldNames(t))
				pr := Problem{Line: k.Line, Path: p, Msg: msg}
				if near != "" {
					pr.Suggest = join(path, near)
				}
				d.Problems = append(d.Problems, pr)
				continue
			}
			d.walk(v, f, p)
		}
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			d.bad(n, path, "want a section of keys and values, got %s", shown(n))
			return
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			p := join(path, k.Value)
			d.Lines[p] = k.Line
			d.walk(v, t.Elem(), p)
		}
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			if n.Kind == yaml.ScalarNode && strings.Contains(n.Value, ",") {
				d.bad(n, path, "want a list, got the text %q: write it as a YAML list, [%s]", n.Value, strings.Join(splitList(n.Value), ", "))
			} else {
				d.bad(n, path, "want a list such as [%s], got %s", n.Value, shown(n))
			}
			return
		}
		for i, item := range n.Content {
			p := fmt.Sprintf("%s[%d]", path, i)
			d.Lines[p] = item.Line
			d.walk(item, t.Elem(), p)
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		if _, err := strconv.ParseInt(n.Value, 0, 64); n.Kind != yaml.ScalarNode || err != nil {
			d.bad(n, path, "want a whole number, got %s", shown(n))
		}
	case reflect.Float32, reflect.Float64:
		if _, err := strconv.ParseFloat(n.Value, 64); n.Kind != yaml.ScalarNode || err != nil {
			d.bad(n, path, "want a number, got %s", shown(n))
		}
	case reflect.Bool:
		var b bool
		if n.Kind != yaml.ScalarNode || n.Decode(&b) != nil {
			d.bad(n, path, "want true or false, got %s", shown(n))
		}
	case reflect.String:
		if n.Kind != yaml.ScalarNode {
			d.bad(n, path, "want a text value, got %s", shown(n))
		}
	}
}

// shown describes a node for a message: the text as written, or its shape.
func shown(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a section of keys"
	case yaml.SequenceNode:
		return "a list"
	}
	return strconv.Quote(n.Value)
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// fieldsOf maps the yaml keys of a struct to their field types.
func fieldsOf(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("yaml")
		name, _, _ := strings.Cut(tag, ",")
		if !f.IsExported() || name == "-" {
			continue
		}
		if strings.Contains(tag, ",inline") {
			for k, v := range fieldsOf(f.Type) {
				out[k] = v
			}
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		out[name] = f.Type
	}
	return out
}

func fieldNames(t reflect.Type) []string {
	var names []string
	for k := range fieldsOf(t) {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}

// unknownKey says a key is not known, with the nearest known one (near).
func unknownKey(key string, known []string) (msg, near string) {
	best, dist := "", 1<<30
	for _, k := range known {
		if d := distance(key, k); d < dist {
			best, dist = k, d
		}
	}
	if best != "" && dist <= max(2, len(key)/3) {
		return fmt.Sprintf("unknown key %q; did you mean %q?", key, best), best
	}
	return fmt.Sprintf("unknown key %q (known here: %s)", key, strings.Join(known, ", ")), ""
}

// distance is the edit distance between a and b, a swap of neighbours counting once.
func distance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev2 := make([]int, len(rb)+1)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(rb)]
}
