package store

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"time"
)

// Mutate runs the mutation command (DELETE WHERE … or UPDATE …, with its
// arguments) on table of target (Alter) and waits until ClickHouse has
// applied it to every part, on every node of a cluster (WaitMutations).
func Mutate(ctx context.Context, conn Conn, target Target, table string, command Query) error {
	if err := Alter(ctx, conn, target, table, command); err != nil {
		return fmt.Errorf("%s: %w", table, err)
	}
	return WaitMutations(ctx, conn, target, table)
}

// Alter runs ALTER TABLE table command (a DELETE or UPDATE mutation, or a
// DROP PARTITION) where the rows of table are, and does not wait for a
// mutation to be applied. On one server, and for a table replicated whole
// to every node of a cluster, that is conn's server: replication carries
// the change to the other replicas. For a sharded table it is
// <table>_local ON CLUSTER, on every shard (a Distributed table cannot be
// altered so), and Alter returns once every host reported it done (a
// replicated ALTER runs on one replica of each shard and is replicated to
// the others); a host that failed or did not report is named.
func Alter(ctx context.Context, conn Conn, target Target, table string, command Query) error {
	if _, sharded := shardingKey(table); target.cluster == "" || !sharded {
		return conn.Exec(ctx, "ALTER TABLE "+table+" "+command.SQL, command.Args...)
	}
	hosts, err := clusterHosts(ctx, conn, target.cluster)
	if err != nil {
		return err
	}
	return onCluster(ctx, conn, hosts, "ALTER TABLE "+target.Database+"."+storageTable(table)+" ON CLUSTER "+target.cluster+" "+command.SQL, command.Args...)
}

// WaitMutations waits until none of tables has an unfinished mutation.
// ClickHouse 18.16 runs mutations in the background and has no
// mutations_sync setting, so the wait polls system.mutations; ctx bounds
// it. A mutation that fails keeps is_done = 0: the wait then ends with
// ctx, and the error says where to look.
//
// On a cluster every node is asked in turn, over a connection of its own
// (eachNode): each must have received the newest mutation of its replica
// of the table (as ZooKeeper lists them) and finished every mutation, so
// that a replica that is behind is waited for too, and one that is down
// fails the wait, named; it applies the mutations when it is back.
func WaitMutations(ctx context.Context, conn Conn, target Target, tables ...string) error {
	if target.cluster == "" {
		for _, table := range tables {
			if err := waitMutations(ctx, conn, target.Database, table); err != nil {
				return err
			}
		}
		return nil
	}
	return eachNode(ctx, conn, target, func(node Conn) error {
		for _, table := range tables {
			if err := waitReplicaMutations(ctx, node, target.Database, storageTable(table)); err != nil {
				return err
			}
		}
		return nil
	})
}

// waitMutations waits until table has no unfinished mutation on conn's server.
func waitMutations(ctx context.Context, conn Conn, database, table string) error {
	wait := 50 * time.Millisecond
	for {
		var left uint64
		if err := conn.QueryRow(ctx, "SELECT count() FROM system.mutations WHERE database = ? AND table = ? AND is_done = 0", database, table).Scan(&left); err != nil {
			return fmt.Errorf("wait for mutations of %s.%s: %w", database, table, err)
		}
		if left == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%d mutations of %s.%s are not done (see SELECT * FROM system.mutations WHERE database = '%s' AND table = '%s' AND is_done = 0): %w",
				left, database, table, database, table, ctx.Err())
		case <-time.After(wait):
		}
		wait = min(2*wait, time.Second)
	}
}

