package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/alecthomas/kingpin/v2"
)

// registerHealthcheck adds `kpibridge healthcheck`: the container image has
// no shell or curl, so compose healthchecks call the binary itself.
func registerHealthcheck(k *kingpin.Application, a *app) []registered {
	cmd := k.Command("healthcheck", "Exit 0 when a kpibridge endpoint answers 200 (for container healthchecks), else 1 with the reason.")
	url := cmd.Flag("url", "Endpoint to check.").Default("http://127.0.0.1:10464/-/ready").String()
	timeout := cmd.Flag("timeout", "How long to wait for the answer.").Default("4s").Duration()
	return []registered{{cmd.FullCommand(), func(ctx context.Context) error {
		ctx, cancel := context.WithTimeout(ctx, *timeout)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, *url, nil)
		if err != nil {
			return fmt.Errorf("--url: %w", err)
		}
		start := time.Now()
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			return fmt.Errorf("%s does not answer: %w", *url, err)
		}
		defer res.Body.Close()
		body, _ := io.ReadAll(io.LimitReader(res.Body, 4096))
		if res.StatusCode != http.StatusOK {
			return fmt.Errorf("%s answered %s: %s", *url, res.Status, strings.TrimSpace(string(body)))
		}
		fmt.Fprintf(a.stdout, "%s: %s (%s)\n", *url, strings.TrimSpace(string(body)), time.Since(start).Round(time.Millisecond))
		return nil
	}}}
}
