package leader

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/kpibridge/kpibridge/internal/testenv"
)

func TestAssignKeepsTheRoleWhereItWas(t *testing.T) {
	const topic = "ctl"
	parts := []kafka.Partition{{Topic: topic, ID: 0}}
	for _, tc := range []struct {
		name    string
		members []kafka.GroupMember
		parts   []kafka.Partition
		want    string // member given partition 0; "" for none
	}{
		{"nobody held it: smallest id", []kafka.GroupMember{{ID: "b"}, {ID: "a"}}, parts, "a"},
		{"the holder keeps it when another joins", []kafka.GroupMember{{ID: "a"}, {ID: "b", UserData: encodeHeld(4)}}, parts, "b"},
		{"the latest holder wins over a former one", []kafka.GroupMember{{ID: "a", UserData: encodeHeld(3)}, {ID: "b", UserData: encodeHeld(7)}}, parts, "b"},
		{"generation 0 counts as held", []kafka.GroupMember{{ID: "a"}, {ID: "b", UserData: encodeHeld(0)}}, parts, "b"},
		{"unreadable user data counts as never", []kafka.GroupMember{{ID: "a", UserData: []byte{1}}, {ID: "b"}}, parts, "a"},
		{"no control topic yet: nobody", []kafka.GroupMember{{ID: "a"}}, nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := assign(topic, tc.members, tc.parts)
			holders := 0
			for _, m := range tc.members {
				if _, ok := got[m.ID]; !ok {
					t.Errorf("member %s has no assignment", m.ID)
				}
				if len(got[m.ID][topic]) > 0 {
					holders++
					if m.ID != tc.want {
						t.Errorf("partition 0 to %s, want %q", m.ID, tc.want)
					}
				}
			}
			if want := map[bool]int{true: 0, false: 1}[tc.want == ""]; holders != want {
				t.Errorf("%d members hold the role, want %d", holders, want)
			}
		})
	}
}

// activity records when each member ran the role, to check that two
// never did at once.
type activity struct {
	mu      sync.Mutex
	running map[string]bool
	overlap []string
	starts  map[string]int
	started chan string
}

func (a *activity) run(name string) func(context.Context) error {
	return func(ctx context.Context) error {
		a.mu.Lock()
		for other, on := range a.running {
			if on {
				a.overlap = append(a.overlap, other+" still active when "+name+" started")
			}
		}
		a.running[name] = true
		a.starts[name]++
		a.mu.Unlock()
		a.started <- name
		<-ctx.Done()
		time.Sleep(200 * time.Millisecond) // a last write while stepping down
		a.mu.Lock()
		a.running[name] = false
		a.mu.Unlock()
		return nil
	}
}

func testConfig() Config {
	c := Default()
	c.Topic, c.GroupID = "test.transform-leader", "test-transform"
	c.SessionTimeout, c.HeartbeatInterval = 6*time.Second, 500*time.Millisecond
	return c
}

// startMember runs a member until the returned stop is called (or the test ends); stop returns Run's error.
func startMember(t *testing.T, addr string, a *activity, name string) (*Elector, func() error) {
	t.Helper()
	e, err := New(testConfig(), []string{addr}, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx, a.run(name)) }()
	var once sync.Once
	var runErr error
	stop := func() error {
		once.Do(func() { cancel(); runErr = <-done })
		return runErr
	}
	t.Cleanup(func() { _ = stop() })
	return e, stop
}

func waitStarted(t *testing.T, a *activity, want string, within time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	select {
	case got := <-a.started:
		if got != want {
			t.Fatalf("%s became active, want %s", got, want)
		}
	case <-time.After(within):
		t.Fatalf("%s not active after %s", want, within)
	}
	return time.Since(start)
}

// A member steps down (its role's context ends, and it returns) before
// the group moves on, whenever the group rebalances; the role stays with
// it when another member joins; when it stops, the other takes over
// without the two ever running at once; and a member that still believes
// it holds a generation the group has left behind is refused by Check.
func TestStepDownAndTakeOver(t *testing.T) {
	addr := testenv.Broker(t, 1)
	a := &activity{running: map[string]bool{}, starts: map[string]int{}, started: make(chan string, 10)}
	ea, stopA := startMember(t, addr, a, "a")
	waitStarted(t, a, "a", 30*time.Second)
	ctx := context.Background()
	if err := ea.Check(ctx); err != nil {
		t.Fatalf("active member's Check: %v", err)
	}
	ea.mu.Lock()
	firstGen := ea.held
	ea.mu.Unlock()

	eb, _ := startMember(t, addr, a, "b")
	// b joining rebalances the group: a steps down, then gets the role back.
	waitStarted(t, a, "a", 30*time.Second)
	if eb.Active() {
		t.Error("b is active while a holds the role")
	}
	if err := eb.Check(ctx); !errors.Is(err, ErrNotActive) {
		t.Errorf("standby's Check = %v, want ErrNotActive", err)
	}
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(eb.Status(), "kpibridge-transform@"); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Errorf("standby status %q does not name the active process", eb.Status())
			break
		}
	}

	// a stops: it leaves the group and b takes over at once, not after the session timeout.
	if err := stopA(); err != nil {
		t.Fatalf("a's Run: %v", err)
	}
	took := waitStarted(t, a, "b", 30*time.Second)
	t.Logf("handover after a clean stop took %s", took.Round(time.Millisecond))
	if took > testConfig().SessionTimeout {
		t.Errorf("handover took %s, longer than the session timeout", took)
	}
	if ea.Active() {
		t.Error("a still says it is active after it stopped")
	}
	// a paused process that missed it all still believes in its old generation.
	ea.mu.Lock()
	ea.held, ea.heldCtx = firstGen, context.Background()
	ea.mu.Unlock()
	if err := ea.Check(ctx); !errors.Is(err, ErrNotActive) {
		t.Errorf("Check of a left-behind generation = %v, want ErrNotActive", err)
	}
	if err := eb.Check(ctx); err != nil {
		t.Errorf("new active member's Check: %v", err)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.overlap) > 0 {
		t.Errorf("two members active at once: %v", a.overlap)
	}
	if a.starts["a"] != 2 || a.starts["b"] != 1 {
		t.Errorf("role started %v times, want a twice (before and after b joined) and b once", a.starts)
	}
}
