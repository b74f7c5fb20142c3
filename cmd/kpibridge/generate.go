package main

import (
	"context"
	"errors"

	"github.com/alecthomas/kingpin/v2"
)

// registerGenerate is a placeholder until the generator lands.
func registerGenerate(k *kingpin.Application, a *app) (string, action) {
	cmd := k.Command("generate", "Produce a realistic, seeded stream of contract v1 events.")
	return cmd.FullCommand(), func(ctx context.Context) error { return errors.New("not implemented yet") }
}
