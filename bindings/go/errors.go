package envelope

/*
#include "envelope.h"
*/
import "C"

import (
	"errors"
	"fmt"
	"unsafe"
)

// Status is a C ABI status code.
type Status uint32

// The status codes (stable values, see envelope.h).
const (
	StatusOK                       Status = C.ENVELOPE_OK
	StatusNullArgument             Status = C.ENVELOPE_NULL_ARGUMENT
	StatusInvalidArgument          Status = C.ENVELOPE_INVALID_ARGUMENT
	StatusPanic                    Status = C.ENVELOPE_PANIC
	StatusBufferTooSmall           Status = C.ENVELOPE_BUFFER_TOO_SMALL
	StatusDecryptionFailed         Status = C.ENVELOPE_DECRYPTION_FAILED
	StatusMalformed                Status = C.ENVELOPE_MALFORMED
	StatusUnsupportedFormatVersion Status = C.ENVELOPE_UNSUPPORTED_FORMAT_VERSION
	StatusUnsupportedSuite         Status = C.ENVELOPE_UNSUPPORTED_SUITE
	StatusUnsupportedProvider      Status = C.ENVELOPE_UNSUPPORTED_PROVIDER
	StatusKeyNotOwned              Status = C.ENVELOPE_KEY_NOT_OWNED
	StatusTruncated                Status = C.ENVELOPE_TRUNCATED
	StatusKeyNotFound              Status = C.ENVELOPE_KEY_NOT_FOUND
	StatusKeyVersionNotFound       Status = C.ENVELOPE_KEY_VERSION_NOT_FOUND
	StatusKeyVersionDestroyed      Status = C.ENVELOPE_KEY_VERSION_DESTROYED
	StatusKeyVersionDisabled       Status = C.ENVELOPE_KEY_VERSION_DISABLED
	StatusKeyVersionTooOld         Status = C.ENVELOPE_KEY_VERSION_TOO_OLD
	StatusPermissionDenied         Status = C.ENVELOPE_PERMISSION_DENIED
	StatusDEKNotFound              Status = C.ENVELOPE_DEK_NOT_FOUND
	StatusUnavailable              Status = C.ENVELOPE_UNAVAILABLE
	StatusThrottled                Status = C.ENVELOPE_THROTTLED
	StatusKMSError                 Status = C.ENVELOPE_KMS_ERROR
	StatusDEKStoreError            Status = C.ENVELOPE_DEK_STORE_ERROR
	StatusInvalidKeyURI            Status = C.ENVELOPE_INVALID_KEY_URI
	StatusFeatureNotEnabled        Status = C.ENVELOPE_FEATURE_NOT_ENABLED
	StatusInvalidConfig            Status = C.ENVELOPE_INVALID_CONFIG
	StatusKeyringError             Status = C.ENVELOPE_KEYRING_ERROR
	StatusMessageTooLarge          Status = C.ENVELOPE_MESSAGE_TOO_LARGE
	StatusIndexNotFound            Status = C.ENVELOPE_INDEX_NOT_FOUND
	StatusIndexRetired             Status = C.ENVELOPE_INDEX_RETIRED
	StatusIndexMismatch            Status = C.ENVELOPE_INDEX_MISMATCH
	StatusAuditLogUnavailable      Status = C.ENVELOPE_AUDIT_LOG_UNAVAILABLE
	StatusUnknown                  Status = C.ENVELOPE_UNKNOWN_ERROR
)

// Error is a failure reported by the native library.
type Error struct {
	Status  Status
	Message string
}

func (e *Error) Error() string {
	if e.Message == "" {
		return "envelope: " + e.Status.String()
	}
	return "envelope: " + e.Message
}

// Is matches sentinel errors by status: errors.Is(err, envelope.ErrDecryptionFailed).
func (e *Error) Is(target error) bool {
	var t *Error
	return errors.As(target, &t) && t.Message == "" && t.Status == e.Status
}

// Retryable reports whether the same call may succeed later (unreachable or throttling KMS).
func (e *Error) Retryable() bool {
	return e.Status == StatusUnavailable || e.Status == StatusThrottled
}

// String is the library's static description of the status.
func (s Status) String() string {
	return C.GoString(C.envelope_status_message(C.uint32_t(s)))
}

