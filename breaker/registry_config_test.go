package breaker_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/sadpath/sadpath/breaker"
	"github.com/sadpath/sadpath/contract"
)

// TestRegistryTemplateErrorsNameTheRegistryField: a bad template is the
// caller's RegistryConfig.Breaker; the error named "Config.Window", a
// field of a Config the caller never built, as limit names
// KeyedConfig.Limiter.Rate for its keyed limiter's template.
func TestRegistryTemplateErrorsNameTheRegistryField(t *testing.T) {
	for _, tc := range []struct {
		cfg   breaker.Config
		field string
	}{
		{breaker.Config{Window: -1}, "RegistryConfig.Breaker.Window"},
		{breaker.Config{Buckets: 1001}, "RegistryConfig.Breaker.Buckets"},
		{breaker.Config{FailureRatio: 3}, "RegistryConfig.Breaker.FailureRatio"},
		{breaker.Config{OpenTimeout: 2 * time.Second, MaxOpenTimeout: time.Second}, "RegistryConfig.Breaker.MaxOpenTimeout"},
		{breaker.Config{Jitter: -0.5}, "RegistryConfig.Breaker.Jitter"},
	} {
		_, err := breaker.NewRegistry(breaker.RegistryConfig{Breaker: tc.cfg})
		ce := contract.As(err)
		if !errors.Is(err, contract.ErrInvalid) || ce.Code != breaker.CodeConfigInvalid ||
			len(ce.Fields) != 1 || ce.Fields[0].Name != tc.field || !strings.HasPrefix(ce.Detail, tc.field+": ") {
			t.Errorf("NewRegistry(%+v) = %v (fields %v), want an error naming %s", tc.cfg, err, ce.Fields, tc.field)
		}
	}
	// New itself still names its own Config.
	_, err := breaker.New(breaker.Config{Name: "x", Window: -1})
	if ce := contract.As(err); len(ce.Fields) != 1 || ce.Fields[0].Name != "Config.Window" {
		t.Errorf("New: %v, want an error naming Config.Window", err)
	}
}
