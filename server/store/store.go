// Package store keeps what ringside-media must remember across restarts: users
// and their teams, settings, and the history of calls and who monitored them.
//
// Store is an interface over database/sql with portable SQL and versioned
// migrations. SQLite (modernc.org/sqlite, pure Go) is the embedded default;
// a PostgreSQL driver can be added later without changing a caller.
package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"
)

var (
	ErrNotFound       = errors.New("not found")
	ErrBadCredentials = errors.New("wrong user name or password")
	ErrExists         = errors.New("already taken") // name or ext taken
)

// Realm is the SIP digest realm used for the HA1s.
const Realm = "ringside"

// Permissions.
const (
	PermCall    = "call"
	PermMonitor = "monitor"
	PermAdmin   = "admin"
)

// Roles are presets of permissions (DESIGN.md, Permissions).
const (
	RoleAgent      = "agent"
	RoleSupervisor = "supervisor"
	RoleAdmin      = "admin"
)

// Roles lists the valid roles, least privileged first.
var Roles = []string{RoleAgent, RoleSupervisor, RoleAdmin}

// RolePermissions returns the permissions a role grants.
func RolePermissions(role string) ([]string, error) {
	switch role {
	case RoleAgent:
		return []string{PermCall}, nil
	case RoleSupervisor:
		return []string{PermCall, PermMonitor}, nil
	case RoleAdmin:
		return []string{PermCall, PermMonitor, PermAdmin}, nil
	}
	return nil, fmt.Errorf("unknown role %q: use agent, supervisor or admin", role)
}

// Call kinds, states and monitor modes as recorded in history.
const (
	KindPhone = "phone"
	KindLive  = "live"

	StateRinging     = "ringing"
	StateTalking     = "talking"
	StateHeld        = "held"
	StateEnded       = "ended"
	StateInterrupted = "interrupted"

	ModeListen  = "listen"
	ModeWhisper = "whisper"
	ModeBarge   = "barge"
)

// ReasonInterrupted is the end reason MarkInterrupted records.
const ReasonInterrupted = "server stopped unexpectedly"

type User struct {
	ID          string    `json:"id"`
	Name        string    `json:"name"`
	Ext         string    `json:"ext"`
	Role        string    `json:"role"`
	Permissions []string  `json:"permissions"`
	Teams       []string  `json:"teams"`
	HA1MD5      string    `json:"-"` // hex MD5(ext:realm:password); the SIP digest username is the extension
	HA1SHA256   string    `json:"-"` // hex SHA-256(ext:realm:password)
	CreatedAt   time.Time `json:"created_at"`
}

// Can reports whether the user has the permission.
func (u User) Can(perm string) bool {
	return slices.Contains(u.Permissions, perm)
}

// NewUser is what AddUser takes. In UpdateUser, empty fields keep the old
// values and nil Teams keeps the old teams (a non-nil empty slice clears them).
type NewUser struct {
	Name, Ext, Password, Role string
	Teams                     []string
}

type CallRecord struct {
	ID, Node, Kind, Direction, State                  string // kind phone|live; state ringing|talking|held|ended|interrupted
	AgentName, AgentExt, CustomerNumber, CustomerName string
	StartedAt                                         time.Time
	AnsweredAt, EndedAt                               *time.Time
	EndReason                                         string          // e.g. "customer hung up", "agent hung up", "server shutdown"
	Monitors                                          []MonitorRecord // filled by History and Call, oldest first
}

type MonitorRecord struct {
	ID, CallID, UserName, UserExt string
	StartedAt                     time.Time
	EndedAt                       *time.Time
	EndReason                     string
	Modes                         []ModeChange // every mode in order; the first is the mode it joined in
}

type ModeChange struct {
	Mode string
	At   time.Time
}

const (
	DefaultHistoryLimit = 50
	MaxHistoryLimit     = 500
)

type HistoryFilter struct {
	Limit     int      // default 50, max 500
	AgentExts []string // nil = all calls; non-nil = only calls of these agents (empty non-nil = none)
}

// Store is everything ringside-media keeps. Every write is committed before
// the method returns.
type Store interface {
	// AddUser validates (name and ext non-empty, ext digits only, password
	// at least 4 characters, known role), hashes the password for API login
	// and stores the SIP digest HA1s. Teams are created on demand.
	AddUser(ctx context.Context, u NewUser) (User, error)
	// UpdateUser changes the user called name. Empty fields keep their old
	// values; nil Teams keeps the teams. A new password recomputes all
	// hashes; a new extension needs the password too, since the HA1s hash it.
	UpdateUser(ctx context.Context, name string, u NewUser) (User, error)
	User(ctx context.Context, name string) (User, error)
	UserByExt(ctx context.Context, ext string) (User, error)
	Users(ctx context.Context) ([]User, error) // sorted by name
	// CheckPassword verifies the API login; it takes the same time whether
	// the user exists or not and returns ErrBadCredentials for both.
	CheckPassword(ctx context.Context, name, password string) (User, error)

	Setting(ctx context.Context, key string) (value string, ok bool, err error)
	SetSetting(ctx context.Context, key, value string) error
	Settings(ctx context.Context) (map[string]string, error)

	CallStarted(ctx context.Context, c CallRecord) error // insert
	// CallUpdated records state, answered_at and the customer and agent
	// fields; empty fields and nil times keep their old values.
	CallUpdated(ctx context.Context, c CallRecord) error
	// CallEnded sets state ended, ended_at and the reason, and ends the
	// call's monitors still open with the same time and reason. A call that
	// has already ended keeps its first end.
	CallEnded(ctx context.Context, id string, at time.Time, reason string) error
	MonitorStarted(ctx context.Context, m MonitorRecord) error // with its first mode in m.Modes[0]
	MonitorModeChanged(ctx context.Context, monitorID, mode string, at time.Time) error
	MonitorEnded(ctx context.Context, monitorID string, at time.Time, reason string) error
	Call(ctx context.Context, id string) (CallRecord, error)            // with monitors and modes
	History(ctx context.Context, f HistoryFilter) ([]CallRecord, error) // newest first, with monitors and modes
	// MarkInterrupted closes calls (and their monitors) of this node that
	// were left open by a crash: state "interrupted", ended_at = at, reason
	// ReasonInterrupted. It returns how many calls it closed.
	MarkInterrupted(ctx context.Context, node string, at time.Time) (int, error)
	Close() error
}

// Setting keys.
const SettingNotifyAgentOnMonitor = "notify-agent-on-monitor" // default "true" when unset

// NotifyAgentOnMonitor reports whether agents are told they are monitored.
func NotifyAgentOnMonitor(ctx context.Context, s Store) (bool, error) {
	v, ok, err := s.Setting(ctx, SettingNotifyAgentOnMonitor)
	if err != nil || !ok {
		return true, err
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return true, fmt.Errorf("setting %s is %q, want true or false", SettingNotifyAgentOnMonitor, v)
	}
	return b, nil
}

// checkSetting validates the values of the settings the product knows and
// returns the canonical form to store.
func checkSetting(key, value string) (string, error) {
	if key == "" {
		return "", errors.New("setting name is empty")
	}
	switch key {
	case SettingNotifyAgentOnMonitor:
		b, err := strconv.ParseBool(value)
		if err != nil {
			return "", fmt.Errorf("setting %s takes true or false, not %q", key, value)
		}
		return strconv.FormatBool(b), nil
	}
	return value, nil
}
