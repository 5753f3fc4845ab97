// Package calls is the shared model of active calls and monitor sessions: what the SIP
// side creates and changes, what the API shows and the events carry, and who may see or
// monitor which call.
package calls

import (
	"context"
	"errors"
	"slices"
	"time"

	"ringside/server/room"
	"ringside/server/store"
)

// Kind tells a phone call (anchored on ringside-media, monitorable) from a live call
// (browser to softphone, end-to-end encrypted, never monitorable).
type Kind string

const (
	KindPhone Kind = "phone"
	KindLive  Kind = "live"
)

// State of a call as users see it.
type State string

const (
	StateRinging State = "ringing"
	StateTalking State = "talking"
	StateHeld    State = "held"
	StateEnded   State = "ended"
)

// Sentinel errors shared by the API (as HTTP statuses) and SIP (as response codes).
var (
	ErrNotFound       = errors.New("no such call")
	ErrCallEnded      = errors.New("the call has ended and can't be monitored")
	ErrLiveCall       = errors.New("live calls are end-to-end encrypted and can't be monitored")
	ErrNotAllowed     = errors.New("you don't have permission to monitor calls")
	ErrOutsideTeams   = errors.New("this agent is not in your teams")
	ErrNoMonitor      = errors.New("no such monitor session")
	ErrNotYourSession = errors.New("this monitor session belongs to another supervisor")
	ErrBadMode        = errors.New("mode must be listen, whisper or barge")
	ErrOwnCall        = errors.New("this is your own call; you can't monitor yourself")
)

// LiveReason is the unmonitorable_reason of live calls.
const LiveReason = "live calls are end-to-end encrypted"

// Party is the agent side of a call.
type Party struct {
	Name  string   `json:"name"`
	Ext   string   `json:"ext"`
	Teams []string `json:"-"`
}

// Customer is the far end of a call.
type Customer struct {
	Number string `json:"number"`
	Name   string `json:"name"`
}

// Monitor is one supervisor's session on a call.
type Monitor struct {
	ID     string    `json:"id"`
	CallID string    `json:"call_id"`
	User   string    `json:"user"`
	Ext    string    `json:"ext"`
	Mode   room.Mode `json:"mode"`
	Since  time.Time `json:"since"`
}

// Call is a snapshot of an active (or just ended) call; values, safe to hand around.
type Call struct {
	ID                  string     `json:"id"`
	Node                string     `json:"node"`
	Kind                Kind       `json:"kind"`
	State               State      `json:"state"`
	Direction           string     `json:"direction"` // inbound (customer called in) or outbound (agent dialled out)
	Agent               Party      `json:"agent"`
	Customer            Customer   `json:"customer"`
	StartedAt           time.Time  `json:"started_at"`
	AnsweredAt          *time.Time `json:"answered_at"`
	EndedAt             *time.Time `json:"ended_at"`
	Monitorable         bool       `json:"monitorable"`
	UnmonitorableReason string     `json:"unmonitorable_reason,omitempty"`
	Monitors            []Monitor  `json:"monitors"`
	// TargetDialog names the agent leg's dialog for RFC 4538 Target-Dialog
	// ("callid;local-tag=..;remote-tag=..", tags as the agent sees them).
	TargetDialog string `json:"-"`
}

// Record is the call's history row as the store keeps it (monitors are recorded apart).
func (c Call) Record() store.CallRecord {
	return store.CallRecord{
		ID: c.ID, Node: c.Node, Kind: string(c.Kind), Direction: c.Direction, State: string(c.State),
		AgentName: c.Agent.Name, AgentExt: c.Agent.Ext,
		CustomerNumber: c.Customer.Number, CustomerName: c.Customer.Name,
		StartedAt: c.StartedAt, AnsweredAt: c.AnsweredAt,
	}
}

// NewestFirst sorts calls as lists show them: the latest started first.
func NewestFirst(cs []Call) {
	slices.SortStableFunc(cs, func(a, b Call) int { return b.StartedAt.Compare(a.StartedAt) })
}

// Whisper tells whether any supervisor talks to the agent right now.
func (c Call) Whisper() bool {
	return slices.ContainsFunc(c.Monitors, func(m Monitor) bool { return m.Mode == room.Whisper || m.Mode == room.Barge })
}

// Registry is what the SIP side offers the API: the active calls and control over monitors.
type Registry interface {
	Active() []Call
	Call(id string) (Call, bool)
	Monitor(id string) (Monitor, bool)
	// SetMonitorMode switches a monitor's mode as DTMF would.
	SetMonitorMode(ctx context.Context, id string, mode room.Mode) error
	// EndMonitor hangs up the supervisor's leg (BYE) and removes it from the room.
	EndMonitor(ctx context.Context, id string) error
}

// CanSee tells whether u may see call c: an agent its own calls, a user with monitor its
// teams' agents' calls (all when it has no teams), an admin every call.
func CanSee(u store.User, c Call) bool {
	switch {
	case u.Can(store.PermAdmin):
		return true
	case c.Agent.Ext == u.Ext:
		return true
	case u.Can(store.PermMonitor):
		return inTeams(u, c.Agent.Teams)
	}
	return false
}

// CanMonitor returns nil when u may monitor c now, else the reason as a sentinel error.
func CanMonitor(u store.User, c Call) error {
	switch {
	case !u.Can(store.PermMonitor) && !u.Can(store.PermAdmin):
		return ErrNotAllowed
	case !u.Can(store.PermAdmin) && !inTeams(u, c.Agent.Teams):
		return ErrOutsideTeams
	case c.Agent.Ext != "" && c.Agent.Ext == u.Ext:
		return ErrOwnCall
	case c.Kind == KindLive:
		return ErrLiveCall
	case c.State == StateEnded:
		return ErrCallEnded
	}
	return nil
}

// SeesMonitors tells whether u may see who monitors a call (DESIGN: monitor + admin).
func SeesMonitors(u store.User) bool {
	return u.Can(store.PermAdmin)
}

func inTeams(u store.User, agentTeams []string) bool {
	if len(u.Teams) == 0 {
		return true
	}
	for _, t := range u.Teams {
		if slices.Contains(agentTeams, t) {
			return true
		}
	}
	return false
}
