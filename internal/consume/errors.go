package consume

import (
	"errors"
	"time"
)

// permanentError marks an error that retrying cannot fix.
type permanentError struct {
	err   error
	class string
}

func (e *permanentError) Error() string { return e.class + ": " + e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// Permanent marks err as permanent: the delivery is dead-lettered at once
// (class ClassPermanent) instead of retried. Permanent(nil) is nil.
func Permanent(err error) error { return PermanentClass(ClassPermanent, err) }

// PermanentClass is Permanent with a class of the caller's ("malformed_json")
// that the dead letter carries in Dlq-Error-Class.
func PermanentClass(class string, err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err: err, class: class}
}

// PermanentClassOf returns the class err was marked with, if permanent.
func PermanentClassOf(err error) (string, bool) {
	var p *permanentError
	if errors.As(err, &p) {
		return p.class, true
	}
	return "", false
}

// IsPermanent reports whether err, or an error it wraps, was marked Permanent.
func IsPermanent(err error) bool {
	_, ok := PermanentClassOf(err)
	return ok
}

// retryAfterError carries the wait a downstream system asked for.
type retryAfterError struct {
	err   error
	after time.Duration
}

func (e *retryAfterError) Error() string { return e.err.Error() }
func (e *retryAfterError) Unwrap() error { return e.err }

// RetryAfter marks err as transient with a hint: retry no sooner than after
// (an HTTP Retry-After, say). The hint replaces the backoff for that retry,
// bounded by Backoff.MaxRetryAfter. RetryAfter(nil, d) is nil.
func RetryAfter(err error, after time.Duration) error {
	if err == nil {
		return nil
	}
	return &retryAfterError{err: err, after: after}
}

// RetryAfterHint returns the hint carried by err, if any.
func RetryAfterHint(err error) (time.Duration, bool) {
	var r *retryAfterError
	if errors.As(err, &r) && r.after > 0 {
		return r.after, true
	}
	return 0, false
}
