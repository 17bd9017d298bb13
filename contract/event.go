package contract

import (
	"encoding/json"
	"strconv"
	"time"
)

// SpecVersion is the CloudEvents specification version this envelope follows.
const SpecVersion = "1.0"

// Event is a CloudEvents 1.0 compatible envelope (JSON event format) with a
// per-subject Sequence extension used by the ordering package.
// (Source, ID) is the event's identity for deduplication.
type Event struct {
	ID              string          `json:"id"`
	Source          string          `json:"source"`
	SpecVersion     string          `json:"specversion"`
	Type            string          `json:"type"`
	Time            time.Time       `json:"time,omitzero"`
	Subject         string          `json:"subject,omitempty"`
	DataContentType string          `json:"datacontenttype,omitempty"`
	DataSchema      string          `json:"dataschema,omitempty"`
	Sequence        uint64          `json:"sequence,omitempty"`
	CorrelationID   string          `json:"correlationid,omitempty"`
	Data            json.RawMessage `json:"data,omitempty"`
}

// DedupKey returns the event's deduplication identity, unambiguous for any
// bytes in Source and ID.
func (e *Event) DedupKey() string {
	return strconv.Quote(e.Source) + "/" + strconv.Quote(e.ID)
}
