// Package tlserror says in words why a TLS handshake failed, naming the
// setting to look at, for every client of kpibridge (Kafka, ClickHouse).
package tlserror

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
)

// Explain says what went wrong with the certificate of server, or with
// speaking TLS at all; prefix is the settings' path (kafka.tls,
// clickhouse.tls). It returns "" for an error that is not about TLS.
func Explain(err error, server, prefix string) string {
	var (
		unknown  x509.UnknownAuthorityError
		hostname x509.HostnameError
		invalid  x509.CertificateInvalidError
		record   tls.RecordHeaderError
		verify   *tls.CertificateVerificationError
	)
	switch {
	case errors.As(err, &unknown):
		return fmt.Sprintf("certificate signed by unknown authority for server %s: %s.ca_file (or, without it, the system's roots) does not trust it", server, prefix)
	case errors.As(err, &hostname):
		return fmt.Sprintf("the certificate is not valid for server name %s: connect by a name it holds, or set %s.server_name", server, prefix)
	case errors.As(err, &invalid):
		return fmt.Sprintf("the certificate of server %s is invalid (%s)", server, invalid.Error())
	case errors.As(err, &verify):
		return fmt.Sprintf("the certificate of server %s does not verify", server)
	case errors.As(err, &record):
		return fmt.Sprintf("server %s does not speak TLS on this port: use its TLS port, or turn %s.enabled off", server, prefix)
	case strings.Contains(err.Error(), "remote error: tls:"):
		// TLS 1.3: the server checks a client certificate after the
		// client's handshake is done, and says so on the first request.
		return fmt.Sprintf("server %s refused the TLS connection (does it want a client certificate it trusts? %s.cert_file and key_file)", server, prefix)
	}
	return ""
}
