package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"
)

// dialect holds what differs between databases. The SQL in this package is
// written once with `?` placeholders and standard syntax; rebind adapts it.
type dialect struct {
	name string
	// dollar numbers placeholders $1, $2, ... (PostgreSQL) instead of `?`.
	dollar bool
}

var sqliteDialect = dialect{name: "sqlite"}

// rebind rewrites `?` placeholders for the dialect, leaving quoted text alone.
func (d dialect) rebind(query string) string {
	if !d.dollar {
		return query
	}
	var b strings.Builder
	n := 0
	inQuote := false
	for _, r := range query {
		switch {
		case r == '\'':
			inQuote = !inQuote
		case r == '?' && !inQuote:
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// placeholders returns "?, ?, ?" for n values.
func placeholders(n int) string {
	return strings.TrimSuffix(strings.Repeat("?, ", n), ", ")
}

// timeLayout is RFC 3339 with a fixed nine-digit fraction, so stored times
// sort as text.
const timeLayout = "2006-01-02T15:04:05.000000000Z07:00"

func formatTime(t time.Time) string { return t.UTC().Format(timeLayout) }

func formatTimePtr(t *time.Time) any {
	if t == nil {
		return nil
	}
	return formatTime(*t)
}

func parseTime(s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("stored time %q: %w", s, err)
	}
	return t.UTC(), nil
}

func parseTimePtr(s sql.NullString) (*time.Time, error) {
	if !s.Valid {
		return nil, nil
	}
	t, err := parseTime(s.String)
	if err != nil {
		return nil, err
	}
	return &t, nil
}

// queryer is what *sql.DB and *sql.Tx share.
type queryer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// conn runs portable SQL on a database or inside a transaction.
type conn struct {
	q queryer
	d dialect
}

func (c conn) exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	return c.q.ExecContext(ctx, c.d.rebind(query), args...)
}

func (c conn) query(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	return c.q.QueryContext(ctx, c.d.rebind(query), args...)
}

func (c conn) row(ctx context.Context, query string, args ...any) *sql.Row {
	return c.q.QueryRowContext(ctx, c.d.rebind(query), args...)
}

// exists reports whether the query (SELECT COUNT(*) ...) counts any row.
func (c conn) exists(ctx context.Context, query string, args ...any) (bool, error) {
	var n int
	if err := c.row(ctx, query, args...).Scan(&n); err != nil {
		return false, err
	}
	return n > 0, nil
}

type sqlTx struct{ conn }

// sqlStore is the Store over database/sql.
type sqlStore struct {
	db         *sql.DB
	d          dialect
	iterations int // PBKDF2 cost of new password hashes

	// dummyHash is what CheckPassword verifies against for an unknown
	// user, so both answers cost the same.
	dummyOnce sync.Once
	dummyHash string
	dummyErr  error
}

func (s *sqlStore) c() conn { return conn{q: s.db, d: s.d} }

func (s *sqlStore) row(ctx context.Context, query string, args ...any) *sql.Row {
	return s.c().row(ctx, query, args...)
}

// inTx runs f in a transaction and commits it; any error rolls back.
func (s *sqlStore) inTx(ctx context.Context, f func(tx *sqlTx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := f(&sqlTx{conn{q: tx, d: s.d}}); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}

func (s *sqlStore) Close() error { return s.db.Close() }

// isUniqueViolation recognises a unique constraint failure from SQLite or
// PostgreSQL. The methods check for duplicates first; this catches a race
// with another process.
func isUniqueViolation(err error) bool {
	if err == nil {
		return false
	}
	msg := err.Error()
	return strings.Contains(msg, "UNIQUE constraint failed") || strings.Contains(msg, "duplicate key value")
}

// ---- settings

func (s *sqlStore) Setting(ctx context.Context, key string) (string, bool, error) {
	var v string
	err := s.row(ctx, `SELECT value FROM settings WHERE name = ?`, key).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("read setting %s: %w", key, err)
	}
	return v, true, nil
}

func (s *sqlStore) SetSetting(ctx context.Context, key, value string) error {
	value, err := checkSetting(key, value)
	if err != nil {
		return err
	}
	_, err = s.c().exec(ctx, `INSERT INTO settings (name, value) VALUES (?, ?)
		ON CONFLICT (name) DO UPDATE SET value = excluded.value`, key, value)
	if err != nil {
		return fmt.Errorf("save setting %s: %w", key, err)
	}
	return nil
}

func (s *sqlStore) Settings(ctx context.Context) (map[string]string, error) {
	rows, err := s.c().query(ctx, `SELECT name, value FROM settings`)
	if err != nil {
		return nil, fmt.Errorf("read settings: %w", err)
	}
	defer rows.Close()
	m := map[string]string{}
	for rows.Next() {
		var k, v string
		if err := rows.Scan(&k, &v); err != nil {
			return nil, fmt.Errorf("read settings: %w", err)
		}
		m[k] = v
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read settings: %w", err)
	}
	return m, nil
}
