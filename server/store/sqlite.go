package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// FileName is the SQLite database Open keeps in its directory.
const FileName = "ringside.db"

// Options tune a store; the zero value is the production default.
type Options struct {
	// PasswordIterations is the PBKDF2 cost of new password hashes; 0 means
	// the default (600000). Only tests should lower it (a hash under the race
	// detector takes seconds); each hash records its own cost, so stored
	// passwords keep working whatever this is later.
	PasswordIterations int
}

// Open opens (creating) the SQLite store in dir and applies migrations.
func Open(ctx context.Context, dir string) (Store, error) {
	return OpenWith(ctx, dir, Options{})
}

// OpenWith is Open with options.
func OpenWith(ctx context.Context, dir string, o Options) (Store, error) {
	if dir == "" {
		return nil, errors.New("open store: no data directory given")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	path := filepath.Join(dir, FileName)
	db, err := sql.Open("sqlite", sqliteDSN(path))
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	// One connection serialises this process's writes, so SQLite never
	// answers "database is locked" to ourselves; other processes (the
	// `user add` command next to a running server) wait on busy_timeout.
	db.SetMaxOpenConns(1)
	s := &sqlStore{db: db, d: sqliteDialect, iterations: o.PasswordIterations}
	if s.iterations <= 0 {
		s.iterations = passwordIterations
	}
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	if err := s.migrate(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	return s, nil
}

// sqliteDSN sets up every connection: WAL so readers don't block the
// writer, synchronous=FULL so a committed write survives a power cut too,
// foreign keys on, and BEGIN IMMEDIATE so a transaction takes the write
// lock up front and waits on busy_timeout instead of failing midway.
func sqliteDSN(path string) string {
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(FULL)")
	q.Add("_pragma", "foreign_keys(1)")
	q.Set("_txlock", "immediate")
	// A file: URI with the path escaped, so a directory name holding '?',
	// '#' or '%' still names the right file.
	return "file:" + (&url.URL{Path: filepath.ToSlash(path)}).EscapedPath() + "?" + q.Encode()
}