// waitReplicaMutations waits until the replica of table on node has
// received the newest mutation of its replicas, which ZooKeeper lists, and
// has no mutation left to do. A mutation sent to another replica reaches
// this one's system.mutations only once it has read it from ZooKeeper.
func waitReplicaMutations(ctx context.Context, node Conn, database, table string) error {
	var path, newest string
	if err := node.QueryRow(ctx, "SELECT any(zookeeper_path) FROM system.replicas WHERE database = ? AND table = ?", database, table).Scan(&path); err != nil {
		return fmt.Errorf("wait for mutations of %s.%s: %w", database, table, err)
	}
	if path != "" {
		if err := node.QueryRow(ctx, "SELECT max(name) FROM system.zookeeper WHERE path = ?", path+"/mutations").Scan(&newest); err != nil {
			return fmt.Errorf("wait for mutations of %s.%s: mutations in ZooKeeper: %w", database, table, err)
		}
	}
	return poll(ctx, func() (string, error) {
		var left uint64
		var received string
		if err := node.QueryRow(ctx, "SELECT countIf(is_done = 0), max(mutation_id) FROM system.mutations WHERE database = ? AND table = ?", database, table).Scan(&left, &received); err != nil {
			return "", fmt.Errorf("wait for mutations of %s.%s: %w", database, table, err)
		}
		switch {
		case received < newest:
			return fmt.Sprintf("mutation %s of %s.%s has not reached this replica (newest here: %q; see system.replication_queue)", newest, database, table, received), nil
		case left > 0:
			return fmt.Sprintf("%d mutations of %s.%s are not done (see SELECT * FROM system.mutations WHERE database = '%s' AND table = '%s' AND is_done = 0)",
				left, database, table, database, table), nil
		}
		return "", nil
	})
}

// waitDropped waits until no node of target's cluster holds an active part
// of table's partitions: a DROP PARTITION reaches the other replicas
// through their replication queue. On one server it returns at once.
func waitDropped(ctx context.Context, conn Conn, target Target, table string, partitions []string) error {
	if target.cluster == "" || len(partitions) == 0 {
		return nil
	}
	storage := storageTable(table)
	return eachNode(ctx, conn, target, func(node Conn) error {
		return poll(ctx, func() (string, error) {
			var left uint64
			if err := node.QueryRow(ctx, "SELECT count() FROM system.parts WHERE database = ? AND table = ? AND active AND has(?, partition)",
				target.Database, storage, partitions).Scan(&left); err != nil {
				return "", fmt.Errorf("wait for the partitions of %s.%s to go: %w", target.Database, storage, err)
			}
			if left > 0 {
				return fmt.Sprintf("%d parts of the dropped partitions %v of %s.%s are still active (see system.replication_queue)", left, partitions, target.Database, storage), nil
			}
			return "", nil
		})
	})
}

// poll calls check until it returns no reason to wait (""), backing off
// from 50 ms to 1 s; ctx ends the wait with the last reason.
func poll(ctx context.Context, check func() (waiting string, err error)) error {
	wait := 50 * time.Millisecond
	for {
		why, err := check()
		if err != nil || why == "" {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: %w", why, ctx.Err())
		case <-time.After(wait):
		}
		wait = min(2*wait, time.Second)
	}
}

// eachNode runs wait on every node of target's cluster in turn, in the
// order system.clusters on conn's server lists them, each over a
// connection of its own: with target's user, password and TLS settings, to
// the host and port remote_servers names (so they must be reachable from
// kpibridge; with TLS, the certificate of each node is checked against
// its host name). An error names the node. On one server wait runs once,
// on conn.
func eachNode(ctx context.Context, conn Conn, target Target, wait func(node Conn) error) error {
	if target.cluster == "" {
		return wait(conn)
	}
	hosts, err := clusterHosts(ctx, conn, target.cluster)
	if err != nil {
		return err
	}
	for _, h := range hosts {
		node, err := open(ctx, target.onNode(h), target.Database)
		if err != nil {
			return fmt.Errorf("node %s of cluster %s (a node that is down applies what it missed when it is back; run the command again then): %w", h, target.cluster, err)
		}
		err = wait(node)
		node.Close()
		if err != nil {
			return fmt.Errorf("node %s of cluster %s: %w", h, target.cluster, err)
		}
	}
	return nil
}

// onNode returns a copy of t that connects to node h of its cluster.
func (t Target) onNode(h Host) Target {
	addr := net.JoinHostPort(h.Name, strconv.Itoa(int(h.Port)))
	opts := *t.options
	opts.Addr = []string{addr}
	if opts.TLS != nil {
		opts.TLS = opts.TLS.Clone()
		opts.TLS.ServerName = "" // each node's certificate holds its own name
	}
	t.options = &opts
	if u, err := url.Parse(t.DSN); err == nil {
		u.Host = addr
		t.DSN = u.String()
	}
	return t
}
