package kafkaconn_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/kpibridge/kpibridge/broker"
	"github.com/kpibridge/kpibridge/internal/kafkaconn"
	"github.com/kpibridge/kpibridge/internal/testenv"
)

const (
	user     = "kpi"
	password = "correct-horse-battery-staple"
	wrongPw  = "wrong-password-never-shown"
)

// secureBroker starts the embedded broker with TLS (client certificates
// required) and the user on every SASL mechanism.
func secureBroker(t *testing.T, ca *testenv.CA) string {
	t.Helper()
	certFile, keyFile := ca.Issue(t, "broker", "127.0.0.1", "localhost")
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	var users []broker.User
	for _, m := range kafkaconn.Mechanisms() {
		users = append(users, broker.User{Mechanism: m, Name: user, Password: password})
	}
	b, err := broker.Start(broker.Config{Listen: "127.0.0.1:0", Partitions: 1, Users: users, TLS: &tls.Config{
		Certificates: []tls.Certificate{cert}, ClientCAs: pool(t, ca.File), ClientAuth: tls.RequireAndVerifyClientCert,
	}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return b.Addr()
}

func pool(t *testing.T, file string) *x509.CertPool {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	p := x509.NewCertPool()
	if !p.AppendCertsFromPEM(b) {
		t.Fatal("no certificate in " + file)
	}
	return p
}

// clientTLS trusts ca and presents a client certificate it signed.
func clientTLS(t *testing.T, ca *testenv.CA) *tls.Config {
	t.Helper()
	certFile, keyFile := ca.Issue(t, "client", "kpibridge")
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{RootCAs: pool(t, ca.File), Certificates: []tls.Certificate{cert}}
}

func newSecurity(t *testing.T, o kafkaconn.Options) *kafkaconn.Security {
	t.Helper()
	s, err := kafkaconn.New(o)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// Every mechanism over TLS with a client certificate: the Transport
// produces (kafka.Writer) and the Dialer consumes (kafka.Reader) through it.
func TestEveryMechanismProducesAndConsumes(t *testing.T) {
	ca := testenv.NewCA(t, "kafka-ca")
	addr := secureBroker(t, ca)
	for _, mech := range kafkaconn.Mechanisms() {
		t.Run(mech, func(t *testing.T) {
			sec := newSecurity(t, kafkaconn.Options{TLS: clientTLS(t, ca), Mechanism: mech, Username: user, Password: password})
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := sec.Check(ctx, []string{addr}); err != nil {
				t.Fatalf("Check: %v", err)
			}
			topic := "secured." + strings.ToLower(mech)
			w := &kafka.Writer{Addr: kafka.TCP(addr), Transport: sec.Transport(), AllowAutoTopicCreation: true, RequiredAcks: kafka.RequireAll, BatchTimeout: time.Millisecond}
			defer w.Close()
			var err error
			for range 50 { // the topic is created by the first write
				if err = w.WriteMessages(ctx, kafka.Message{Topic: topic, Value: []byte("hello " + mech)}); err == nil {
					break
				}
				time.Sleep(100 * time.Millisecond)
			}
			if err != nil {
				t.Fatalf("produce: %v", err)
			}
			r := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{addr}, Dialer: sec.Dialer(), Topic: topic, Partition: 0, MaxWait: 100 * time.Millisecond})
			defer r.Close()
			m, err := r.ReadMessage(ctx)
			if err != nil {
				t.Fatalf("consume: %v", err)
			}
			if string(m.Value) != "hello "+mech {
				t.Errorf("read %q, want %q", m.Value, "hello "+mech)
			}
		})
	}
}

// Each refusal comes back as ErrRefused with one sentence that names what
// failed — and never the password.
func TestRefusalsSayWhatFailed(t *testing.T) {
	ca := testenv.NewCA(t, "kafka-ca")
	secure := secureBroker(t, ca)
	plain := testenv.Broker(t, 1)
	other := testenv.NewCA(t, "someone-else")
	good := clientTLS(t, ca)
	noCert := &tls.Config{RootCAs: good.RootCAs}
	wrongName := good.Clone()
	wrongName.ServerName = "kafka.example.com"

	tests := []struct {
		name    string
		addr    string
		opts    kafkaconn.Options
		refused bool
		want    string
	}{
		{"wrong password PLAIN", secure, kafkaconn.Options{TLS: good, Mechanism: kafkaconn.Plain, Username: user, Password: wrongPw}, true,
			`Kafka broker ` + secure + `: authentication failed for user "kpi" with mechanism PLAIN`},
		{"wrong password SCRAM-SHA-256", secure, kafkaconn.Options{TLS: good, Mechanism: kafkaconn.ScramSHA256, Username: user, Password: wrongPw}, true,
			`authentication failed for user "kpi" with mechanism SCRAM-SHA-256`},
		{"wrong password SCRAM-SHA-512", secure, kafkaconn.Options{TLS: good, Mechanism: kafkaconn.ScramSHA512, Username: user, Password: wrongPw}, true,
			`authentication failed for user "kpi" with mechanism SCRAM-SHA-512`},
		{"unknown user", secure, kafkaconn.Options{TLS: good, Mechanism: kafkaconn.ScramSHA512, Username: "nobody", Password: password}, true,
			`authentication failed for user "nobody" with mechanism SCRAM-SHA-512`},
		{"CA that does not trust the broker", secure, kafkaconn.Options{TLS: &tls.Config{RootCAs: pool(t, other.File)}, Mechanism: kafkaconn.ScramSHA512, Username: user, Password: password}, true,
			"TLS: certificate signed by unknown authority for server 127.0.0.1: kafka.tls.ca_file"},
		{"server name not in the certificate", secure, kafkaconn.Options{TLS: wrongName, Mechanism: kafkaconn.ScramSHA512, Username: user, Password: password}, true,
			"not valid for server name kafka.example.com"},
		{"no client certificate", secure, kafkaconn.Options{TLS: noCert, Mechanism: kafkaconn.ScramSHA512, Username: user, Password: password}, true,
			"kafka.tls.cert_file and key_file"},
		{"TLS to a plain-text broker", plain, kafkaconn.Options{TLS: good}, false,
			"TLS: no answer to the handshake (does it speak TLS on this port?"},
		{"no SASL to a broker that requires it", secure, kafkaconn.Options{TLS: good}, false,
			"closed the connection; if it requires SASL (kafka.sasl), configure it"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sec := newSecurity(t, tt.opts)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			err := sec.Check(ctx, []string{tt.addr})
			if err == nil {
				t.Fatal("Check passed, want a refusal")
			}
			t.Log(err)
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error\n%v\ndoes not say\n%s", err, tt.want)
			}
			if got := errors.Is(err, kafkaconn.ErrRefused); got != tt.refused {
				t.Errorf("errors.Is(err, ErrRefused) = %v, want %v", got, tt.refused)
			}
			if strings.Contains(err.Error(), wrongPw) || strings.Contains(err.Error(), password) {
				t.Errorf("error shows the password: %v", err)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error spans lines: %q", err)
			}
		})
	}
}

func TestNewRefusesIncompleteSettings(t *testing.T) {
	for _, tt := range []struct {
		opts kafkaconn.Options
		want string
	}{
		{kafkaconn.Options{Mechanism: "GSSAPI", Username: user, Password: password}, `kafka.sasl.mechanism: must be one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, got "GSSAPI"`},
		{kafkaconn.Options{Mechanism: kafkaconn.ScramSHA512, Username: user}, "kafka.sasl: mechanism SCRAM-SHA-512 needs a username and a password"},
		{kafkaconn.Options{Mechanism: kafkaconn.Plain, Password: password}, "kafka.sasl: mechanism PLAIN needs a username and a password"},
	} {
		_, err := kafkaconn.New(tt.opts)
		if err == nil || err.Error() != tt.want {
			t.Errorf("New(%s) = %v, want %s", tt.opts.Mechanism, err, tt.want)
		}
	}
}
