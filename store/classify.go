package store

import (
	"errors"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/column"
)

// Permanent says whether ClickHouse will refuse the same statement with
// the same data again, whatever the retries: the schema, the data or the
// credentials are wrong, not the server's state. hint says what to do.
// Anything else (a network error, a server starting, too many parts, a
// timeout) is transient and worth retrying as it is.
func Permanent(err error) (hint string, ok bool) {
	const (
		schema = "the table's schema is not the one kpibridge writes: run `kpibridge migrate`, and undo any change made by hand"
		types  = "a column's type differs from kpibridge's schema (changed by hand?): compare the table with store/migrations and fix it, then ingest resumes"
		access = "ClickHouse refuses the user: check clickhouse user, password and its grants (INSERT and SELECT on the database)"
	)
	var conv *column.ColumnConverterError
	var colErr *column.Error
	var unsupported *column.UnsupportedColumnTypeError
	if errors.As(err, &conv) || errors.As(err, &colErr) || errors.As(err, &unsupported) {
		return types, true
	}
	var ex *clickhouse.Exception
	if !errors.As(err, &ex) {
		return "", false
	}
	switch ex.Code {
	case 16, 47, 60, 81: // NO_SUCH_COLUMN_IN_TABLE, UNKNOWN_IDENTIFIER, UNKNOWN_TABLE, UNKNOWN_DATABASE
		return schema, true
	case 6, 27, 38, 41, 53, 70: // CANNOT_PARSE_TEXT, CANNOT_PARSE_INPUT_ASSERTION_FAILED, CANNOT_PARSE_DATE, CANNOT_PARSE_DATETIME, TYPE_MISMATCH, CANNOT_CONVERT_TYPE
		return types, true
	case 164, 192, 193, 497, 516: // READONLY, UNKNOWN_USER, WRONG_PASSWORD, ACCESS_DENIED, AUTHENTICATION_FAILED
		return access, true
	case 62: // SYNTAX_ERROR
		return "kpibridge sent SQL this server cannot parse: a bug or a server too old; report it with the server's version", true
	}
	return "", false
}
