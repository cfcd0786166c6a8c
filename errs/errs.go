// Package errs holds the domain errors that parley's engine and client
// API return: what went wrong (not found, forbidden, bad input, a peer
// out of reach), never how a protocol spells it. The client API's HTTP
// layer maps each kind to a Matrix errcode and status in one place
// (webui's errors.go). It imports nothing of parley.
package errs

import (
	"errors"
	"fmt"
)

// Kind is what went wrong.
type Kind int

const (
	// Internal is a failure of this node (I/O, a bug); its message is
	// not shown to clients.
	Internal Kind = iota
	// NotFound: the room, event, user or link is unknown here.
	NotFound
	// Forbidden: the caller may not do this (auth rules, membership,
	// ownership).
	Forbidden
	// Invalid: the request is malformed or a parameter is out of range.
	Invalid
	// Unavailable: another node was needed and could not be reached or
	// refused.
	Unavailable
	// TooLarge: the request or the event it makes is over a size limit.
	TooLarge
)

func (k Kind) String() string {
	switch k {
	case NotFound:
		return "not found"
	case Forbidden:
		return "forbidden"
	case Invalid:
		return "invalid"
	case Unavailable:
		return "unavailable"
	case TooLarge:
		return "too large"
	}
	return "internal"
}

// Error is a domain error: a kind and a message for the user.
type Error struct {
	Kind    Kind
	Message string
	// Err is the cause, if any (kept for errors.Is and logs).
	Err error
}

func (e *Error) Error() string { return e.Message }

func (e *Error) Unwrap() error { return e.Err }

func newf(k Kind, format string, args ...any) *Error {
	err := fmt.Errorf(format, args...)
	return &Error{Kind: k, Message: err.Error(), Err: errors.Unwrap(err)}
}

// NotFoundf is a NotFound error.
func NotFoundf(format string, args ...any) *Error { return newf(NotFound, format, args...) }

// Forbiddenf is a Forbidden error.
func Forbiddenf(format string, args ...any) *Error { return newf(Forbidden, format, args...) }

// Invalidf is an Invalid error.
func Invalidf(format string, args ...any) *Error { return newf(Invalid, format, args...) }

// Unavailablef is an Unavailable error.
func Unavailablef(format string, args ...any) *Error { return newf(Unavailable, format, args...) }

// TooLargef is a TooLarge error.
func TooLargef(format string, args ...any) *Error { return newf(TooLarge, format, args...) }

// KindOf is the kind of err: that of the first *Error in its chain, or
// Internal.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return Internal
}
