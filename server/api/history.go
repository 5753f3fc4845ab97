package api

import (
	"context"
	"net/http"
	"slices"
	"strconv"
	"time"

	"ringside/server/calls"
	"ringside/server/store"
)

// historyCall is one call of GET /api/history: the call object's fields, how it ended,
// and who monitored it, when and in which modes (as far as the caller may see).
type historyCall struct {
	ID                  string           `json:"id"`
	Node                string           `json:"node"`
	Kind                string           `json:"kind"`
	State               string           `json:"state"`
	Direction           string           `json:"direction"`
	Agent               calls.Party      `json:"agent"`
	Customer            calls.Customer   `json:"customer"`
	StartedAt           time.Time        `json:"started_at"`
	AnsweredAt          *time.Time       `json:"answered_at"`
	EndedAt             *time.Time       `json:"ended_at"`
	EndReason           string           `json:"end_reason"`
	Active              bool             `json:"active"` // still going on this server: Monitor Call applies
	Monitorable         bool             `json:"monitorable"`
	UnmonitorableReason string           `json:"unmonitorable_reason,omitempty"`
	Monitors            []historyMonitor `json:"monitors"`
}

type historyMonitor struct {
	ID        string       `json:"id"`
	User      string       `json:"user"`
	Ext       string       `json:"ext"`
	StartedAt time.Time    `json:"started_at"`
	EndedAt   *time.Time   `json:"ended_at"`
	EndReason string       `json:"end_reason"`
	Modes     []modeChange `json:"modes"`
}

type modeChange struct {
	Mode string    `json:"mode"`
	At   time.Time `json:"at"`
}

// history is GET /api/history?limit=N: ended and active calls, newest first, limited as for
// GET /api/calls.
func (a *API) history(w http.ResponseWriter, r *http.Request, u store.User) error {
	limit := store.DefaultHistoryLimit
	if s := r.URL.Query().Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			return errorf(http.StatusBadRequest, "limit must be a whole number from 1 to %d", store.MaxHistoryLimit)
		}
		limit = min(n, store.MaxHistoryLimit)
	}
	exts, err := a.visibleAgentExts(r.Context(), u)
	if err != nil {
		return err
	}
	recs, err := a.cfg.Store.History(r.Context(), store.HistoryFilter{Limit: limit, AgentExts: exts})
	if err != nil {
		return err
	}
	active := make(map[string]calls.Call)
	for _, c := range a.cfg.Calls.Active() {
		active[c.ID] = c
	}
	all := calls.SeesMonitors(u)
	out := make([]historyCall, 0, len(recs))
	for _, rec := range recs {
		h := historyCall{
			ID:         rec.ID,
			Node:       rec.Node,
			Kind:       rec.Kind,
			State:      rec.State,
			Direction:  rec.Direction,
			Agent:      calls.Party{Name: rec.AgentName, Ext: rec.AgentExt},
			Customer:   calls.Customer{Number: rec.CustomerNumber, Name: rec.CustomerName},
			StartedAt:  rec.StartedAt,
			AnsweredAt: rec.AnsweredAt,
			EndedAt:    rec.EndedAt,
			EndReason:  rec.EndReason,
			Monitors:   []historyMonitor{},
		}
		if c, ok := active[rec.ID]; ok && c.State != calls.StateEnded {
			h.Active, h.Monitorable, h.UnmonitorableReason = true, c.Monitorable, c.UnmonitorableReason
		} else if rec.Kind == store.KindLive {
			h.UnmonitorableReason = calls.LiveReason
		} else {
			h.UnmonitorableReason = "the call has ended"
		}
		for _, m := range rec.Monitors {
			if !all && m.UserName != u.Name {
				continue
			}
			hm := historyMonitor{
				ID:        m.ID,
				User:      m.UserName,
				Ext:       m.UserExt,
				StartedAt: m.StartedAt,
				EndedAt:   m.EndedAt,
				EndReason: m.EndReason,
				Modes:     make([]modeChange, 0, len(m.Modes)),
			}
			for _, mc := range m.Modes {
				hm.Modes = append(hm.Modes, modeChange{Mode: mc.Mode, At: mc.At})
			}
			h.Monitors = append(h.Monitors, hm)
		}
		out = append(out, h)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// visibleAgentExts returns the agents whose calls u may see in history, with the rule of
// calls.CanSee: nil (all) for an admin or a supervisor without teams, the agents of its
// teams and itself for a supervisor with teams, and its own extension for everyone else.
func (a *API) visibleAgentExts(ctx context.Context, u store.User) ([]string, error) {
	switch {
	case u.Can(store.PermAdmin):
		return nil, nil
	case !u.Can(store.PermMonitor):
		return []string{u.Ext}, nil
	case len(u.Teams) == 0:
		return nil, nil
	}
	users, err := a.cfg.Store.Users(ctx)
	if err != nil {
		return nil, err
	}
	exts := []string{u.Ext}
	for _, other := range users {
		if other.Ext != u.Ext && slices.ContainsFunc(other.Teams, func(t string) bool { return slices.Contains(u.Teams, t) }) {
			exts = append(exts, other.Ext)
		}
	}
	return exts, nil
}
