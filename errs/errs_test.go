package errs

import (
	"errors"
	"fmt"
	"io"
	"testing"
)

func TestKindOfFindsTheDomainErrorInAChain(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want Kind
	}{
		{"a plain error is internal", io.EOF, Internal},
		{"a forbidden error", Forbiddenf("no"), Forbidden},
		{"wrapped with the operation", fmt.Errorf("send: %w", NotFoundf("room %s", "!a")), NotFound},
		{"nil is internal", nil, Internal},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := KindOf(tc.err); got != tc.want {
				t.Fatalf("KindOf = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestAnErrorKeepsItsCause(t *testing.T) {
	err := Unavailablef("join through %s: %w", "abc", io.ErrUnexpectedEOF)
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatal("cause lost")
	}
	if err.Error() != "join through abc: unexpected EOF" {
		t.Fatalf("message %q", err.Error())
	}
}
