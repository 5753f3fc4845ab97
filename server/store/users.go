package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
)

const minPasswordLen = 4

func validName(name string) error {
	if name == "" {
		return errors.New("user name is empty")
	}
	return nil
}

func validExt(ext string) error {
	if ext == "" {
		return errors.New("extension is empty")
	}
	for _, r := range ext {
		if r < '0' || r > '9' {
			return fmt.Errorf("extension %q must be digits only", ext)
		}
	}
	return nil
}

func validPassword(pw string) error {
	if utf8.RuneCountInString(pw) < minPasswordLen {
		return fmt.Errorf("password must be at least %d characters", minPasswordLen)
	}
	return nil
}

// cleanTeams trims, drops empty names and duplicates, and sorts.
func cleanTeams(teams []string) []string {
	out := []string{}
	for _, t := range teams {
		if t = strings.TrimSpace(t); t != "" {
			out = append(out, t)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func (s *sqlStore) AddUser(ctx context.Context, nu NewUser) (User, error) {
	name := strings.TrimSpace(nu.Name)
	ext := strings.TrimSpace(nu.Ext)
	role := strings.ToLower(strings.TrimSpace(nu.Role))
	if err := validName(name); err != nil {
		return User{}, err
	}
	if err := validExt(ext); err != nil {
		return User{}, err
	}
	if err := validPassword(nu.Password); err != nil {
		return User{}, err
	}
	perms, err := RolePermissions(role)
	if err != nil {
		return User{}, err
	}
	// Hash before the transaction: it is slow on purpose and needs no lock.
	hash, err := hashPassword(nu.Password, s.iterations)
	if err != nil {
		return User{}, fmt.Errorf("add user %s: %w", name, err)
	}
	u := User{
		ID:          uuid.NewString(),
		Name:        name,
		Ext:         ext,
		Role:        role,
		Permissions: perms,
		Teams:       cleanTeams(nu.Teams),
		CreatedAt:   time.Now().UTC(),
	}
	u.HA1MD5, u.HA1SHA256 = ha1(ext, nu.Password)
	err = s.inTx(ctx, func(tx *sqlTx) error {
		if err := tx.checkFree(ctx, "", name, ext); err != nil {
			return err
		}
		_, err := tx.exec(ctx, `INSERT INTO users (id, name, ext, role, password_hash, ha1_md5, ha1_sha256, created_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
			u.ID, u.Name, u.Ext, u.Role, hash, u.HA1MD5, u.HA1SHA256, formatTime(u.CreatedAt))
		if isUniqueViolation(err) {
			return fmt.Errorf("user name %q or extension %s is %w", name, ext, ErrExists)
		}
		if err != nil {
			return err
		}
		return tx.setTeams(ctx, u.ID, u.Teams)
	})
	if err != nil {
		return User{}, fmt.Errorf("add user %s: %w", name, err)
	}
	return u, nil
}

func (s *sqlStore) UpdateUser(ctx context.Context, name string, nu NewUser) (User, error) {
	name = strings.TrimSpace(name)
	newName := strings.TrimSpace(nu.Name)
	newExt := strings.TrimSpace(nu.Ext)
	newRole := strings.ToLower(strings.TrimSpace(nu.Role))
	if newExt != "" {
		if err := validExt(newExt); err != nil {
			return User{}, err
		}
	}
	if newRole != "" {
		if _, err := RolePermissions(newRole); err != nil {
			return User{}, err
		}
	}
	var hash string
	if nu.Password != "" {
		if err := validPassword(nu.Password); err != nil {
			return User{}, err
		}
		var err error
		if hash, err = hashPassword(nu.Password, s.iterations); err != nil {
			return User{}, fmt.Errorf("update user %s: %w", name, err)
		}
	}
	var u User
	err := s.inTx(ctx, func(tx *sqlTx) error {
		old, _, err := tx.user(ctx, "name", name)
		if err != nil {
			return err
		}
		u = old
		if newName != "" {
			u.Name = newName
		}
		if newExt != "" {
			u.Ext = newExt
		}
		if newRole != "" {
			u.Role = newRole
		}
		if u.Ext != old.Ext && nu.Password == "" {
			return errors.New("changing the extension needs the password too: the SIP digest hashes include the extension")
		}
		if err := tx.checkFree(ctx, u.ID, u.Name, u.Ext); err != nil {
			return err
		}
		if u.Permissions, err = RolePermissions(u.Role); err != nil {
			return err
		}
		if nu.Password != "" {
			u.HA1MD5, u.HA1SHA256 = ha1(u.Ext, nu.Password)
			_, err = tx.exec(ctx, `UPDATE users SET name = ?, ext = ?, role = ?, password_hash = ?, ha1_md5 = ?, ha1_sha256 = ?
				WHERE id = ?`, u.Name, u.Ext, u.Role, hash, u.HA1MD5, u.HA1SHA256, u.ID)
		} else {
			_, err = tx.exec(ctx, `UPDATE users SET name = ?, role = ? WHERE id = ?`, u.Name, u.Role, u.ID)
		}
		if isUniqueViolation(err) {
			return fmt.Errorf("user name %q or extension %s is %w", u.Name, u.Ext, ErrExists)
		}
		if err != nil {
			return err
		}
		if nu.Teams != nil {
			u.Teams = cleanTeams(nu.Teams)
			return tx.setTeams(ctx, u.ID, u.Teams)
		}
		return nil
	})
	if err != nil {
		return User{}, fmt.Errorf("update user %s: %w", name, err)
	}
	return u, nil
}

// checkFree returns ErrExists when another user than id has the name or ext.
func (tx *sqlTx) checkFree(ctx context.Context, id, name, ext string) error {
	taken, err := tx.exists(ctx, `SELECT COUNT(*) FROM users WHERE name = ? AND id <> ?`, name, id)
	if err != nil {
		return err
	}
	if taken {
		return fmt.Errorf("user name %q is %w", name, ErrExists)
	}
	var owner string
	err = tx.row(ctx, `SELECT name FROM users WHERE ext = ? AND id <> ?`, ext, id).Scan(&owner)
	if err == nil {
		return fmt.Errorf("extension %s is %w by %s", ext, ErrExists, owner)
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return err
	}
	return nil
}

// setTeams replaces the user's teams, creating teams that don't exist yet.
func (tx *sqlTx) setTeams(ctx context.Context, userID string, teams []string) error {
	if _, err := tx.exec(ctx, `DELETE FROM user_teams WHERE user_id = ?`, userID); err != nil {
		return err
	}
	for _, team := range teams {
		var teamID string
		err := tx.row(ctx, `SELECT id FROM teams WHERE name = ?`, team).Scan(&teamID)
		if errors.Is(err, sql.ErrNoRows) {
			teamID = uuid.NewString()
			_, err = tx.exec(ctx, `INSERT INTO teams (id, name) VALUES (?, ?)`, teamID, team)
		}
		if err != nil {
			return fmt.Errorf("team %s: %w", team, err)
		}
		if _, err := tx.exec(ctx, `INSERT INTO user_teams (user_id, team_id) VALUES (?, ?)`, userID, teamID); err != nil {
			return fmt.Errorf("team %s: %w", team, err)
		}
	}
	return nil
}

const userColumns = `id, name, ext, role, password_hash, ha1_md5, ha1_sha256, created_at`

type scanner interface{ Scan(dest ...any) error }

// scanUser reads userColumns; it returns the password hash beside the user.
func scanUser(sc scanner) (User, string, error) {
	var u User
	var hash, created string
	if err := sc.Scan(&u.ID, &u.Name, &u.Ext, &u.Role, &hash, &u.HA1MD5, &u.HA1SHA256, &created); err != nil {
		return User{}, "", err
	}
	var err error
	if u.CreatedAt, err = parseTime(created); err != nil {
		return User{}, "", err
	}
	if u.Permissions, err = RolePermissions(u.Role); err != nil {
		return User{}, "", fmt.Errorf("user %s: %w", u.Name, err)
	}
	u.Teams = []string{}
	return u, hash, nil
}

// user reads one user by name or ext, with teams and password hash.
func (c conn) user(ctx context.Context, by, value string) (User, string, error) {
	u, hash, err := scanUser(c.row(ctx, `SELECT `+userColumns+` FROM users WHERE `+by+` = ?`, value))
	if errors.Is(err, sql.ErrNoRows) {
		what := "user " + fmt.Sprintf("%q", value)
		if by == "ext" {
			what = "user with extension " + value
		}
		return User{}, "", fmt.Errorf("%s %w", what, ErrNotFound)
	}
	if err != nil {
		return User{}, "", err
	}
	teams, err := c.teams(ctx, u.ID)
	if err != nil {
		return User{}, "", err
	}
	if t := teams[u.ID]; t != nil {
		u.Teams = t
	}
	return u, hash, nil
}

// teams maps user ids to their team names (sorted); userID "" means all users.
func (c conn) teams(ctx context.Context, userID string) (map[string][]string, error) {
	q := `SELECT ut.user_id, t.name FROM user_teams ut JOIN teams t ON t.id = ut.team_id`
	var args []any
	if userID != "" {
		q += ` WHERE ut.user_id = ?`
		args = append(args, userID)
	}
	rows, err := c.query(ctx, q+` ORDER BY t.name`, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	m := map[string][]string{}
	for rows.Next() {
		var uid, team string
		if err := rows.Scan(&uid, &team); err != nil {
			return nil, err
		}
		m[uid] = append(m[uid], team)
	}
	return m, rows.Err()
}

func (s *sqlStore) User(ctx context.Context, name string) (User, error) {
	u, _, err := s.c().user(ctx, "name", strings.TrimSpace(name))
	return u, err
}

func (s *sqlStore) UserByExt(ctx context.Context, ext string) (User, error) {
	u, _, err := s.c().user(ctx, "ext", strings.TrimSpace(ext))
	return u, err
}

func (s *sqlStore) Users(ctx context.Context) ([]User, error) {
	c := s.c()
	rows, err := c.query(ctx, `SELECT `+userColumns+` FROM users ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("read users: %w", err)
	}
	users := []User{}
	for rows.Next() {
		u, _, err := scanUser(rows)
		if err != nil {
			rows.Close()
			return nil, fmt.Errorf("read users: %w", err)
		}
		users = append(users, u)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read users: %w", err)
	}
	// Rows are closed before the next query: the store may have only one
	// connection.
	teams, err := c.teams(ctx, "")
	if err != nil {
		return nil, fmt.Errorf("read teams: %w", err)
	}
	for i := range users {
		if t := teams[users[i].ID]; t != nil {
			users[i].Teams = t
		}
	}
	return users, nil
}

func (s *sqlStore) CheckPassword(ctx context.Context, name, password string) (User, error) {
	// Made on first use, not at Open, so opening stays fast; every call
	// passes here, so the first login costs the same whatever its outcome.
	s.dummyOnce.Do(func() {
		s.dummyHash, s.dummyErr = hashPassword("no such user", s.iterations)
	})
	if s.dummyErr != nil {
		return User{}, s.dummyErr
	}
	u, hash, err := s.c().user(ctx, "name", strings.TrimSpace(name))
	if errors.Is(err, ErrNotFound) {
		verifyPassword(s.dummyHash, password)
		return User{}, ErrBadCredentials
	}
	if err != nil {
		return User{}, err
	}
	ok, err := verifyPassword(hash, password)
	if err != nil {
		return User{}, fmt.Errorf("user %s: %w", u.Name, err)
	}
	if !ok {
		return User{}, ErrBadCredentials
	}
	return u, nil
}
