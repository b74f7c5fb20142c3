package events

import "time"

// parseRFC3339 parses an RFC 3339 date-time, which always has an offset:
// YYYY-MM-DDTHH:MM:SS[.fraction](Z|+HH:MM|-HH:MM), T and Z in either case.
// Unlike time.Parse it works on bytes without allocating, and it refuses the
// offset-less forms that time.Parse would read as UTC with other layouts.
func parseRFC3339(b []byte) (time.Time, bool) {
	if len(b) < len("2006-01-02T15:04:05Z") {
		return time.Time{}, false
	}
	y, m, d, ok := ymd(b[:10])
	if !ok || (b[10] != 'T' && b[10] != 't') || b[13] != ':' || b[16] != ':' {
		return time.Time{}, false
	}
	hh, ok1 := num2(b[11:13])
	mm, ok2 := num2(b[14:16])
	ss, ok3 := num2(b[17:19])
	if !ok1 || !ok2 || !ok3 || hh > 23 || mm > 59 || ss > 59 {
		return time.Time{}, false
	}
	i, ns := 19, 0
	if b[i] == '.' {
		i++
		digits := 0
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			if digits < 9 {
				ns = ns*10 + int(b[i]-'0')
				digits++
			}
			i++
		}
		if digits == 0 {
			return time.Time{}, false
		}
		for ; digits < 9; digits++ {
			ns *= 10
		}
	}
	if i >= len(b) {
		return time.Time{}, false
	}
	offset := 0
	switch b[i] {
	case 'Z', 'z':
		i++
	case '+', '-':
		if len(b)-i != 6 || b[i+3] != ':' {
			return time.Time{}, false
		}
		oh, ok1 := num2(b[i+1 : i+3])
		om, ok2 := num2(b[i+4 : i+6])
		if !ok1 || !ok2 || oh > 23 || om > 59 {
			return time.Time{}, false
		}
		offset = oh*3600 + om*60
		if b[i] == '-' {
			offset = -offset
		}
		i += 6
	default:
		return time.Time{}, false
	}
	if i != len(b) {
		return time.Time{}, false
	}
	t := time.Date(y, time.Month(m), d, hh, mm, ss, ns, time.UTC)
	return t.Add(-time.Duration(offset) * time.Second), true
}

// parseDate parses YYYY-MM-DD into UTC midnight.
func parseDate(b []byte) (time.Time, bool) {
	if len(b) != 10 {
		return time.Time{}, false
	}
	y, m, d, ok := ymd(b)
	if !ok {
		return time.Time{}, false
	}
	return time.Date(y, time.Month(m), d, 0, 0, 0, 0, time.UTC), true
}

// parseMonth parses YYYY-MM into the first day of the month, UTC midnight.
func parseMonth(b []byte) (time.Time, bool) {
	if len(b) != 7 || b[4] != '-' {
		return time.Time{}, false
	}
	y, ok1 := num4(b[:4])
	m, ok2 := num2(b[5:7])
	if !ok1 || !ok2 || m < 1 || m > 12 {
		return time.Time{}, false
	}
	return time.Date(y, time.Month(m), 1, 0, 0, 0, 0, time.UTC), true
}

// ymd reads a calendar date YYYY-MM-DD and checks the day exists.
func ymd(b []byte) (y, m, d int, ok bool) {
	if len(b) != 10 || b[4] != '-' || b[7] != '-' {
		return 0, 0, 0, false
	}
	y, ok1 := num4(b[:4])
	m, ok2 := num2(b[5:7])
	d, ok3 := num2(b[8:10])
	if !ok1 || !ok2 || !ok3 || m < 1 || m > 12 || d < 1 || d > daysIn(y, m) {
		return 0, 0, 0, false
	}
	return y, m, d, true
}

func daysIn(y, m int) int {
	switch m {
	case 2:
		if y%4 == 0 && (y%100 != 0 || y%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

func num2(b []byte) (int, bool) {
	if b[0] < '0' || b[0] > '9' || b[1] < '0' || b[1] > '9' {
		return 0, false
	}
	return int(b[0]-'0')*10 + int(b[1]-'0'), true
}

func num4(b []byte) (int, bool) {
	hi, ok1 := num2(b[:2])
	lo, ok2 := num2(b[2:])
	return hi*100 + lo, ok1 && ok2
}
