package webui

import (
	"net/http"
	"slices"
	"strings"
)

const v3 = "/_matrix/client/v3"

// routes is the API reference in one place.
func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	m := func(pattern string, h http.Handler) {
		method, path, _ := strings.Cut(pattern, " ")
		mux.Handle(method+" "+v3+path, h)
	}

	// Accounts, always served.
	mux.Handle("GET /_matrix/client/versions", s.anon(s.versions))
	m("GET /login", s.anon(s.loginFlows))
	m("POST /login", s.anon(s.login))
	m("POST /register", s.anon(s.register))
	m("GET /register/available", s.local(s.registerAvailable))
	mux.Handle("GET /_matrix/client/v1/register/m.login.registration_token/validity", s.local(s.tokenValidity))
	m("POST /logout", s.authed(s.logout))
	m("GET /account/whoami", s.authed(s.whoami))
	m("GET /capabilities", s.authed(s.capabilities))
	m("POST /user/{userId}/filter", s.authed(s.putFilter))
	m("GET /user/{userId}/filter/{filterId}", s.authed(s.getFilter))
	m("GET /profile/{userId}", s.optionalAuth(s.getProfile))
	m("GET /profile/{userId}/{field}", s.optionalAuth(s.getProfileField))
	m("PUT /profile/{userId}/{field}", s.authed(s.putProfileField))
	m("GET /thirdparty/protocols", s.authed(s.thirdPartyProtocols))
	m("GET /thirdparty/protocol/{protocol}", s.authed(s.thirdPartyNone))
	m("GET /thirdparty/location/{protocol}", s.authed(s.thirdPartyNone))
	m("GET /thirdparty/user/{protocol}", s.authed(s.thirdPartyNone))
	m("GET /thirdparty/location", s.authed(s.thirdPartyNone))
	m("GET /thirdparty/user", s.authed(s.thirdPartyNone))

	// Each further role only if the node gave one.
	if s.devices != nil {
		m("GET /devices", s.authed(s.listDevices))
		m("GET /devices/{deviceId}", s.authed(s.getDevice))
		m("PUT /devices/{deviceId}", s.authed(s.putDevice))
		m("DELETE /devices/{deviceId}", s.authed(s.deleteDevice))
		m("POST /delete_devices", s.authed(s.deleteDevices))
		m("POST /logout/all", s.authed(s.logoutAll))
		m("POST /account/password", s.authed(s.changePassword))
		m("POST /account/deactivate", s.authed(s.deactivate))
		m("GET /account/3pid", s.authed(s.threePIDs))
		m("GET /admin/whois/{userId}", s.authed(s.whois))
		m("POST /refresh", s.anon(s.refresh))
	}
	if s.rooms != nil {
		m("POST /createRoom", s.authed(s.createRoom))
		m("GET /joined_rooms", s.authed(s.joinedRooms))
		m("PUT /rooms/{roomId}/redact/{eventId}/{txnId}", s.authed(s.redact))
		m("PUT /rooms/{roomId}/send/{type}/{txnId}", s.authed(s.send))
		m("PUT /rooms/{roomId}/state/{type}", s.authed(s.putState))
		m("PUT /rooms/{roomId}/state/{type}/{stateKey...}", s.authed(s.putState))
		m("GET /rooms/{roomId}/state", s.authed(s.getState))
		m("GET /rooms/{roomId}/state/{type}", s.authed(s.getStateEvent))
		m("GET /rooms/{roomId}/state/{type}/{stateKey...}", s.authed(s.getStateEvent))
		m("GET /rooms/{roomId}/members", s.authed(s.members))
		m("GET /rooms/{roomId}/joined_members", s.authed(s.joinedMembers))
		m("GET /rooms/{roomId}/messages", s.authed(s.messages))
		m("GET /rooms/{roomId}/event/{eventId}", s.authed(s.event))
		m("GET /rooms/{roomId}/context/{eventId}", s.authed(s.eventContext))
		mux.Handle("GET /_parley/v1/rooms/{roomId}/debug", s.authed(s.roomDebug))
		if up, ok := s.rooms.(Upgrader); ok {
			m("POST /rooms/{roomId}/upgrade", s.authed(s.upgradeRoom(up)))
		}
	}
	if s.membership != nil {
		m("POST /rooms/{roomId}/invite", s.authed(s.invite))
		m("POST /join/{roomIdOrAlias}", s.authed(s.join))
		m("POST /rooms/{roomId}/join", s.authed(s.join))
		m("POST /rooms/{roomId}/leave", s.authed(s.leave))
		m("POST /rooms/{roomId}/forget", s.authed(s.forget))
		m("POST /rooms/{roomId}/kick", s.authed(s.moderate("leave")))
		m("POST /rooms/{roomId}/ban", s.authed(s.moderate("ban")))
		m("POST /rooms/{roomId}/unban", s.authed(s.moderate("leave")))
		if k, ok := s.membership.(Knocking); ok {
			m("POST /knock/{roomIdOrAlias}", s.authed(s.knock(k)))
		}
	}
	if s.syncer != nil {
		m("GET /sync", s.authed(s.sync))
	}
	if s.userdata != nil {
		m("GET /user/{userId}/account_data/{type}", s.authed(s.getAccountData))
		m("PUT /user/{userId}/account_data/{type}", s.authed(s.putAccountData))
		m("GET /user/{userId}/rooms/{roomId}/account_data/{type}", s.authed(s.getAccountData))
		m("PUT /user/{userId}/rooms/{roomId}/account_data/{type}", s.authed(s.putAccountData))
		m("GET /pushrules/{$}", s.authed(s.getPushRules))
		m("GET /pushrules/{scope}/{$}", s.authed(s.getPushRules))
		m("GET /pushrules/{scope}/{kind}/{ruleId}", s.authed(s.getPushRule))
		m("PUT /pushrules/{scope}/{kind}/{ruleId}", s.authed(s.putPushRule))
		m("DELETE /pushrules/{scope}/{kind}/{ruleId}", s.authed(s.deletePushRule))
		m("GET /pushrules/{scope}/{kind}/{ruleId}/{attr}", s.authed(s.getPushRule))
		m("PUT /pushrules/{scope}/{kind}/{ruleId}/enabled", s.authed(s.putPushRuleEnabled))
		m("PUT /pushrules/{scope}/{kind}/{ruleId}/actions", s.authed(s.putPushRuleActions))
		m("POST /rooms/{roomId}/receipt/{receiptType}/{eventId}", s.authed(s.postReceipt))
		m("POST /rooms/{roomId}/read_markers", s.authed(s.postReadMarkers))
		m("GET /notifications", s.authed(s.getNotifications))
		m("GET /pushers", s.authed(s.getPushers))
		m("POST /pushers/set", s.authed(s.setPusher))
	}
	if s.keys != nil {
		m("POST /keys/upload", s.authed(s.uploadKeys))
		m("POST /keys/query", s.authed(s.queryKeys))
		m("POST /keys/claim", s.authed(s.claimKeys))
		m("GET /keys/changes", s.authed(s.keyChanges))
		// mautrix-go (up to v0.32 at least) asks with POST; the spec says GET.
		m("POST /keys/changes", s.authed(s.keyChanges))
		m("POST /keys/device_signing/upload", s.authed(s.uploadCrossSigning))
		m("POST /keys/signatures/upload", s.authed(s.uploadSignatures))
		m("PUT /sendToDevice/{type}/{txnId}", s.authed(s.sendToDevice))
		m("POST /room_keys/version", s.authed(s.createBackup))
		m("GET /room_keys/version", s.authed(s.getBackup))
		m("GET /room_keys/version/{version}", s.authed(s.getBackup))
		m("PUT /room_keys/version/{version}", s.authed(s.updateBackup))
		m("DELETE /room_keys/version/{version}", s.authed(s.deleteBackup))
		m("PUT /room_keys/keys", s.authed(s.putBackupKeys))
		m("PUT /room_keys/keys/{roomId}", s.authed(s.putBackupKeys))
		m("PUT /room_keys/keys/{roomId}/{sessionId}", s.authed(s.putBackupKeys))
		m("GET /room_keys/keys", s.authed(s.getBackupKeys))
		m("GET /room_keys/keys/{roomId}", s.authed(s.getBackupKeys))
		m("GET /room_keys/keys/{roomId}/{sessionId}", s.authed(s.getBackupKeys))
		m("DELETE /room_keys/keys", s.authed(s.deleteBackupKeys))
		m("DELETE /room_keys/keys/{roomId}", s.authed(s.deleteBackupKeys))
		m("DELETE /room_keys/keys/{roomId}/{sessionId}", s.authed(s.deleteBackupKeys))
	}
	if s.ephemeral != nil {
		m("PUT /rooms/{roomId}/typing/{userId}", s.authed(s.putTyping))
		m("GET /presence/{userId}/status", s.authed(s.getPresence))
		m("PUT /presence/{userId}/status", s.authed(s.putPresence))
	}
	if s.aliases != nil {
		m("PUT /directory/room/{roomAlias}", s.authed(s.putAlias))
		m("GET /directory/room/{roomAlias}", s.optionalAuth(s.getAlias))
		m("DELETE /directory/room/{roomAlias}", s.authed(s.deleteAlias))
		m("GET /rooms/{roomId}/aliases", s.authed(s.roomAliases))
	}
	if s.userDirectory != nil {
		m("POST /user_directory/search", s.authed(s.searchUsers))
	}
	if s.hierarchy != nil {
		mux.Handle("GET /_matrix/client/v1/rooms/{roomId}/hierarchy", s.authed(s.getHierarchy))
	}
	if s.timestamps != nil {
		mux.Handle("GET /_matrix/client/v1/rooms/{roomId}/timestamp_to_event", s.authed(s.timestampToEvent))
	}
	if s.dehydrated != nil {
		mux.Handle("PUT "+msc3814+"/dehydrated_device", s.authed(s.putDehydrated))
		mux.Handle("GET "+msc3814+"/dehydrated_device", s.authed(s.getDehydrated))
		mux.Handle("DELETE "+msc3814+"/dehydrated_device", s.authed(s.deleteDehydrated))
		mux.Handle("POST "+msc3814+"/dehydrated_device/{deviceId}/events", s.authed(s.dehydratedEvents))
	}
	if s.directory != nil {
		m("GET /directory/list/room/{roomId}", s.optionalAuth(s.getRoomVisibility))
		m("PUT /directory/list/room/{roomId}", s.authed(s.putRoomVisibility))
		m("GET /publicRooms", s.optionalAuth(s.getPublicRooms))
		m("POST /publicRooms", s.authed(s.postPublicRooms))
	}
	if s.links != nil {
		mux.Handle("POST /_parley/v1/rooms/{roomId}/links", s.authed(s.createLink))
		mux.Handle("GET /_parley/v1/rooms/{roomId}/links", s.authed(s.listLinks))
		mux.Handle("DELETE /_parley/v1/rooms/{roomId}/links/{linkId}", s.authed(s.revokeLink))
		mux.Handle("POST /_parley/v1/join_link", s.authed(s.joinLink))
	}
	if s.e2ee != nil {
		mux.Handle("GET /_parley/v1/rooms/{roomId}/e2ee", s.authed(s.roomE2EE))
		mux.Handle("POST /_parley/v1/rooms/{roomId}/e2ee/verify", s.authed(s.verify))
		mux.Handle("DELETE /_parley/v1/rooms/{roomId}/e2ee/verify/{server}", s.authed(s.unverify))
	}
	if s.admin != nil {
		mux.Handle("GET /_parley/v1/status", s.local(s.status))
		mux.Handle("GET /_parley/v1/blocked_servers", s.authed(s.blockedServers))
		mux.Handle("PUT /_parley/v1/blocked_servers/{server}", s.authed(s.blockServer))
		mux.Handle("DELETE /_parley/v1/blocked_servers/{server}", s.authed(s.unblockServer))
	}

	if s.media != nil {
		s.mediaRoutes(mux) // media.go
	}

	mux.Handle("/", s.serveApp())

	return s.protect(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The app's catch-all "/" matches every path and method, so it must
		// not answer for the API: anything under /_ that only it (or
		// nothing) matches is unrecognized.
		if _, pattern := mux.Handler(r); (pattern == "" || pattern == "/") && strings.HasPrefix(r.URL.Path, "/_") {
			s.unrecognized(w, r, mux)
			return
		}
		mux.ServeHTTP(w, r)
	}))
}

// unrecognized answers a request no API route takes: 405 with an Allow
// header if the path exists for other methods, else 404; M_UNRECOGNIZED
// either way, as the spec asks.
func (s *Server) unrecognized(w http.ResponseWriter, r *http.Request, mux *http.ServeMux) {
	var allow []string
	for _, method := range []string{"GET", "POST", "PUT", "DELETE"} {
		probe := r.Clone(r.Context())
		probe.Method = method
		if _, p := mux.Handler(probe); p != "" && p != "/" {
			allow = append(allow, method)
		}
	}
	if len(allow) > 0 {
		if slices.Contains(allow, "GET") {
			allow = append(allow, "HEAD")
		}
		w.Header().Set("Allow", strings.Join(allow, ", "))
		writeError(w, s.log, r, Errorf(http.StatusMethodNotAllowed, "M_UNRECOGNIZED", "method %s is not allowed on %s", r.Method, r.URL.Path))
		return
	}
	writeError(w, s.log, r, Errorf(http.StatusNotFound, "M_UNRECOGNIZED", "unrecognized request: %s %s", r.Method, r.URL.Path))
}
