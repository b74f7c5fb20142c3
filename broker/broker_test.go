package broker_test

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/kpibridge/kpibridge/broker"
	"github.com/kpibridge/kpibridge/internal/testenv"
)

func start(t *testing.T, cfg broker.Config) *broker.Broker {
	t.Helper()
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:0"
	}
	b, err := broker.Start(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return b
}

func produce(t *testing.T, addr, topic string, n int) {
	t.Helper()
	w := &kafka.Writer{Addr: kafka.TCP(addr), Topic: topic, Balancer: &kafka.Hash{}, BatchTimeout: 5 * time.Millisecond, AllowAutoTopicCreation: true, RequiredAcks: kafka.RequireAll}
	defer w.Close()
	msgs := make([]kafka.Message, n)
	for i := range msgs {
		msgs[i] = kafka.Message{Key: []byte(fmt.Sprintf("k%d", i%17)), Value: []byte(fmt.Sprintf("v%d", i))}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var err error
	for range 20 { // the first write may race topic auto-creation
		if err = w.WriteMessages(ctx, msgs...); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("produce to %s: %v", topic, err)
}

// consumeGroup reads n messages in a consumer group, committing them, and returns their values sorted.
func consumeGroup(t *testing.T, addr, topic, group string, n int) []string {
	t.Helper()
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{addr}, Topic: topic, GroupID: group, MinBytes: 1, MaxBytes: 1 << 20, MaxWait: 100 * time.Millisecond, StartOffset: kafka.FirstOffset})
	defer r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var got []string
	for len(got) < n {
		m, err := r.FetchMessage(ctx)
		if err != nil {
			t.Fatalf("fetch after %d of %d messages: %v", len(got), n, err)
		}
		got = append(got, string(m.Value))
		if err := r.CommitMessages(ctx, m); err != nil {
			t.Fatalf("commit: %v", err)
		}
	}
	sort.Strings(got)
	return got
}

func TestAutoCreatedTopicsHaveConfiguredPartitions(t *testing.T) {
	for _, parts := range []int{1, 6} {
		t.Run(fmt.Sprint(parts), func(t *testing.T) {
			b := start(t, broker.Config{Partitions: parts})
			produce(t, b.Addr(), "auto.created", 10)
			conn, err := kafka.Dial("tcp", b.Addr())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			ps, err := conn.ReadPartitions("auto.created")
			if err != nil {
				t.Fatal(err)
			}
			if len(ps) != parts {
				t.Fatalf("auto-created topic has %d partitions, want %d", len(ps), parts)
			}
		})
	}
}

func TestKafkaGoProducesAndConsumesInGroup(t *testing.T) {
	b := start(t, broker.Config{Partitions: 6, Topics: []string{"crm.events"}})
	produce(t, b.Addr(), "crm.events", 500)
	got := consumeGroup(t, b.Addr(), "crm.events", "g1", 500)
	if len(got) != 500 || got[0] != "v0" {
		t.Fatalf("consumed %d messages, first %q", len(got), got[0])
	}
	// The group's offsets were committed: a new member of the same group gets nothing old.
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{b.Addr()}, Topic: "crm.events", GroupID: "g1", MaxWait: 100 * time.Millisecond})
	defer r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if m, err := r.FetchMessage(ctx); err == nil {
		t.Fatalf("group g1 re-read %q after committing everything", m.Value)
	}
}

func TestKcatTalksToBroker(t *testing.T) {
	kcat, err := exec.LookPath("kcat")
	testenv.Require(t, err == nil, "kcat (Debian package kcat)")
	b := start(t, broker.Config{Partitions: 3})

	// kcat produces keyed messages; kafka-go consumes them in a group.
	in := "a:one\nb:two\nc:three\n"
	cmd := exec.Command(kcat, "-P", "-b", b.Addr(), "-t", "from.kcat", "-K:")
	cmd.Stdin = strings.NewReader(in)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("kcat -P: %v\n%s", err, out)
	}
	if got := consumeGroup(t, b.Addr(), "from.kcat", "g-kcat", 3); strings.Join(got, ",") != "one,three,two" {
		t.Fatalf("kafka-go read %v from kcat's messages", got)
	}

	// kafka-go produces; kcat consumes to the end, in a group (-G) as well as plainly.
	produce(t, b.Addr(), "from.kafkago", 50)
	out, err := exec.Command(kcat, "-C", "-b", b.Addr(), "-t", "from.kafkago", "-o", "beginning", "-e", "-q").Output()
	if err != nil {
		t.Fatalf("kcat -C: %v", err)
	}
	if n := bytes.Count(out, []byte("\n")); n != 50 {
		t.Fatalf("kcat read %d messages, want 50", n)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err = exec.CommandContext(ctx, kcat, "-b", b.Addr(), "-G", "g-kcat-consumer", "-o", "beginning", "-e", "-q", "from.kafkago").Output()
	if err != nil {
		t.Fatalf("kcat -G: %v", err)
	}
	if n := bytes.Count(out, []byte("\n")); n != 50 {
		t.Fatalf("kcat -G read %d messages, want 50", n)
	}
	meta, err := exec.Command(kcat, "-L", "-b", b.Addr(), "-t", "from.kafkago").Output()
	if err != nil {
		t.Fatalf("kcat -L: %v", err)
	}
	if !strings.Contains(string(meta), "3 partitions") {
		t.Fatalf("kcat -L does not show 3 partitions:\n%s", meta)
	}
}

func TestDataDirKeepsRecordsAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	b, err := broker.Start(broker.Config{Listen: "127.0.0.1:0", Partitions: 2, DataDir: dir}, nil)
	if err != nil {
		t.Fatal(err)
	}
	produce(t, b.Addr(), "kept", 20)
	b.Close()

	b2 := start(t, broker.Config{Partitions: 2, DataDir: dir})
	if got := consumeGroup(t, b2.Addr(), "kept", "g", 20); len(got) != 20 {
		t.Fatalf("after restart read %d records, want 20", len(got))
	}
}

func TestStartRejectsBadConfig(t *testing.T) {
	tests := []struct {
		name string
		cfg  broker.Config
		want string
	}{
		{"no port", broker.Config{Listen: "127.0.0.1", Partitions: 1}, "missing port"},
		{"wildcard host", broker.Config{Listen: "0.0.0.0:0", Partitions: 1}, "advertised"},
		{"zero partitions", broker.Config{Listen: "127.0.0.1:0"}, "partitions: must be >= 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := broker.Start(tt.cfg, nil)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
		})
	}
}

// A SASL user the broker cannot serve is refused at start, by name.
func TestStartRefusesBadSASLUsers(t *testing.T) {
	for _, tt := range []struct {
		user broker.User
		want string
	}{
		{broker.User{Mechanism: "GSSAPI", Name: "kpi", Password: "pw"}, `broker SASL user "kpi": mechanism must be one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, got "GSSAPI"`},
		{broker.User{Mechanism: "PLAIN", Name: "kpi"}, `broker SASL user "kpi" (PLAIN): needs a name and a password`},
	} {
		_, err := broker.Start(broker.Config{Listen: "127.0.0.1:0", Partitions: 1, Users: []broker.User{tt.user}}, nil)
		if err == nil || err.Error() != tt.want {
			t.Errorf("Start with %+v = %v, want %s", tt.user.Mechanism, err, tt.want)
		}
	}
}
