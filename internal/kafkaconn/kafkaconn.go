// Package kafkaconn owns how kpibridge's Kafka clients connect: TLS and SASL
// (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512) turned into the kafka-go Dialer
// (readers, raw connections) and Transport (writers, clients) that every
// Kafka client of kpibridge uses, and errors that say which of them failed.
// Settings come from package config (kafka.tls, kafka.sasl).
package kafkaconn

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/sasl"
	"github.com/segmentio/kafka-go/sasl/plain"
	"github.com/segmentio/kafka-go/sasl/scram"

	"github.com/kpibridge/kpibridge/internal/tlserror"
)

// PasswordEnv names the environment variable with the SASL password; it
// wins over kafka.sasl.password_file.
const PasswordEnv = "KPIBRIDGE_KAFKA_SASL_PASSWORD"

// The SASL mechanisms kpibridge speaks.
const (
	Plain       = "PLAIN"
	ScramSHA256 = "SCRAM-SHA-256"
	ScramSHA512 = "SCRAM-SHA-512"
)

// Mechanisms lists the SASL mechanisms kpibridge speaks.
func Mechanisms() []string { return []string{Plain, ScramSHA256, ScramSHA512} }

// ErrRefused marks a connection that reached a broker but failed its TLS
// handshake or SASL authentication: a setting to fix, not an outage to wait out.
var ErrRefused = errors.New("Kafka refused the connection")

// Options are resolved connection settings: certificates loaded, password in hand.
type Options struct {
	// TLS, when set, encrypts every connection and verifies the brokers with it.
	TLS *tls.Config
	// Mechanism is the SASL mechanism, one of Mechanisms(); empty for none.
	Mechanism string
	Username  string
	Password  string
}

// Security is how every Kafka client of one process connects. A nil
// *Security connects in plain text without authentication.
type Security struct {
	tls       *tls.Config
	mech      sasl.Mechanism
	mechanism string
	user      string
	transport *kafka.Transport
}

// New checks o and prepares the SASL mechanism.
func New(o Options) (*Security, error) {
	s := &Security{tls: o.TLS, mechanism: o.Mechanism, user: o.Username}
	var err error
	switch o.Mechanism {
	case "":
	case Plain:
		s.mech = plain.Mechanism{Username: o.Username, Password: o.Password}
	case ScramSHA256:
		s.mech, err = scram.Mechanism(scram.SHA256, o.Username, o.Password)
	case ScramSHA512:
		s.mech, err = scram.Mechanism(scram.SHA512, o.Username, o.Password)
	default:
		return nil, fmt.Errorf("kafka.sasl.mechanism: must be one of %s, got %q", strings.Join(Mechanisms(), ", "), o.Mechanism)
	}
	if err != nil {
		// The SCRAM client normalises the user name and password
		// (SASLprep); its error does not carry the password.
		return nil, fmt.Errorf("kafka.sasl: %s for user %q: %w", o.Mechanism, o.Username, err)
	}
	if s.mech != nil && (o.Username == "" || o.Password == "") {
		return nil, fmt.Errorf("kafka.sasl: mechanism %s needs a username and a password", o.Mechanism)
	}
	s.transport = &kafka.Transport{Dial: s.dial, DialTimeout: 10 * time.Second, SASL: s.mech}
	return s, nil
}

// Dialer is for kafka.Reader (ReaderConfig.Dialer) and raw connections.
func (s *Security) Dialer() *kafka.Dialer {
	d := &kafka.Dialer{Timeout: 10 * time.Second, DualStack: true}
	if s != nil {
		d.SASLMechanism = s.mech
		if s.tls != nil {
			d.DialFunc = s.dial
		}
	}
	return d
}

// Transport is for kafka.Writer and kafka.Client; one per Security, so
// every writer and client of the process shares its connections.
func (s *Security) Transport() kafka.RoundTripper {
	if s == nil {
		return kafka.DefaultTransport
	}
	return s.transport
}

// dial opens a TCP connection and, with TLS, completes the handshake here,
// so a certificate problem comes back saying what it is.
func (s *Security) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	conn, err := (&net.Dialer{Timeout: 10 * time.Second}).DialContext(ctx, network, addr)
	if err != nil || s.tls == nil {
		return conn, err
	}
	cfg := s.tls
	if cfg.ServerName == "" {
		cfg = cfg.Clone()
		cfg.ServerName, _, _ = net.SplitHostPort(addr)
	}
	tc := tls.Client(conn, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		conn.Close()
		return nil, s.tlsError(addr, cfg.ServerName, err)
	}
	return tc, nil
}