// Sentinel errors for errors.Is.
var (
	ErrInvalidArgument          = &Error{Status: StatusInvalidArgument}
	ErrBufferTooSmall           = &Error{Status: StatusBufferTooSmall}
	ErrDecryptionFailed         = &Error{Status: StatusDecryptionFailed}
	ErrMalformed                = &Error{Status: StatusMalformed}
	ErrUnsupportedFormatVersion = &Error{Status: StatusUnsupportedFormatVersion}
	ErrUnsupportedSuite         = &Error{Status: StatusUnsupportedSuite}
	ErrUnsupportedProvider      = &Error{Status: StatusUnsupportedProvider}
	ErrKeyNotOwned              = &Error{Status: StatusKeyNotOwned}
	ErrKeyNotFound              = &Error{Status: StatusKeyNotFound}
	ErrKeyVersionNotFound       = &Error{Status: StatusKeyVersionNotFound}
	ErrKeyVersionDestroyed      = &Error{Status: StatusKeyVersionDestroyed}
	ErrKeyVersionDisabled       = &Error{Status: StatusKeyVersionDisabled}
	ErrKeyVersionTooOld         = &Error{Status: StatusKeyVersionTooOld}
	ErrPermissionDenied         = &Error{Status: StatusPermissionDenied}
	// ErrDEKNotFound: a compact ciphertext's DEK is not in the DEK store (deleted, or
	// another store) or is retired.
	ErrDEKNotFound = &Error{Status: StatusDEKNotFound}
	ErrUnavailable = &Error{Status: StatusUnavailable}
	ErrThrottled   = &Error{Status: StatusThrottled}
	ErrKMS         = &Error{Status: StatusKMSError}
	// ErrDEKStore: the DEK store failed (a missing privilege, a corrupt row); an unreachable
	// store is ErrUnavailable.
	ErrDEKStore          = &Error{Status: StatusDEKStoreError}
	ErrInvalidKeyURI     = &Error{Status: StatusInvalidKeyURI}
	ErrFeatureNotEnabled = &Error{Status: StatusFeatureNotEnabled}
	ErrInvalidConfig     = &Error{Status: StatusInvalidConfig}
	ErrKeyringError      = &Error{Status: StatusKeyringError}
	ErrMessageTooLarge   = &Error{Status: StatusMessageTooLarge}
	// ErrIndexNotFound: the blind index (or version) is not in the index key store.
	ErrIndexNotFound = &Error{Status: StatusIndexNotFound}
	// ErrIndexRetired: the blind index version is retired (or the index has no active one).
	ErrIndexRetired = &Error{Status: StatusIndexRetired}
	// ErrIndexMismatch: another normalizer or bit length than the stored index's, a custom
	// normalizer not applied, or an index key whose commitment does not match its row.
	ErrIndexMismatch = &Error{Status: StatusIndexMismatch}
	// ErrAuditLogUnavailable: the key-use log cannot record and fails closed (policy
	// "block"): the operation was refused so that no key use goes unlogged.
	ErrAuditLogUnavailable = &Error{Status: StatusAuditLogUnavailable}
	// ErrTruncated: a stream ends before its final segment (cut at a segment boundary);
	// what was read before is authentic, the rest is missing.
	ErrTruncated = &Error{Status: StatusTruncated}
	// ErrClosed is returned by calls on a closed Client.
	ErrClosed = errors.New("envelope: the client is closed")
)

// lastError builds the error of a failed call from the calling thread's last message; the
// caller has pinned the goroutine to its OS thread since before the failed call.
func lastError(st C.envelope_status) error {
	buf := make([]byte, 512)
	var n C.size_t
	C.envelope_last_error_message((*C.uint8_t)(unsafe.Pointer(&buf[0])), C.size_t(len(buf)), &n)
	msg := C.GoString((*C.char)(unsafe.Pointer(&buf[0])))
	status := Status(st)
	if st == C.ENVELOPE_NULL_ARGUMENT {
		status = StatusInvalidArgument
	}
	if msg == "" {
		msg = status.String()
	}
	return &Error{Status: status, Message: fmt.Sprintf("%s (status %d)", msg, uint32(st))}
}
