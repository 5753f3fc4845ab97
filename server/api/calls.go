package api

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"

	"ringside/server/calls"
	"ringside/server/room"
	"ringside/server/store"
)

// listCalls is GET /api/calls: the active calls the caller may see, oldest first.
func (a *API) listCalls(w http.ResponseWriter, r *http.Request, u store.User) error {
	notify := a.notify.Load()
	out := []callView{}
	for _, c := range a.cfg.Calls.Active() {
		if calls.CanSee(u, c) {
			out = append(out, viewCall(u, c, notify))
		}
	}
	slices.SortFunc(out, func(x, y callView) int {
		return cmp.Or(x.StartedAt.Compare(y.StartedAt), cmp.Compare(x.ID, y.ID))
	})
	writeJSON(w, http.StatusOK, out)
	return nil
}

// getCall is GET /api/calls/{id}. A call the caller may not see is answered 404 like one
// that does not exist, so its existence is not revealed.
func (a *API) getCall(w http.ResponseWriter, r *http.Request, u store.User) error {
	c, _, err := a.findCall(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	if !calls.CanSee(u, c) {
		return errNoCall
	}
	writeJSON(w, http.StatusOK, viewCall(u, c, a.notify.Load()))
	return nil
}

// findCall returns the call from the registry, or else as the store recorded it (an ended
// call, for Call Details opened from history); active is false for the latter.
func (a *API) findCall(ctx context.Context, id string) (c calls.Call, active bool, err error) {
	if c, ok := a.cfg.Calls.Call(id); ok {
		return c, true, nil
	}
	rec, err := a.cfg.Store.Call(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return calls.Call{}, false, errNoCall
	}
	if err != nil {
		return calls.Call{}, false, fmt.Errorf("read call %s: %w", id, err)
	}
	c, err = a.recordedCall(ctx, rec)
	return c, false, err
}

// recordedCall turns a history record into a call object. It has no live monitors and can't
// be monitored: the registry, not the store, knows the calls that can.
func (a *API) recordedCall(ctx context.Context, rec store.CallRecord) (calls.Call, error) {
	c := calls.Call{
		ID:          rec.ID,
		Node:        rec.Node,
		Kind:        calls.Kind(rec.Kind),
		State:       calls.State(rec.State),
		Direction:   rec.Direction,
		Agent:       calls.Party{Name: rec.AgentName, Ext: rec.AgentExt},
		Customer:    calls.Customer{Number: rec.CustomerNumber, Name: rec.CustomerName},
		StartedAt:   rec.StartedAt,
		AnsweredAt:  rec.AnsweredAt,
		EndedAt:     rec.EndedAt,
		Monitorable: false,
	}
	switch {
	case c.Kind == calls.KindLive:
		c.UnmonitorableReason = calls.LiveReason
	case c.EndedAt != nil || c.State == calls.StateEnded || rec.State == store.StateInterrupted:
		c.UnmonitorableReason = "the call has ended"
	default:
		c.UnmonitorableReason = "the call is not active on this server"
	}
	// Team membership decides who may see the call; it comes from the agent's user.
	if agent, err := a.cfg.Store.UserByExt(ctx, rec.AgentExt); err == nil {
		c.Agent.Teams = agent.Teams
	} else if !errors.Is(err, store.ErrNotFound) {
		return calls.Call{}, fmt.Errorf("read agent %s of call %s: %w", rec.AgentExt, rec.ID, err)
	}
	return c, nil
}

type modeRequest struct {
	Mode string `json:"mode"`
}

func (req modeRequest) parse() (room.Mode, error) {
	m, err := room.ParseMode(req.Mode)
	if err != nil {
		return "", &httpError{status: http.StatusBadRequest, msg: calls.ErrBadMode.Error()}
	}
	return m, nil
}

type monitorResponse struct {
	CallID       string    `json:"call_id"`
	SIPURI       string    `json:"sip_uri"`
	TargetDialog string    `json:"target_dialog"`
	Mode         room.Mode `json:"mode"`
}

// monitorCall is POST /api/calls/{id}/monitor: it checks that the caller may monitor the
// call now and tells its softphone what to INVITE. The monitor session itself starts with
// that INVITE.
func (a *API) monitorCall(w http.ResponseWriter, r *http.Request, u store.User) error {
	if !u.Can(store.PermMonitor) && !u.Can(store.PermAdmin) {
		return monitorError(calls.ErrNotAllowed)
	}
	var req modeRequest
	if err := decodeJSON(w, r, &req); err != nil {
		return err
	}
	mode, err := req.parse()
	if err != nil {
		return err
	}
	c, active, err := a.findCall(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	if err := calls.CanMonitor(u, c); err != nil {
		return monitorError(err)
	}
	switch {
	case !active:
		return monitorError(calls.ErrCallEnded)
	case !c.Monitorable:
		reason := cmp.Or(c.UnmonitorableReason, "this call can't be monitored")
		return errorf(http.StatusConflict, "%s", reason)
	case c.Agent.Ext == "":
		return errorf(http.StatusConflict, "the call has no agent yet; try again once an agent has it")
	}
	writeJSON(w, http.StatusOK, monitorResponse{
		CallID:       c.ID,
		SIPURI:       fmt.Sprintf("sip:*%c%s@%s", modeDigit(mode), c.Agent.Ext, a.sipHost(r)),
		TargetDialog: c.TargetDialog,
		Mode:         mode,
	})
	return nil
}

// modeDigit is the feature-code digit of a mode (DESIGN, SIP: *1 listen, *2 whisper, *3 barge).
func modeDigit(m room.Mode) rune {
	switch m {
	case room.Whisper:
		return '2'
	case room.Barge:
		return '3'
	}
	return '1'
}

// sipHost is where monitor INVITEs go: Config.SIPHost, else the host the softphone reached
// the API on, at the standard SIP port.
func (a *API) sipHost(r *http.Request) string {
	if a.cfg.SIPHost != "" {
		return a.cfg.SIPHost
	}
	host, _, err := net.SplitHostPort(r.Host)
	if err != nil {
		host = r.Host
	}
	return net.JoinHostPort(host, "5060")
}

// monitorError maps the sentinel errors of package calls to statuses; the sentence is the
// sentinel's own.
func monitorError(err error) error {
	status := 0
	switch {
	case errors.Is(err, calls.ErrNotAllowed), errors.Is(err, calls.ErrOutsideTeams),
		errors.Is(err, calls.ErrNotYourSession):
		status = http.StatusForbidden
	case errors.Is(err, calls.ErrLiveCall), errors.Is(err, calls.ErrCallEnded), errors.Is(err, calls.ErrOwnCall):
		status = http.StatusConflict
	case errors.Is(err, calls.ErrNotFound):
		return errNoCall
	case errors.Is(err, calls.ErrNoMonitor):
		return errNoMonitor
	case errors.Is(err, calls.ErrBadMode):
		status = http.StatusBadRequest
	default:
		return err
	}
	return &httpError{status: status, msg: err.Error()}
}

// ownMonitor returns the monitor session named in the path if u may control it: u is the
// supervisor whose session it is, or an admin.
func (a *API) ownMonitor(r *http.Request, u store.User) (calls.Monitor, error) {
	m, ok := a.cfg.Calls.Monitor(r.PathValue("id"))
	if !ok {
		return calls.Monitor{}, errNoMonitor
	}
	if m.User != u.Name && !u.Can(store.PermAdmin) {
		return calls.Monitor{}, monitorError(calls.ErrNotYourSession)
	}
	return m, nil
}

// setMonitorMode is PUT /api/monitors/{id} {"mode"}; it answers the session after the switch.
func (a *API) setMonitorMode(w http.ResponseWriter, r *http.Request, u store.User) error {
	m, err := a.ownMonitor(r, u)
	if err != nil {
		return err
	}
	var req modeRequest
	if err := decodeJSON(w, r, &req); err != nil {
		return err
	}
	mode, err := req.parse()
	if err != nil {
		return err
	}
	if err := a.cfg.Calls.SetMonitorMode(r.Context(), m.ID, mode); err != nil {
		return monitorError(err)
	}
	a.log.Info("monitor mode set over the API", "monitor", m.ID, "call", m.CallID, "mode", mode, "by", u.Name)
	if now, ok := a.cfg.Calls.Monitor(m.ID); ok {
		m = now
	} else {
		m.Mode = mode
	}
	writeJSON(w, http.StatusOK, m)
	return nil
}

// endMonitor is DELETE /api/monitors/{id}: the supervisor's leg is hung up.
func (a *API) endMonitor(w http.ResponseWriter, r *http.Request, u store.User) error {
	m, err := a.ownMonitor(r, u)
	if err != nil {
		return err
	}
	if err := a.cfg.Calls.EndMonitor(r.Context(), m.ID); err != nil {
		return monitorError(err)
	}
	a.log.Info("monitor ended over the API", "monitor", m.ID, "call", m.CallID, "by", u.Name)
	w.WriteHeader(http.StatusNoContent)
	return nil
}
