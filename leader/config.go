package leader

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"
)

// The election modes of transform.leader.election.
const (
	// Kafka elects the active process through a consumer group (the default).
	Kafka = "kafka"
	// None makes every transform process active: one process per database only.
	None = "none"
)

// Config configures the election of the active transform process
// (transform.leader in the configuration file).
type Config struct {
	// Election is kafka (elect one active process among any number) or
	// none (the process is active at once, without asking Kafka).
	Election string `yaml:"election"`
	// Topic is the one-partition control topic whose partition 0 is the
	// role; created at start when missing. No message is ever written to it.
	Topic string `yaml:"topic"`
	// GroupID is the consumer group of the transform processes of one
	// database; processes of another database need another group.
	GroupID string `yaml:"group_id"`
	// SessionTimeout is how long the group coordinator waits for a silent
	// member before it gives the role to another: the bound of failover
	// after a crash. The broker accepts 6s to 5m by default
	// (group.min/max.session.timeout.ms).
	SessionTimeout time.Duration `yaml:"session_timeout"`
	// HeartbeatInterval is how often each member checks in; a standby
	// learns that the group rebalances at its next heartbeat.
	HeartbeatInterval time.Duration `yaml:"heartbeat_interval"`
}

// Default returns the documented defaults.
func Default() Config {
	return Config{Election: Kafka, Topic: "kpibridge.transform-leader", GroupID: "kpibridge-transform",
		SessionTimeout: 10 * time.Second, HeartbeatInterval: time.Second}
}

var topicRe = regexp.MustCompile(`^[a-zA-Z0-9._-]{1,249}$`)

// Validate returns every wrong field, each named by its path.
func (c Config) Validate() error {
	modes := []string{Kafka, None}
	if !slices.Contains(modes, c.Election) {
		return fmt.Errorf("transform.leader.election: must be one of %s, got %q", strings.Join(modes, ", "), c.Election)
	}
	if c.Election == None {
		return nil
	}
	var errs []error
	if !topicRe.MatchString(c.Topic) {
		errs = append(errs, fmt.Errorf("transform.leader.topic: %q is not a valid Kafka topic name", c.Topic))
	}
	if strings.TrimSpace(c.GroupID) == "" {
		errs = append(errs, errors.New("transform.leader.group_id: must not be empty"))
	}
	if c.SessionTimeout < 6*time.Second || c.SessionTimeout > 5*time.Minute {
		errs = append(errs, fmt.Errorf("transform.leader.session_timeout: must be between 6s and 5m (what Kafka brokers accept by default), got %s", c.SessionTimeout))
	}
	if c.HeartbeatInterval < 100*time.Millisecond || c.HeartbeatInterval > c.SessionTimeout/3 {
		errs = append(errs, fmt.Errorf("transform.leader.heartbeat_interval: must be between 100ms and a third of session_timeout (%s), got %s", (c.SessionTimeout/3).Round(time.Millisecond), c.HeartbeatInterval))
	}
	return errors.Join(errs...)
}
