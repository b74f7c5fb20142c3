package store_test

import (
	"strings"
	"testing"

	"github.com/kpibridge/kpibridge/store"
)

// A password in the DSN, as user info or as ?password=, never reaches a
// log line or an error.
func TestRedactedHidesPasswords(t *testing.T) {
	for _, tt := range []struct{ dsn, want string }{
		{"clickhouse://u:s3cret@h:9000/db", "clickhouse://u:xxxxx@h:9000/db"},
		{"clickhouse://h:9440/db?secure=true&username=u&password=s3cret", "clickhouse://h:9440/db?password=xxxxx&secure=true&username=u"},
		{"clickhouse://h:9000/db", "clickhouse://h:9000/db"},
	} {
		target, err := store.ParseDSN(tt.dsn)
		if err != nil {
			t.Fatal(err)
		}
		target = target.WithAuth("other", "from-env")
		if got := target.Redacted(); got != tt.want || strings.Contains(got, "s3cret") || strings.Contains(got, "from-env") {
			t.Errorf("Redacted(%s) = %s, want %s", tt.dsn, got, tt.want)
		}
	}
}
