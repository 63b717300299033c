package main

import (
	"context"
	"errors"
)

func (m *Main) listen(ctx context.Context, args []string) error {
	return errors.New("listen: not yet available")
}

func (m *Main) bench(ctx context.Context, args []string) error {
	return errors.New("bench: not yet available")
}
