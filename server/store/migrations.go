package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// A migration moves the schema one version up. Migrations are never edited
// once released: a change to the schema is a new migration at the end.
type migration struct {
	version int
	name    string
	stmts   []string // portable SQL, `?` placeholders
}

// Times are stored as UTC text of fixed width (see timeLayout), so they sort
// as text in any database and read well in the sqlite3 shell.
var migrations = []migration{
	{1, "users, teams, settings, calls, monitors", []string{
		`CREATE TABLE users (
			id            TEXT PRIMARY KEY,
			name          TEXT NOT NULL UNIQUE,
			ext           TEXT NOT NULL UNIQUE,
			role          TEXT NOT NULL,
			password_hash TEXT NOT NULL,
			ha1_md5       TEXT NOT NULL,
			ha1_sha256    TEXT NOT NULL,
			created_at    TEXT NOT NULL
		)`,
		`CREATE TABLE teams (
			id   TEXT PRIMARY KEY,
			name TEXT NOT NULL UNIQUE
		)`,
		`CREATE TABLE user_teams (
			user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
			team_id TEXT NOT NULL REFERENCES teams(id) ON DELETE CASCADE,
			PRIMARY KEY (user_id, team_id)
		)`,
		`CREATE INDEX user_teams_team ON user_teams (team_id)`,
		`CREATE TABLE settings (
			name  TEXT PRIMARY KEY,
			value TEXT NOT NULL
		)`,
		`CREATE TABLE calls (
			id              TEXT PRIMARY KEY,
			node            TEXT NOT NULL,
			kind            TEXT NOT NULL,
			direction       TEXT NOT NULL,
			state           TEXT NOT NULL,
			agent_name      TEXT NOT NULL,
			agent_ext       TEXT NOT NULL,
			customer_number TEXT NOT NULL,
			customer_name   TEXT NOT NULL,
			started_at      TEXT NOT NULL,
			answered_at     TEXT,
			ended_at        TEXT,
			end_reason      TEXT NOT NULL
		)`,
		`CREATE INDEX calls_started ON calls (started_at)`,
		`CREATE INDEX calls_node_state ON calls (node, state)`,
		`CREATE INDEX calls_agent_started ON calls (agent_ext, started_at)`,
		`CREATE TABLE monitors (
			id         TEXT PRIMARY KEY,
			call_id    TEXT NOT NULL REFERENCES calls(id) ON DELETE CASCADE,
			user_name  TEXT NOT NULL,
			user_ext   TEXT NOT NULL,
			started_at TEXT NOT NULL,
			ended_at   TEXT,
			end_reason TEXT NOT NULL
		)`,
		`CREATE INDEX monitors_call ON monitors (call_id, started_at)`,
		`CREATE TABLE monitor_modes (
			monitor_id TEXT NOT NULL REFERENCES monitors(id) ON DELETE CASCADE,
			seq        INTEGER NOT NULL,
			mode       TEXT NOT NULL,
			at         TEXT NOT NULL,
			PRIMARY KEY (monitor_id, seq)
		)`,
	}},
}

// migrate applies the pending migrations, each in its own transaction. The
// check for "already applied" runs inside that transaction, so two processes
// opening the same database at once (serve and `user add`) apply each
// migration once.
func (s *sqlStore) migrate(ctx context.Context) error {
	if _, err := s.db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER PRIMARY KEY,
		name       TEXT NOT NULL,
		applied_at TEXT NOT NULL
	)`); err != nil {
		return fmt.Errorf("create schema_migrations: %w", err)
	}
	latest := migrations[len(migrations)-1].version
	var newest sql.NullInt64
	if err := s.row(ctx, `SELECT MAX(version) FROM schema_migrations`).Scan(&newest); err != nil {
		return fmt.Errorf("read schema version: %w", err)
	}
	if newest.Valid && int(newest.Int64) > latest {
		return fmt.Errorf("the database has schema version %d, newer than this ringside-media knows (%d): run a newer ringside-media", newest.Int64, latest)
	}
	for _, m := range migrations {
		err := s.inTx(ctx, func(tx *sqlTx) error {
			var n int
			if err := tx.row(ctx, `SELECT COUNT(*) FROM schema_migrations WHERE version = ?`, m.version).Scan(&n); err != nil {
				return err
			}
			if n > 0 {
				return nil
			}
			for _, stmt := range m.stmts {
				if _, err := tx.exec(ctx, stmt); err != nil {
					return err
				}
			}
			_, err := tx.exec(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`,
				m.version, m.name, formatTime(time.Now()))
			return err
		})
		if err != nil {
			return fmt.Errorf("migration %d (%s): %w", m.version, m.name, err)
		}
	}
	return nil
}
