package main

import (
	"strings"
	"testing"
)

// customer forget removes the customer, says what it removed by table, and
// logs counts only; the customer is then unknown.
func TestCustomerForget(t *testing.T) {
	target := loadFixture(t)
	env := map[string]string{"KPIBRIDGE_CLICKHOUSE_DSN": target.DSN, "KPIBRIDGE_EMAIL_HASH_KEY": fixtureKey}
	code, out, errOut := runCLI(t, env, "customer", "forget", "Alice@Example.com", "--settle", "0s")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if !strings.Contains(out, "forgot customer crm:C1 (3 identity keys)") || !tableRow(out, "events", "14") || !tableRow(out, "identity_map", "3") {
		t.Errorf("output:\n%s", out)
	}
	if !strings.Contains(errOut, "customer forgotten") || !strings.Contains(errOut, "events=14") || strings.Contains(strings.ToLower(errOut), "alice") {
		t.Errorf("log: %s; want the counts by table and no address", errOut)
	}
	code, _, errOut = runCLI(t, env, "customer", "crm:C1")
	if code != 1 || !strings.Contains(errOut, "no such customer") {
		t.Errorf("customer crm:C1 after the erasure: exit %d, %s", code, errOut)
	}
	code, _, errOut = runCLI(t, env, "customer", "forget", "crm:C1", "--settle", "0s")
	if code != 1 || !strings.Contains(errOut, "no such customer") {
		t.Errorf("forgetting twice: exit %d, %s", code, errOut)
	}
}

// tableRow reports whether out has a line of the two cells name and value.
func tableRow(out, name, value string) bool {
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[0] == name && f[1] == value {
			return true
		}
	}
	return false
}

// An email address is never hashed with the public development key
// without --allow-dev-key, and a key from the environment has the same
// minimum length as one from a file.
func TestCustomerEmailNeedsTheKey(t *testing.T) {
	target := loadFixture(t)
	noKey := map[string]string{"KPIBRIDGE_CLICKHOUSE_DSN": target.DSN}
	shortKey := map[string]string{"KPIBRIDGE_CLICKHOUSE_DSN": target.DSN, "KPIBRIDGE_EMAIL_HASH_KEY": "short"}
	tests := []struct {
		name    string
		env     map[string]string
		args    []string
		wantErr string
	}{
		{"show with the development key", noKey, []string{"customer", "alice@example.com"}, "set KPIBRIDGE_EMAIL_HASH_KEY (at least 16 bytes) or events.email_hash_key_file"},
		{"forget with the development key", noKey, []string{"customer", "forget", "alice@example.com"}, "refusing to hash an email address with the public development key"},
		{"allowed for the demo's data", noKey, []string{"customer", "alice@example.com", "--allow-dev-key"}, "no such customer"},
		{"an id needs no key", noKey, []string{"customer", "forget", "nobody-1", "--settle", "0s"}, "no such customer"},
		{"short key from the environment", shortKey, []string{"customer", "alice@example.com"}, "KPIBRIDGE_EMAIL_HASH_KEY: key must be at least 16 bytes, got 5"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, errOut := runCLI(t, tt.env, tt.args...)
			if code != 1 || !strings.Contains(errOut, tt.wantErr) || strings.Contains(errOut, "alice@") {
				t.Errorf("exit %d, stderr %q; want 1 and %q, without the address", code, errOut, tt.wantErr)
			}
		})
	}
	// Nothing was forgotten on the way.
	code, _, errOut := runCLI(t, map[string]string{"KPIBRIDGE_CLICKHOUSE_DSN": target.DSN, "KPIBRIDGE_EMAIL_HASH_KEY": fixtureKey}, "customer", "alice@example.com")
	if code != 0 {
		t.Errorf("customer alice@example.com with the key: exit %d, %s", code, errOut)
	}
}
