package generate

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// TopicPlaceholder in a FileSink path is replaced by the topic name, so
// that each topic gets a file of its own.
const TopicPlaceholder = "{topic}"

// FileSink writes NDJSON: one message value per line, keys left out. A path
// with TopicPlaceholder writes one file per topic, ready to replay with
// `kcat -P -b host:port -t crm.events -l crm.events.ndjson`; "-" writes to
// the given standard output. Files are created (with their directories) on
// the first record of their topic and truncated if they exist.
type FileSink struct {
	path   string
	stdout io.Writer
	files  map[string]*bufio.Writer
	order  []string // topics in order of creation, for Close
	closer map[string]io.Closer
}

// NewFileSink returns a sink writing to path; stdout is used for "-".
func NewFileSink(path string, stdout io.Writer) (*FileSink, error) {
	if path == "" {
		return nil, errors.New("--out: empty path")
	}
	return &FileSink{path: path, stdout: stdout, files: map[string]*bufio.Writer{}, closer: map[string]io.Closer{}}, nil
}

// Write appends each record's value and a newline to its topic's file.
func (s *FileSink) Write(_ context.Context, recs []Record) error {
	for i := range recs {
		w, err := s.writer(recs[i].Topic)
		if err != nil {
			return err
		}
		_, _ = w.Write(recs[i].Value) // bufio errors are sticky: WriteByte reports them
		if err := w.WriteByte('\n'); err != nil {
			return fmt.Errorf("write %s: %w", s.name(recs[i].Topic), err)
		}
	}
	return nil
}

func (s *FileSink) name(topic string) string {
	return strings.ReplaceAll(s.path, TopicPlaceholder, topic)
}

func (s *FileSink) writer(topic string) (*bufio.Writer, error) {
	name := s.name(topic)
	if w, ok := s.files[name]; ok {
		return w, nil
	}
	var out io.Writer
	if name == "-" {
		out = s.stdout
	} else {
		if dir := filepath.Dir(name); dir != "." {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return nil, fmt.Errorf("create directory for %s: %w", name, err)
			}
		}
		f, err := os.Create(name)
		if err != nil {
			return nil, err
		}
		s.closer[name] = f
		out = f
	}
	w := bufio.NewWriterSize(out, 1<<20)
	s.files[name] = w
	s.order = append(s.order, name)
	return w, nil
}

// Close flushes every file and closes those it created.
func (s *FileSink) Close() error {
	var errs []error
	for _, name := range s.order {
		if err := s.files[name].Flush(); err != nil {
			errs = append(errs, fmt.Errorf("write %s: %w", name, err))
		}
		if c, ok := s.closer[name]; ok {
			if err := c.Close(); err != nil {
				errs = append(errs, fmt.Errorf("close %s: %w", name, err))
			}
		}
	}
	return errors.Join(errs...)
}
