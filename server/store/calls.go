package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

func validMode(mode string) error {
	switch mode {
	case ModeListen, ModeWhisper, ModeBarge:
		return nil
	}
	return fmt.Errorf("unknown monitor mode %q: use listen, whisper or barge", mode)
}

func orNow(t time.Time) time.Time {
	if t.IsZero() {
		return time.Now()
	}
	return t
}

func (s *sqlStore) CallStarted(ctx context.Context, c CallRecord) error {
	if c.ID == "" {
		return errors.New("record call: no call id")
	}
	if c.Kind == "" {
		c.Kind = KindPhone
	}
	if c.State == "" {
		c.State = StateRinging
	}
	err := s.inTx(ctx, func(tx *sqlTx) error {
		dup, err := tx.exists(ctx, `SELECT COUNT(*) FROM calls WHERE id = ?`, c.ID)
		if err != nil {
			return err
		}
		if dup {
			return fmt.Errorf("call id %s is %w", c.ID, ErrExists)
		}
		_, err = tx.exec(ctx, `INSERT INTO calls (id, node, kind, direction, state, agent_name, agent_ext,
			customer_number, customer_name, started_at, answered_at, ended_at, end_reason)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			c.ID, c.Node, c.Kind, c.Direction, c.State, c.AgentName, c.AgentExt,
			c.CustomerNumber, c.CustomerName, formatTime(orNow(c.StartedAt)),
			formatTimePtr(c.AnsweredAt), formatTimePtr(c.EndedAt), c.EndReason)
		return err
	})
	if err != nil {
		return fmt.Errorf("record call %s: %w", c.ID, err)
	}
	return nil
}

// CallUpdated leaves the state of an ended call alone, so an update that
// races the end can't reopen it.
func (s *sqlStore) CallUpdated(ctx context.Context, c CallRecord) error {
	res, err := s.c().exec(ctx, `UPDATE calls SET
			kind = COALESCE(NULLIF(?, ''), kind),
			direction = COALESCE(NULLIF(?, ''), direction),
			state = CASE WHEN ended_at IS NULL THEN COALESCE(NULLIF(?, ''), state) ELSE state END,
			agent_name = COALESCE(NULLIF(?, ''), agent_name),
			agent_ext = COALESCE(NULLIF(?, ''), agent_ext),
			customer_number = COALESCE(NULLIF(?, ''), customer_number),
			customer_name = COALESCE(NULLIF(?, ''), customer_name),
			answered_at = COALESCE(?, answered_at),
			ended_at = COALESCE(?, ended_at),
			end_reason = COALESCE(NULLIF(?, ''), end_reason)
		WHERE id = ?`,
		c.Kind, c.Direction, c.State, c.AgentName, c.AgentExt, c.CustomerNumber, c.CustomerName,
		formatTimePtr(c.AnsweredAt), formatTimePtr(c.EndedAt), c.EndReason, c.ID)
	if err != nil {
		return fmt.Errorf("update call %s: %w", c.ID, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("update call %s: %w", c.ID, err)
	} else if n == 0 {
		return fmt.Errorf("update call: call %s %w", c.ID, ErrNotFound)
	}
	return nil
}

func (s *sqlStore) CallEnded(ctx context.Context, id string, at time.Time, reason string) error {
	end := formatTime(orNow(at))
	err := s.inTx(ctx, func(tx *sqlTx) error {
		res, err := tx.exec(ctx, `UPDATE calls SET state = ?, ended_at = ?, end_reason = ?
			WHERE id = ? AND ended_at IS NULL`, StateEnded, end, reason, id)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			found, err := tx.exists(ctx, `SELECT COUNT(*) FROM calls WHERE id = ?`, id)
			if err != nil {
				return err
			}
			if !found {
				return fmt.Errorf("call %s %w", id, ErrNotFound)
			}
		}
		_, err = tx.exec(ctx, `UPDATE monitors SET ended_at = ?, end_reason = ?
			WHERE call_id = ? AND ended_at IS NULL`, end, reason, id)
		return err
	})
	if err != nil {
		return fmt.Errorf("end call %s: %w", id, err)
	}
	return nil
}

func (s *sqlStore) MonitorStarted(ctx context.Context, m MonitorRecord) error {
	if m.ID == "" || m.CallID == "" {
		return errors.New("record monitor: monitor id and call id are needed")
	}
	if len(m.Modes) == 0 {
		return fmt.Errorf("record monitor %s: no mode to start in", m.ID)
	}
	for _, mc := range m.Modes {
		if err := validMode(mc.Mode); err != nil {
			return fmt.Errorf("record monitor %s: %w", m.ID, err)
		}
	}
	if m.StartedAt.IsZero() {
		m.StartedAt = orNow(m.Modes[0].At)
	}
	err := s.inTx(ctx, func(tx *sqlTx) error {
		found, err := tx.exists(ctx, `SELECT COUNT(*) FROM calls WHERE id = ?`, m.CallID)
		if err != nil {
			return err
		}
		if !found {
			return fmt.Errorf("call %s %w", m.CallID, ErrNotFound)
		}
		dup, err := tx.exists(ctx, `SELECT COUNT(*) FROM monitors WHERE id = ?`, m.ID)
		if err != nil {
			return err
		}
		if dup {
			return fmt.Errorf("monitor id %s is %w", m.ID, ErrExists)
		}
		_, err = tx.exec(ctx, `INSERT INTO monitors (id, call_id, user_name, user_ext, started_at, ended_at, end_reason)
			VALUES (?, ?, ?, ?, ?, ?, ?)`,
			m.ID, m.CallID, m.UserName, m.UserExt, formatTime(m.StartedAt), formatTimePtr(m.EndedAt), m.EndReason)
		if err != nil {
			return err
		}
		for i, mc := range m.Modes {
			at := mc.At
			if at.IsZero() {
				at = m.StartedAt
			}
			if _, err := tx.exec(ctx, `INSERT INTO monitor_modes (monitor_id, seq, mode, at) VALUES (?, ?, ?, ?)`,
				m.ID, i+1, mc.Mode, formatTime(at)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("record monitor %s: %w", m.ID, err)
	}
	return nil
}

// MonitorModeChanged appends the mode to the monitor's modes. A change to
// the mode it is already in records nothing.
func (s *sqlStore) MonitorModeChanged(ctx context.Context, monitorID, mode string, at time.Time) error {
	if err := validMode(mode); err != nil {
		return fmt.Errorf("record mode of monitor %s: %w", monitorID, err)
	}
	err := s.inTx(ctx, func(tx *sqlTx) error {
		var ended sql.NullString
		err := tx.row(ctx, `SELECT ended_at FROM monitors WHERE id = ?`, monitorID).Scan(&ended)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("monitor %s %w", monitorID, ErrNotFound)
		}
		if err != nil {
			return err
		}
		if ended.Valid {
			return fmt.Errorf("monitor %s has already ended", monitorID)
		}
		var seq int
		var last string
		err = tx.row(ctx, `SELECT seq, mode FROM monitor_modes WHERE monitor_id = ?
			ORDER BY seq DESC LIMIT 1`, monitorID).Scan(&seq, &last)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		if last == mode {
			return nil
		}
		_, err = tx.exec(ctx, `INSERT INTO monitor_modes (monitor_id, seq, mode, at) VALUES (?, ?, ?, ?)`,
			monitorID, seq+1, mode, formatTime(orNow(at)))
		return err
	})
	if err != nil {
		return fmt.Errorf("record mode of monitor %s: %w", monitorID, err)
	}
	return nil
}

// MonitorEnded closes the monitor; one that has already ended keeps its
// first end.
func (s *sqlStore) MonitorEnded(ctx context.Context, monitorID string, at time.Time, reason string) error {
	err := s.inTx(ctx, func(tx *sqlTx) error {
		res, err := tx.exec(ctx, `UPDATE monitors SET ended_at = ?, end_reason = ?
			WHERE id = ? AND ended_at IS NULL`, formatTime(orNow(at)), reason, monitorID)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n > 0 {
			return err
		}
		found, err := tx.exists(ctx, `SELECT COUNT(*) FROM monitors WHERE id = ?`, monitorID)
		if err != nil {
			return err
		}
		if !found {
			return fmt.Errorf("monitor %s %w", monitorID, ErrNotFound)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("end monitor %s: %w", monitorID, err)
	}
	return nil
}

func (s *sqlStore) MarkInterrupted(ctx context.Context, node string, at time.Time) (int, error) {
	end := formatTime(orNow(at))
	var n int64
	err := s.inTx(ctx, func(tx *sqlTx) error {
		// Open calls are found by state, which calls_node_state indexes.
		const open = `node = ? AND state NOT IN ('ended', 'interrupted')`
		_, err := tx.exec(ctx, `UPDATE monitors SET ended_at = ?, end_reason = ?
			WHERE ended_at IS NULL AND call_id IN (SELECT id FROM calls WHERE `+open+`)`,
			end, ReasonInterrupted, node)
		if err != nil {
			return err
		}
		res, err := tx.exec(ctx, `UPDATE calls SET state = ?, ended_at = COALESCE(ended_at, ?), end_reason = ?
			WHERE `+open, StateInterrupted, end, ReasonInterrupted, node)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("mark interrupted calls of node %s: %w", node, err)
	}
	return int(n), nil
}

// ---- reading

const callColumns = `id, node, kind, direction, state, agent_name, agent_ext,
	customer_number, customer_name, started_at, answered_at, ended_at, end_reason`

func scanCall(sc scanner) (CallRecord, error) {
	var c CallRecord
	var started string
	var answered, ended sql.NullString
	err := sc.Scan(&c.ID, &c.Node, &c.Kind, &c.Direction, &c.State, &c.AgentName, &c.AgentExt,
		&c.CustomerNumber, &c.CustomerName, &started, &answered, &ended, &c.EndReason)
	if err != nil {
		return CallRecord{}, err
	}
	if c.StartedAt, err = parseTime(started); err != nil {
		return CallRecord{}, err
	}
	if c.AnsweredAt, err = parseTimePtr(answered); err != nil {
		return CallRecord{}, err
	}
	if c.EndedAt, err = parseTimePtr(ended); err != nil {
		return CallRecord{}, err
	}
	c.Monitors = []MonitorRecord{}
	return c, nil
}

func (s *sqlStore) Call(ctx context.Context, id string) (CallRecord, error) {
	c, err := scanCall(s.row(ctx, `SELECT `+callColumns+` FROM calls WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return CallRecord{}, fmt.Errorf("call %s %w", id, ErrNotFound)
	}
	if err != nil {
		return CallRecord{}, fmt.Errorf("read call %s: %w", id, err)
	}
	calls := []CallRecord{c}
	if err := s.fillMonitors(ctx, calls); err != nil {
		return CallRecord{}, fmt.Errorf("read call %s: %w", id, err)
	}
	return calls[0], nil
}

func (s *sqlStore) History(ctx context.Context, f HistoryFilter) ([]CallRecord, error) {
	calls := []CallRecord{}
	if f.AgentExts != nil && len(f.AgentExts) == 0 {
		return calls, nil
	}
	limit := f.Limit
	if limit <= 0 {
		limit = DefaultHistoryLimit
	}
	limit = min(limit, MaxHistoryLimit)

	q := `SELECT ` + callColumns + ` FROM calls`
	var args []any
	if f.AgentExts != nil {
		q += ` WHERE agent_ext IN (` + placeholders(len(f.AgentExts)) + `)`
		for _, ext := range f.AgentExts {
			args = append(args, ext)
		}
	}
	q += ` ORDER BY started_at DESC, id DESC LIMIT ?`
	args = append(args, limit)
	rows, err := s.c().query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("read history: %w", err)
	}
	for rows.Next() {
		c, err := scanCall(rows)
		if err != nil {
			rows.Close()
			return nil, fmt.Errorf("read history: %w", err)
		}
		calls = append(calls, c)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read history: %w", err)
	}
	if err := s.fillMonitors(ctx, calls); err != nil {
		return nil, fmt.Errorf("read history: %w", err)
	}
	return calls, nil
}

// fillMonitors loads the monitors and modes of all the calls in two queries.
func (s *sqlStore) fillMonitors(ctx context.Context, calls []CallRecord) error {
	if len(calls) == 0 {
		return nil
	}
	ids := make([]any, len(calls))
	callIndex := make(map[string]int, len(calls))
	for i, c := range calls {
		ids[i] = c.ID
		callIndex[c.ID] = i
	}
	in := `(` + placeholders(len(ids)) + `)`
	c := s.c()

	type ref struct{ call, mon int }
	monitors := map[string]ref{}
	rows, err := c.query(ctx, `SELECT id, call_id, user_name, user_ext, started_at, ended_at, end_reason
		FROM monitors WHERE call_id IN `+in+` ORDER BY started_at, id`, ids...)
	if err != nil {
		return err
	}
	for rows.Next() {
		var m MonitorRecord
		var started string
		var ended sql.NullString
		if err := rows.Scan(&m.ID, &m.CallID, &m.UserName, &m.UserExt, &started, &ended, &m.EndReason); err == nil {
			if m.StartedAt, err = parseTime(started); err == nil {
				m.EndedAt, err = parseTimePtr(ended)
			}
		}
		if err != nil {
			rows.Close()
			return err
		}
		m.Modes = []ModeChange{}
		ci := callIndex[m.CallID]
		calls[ci].Monitors = append(calls[ci].Monitors, m)
		monitors[m.ID] = ref{ci, len(calls[ci].Monitors) - 1}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	if len(monitors) == 0 {
		return nil
	}

	rows, err = c.query(ctx, `SELECT mm.monitor_id, mm.mode, mm.at
		FROM monitor_modes mm JOIN monitors m ON m.id = mm.monitor_id
		WHERE m.call_id IN `+in+` ORDER BY mm.monitor_id, mm.seq`, ids...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var id, mode, at string
		if err := rows.Scan(&id, &mode, &at); err != nil {
			return err
		}
		t, err := parseTime(at)
		if err != nil {
			return err
		}
		r, ok := monitors[id]
		if !ok {
			continue // started between the two queries
		}
		m := &calls[r.call].Monitors[r.mon]
		m.Modes = append(m.Modes, ModeChange{Mode: mode, At: t})
	}
	return rows.Err()
}
