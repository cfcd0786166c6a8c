package client

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"

	"github.com/parley-p2p/parley/errs"
	"github.com/parley-p2p/parley/node/store"
	"github.com/parley-p2p/parley/webui"
)

// Room key backups (webui.Keys), kept on this node: the keys are
// encrypted by the client, and the node only chooses which of two keys
// of a session to keep.

func backupVersion(b *store.Backup) *webui.BackupVersion {
	return &webui.BackupVersion{
		Algorithm: b.Algorithm, AuthData: b.AuthData, Count: b.Count,
		Etag: strconv.FormatUint(b.Etag, 10), Version: b.Version,
	}
}

// CreateBackup implements webui.Keys.
func (api *API) CreateBackup(ctx context.Context, s *webui.Session, algorithm string, authData json.RawMessage) (string, error) {
	var version string
	err := api.store.Update(func(t *store.Txn) error {
		all, err := t.Backups(s.UserID)
		if err != nil {
			return err
		}
		if len(all) >= maxBackupVersions {
			return errs.Invalidf("a user keeps at most %d backup versions: delete one first", maxBackupVersions)
		}
		n, err := t.LatestBackupNumber(s.UserID)
		if err != nil {
			return err
		}
		n++
		version = strconv.FormatUint(n, 10)
		if err := t.SetLatestBackupNumber(s.UserID, n); err != nil {
			return err
		}
		return t.PutBackup(s.UserID, &store.Backup{Version: version, Algorithm: algorithm, AuthData: authData})
	})
	return version, err
}

// latestBackup is the user's newest backup version that still exists.
func latestBackup(t *store.Txn, user string) (*store.Backup, error) {
	all, err := t.Backups(user)
	if err != nil {
		return nil, err
	}
	var best *store.Backup
	var bestN uint64
	for _, b := range all {
		if n, err := strconv.ParseUint(b.Version, 10, 64); err == nil && n >= bestN {
			best, bestN = b, n
		}
	}
	if best == nil {
		return nil, errs.NotFoundf("no backup")
	}
	return best, nil
}

func findBackup(t *store.Txn, user, version string) (*store.Backup, error) {
	if version == "" {
		return latestBackup(t, user)
	}
	b, err := t.Backup(user, version)
	if errors.Is(err, store.ErrNotFound) {
		return nil, errs.NotFoundf("no backup version %s", version)
	}
	return b, err
}

// Backup implements webui.Keys.
func (api *API) Backup(s *webui.Session, version string) (*webui.BackupVersion, error) {
	var out *webui.BackupVersion
	err := api.store.View(func(t *store.Txn) error {
		b, err := findBackup(t, s.UserID, version)
		if err != nil {
			return err
		}
		out = backupVersion(b)
		return nil
	})
	return out, err
}

// UpdateBackup implements webui.Keys: only auth_data changes.
func (api *API) UpdateBackup(ctx context.Context, s *webui.Session, version, algorithm string, authData json.RawMessage) error {
	return api.store.Update(func(t *store.Txn) error {
		b, err := findBackup(t, s.UserID, version)
		if err != nil {
			return err
		}
		if b.Algorithm != algorithm {
			return errs.Invalidf("the algorithm of backup %s is %s; it cannot change", version, b.Algorithm)
		}
		b.AuthData = authData
		return t.PutBackup(s.UserID, b)
	})
}

// DeleteBackup implements webui.Keys.
func (api *API) DeleteBackup(ctx context.Context, s *webui.Session, version string) error {
	return api.store.Update(func(t *store.Txn) error {
		if _, err := findBackup(t, s.UserID, version); err != nil {
			return err
		}
		return t.DeleteBackup(s.UserID, version)
	})
}

// better reports whether key a should replace key b of the same session,
// by the spec's order: a verified key wins; then the lower first message
// index (it decrypts more); then the lower forwarded count.
func better(a, b webui.BackupKey) bool {
	if a.IsVerified != b.IsVerified {
		return a.IsVerified
	}
	if a.FirstMessageIndex != b.FirstMessageIndex {
		return a.FirstMessageIndex < b.FirstMessageIndex
	}
	return a.ForwardedCount < b.ForwardedCount
}

// errWrongVersion is the spec's answer to keys sent to a backup version
// that is not the latest.
func errWrongVersion(current string) error {
	return &webui.Error{Status: http.StatusForbidden, Code: "M_WRONG_ROOM_KEYS_VERSION",
		Message: "backup version " + current + " is the current one", Extra: map[string]any{"current_version": current}}
}

// PutBackupKeys implements webui.Keys.
func (api *API) PutBackupKeys(ctx context.Context, s *webui.Session, version string, keys map[string]map[string]webui.BackupKey) (*webui.BackupKeysResult, error) {
	var res *webui.BackupKeysResult
	err := api.store.Update(func(t *store.Txn) error {
		latest, err := latestBackup(t, s.UserID)
		if err != nil {
			if _, err2 := findBackup(t, s.UserID, version); err2 != nil {
				return err2
			}
			return err
		}
		if latest.Version != version {
			if _, err := findBackup(t, s.UserID, version); err != nil {
				return err
			}
			return errWrongVersion(latest.Version)
		}
		changed := false
		for room, sessions := range keys {
			for session, k := range sessions {
				raw, err := json.Marshal(k)
				if err != nil {
					return err
				}
				old, err := t.BackupKey(s.UserID, version, room, session)
				switch {
				case errors.Is(err, store.ErrNotFound):
					if latest.Count >= maxBackupKeys {
						return errs.Invalidf("a backup keeps at most %d keys", maxBackupKeys)
					}
					latest.Count++
				case err != nil:
					return err
				default:
					var cur webui.BackupKey
					if json.Unmarshal(old, &cur) == nil && !better(k, cur) {
						continue
					}
				}
				if err := t.PutBackupKey(s.UserID, version, room, session, raw); err != nil {
					return err
				}
				changed = true
			}
		}
		if changed {
			latest.Etag++
			if err := t.PutBackup(s.UserID, latest); err != nil {
				return err
			}
		}
		res = &webui.BackupKeysResult{Etag: strconv.FormatUint(latest.Etag, 10), Count: latest.Count}
		return nil
	})
	return res, err
}

// BackupKeys implements webui.Keys.
func (api *API) BackupKeys(s *webui.Session, version, room, session string) (map[string]map[string]json.RawMessage, error) {
	var out map[string]map[string]json.RawMessage
	err := api.store.View(func(t *store.Txn) error {
		if _, err := findBackup(t, s.UserID, version); err != nil {
			return err
		}
		var err error
		out, err = t.BackupKeys(s.UserID, version, room, session)
		return err
	})
	return out, err
}

// DeleteBackupKeys implements webui.Keys.
func (api *API) DeleteBackupKeys(ctx context.Context, s *webui.Session, version, room, session string) (*webui.BackupKeysResult, error) {
	var res *webui.BackupKeysResult
	err := api.store.Update(func(t *store.Txn) error {
		b, err := findBackup(t, s.UserID, version)
		if err != nil {
			return err
		}
		n, err := t.DeleteBackupKeys(s.UserID, version, room, session)
		if err != nil {
			return err
		}
		if n > 0 {
			b.Count = max(b.Count-n, 0)
			b.Etag++
			if err := t.PutBackup(s.UserID, b); err != nil {
				return err
			}
		}
		res = &webui.BackupKeysResult{Etag: strconv.FormatUint(b.Etag, 10), Count: b.Count}
		return nil
	})
	return res, err
}
