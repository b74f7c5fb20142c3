// Package broker runs kpibridge's embedded Kafka-protocol broker (franz-go's
// kfake) for development, demos and tests. It speaks the Kafka wire protocol
// to any client (kafka-go, kcat, franz-go), auto-creates topics, can keep
// its log on disk, and can serve TLS and require SASL (PLAIN, SCRAM-SHA-256,
// SCRAM-SHA-512) so that secured clients are tested against it. It is not a
// production broker: one process, no replication, no ACLs; use a real
// Kafka (>= 2.8) in production.
package broker

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/kpibridge/kpibridge/internal/kafkaconn"
)

// Config configures the embedded broker.
type Config struct {
	// Listen is host:port; port 0 picks a free port. The host is also the
	// address advertised to clients, so it must be reachable by them.
	Listen string
	// Partitions is the partition count of auto-created topics.
	Partitions int
	// DataDir, when set, persists topics, records and group offsets there.
	DataDir string
	// Topics are created at start with Partitions partitions.
	Topics []string
	// TLS, when set, serves the Kafka protocol over TLS only, with this
	// server configuration (certificate; ClientCAs to require client certificates).
	TLS *tls.Config
	// Users, when set, require SASL: every client authenticates as one of them.
	Users []User
}

// User is a SASL user of the broker.
type User struct {
	// Mechanism is PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512.
	Mechanism string
	Name      string
	Password  string
}

// Broker is a running embedded broker.
type Broker struct {
	cluster *kfake.Cluster
	addr    string
}

// Start starts the broker and returns once it accepts connections.
func Start(cfg Config, logger *slog.Logger) (*Broker, error) {
	host, portStr, err := net.SplitHostPort(cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("broker listen address %q: %w", cfg.Listen, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port < 0 || port > 65535 {
		return nil, fmt.Errorf("broker listen address %q: bad port", cfg.Listen)
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		return nil, fmt.Errorf("broker listen address %q: name one host that clients can reach (it is advertised to them), e.g. 127.0.0.1", cfg.Listen)
	}
	if cfg.Partitions < 1 {
		return nil, fmt.Errorf("broker partitions: must be >= 1, got %d", cfg.Partitions)
	}
	opts := []kfake.Opt{
		kfake.NumBrokers(1),
		kfake.Ports(port),
		kfake.ListenFn(func(network, address string) (net.Listener, error) {
			_, p, _ := net.SplitHostPort(address)
			return net.Listen(network, net.JoinHostPort(host, p))
		}),
		kfake.AllowAutoTopicCreation(),
		kfake.DefaultNumPartitions(cfg.Partitions),
		kfake.ClusterID("kpibridge-embedded"),
	}
	if len(cfg.Topics) > 0 {
		opts = append(opts, kfake.SeedTopics(int32(cfg.Partitions), cfg.Topics...))
	}
	if cfg.DataDir != "" {
		opts = append(opts, kfake.DataDir(cfg.DataDir))
	}
	if cfg.TLS != nil {
		opts = append(opts, kfake.TLS(cfg.TLS))
	}
	var sasl []string
	if len(cfg.Users) > 0 {
		opts = append(opts, kfake.EnableSASL())
		for _, u := range cfg.Users {
			if !kafkaconn.Known(u.Mechanism) {
				return nil, fmt.Errorf("broker SASL user %q: mechanism must be one of %s, got %q", u.Name, strings.Join(kafkaconn.Mechanisms(), ", "), u.Mechanism)
			}
			if u.Name == "" || u.Password == "" {
				return nil, fmt.Errorf("broker SASL user %q (%s): needs a name and a password", u.Name, u.Mechanism)
			}
			// A superuser: kfake's ACLs stay off, any authenticated user may do anything.
			opts = append(opts, kfake.Superuser(u.Mechanism, u.Name, u.Password))
			sasl = append(sasl, u.Mechanism+":"+u.Name)
		}
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		return nil, fmt.Errorf("start embedded broker on %s: %w", cfg.Listen, err)
	}
	addrs := c.ListenAddrs()
	b := &Broker{cluster: c, addr: addrs[0]}
	if logger != nil {
		logger.Info("embedded Kafka broker listening", "addr", b.addr, "partitions", cfg.Partitions, "data_dir", cfg.DataDir,
			"tls", cfg.TLS != nil, "client_certificates", cfg.TLS != nil && cfg.TLS.ClientAuth == tls.RequireAndVerifyClientCert,
			"sasl_users", strings.Join(sasl, ","))
	}
	return b, nil
}

// Addr is the host:port clients bootstrap from.
func (b *Broker) Addr() string { return b.addr }

// Close stops the broker and, with a DataDir, flushes its state.
func (b *Broker) Close() { b.cluster.Close() }
