package store

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	// Close must stop everything the store started.
	goleak.VerifyTestMain(m)
}

// testIterations keeps password hashing cheap in tests; TestDefaultPasswordCost
// checks the real cost.
const testIterations = 1000

func openStore(t *testing.T, dir string) Store {
	t.Helper()
	s, err := OpenWith(t.Context(), dir, Options{PasswordIterations: testIterations})
	if err != nil {
		t.Fatalf("Open(%s): %v", dir, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// reopen closes s and opens the same directory again, as a restart would.
func reopen(t *testing.T, s Store, dir string) Store {
	t.Helper()
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	return openStore(t, dir)
}

func addUser(t *testing.T, s Store, nu NewUser) User {
	t.Helper()
	u, err := s.AddUser(t.Context(), nu)
	if err != nil {
		t.Fatalf("AddUser(%s): %v", nu.Name, err)
	}
	return u
}

func TestOpenUsesWALAndForeignKeys(t *testing.T) {
	dir := t.TempDir() + "/data dir?#%"
	s := openStore(t, dir).(*sqlStore)
	ctx := t.Context()
	var mode string
	if err := s.db.QueryRowContext(ctx, `PRAGMA journal_mode`).Scan(&mode); err != nil {
		t.Fatal(err)
	}
	if mode != "wal" {
		t.Errorf("journal_mode = %q, want wal", mode)
	}
	var fk, busy int
	if err := s.db.QueryRowContext(ctx, `PRAGMA foreign_keys`).Scan(&fk); err != nil {
		t.Fatal(err)
	}
	if fk != 1 {
		t.Errorf("foreign_keys = %d, want 1", fk)
	}
	if err := s.db.QueryRowContext(ctx, `PRAGMA busy_timeout`).Scan(&busy); err != nil {
		t.Fatal(err)
	}
	if busy <= 0 {
		t.Errorf("busy_timeout = %d, want > 0", busy)
	}
	// The file is where the contract says, even in an awkward directory name.
	var file string
	if err := s.db.QueryRowContext(ctx, `SELECT file FROM pragma_database_list WHERE name = 'main'`).Scan(&file); err != nil {
		t.Fatal(err)
	}
	if want := dir + "/" + FileName; file != want {
		t.Errorf("database file = %q, want %q", file, want)
	}
}

func TestMigrationsAreIdempotent(t *testing.T) {
	for i := 1; i < len(migrations); i++ {
		if migrations[i].version <= migrations[i-1].version {
			t.Fatalf("migration versions not increasing at %d", i)
		}
	}
	dir := t.TempDir()
	s := openStore(t, dir)
	addUser(t, s, NewUser{Name: "alice", Ext: "1001", Password: "secret", Role: RoleAgent})
	for range 2 {
		s = reopen(t, s, dir)
	}
	var versions []int
	rows, err := s.(*sqlStore).db.QueryContext(t.Context(), `SELECT version FROM schema_migrations ORDER BY version`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var v int
		if err := rows.Scan(&v); err != nil {
			t.Fatal(err)
		}
		versions = append(versions, v)
	}
	rows.Close()
	var want []int
	for _, m := range migrations {
		want = append(want, m.version)
	}
	if !slices.Equal(versions, want) {
		t.Errorf("schema_migrations = %v, want %v", versions, want)
	}
	if _, err := s.User(t.Context(), "alice"); err != nil {
		t.Errorf("user lost after reopening: %v", err)
	}
}

func TestOpenRefusesNewerSchema(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir)
	if _, err := s.(*sqlStore).db.ExecContext(t.Context(),
		`INSERT INTO schema_migrations (version, name, applied_at) VALUES (9999, 'future', '')`); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s2, err := Open(t.Context(), dir)
	if err == nil {
		s2.Close()
		t.Fatal("Open accepted a database from a newer version")
	}
	if !strings.Contains(err.Error(), "newer") {
		t.Errorf("error %q does not say the database is newer", err)
	}
}

func TestUsersWithTeamsAndPermissions(t *testing.T) {
	ctx := t.Context()
	s := openStore(t, t.TempDir())
	alice := addUser(t, s, NewUser{Name: "alice", Ext: "1001", Password: "secret", Role: RoleAgent, Teams: []string{"north"}})
	addUser(t, s, NewUser{Name: "carol", Ext: "3003", Password: "secret", Role: RoleAdmin})
	addUser(t, s, NewUser{Name: "bob", Ext: "2002", Password: "secret", Role: RoleSupervisor, Teams: []string{"south", " north ", "north", ""}})

	if alice.ID == "" || alice.CreatedAt.IsZero() || alice.CreatedAt.Location() != time.UTC {
		t.Errorf("AddUser returned id %q created %v", alice.ID, alice.CreatedAt)
	}
	got, err := s.User(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, alice) {
		t.Errorf("User(alice) = %+v\nAddUser returned %+v", got, alice)
	}
	byExt, err := s.UserByExt(ctx, "2002")
	if err != nil {
		t.Fatal(err)
	}
	if byExt.Name != "bob" || !slices.Equal(byExt.Teams, []string{"north", "south"}) {
		t.Errorf("UserByExt(2002) = %s teams %v, want bob teams [north south]", byExt.Name, byExt.Teams)
	}
	if !slices.Equal(byExt.Permissions, []string{PermCall, PermMonitor}) || !byExt.Can(PermMonitor) || byExt.Can(PermAdmin) {
		t.Errorf("supervisor permissions = %v", byExt.Permissions)
	}

	users, err := s.Users(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, u := range users {
		names = append(names, u.Name)
	}
	if !slices.Equal(names, []string{"alice", "bob", "carol"}) {
		t.Fatalf("Users = %v, want sorted alice bob carol", names)
	}
	if c := users[2]; !c.Can(PermAdmin) || !c.Can(PermMonitor) || !c.Can(PermCall) || c.Teams == nil || len(c.Teams) != 0 {
		t.Errorf("carol = %+v, want admin with every permission and no teams", c)
	}
	if a := users[0]; !a.Can(PermCall) || a.Can(PermMonitor) || !slices.Equal(a.Teams, []string{"north"}) {
		t.Errorf("alice = %+v, want agent in north", a)
	}
	// Teams are created once, on demand.
	var teams int
	if err := s.(*sqlStore).db.QueryRowContext(ctx, `SELECT COUNT(*) FROM teams`).Scan(&teams); err != nil {
		t.Fatal(err)
	}
	if teams != 2 {
		t.Errorf("%d teams, want 2", teams)
	}

	if _, err := s.User(ctx, "nobody"); !errors.Is(err, ErrNotFound) {
		t.Errorf("User(nobody) error = %v, want ErrNotFound", err)
	}
	if _, err := s.UserByExt(ctx, "9999"); !errors.Is(err, ErrNotFound) {
		t.Errorf("UserByExt(9999) error = %v, want ErrNotFound", err)
	}
}

func TestAddUserRejects(t *testing.T) {
	s := openStore(t, t.TempDir())
	addUser(t, s, NewUser{Name: "alice", Ext: "1001", Password: "secret", Role: RoleAgent})
	for _, tc := range []struct {
		name     string
		u        NewUser
		exists   bool
		contains string
	}{
		{"duplicate name", NewUser{Name: "alice", Ext: "1002", Password: "secret", Role: RoleAgent}, true, "alice"},
		{"duplicate ext", NewUser{Name: "alicia", Ext: "1001", Password: "secret", Role: RoleAgent}, true, "1001"},
		{"unknown role", NewUser{Name: "dave", Ext: "1004", Password: "secret", Role: "boss"}, false, "agent, supervisor or admin"},
		{"ext with letters", NewUser{Name: "dave", Ext: "10a4", Password: "secret", Role: RoleAgent}, false, "digits"},
		{"feature code as ext", NewUser{Name: "dave", Ext: "*11001", Password: "secret", Role: RoleAgent}, false, "digits"},
		{"empty ext", NewUser{Name: "dave", Password: "secret", Role: RoleAgent}, false, "extension"},
		{"empty name", NewUser{Name: "  ", Ext: "1004", Password: "secret", Role: RoleAgent}, false, "name"},
		{"short password", NewUser{Name: "dave", Ext: "1004", Password: "abc", Role: RoleAgent}, false, "password"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.AddUser(t.Context(), tc.u)
			if err == nil {
				t.Fatal("AddUser accepted it")
			}
			if errors.Is(err, ErrExists) != tc.exists {
				t.Errorf("errors.Is(%v, ErrExists) = %v, want %v", err, !tc.exists, tc.exists)
			}
			if !strings.Contains(err.Error(), tc.contains) {
				t.Errorf("error %q does not mention %q", err, tc.contains)
			}
		})
	}
	users, err := s.Users(t.Context())
	if err != nil || len(users) != 1 {
		t.Errorf("after rejected adds: %d users, err %v; want only alice", len(users), err)
	}
	if _, err := RolePermissions("boss"); err == nil || !strings.Contains(err.Error(), "supervisor") {
		t.Errorf("RolePermissions(boss) error = %v, want one naming the valid roles", err)
	}
}

func TestCheckPassword(t *testing.T) {
	ctx := t.Context()
	s := openStore(t, t.TempDir())
	addUser(t, s, NewUser{Name: "alice", Ext: "1001", Password: "secret", Role: RoleSupervisor, Teams: []string{"north"}})

	u, err := s.CheckPassword(ctx, "alice", "secret")
	if err != nil {
		t.Fatalf("right password: %v", err)
	}
	if u.Name != "alice" || u.Ext != "1001" || !u.Can(PermMonitor) || !slices.Equal(u.Teams, []string{"north"}) {
		t.Errorf("CheckPassword returned %+v", u)
	}
	for _, tc := range []struct{ name, password string }{
		{"alice", "Secret"},
		{"alice", ""},
		{"mallory", "secret"},
	} {
		if _, err := s.CheckPassword(ctx, tc.name, tc.password); err != ErrBadCredentials {
			t.Errorf("CheckPassword(%s, %s) error = %v, want ErrBadCredentials", tc.name, tc.password, err)
		}
	}
	// An unknown user cost a hash at the same price as a known one.
	if d := s.(*sqlStore).dummyHash; !strings.HasPrefix(d, fmt.Sprintf("pbkdf2-sha256$%d$", testIterations)) {
		t.Errorf("dummy hash %q is not at the store's cost", d)
	}
	// The stored login hash names its algorithm and cost, and is salted.
	var hash string
	if err := s.(*sqlStore).db.QueryRowContext(ctx, `SELECT password_hash FROM users WHERE name = 'alice'`).Scan(&hash); err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("pbkdf2-sha256$%d$", testIterations); !strings.HasPrefix(hash, want) || strings.Contains(hash, "secret") {
		t.Errorf("password_hash = %q, want prefix %q", hash, want)
	}
	other, err := hashPassword("secret", testIterations)
	if err != nil {
		t.Fatal(err)
	}
	if other == hash {
		t.Error("two hashes of one password are equal: no salt")
	}
}

func TestDefaultPasswordCost(t *testing.T) {
	if passwordIterations < 100_000 {
		t.Errorf("passwordIterations = %d, want at least 100000", passwordIterations)
	}
	s, err := Open(t.Context(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	addUser(t, s, NewUser{Name: "alice", Ext: "1001", Password: "secret", Role: RoleAgent})
	var hash string
	if err := s.(*sqlStore).db.QueryRowContext(t.Context(), `SELECT password_hash FROM users`).Scan(&hash); err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("pbkdf2-sha256$%d$", passwordIterations); !strings.HasPrefix(hash, want) {
		t.Errorf("password_hash = %q, want prefix %q", hash, want)
	}
	if ok, err := verifyPassword(hash, "secret"); !ok || err != nil {
		t.Errorf("verifyPassword = %v, %v", ok, err)
	}
}

func TestHA1AndUpdateUser(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	s := openStore(t, dir)
	alice := addUser(t, s, NewUser{Name: "alice", Ext: "1001", Password: "secret", Role: RoleAgent, Teams: []string{"north"}})
	addUser(t, s, NewUser{Name: "bob", Ext: "2000", Password: "secret", Role: RoleAgent})

	// Computed outside Go: MD5 and SHA-256 of "1001:ringside:secret".
	if alice.HA1MD5 != "5d1dd3825613214c0d44fc8873f50894" ||
		alice.HA1SHA256 != "98b507c6e588c737fff73f118c0437c58f710471a3bc7df6b4790077be0421b0" {
		t.Errorf("HA1s = %s %s", alice.HA1MD5, alice.HA1SHA256)
	}

	// Role and teams alone keep the password and HA1s.
	u, err := s.UpdateUser(ctx, "alice", NewUser{Role: RoleSupervisor, Teams: []string{"south"}})
	if err != nil {
		t.Fatal(err)
	}
	if u.Role != RoleSupervisor || !u.Can(PermMonitor) || !slices.Equal(u.Teams, []string{"south"}) || u.HA1MD5 != alice.HA1MD5 || u.Ext != "1001" {
		t.Errorf("after role and team change: %+v", u)
	}
	if _, err := s.CheckPassword(ctx, "alice", "secret"); err != nil {
		t.Errorf("old password after role change: %v", err)
	}
	// nil Teams keeps them, an empty slice clears them.
	if u, err = s.UpdateUser(ctx, "alice", NewUser{}); err != nil || !slices.Equal(u.Teams, []string{"south"}) {
		t.Errorf("UpdateUser with nothing: teams %v, err %v", u.Teams, err)
	}
	if u, err = s.UpdateUser(ctx, "alice", NewUser{Teams: []string{}}); err != nil || len(u.Teams) != 0 {
		t.Errorf("UpdateUser clearing teams: teams %v, err %v", u.Teams, err)
	}

	// The HA1s hash the extension, so a new one needs the password.
	if _, err := s.UpdateUser(ctx, "alice", NewUser{Ext: "2002"}); err == nil {
		t.Error("UpdateUser changed the extension without a password")
	}
	if _, err := s.UpdateUser(ctx, "alice", NewUser{Ext: "2000", Password: "n3w-pass"}); !errors.Is(err, ErrExists) {
		t.Errorf("taking bob's extension: error %v, want ErrExists", err)
	}
	if _, err := s.UpdateUser(ctx, "alice", NewUser{Name: "bob"}); !errors.Is(err, ErrExists) {
		t.Errorf("taking bob's name: error %v, want ErrExists", err)
	}
	if _, err := s.UpdateUser(ctx, "nobody", NewUser{Role: RoleAdmin}); !errors.Is(err, ErrNotFound) {
		t.Errorf("updating nobody: error %v, want ErrNotFound", err)
	}
	if _, err := s.UpdateUser(ctx, "alice", NewUser{Role: "boss"}); err == nil {
		t.Error("UpdateUser accepted an unknown role")
	}

	u, err = s.UpdateUser(ctx, "alice", NewUser{Name: "alicia", Ext: "2002", Password: "n3w-pass"})
	if err != nil {
		t.Fatal(err)
	}
	if u.ID != alice.ID || u.Name != "alicia" || u.Ext != "2002" ||
		u.HA1MD5 != "65ec47c0d740063ff8a33b2e953dad15" ||
		u.HA1SHA256 != "24afbd3ccf09781e1bf8f01742b6c31e30312c6c94254d6bcd66e9e02273e344" {
		t.Errorf("after rename, new ext and password: %+v", u)
	}
	s = reopen(t, s, dir)
	if _, err := s.CheckPassword(ctx, "alicia", "secret"); err != ErrBadCredentials {
		t.Errorf("old password still works: %v", err)
	}
	if _, err := s.CheckPassword(ctx, "alice", "n3w-pass"); err != ErrBadCredentials {
		t.Errorf("old name still works: %v", err)
	}
	got, err := s.CheckPassword(ctx, "alicia", "n3w-pass")
	if err != nil {
		t.Fatalf("new password: %v", err)
	}
	if !reflect.DeepEqual(got, u) {
		t.Errorf("after restart %+v\nwant %+v", got, u)
	}
}

func TestSettings(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	s := openStore(t, dir)

	if on, err := NotifyAgentOnMonitor(ctx, s); err != nil || !on {
		t.Errorf("NotifyAgentOnMonitor unset = %v, %v; want true", on, err)
	}
	if _, ok, err := s.Setting(ctx, SettingNotifyAgentOnMonitor); ok || err != nil {
		t.Errorf("Setting unset: ok %v err %v", ok, err)
	}
	if err := s.SetSetting(ctx, SettingNotifyAgentOnMonitor, "maybe"); err == nil {
		t.Error("SetSetting accepted maybe for a true/false setting")
	}
	if err := s.SetSetting(ctx, SettingNotifyAgentOnMonitor, "true"); err != nil {
		t.Fatal(err)
	}
	if err := s.SetSetting(ctx, SettingNotifyAgentOnMonitor, "false"); err != nil {
		t.Fatal(err)
	}
	if err := s.SetSetting(ctx, "greeting", "hello"); err != nil {
		t.Fatal(err)
	}
	s = reopen(t, s, dir)
	if on, err := NotifyAgentOnMonitor(ctx, s); err != nil || on {
		t.Errorf("NotifyAgentOnMonitor after set false = %v, %v", on, err)
	}
	if v, ok, err := s.Setting(ctx, SettingNotifyAgentOnMonitor); v != "false" || !ok || err != nil {
		t.Errorf("Setting = %q %v %v", v, ok, err)
	}
	all, err := s.Settings(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]string{SettingNotifyAgentOnMonitor: "false", "greeting": "hello"}; !reflect.DeepEqual(all, want) {
		t.Errorf("Settings = %v, want %v", all, want)
	}
}

// t0 has nanoseconds and a zone on purpose: the store keeps both the instant
// and its precision, and gives it back in UTC.
var t0 = time.Date(2025, 3, 4, 10, 0, 0, 123456789, time.FixedZone("CET", 3600))

func at(sec int) time.Time { return t0.Add(time.Duration(sec) * time.Second) }

func ptr(t time.Time) *time.Time { return &t }

func utc(t time.Time) time.Time { return t.UTC() }

func TestCallLifeAndHistory(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	s := openStore(t, dir)

	call := CallRecord{
		ID: "call-1", Node: "media-1", Kind: KindPhone, Direction: "inbound", State: StateRinging,
		AgentName: "alice", AgentExt: "1001", CustomerNumber: "+15550100", StartedAt: at(0),
	}
	if err := s.CallStarted(ctx, call); err != nil {
		t.Fatal(err)
	}
	if err := s.CallStarted(ctx, call); !errors.Is(err, ErrExists) {
		t.Errorf("second CallStarted with one id: %v, want ErrExists", err)
	}
	if err := s.CallUpdated(ctx, CallRecord{ID: "call-1", State: StateTalking, AnsweredAt: ptr(at(5)), CustomerName: "Erika"}); err != nil {
		t.Fatal(err)
	}
	mon := MonitorRecord{ID: "mon-1", CallID: "call-1", UserName: "bob", UserExt: "2002", StartedAt: at(10),
		Modes: []ModeChange{{Mode: ModeListen, At: at(10)}}}
	if err := s.MonitorStarted(ctx, mon); err != nil {
		t.Fatal(err)
	}
	if err := s.MonitorModeChanged(ctx, "mon-1", ModeWhisper, at(20)); err != nil {
		t.Fatal(err)
	}
	if err := s.MonitorModeChanged(ctx, "mon-1", ModeWhisper, at(21)); err != nil {
		t.Fatal(err) // no change: nothing recorded
	}
	if err := s.MonitorModeChanged(ctx, "mon-1", ModeListen, at(30)); err != nil {
		t.Fatal(err)
	}
	// A second supervisor is still listening when the call ends.
	if err := s.MonitorStarted(ctx, MonitorRecord{ID: "mon-2", CallID: "call-1", UserName: "carol", UserExt: "3003",
		StartedAt: at(40), Modes: []ModeChange{{Mode: ModeBarge, At: at(40)}}}); err != nil {
		t.Fatal(err)
	}
	if err := s.MonitorEnded(ctx, "mon-1", at(50), "supervisor left"); err != nil {
		t.Fatal(err)
	}
	if err := s.CallEnded(ctx, "call-1", at(60), "customer hung up"); err != nil {
		t.Fatal(err)
	}
	// Late messages don't rewrite the end.
	if err := s.CallEnded(ctx, "call-1", at(70), "agent hung up"); err != nil {
		t.Fatal(err)
	}
	if err := s.MonitorEnded(ctx, "mon-2", at(70), "late"); err != nil {
		t.Fatal(err)
	}
	if err := s.CallUpdated(ctx, CallRecord{ID: "call-1", State: StateTalking}); err != nil {
		t.Fatal(err)
	}

	want := CallRecord{
		ID: "call-1", Node: "media-1", Kind: KindPhone, Direction: "inbound", State: StateEnded,
		AgentName: "alice", AgentExt: "1001", CustomerNumber: "+15550100", CustomerName: "Erika",
		StartedAt: utc(at(0)), AnsweredAt: ptr(utc(at(5))), EndedAt: ptr(utc(at(60))), EndReason: "customer hung up",
		Monitors: []MonitorRecord{
			{ID: "mon-1", CallID: "call-1", UserName: "bob", UserExt: "2002", StartedAt: utc(at(10)),
				EndedAt: ptr(utc(at(50))), EndReason: "supervisor left",
				Modes: []ModeChange{{ModeListen, utc(at(10))}, {ModeWhisper, utc(at(20))}, {ModeListen, utc(at(30))}}},
			{ID: "mon-2", CallID: "call-1", UserName: "carol", UserExt: "3003", StartedAt: utc(at(40)),
				EndedAt: ptr(utc(at(60))), EndReason: "customer hung up",
				Modes: []ModeChange{{ModeBarge, utc(at(40))}}},
		},
	}
	got, err := s.Call(ctx, "call-1")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Call(call-1) =\n%+v\nwant\n%+v", got, want)
	}

	// Two more calls: bob's, later and still talking, and an unmonitored one of alice's.
	if err := s.CallStarted(ctx, CallRecord{ID: "call-2", Node: "media-1", Kind: KindPhone, Direction: "inbound",
		State: StateTalking, AgentName: "bob", AgentExt: "2002", StartedAt: at(100), AnsweredAt: ptr(at(101))}); err != nil {
		t.Fatal(err)
	}
	if err := s.CallStarted(ctx, CallRecord{ID: "call-3", Node: "media-1", Kind: KindLive, Direction: "inbound",
		AgentName: "alice", AgentExt: "1001", StartedAt: at(200)}); err != nil {
		t.Fatal(err)
	}

	history := func(s Store, f HistoryFilter) []string {
		t.Helper()
		calls, err := s.History(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		ids := []string{}
		for _, c := range calls {
			ids = append(ids, c.ID)
		}
		return ids
	}
	for _, tc := range []struct {
		f    HistoryFilter
		want []string
	}{
		{HistoryFilter{}, []string{"call-3", "call-2", "call-1"}},
		{HistoryFilter{Limit: 2}, []string{"call-3", "call-2"}},
		{HistoryFilter{AgentExts: []string{"1001"}}, []string{"call-3", "call-1"}},
		{HistoryFilter{AgentExts: []string{"1001", "2002"}, Limit: 1}, []string{"call-3"}},
		{HistoryFilter{AgentExts: []string{"9999"}}, []string{}},
		{HistoryFilter{AgentExts: []string{}}, []string{}},
	} {
		if got := history(s, tc.f); !slices.Equal(got, tc.want) {
			t.Errorf("History(%+v) = %v, want %v", tc.f, got, tc.want)
		}
	}
	before, err := s.History(ctx, HistoryFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(before[2], want) {
		t.Errorf("History's call-1 =\n%+v\nwant\n%+v", before[2], want)
	}
	if before[0].State != StateRinging || before[0].Kind != KindLive || before[0].Monitors == nil || before[0].EndedAt != nil {
		t.Errorf("call-3 = %+v", before[0])
	}

	// History survives a restart.
	s = reopen(t, s, dir)
	after, err := s.History(ctx, HistoryFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(after, before) {
		t.Errorf("after restart History =\n%+v\nwant\n%+v", after, before)
	}
}

func TestHistoryLimit(t *testing.T) {
	s := openStore(t, t.TempDir())
	for i := range MaxHistoryLimit + 1 {
		if err := s.CallStarted(t.Context(), CallRecord{ID: fmt.Sprintf("call-%03d", i), Node: "n", AgentExt: "1001", StartedAt: at(i)}); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct{ limit, want int }{{0, DefaultHistoryLimit}, {-1, DefaultHistoryLimit}, {7, 7}, {10_000, MaxHistoryLimit}} {
		calls, err := s.History(t.Context(), HistoryFilter{Limit: tc.limit})
		if err != nil {
			t.Fatal(err)
		}
		if len(calls) != tc.want {
			t.Errorf("History(Limit %d) gave %d calls, want %d", tc.limit, len(calls), tc.want)
		}
		if calls[0].ID != fmt.Sprintf("call-%03d", MaxHistoryLimit) {
			t.Errorf("History(Limit %d) starts with %s, want the newest", tc.limit, calls[0].ID)
		}
	}
}

func TestCallErrors(t *testing.T) {
	ctx := t.Context()
	s := openStore(t, t.TempDir())
	if _, err := s.Call(ctx, "nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Call(nope): %v", err)
	}
	if err := s.CallUpdated(ctx, CallRecord{ID: "nope", State: StateTalking}); !errors.Is(err, ErrNotFound) {
		t.Errorf("CallUpdated(nope): %v", err)
	}
	if err := s.CallEnded(ctx, "nope", at(0), "x"); !errors.Is(err, ErrNotFound) {
		t.Errorf("CallEnded(nope): %v", err)
	}
	if err := s.MonitorStarted(ctx, MonitorRecord{ID: "m", CallID: "nope", Modes: []ModeChange{{ModeListen, at(0)}}}); !errors.Is(err, ErrNotFound) {
		t.Errorf("MonitorStarted on unknown call: %v", err)
	}
	if err := s.MonitorModeChanged(ctx, "nope", ModeWhisper, at(0)); !errors.Is(err, ErrNotFound) {
		t.Errorf("MonitorModeChanged(nope): %v", err)
	}
	if err := s.MonitorEnded(ctx, "nope", at(0), "x"); !errors.Is(err, ErrNotFound) {
		t.Errorf("MonitorEnded(nope): %v", err)
	}
	if err := s.CallStarted(ctx, CallRecord{Node: "n"}); err == nil {
		t.Error("CallStarted without id accepted")
	}
	if err := s.CallStarted(ctx, CallRecord{ID: "c", Node: "n", StartedAt: at(0)}); err != nil {
		t.Fatal(err)
	}
	if err := s.MonitorStarted(ctx, MonitorRecord{ID: "m", CallID: "c"}); err == nil {
		t.Error("MonitorStarted without a mode accepted")
	}
	if err := s.MonitorStarted(ctx, MonitorRecord{ID: "m", CallID: "c", Modes: []ModeChange{{"shout", at(0)}}}); err == nil {
		t.Error("MonitorStarted in mode shout accepted")
	}
	if err := s.MonitorStarted(ctx, MonitorRecord{ID: "m", CallID: "c", Modes: []ModeChange{{ModeListen, at(1)}}}); err != nil {
		t.Fatal(err)
	}
	if err := s.MonitorModeChanged(ctx, "m", "shout", at(2)); err == nil {
		t.Error("MonitorModeChanged to shout accepted")
	}
	c, err := s.Call(ctx, "c")
	if err != nil {
		t.Fatal(err)
	}
	// Defaults for what CallStarted left out; the monitor started when its first mode did.
	if c.Kind != KindPhone || c.State != StateRinging || !c.Monitors[0].StartedAt.Equal(at(1)) {
		t.Errorf("call = %+v", c)
	}
}

func TestMarkInterrupted(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	s := openStore(t, dir)
	start := func(id, node, state string) {
		t.Helper()
		if err := s.CallStarted(ctx, CallRecord{ID: id, Node: node, State: state, AgentExt: "1001", StartedAt: at(0)}); err != nil {
			t.Fatal(err)
		}
	}
	start("open-talking", "media-1", StateTalking)
	start("open-ringing", "media-1", StateRinging)
	start("ended", "media-1", StateTalking)
	start("other-node", "media-2", StateTalking)
	if err := s.MonitorStarted(ctx, MonitorRecord{ID: "mon-open", CallID: "open-talking", StartedAt: at(1),
		Modes: []ModeChange{{ModeWhisper, at(1)}}}); err != nil {
		t.Fatal(err)
	}
	if err := s.MonitorStarted(ctx, MonitorRecord{ID: "mon-other", CallID: "other-node", StartedAt: at(1),
		Modes: []ModeChange{{ModeListen, at(1)}}}); err != nil {
		t.Fatal(err)
	}
	if err := s.CallEnded(ctx, "ended", at(5), "agent hung up"); err != nil {
		t.Fatal(err)
	}

	// The crash: the process goes away without ending anything.
	s = reopen(t, s, dir)
	n, err := s.MarkInterrupted(ctx, "media-1", at(100))
	if err != nil {
		t.Fatal(err)
	}
	if n != 2 {
		t.Errorf("MarkInterrupted = %d, want 2", n)
	}
	for _, id := range []string{"open-talking", "open-ringing"} {
		c, err := s.Call(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if c.State != StateInterrupted || c.EndedAt == nil || !c.EndedAt.Equal(at(100)) || c.EndReason != ReasonInterrupted {
			t.Errorf("%s = state %s ended %v reason %q", id, c.State, c.EndedAt, c.EndReason)
		}
	}
	c, _ := s.Call(ctx, "open-talking")
	if m := c.Monitors[0]; m.EndedAt == nil || !m.EndedAt.Equal(at(100)) || m.EndReason != ReasonInterrupted {
		t.Errorf("monitor of interrupted call = %+v", m)
	}
	c, _ = s.Call(ctx, "ended")
	if c.State != StateEnded || !c.EndedAt.Equal(at(5)) || c.EndReason != "agent hung up" {
		t.Errorf("ended call changed: %+v", c)
	}
	c, _ = s.Call(ctx, "other-node")
	if c.State != StateTalking || c.EndedAt != nil || c.Monitors[0].EndedAt != nil {
		t.Errorf("other node's call changed: %+v", c)
	}
	if n, err := s.MarkInterrupted(ctx, "media-1", at(200)); n != 0 || err != nil {
		t.Errorf("second MarkInterrupted = %d, %v; want 0", n, err)
	}
}

// The server and a `ringside-media user add` run side by side on one
// database: writes from both must wait for each other, never fail as locked.
func TestTwoProcessesWriteAtOnce(t *testing.T) {
	dir := t.TempDir()
	stores := []Store{openStore(t, dir), openStore(t, dir)}
	const perStore = 20
	errs := make(chan error, len(stores)*(perStore*2+1))
	var wg sync.WaitGroup
	for i, s := range stores {
		wg.Go(func() {
			for j := range perStore {
				id := fmt.Sprintf("call-%d-%d", i, j)
				errs <- s.CallStarted(t.Context(), CallRecord{ID: id, Node: "n", AgentExt: "1001", StartedAt: at(j)})
				errs <- s.CallEnded(t.Context(), id, at(j+1), "agent hung up")
			}
		})
		wg.Go(func() {
			_, err := s.AddUser(t.Context(), NewUser{Name: fmt.Sprintf("user%d", i), Ext: fmt.Sprintf("10%d", i), Password: "secret", Role: RoleAgent})
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	calls, err := stores[0].History(t.Context(), HistoryFilter{Limit: MaxHistoryLimit})
	if err != nil {
		t.Fatal(err)
	}
	users, err := stores[1].Users(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(calls) != len(stores)*perStore || len(users) != len(stores) {
		t.Errorf("%d calls and %d users, want %d and %d", len(calls), len(users), len(stores)*perStore, len(stores))
	}
}

func TestRebind(t *testing.T) {
	pg := dialect{name: "postgres", dollar: true}
	got := pg.rebind(`SELECT a FROM t WHERE b = ? AND c = '?' AND d IN (?, ?)`)
	if want := `SELECT a FROM t WHERE b = $1 AND c = '?' AND d IN ($2, $3)`; got != want {
		t.Errorf("rebind = %s, want %s", got, want)
	}
	if q := `SELECT ?`; sqliteDialect.rebind(q) != q {
		t.Error("sqlite rebind changed the query")
	}
}

func TestStoreCanBeCancelled(t *testing.T) {
	s := openStore(t, t.TempDir())
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := s.Users(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Users with a cancelled context: %v", err)
	}
}