// explained is an error that says what failed and which setting to look
// at; a refusal is also ErrRefused.
type explained struct {
	msg     string
	err     error
	refused bool
}

func (e *explained) Error() string { return e.msg + ": " + e.err.Error() }
func (e *explained) Unwrap() []error {
	if e.refused {
		return []error{ErrRefused, e.err}
	}
	return []error{e.err}
}

func refused(msg string, err error) error { return &explained{msg: msg, err: err, refused: true} }

func (s *Security) tlsError(addr, server string, err error) error {
	var timeout net.Error
	if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &timeout) && timeout.Timeout()) {
		// A plain-text broker reads the TLS greeting as the start of a
		// request and waits for the rest of it.
		return &explained{msg: fmt.Sprintf("Kafka broker %s: TLS: no answer to the handshake (does it speak TLS on this port? if not, turn kafka.tls.enabled off)", addr), err: err}
	}
	what := tlserror.Explain(err, server, "kafka.tls")
	if what == "" {
		what = "handshake failed"
	}
	return refused(fmt.Sprintf("Kafka broker %s: TLS: %s", addr, what), err)
}

// Explain turns an error of a connection to broker addr into one that says
// what failed and which setting to look at; other errors are returned as they are.
func (s *Security) Explain(addr string, err error) error {
	var e *explained
	if errors.As(err, &e) {
		return e // already says it all, without the wrapping of kafka-go's layers
	}
	if err == nil {
		return nil
	}
	mechanism, user, secure := "", "", false
	if s != nil {
		mechanism, user, secure = s.mechanism, s.user, s.tls != nil
	}
	switch {
	case mechanism != "" && errors.Is(err, kafka.SASLAuthenticationFailed):
		return refused(fmt.Sprintf("Kafka broker %s: authentication failed for user %q with mechanism %s: check kafka.sasl.username and the password (%s or kafka.sasl.password_file)",
			addr, user, mechanism, PasswordEnv), err)
	case mechanism != "" && errors.Is(err, kafka.UnsupportedSASLMechanism):
		return refused(fmt.Sprintf("Kafka broker %s: does not offer SASL mechanism %s (kafka.sasl.mechanism)", addr, mechanism), err)
	case secure && tlserror.Explain(err, addr, "kafka.tls") != "":
		// TLS 1.3: a broker checks the client certificate after the
		// client's handshake is done, and says so on the first request.
		return refused(fmt.Sprintf("Kafka broker %s: TLS: %s", addr, tlserror.Explain(err, addr, "kafka.tls")), err)
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET):
		var missing []string
		if mechanism == "" {
			missing = append(missing, "SASL (kafka.sasl)")
		}
		if !secure {
			missing = append(missing, "TLS (kafka.tls)")
		}
		if len(missing) > 0 {
			return fmt.Errorf("Kafka broker %s closed the connection; if it requires %s, configure it: %w", addr, strings.Join(missing, " or "), err)
		}
	}
	return err
}

// Check connects to the brokers, in order, until one accepts kpibridge:
// TLS handshake, SASL authentication and a metadata request, which a
// broker answers only to an authenticated client. It returns nil then, or
// every broker's error, explained.
func (s *Security) Check(ctx context.Context, brokers []string) error {
	d := s.Dialer()
	d.Timeout = 3 * time.Second
	var errs []error
	for _, b := range brokers {
		conn, err := d.DialContext(ctx, "tcp", b)
		if err == nil {
			_ = conn.SetDeadline(time.Now().Add(3 * time.Second))
			_, err = conn.Brokers()
			conn.Close()
		}
		if err == nil {
			return nil
		}
		errs = append(errs, s.Explain(b, err))
	}
	return errors.Join(errs...)
}

// Describe says how connections are secured, for a log line: never the password.
func (s *Security) Describe() []any {
	if s == nil {
		return []any{"kafka_tls", false}
	}
	out := []any{"kafka_tls", s.tls != nil}
	if s.mechanism != "" {
		out = append(out, "kafka_sasl", s.mechanism, "kafka_user", s.user)
	}
	return out
}

// Known reports whether m is a SASL mechanism kpibridge speaks.
func Known(m string) bool { return slices.Contains(Mechanisms(), m) }
