package testenv

import (
	"context"
	"fmt"
	"testing"

	"github.com/kpibridge/kpibridge/store"
)

// Finding is one needle found in one column, and in how many rows.
type Finding struct {
	Table, Column, Needle string
	Rows                  uint64
}

func (f Finding) String() string {
	return fmt.Sprintf("%s.%s holds %q in %d rows", f.Table, f.Column, f.Needle, f.Rows)
}

// FindInTables looks for every needle in every String and Array(String)
// column of every table of database: as text anywhere in a value, in any
// letter case, or, when exact is set, as a whole value. It is how privacy
// tests prove that something is stored nowhere.
func FindInTables(t testing.TB, conn store.Conn, database string, needles []string, exact bool) []Finding {
	t.Helper()
	ctx := context.Background()
	rows, err := conn.Query(ctx, "SELECT table, name, type FROM system.columns WHERE database = ? AND type IN ('String', 'Array(String)') ORDER BY table, name", database)
	if err != nil {
		t.Fatalf("columns of %s: %v", database, err)
	}
	type column struct{ table, name, typ string }
	var cols []column
	for rows.Next() {
		var c column
		if err := rows.Scan(&c.table, &c.name, &c.typ); err != nil {
			t.Fatal(err)
		}
		cols = append(cols, c)
	}
	rows.Close()
	if len(cols) == 0 {
		t.Fatalf("database %s has no String column: nothing was searched", database)
	}
	var found []Finding
	for _, c := range cols {
		col := store.QuoteIdent(c.name)
		for _, n := range needles {
			var cond string
			switch {
			case exact && c.typ == "String":
				cond = col + " = ?"
			case exact:
				cond = "has(" + col + ", ?)"
			case c.typ == "String":
				cond = "positionCaseInsensitive(" + col + ", ?) > 0"
			default:
				cond = "arrayExists(x -> positionCaseInsensitive(x, ?) > 0, " + col + ")"
			}
			var rows uint64
			if err := conn.QueryRow(ctx, "SELECT count() FROM "+store.QuoteIdent(c.table)+" WHERE "+cond, n).Scan(&rows); err != nil {
				t.Fatalf("search %s.%s: %v", c.table, c.name, err)
			}
			if rows > 0 {
				found = append(found, Finding{Table: c.table, Column: c.name, Needle: n, Rows: rows})
			}
		}
	}
	return found
}
