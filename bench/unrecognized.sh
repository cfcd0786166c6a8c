#!/bin/bash
# unrecognized.sh: starts a fresh node on 127.0.0.1 (ports 18008 and
# 14001), registers a user with the claim code, creates a room, and asks
# a list of client-server endpoints; prints each answer's status, or
# UNRECOGNIZED where the node answers M_UNRECOGNIZED. Run from the
# repository root: bash bench/unrecognized.sh
set -u
D=$(mktemp -d)
go build -o "$D/parley" ./cmd/parley || exit 1
"$D/parley" run --data "$D/data" --http 127.0.0.1:18008 --listen /ip4/127.0.0.1/tcp/14001 --claim-code probecode >"$D/log" 2>&1 &
PID=$!
trap 'kill $PID; wait $PID 2>/dev/null; rm -rf "$D"' EXIT
B=http://127.0.0.1:18008/_matrix/client
for _ in $(seq 100); do curl -s -o /dev/null "$B/versions" && break; sleep 0.1; done
json() { python3 -c 'import sys,json;print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }
reg() { curl -s -X POST "$B/v3/register" -H 'Content-Type: application/json' -d "$1"; }
S=$(reg '{"username":"probe","password":"pw-probe-123456"}' | json session)
TOK=$(reg '{"username":"probe","password":"pw-probe-123456","auth":{"type":"m.login.registration_token","token":"probecode","session":"'"$S"'"}}' | json access_token)
ROOM=$(curl -s -X POST "$B/v3/createRoom" -H "Authorization: Bearer $TOK" -d '{}' | json room_id)
U=$(python3 -c 'import urllib.parse,sys;print(urllib.parse.quote(sys.argv[1]))' "$ROOM")
ME=$(curl -s "$B/v3/account/whoami" -H "Authorization: Bearer $TOK" | json user_id)
while read -r M P BODY; do
	[ -z "$M" ] && continue
	P=${P//ROOM/$U}
	P=${P//ME/$ME}
	out=$(curl -s -X "$M" "$B$P" -H "Authorization: Bearer $TOK" -H 'Content-Type: application/json' -d "${BODY:-{\}}" -w ' %{http_code}')
	case "$out" in
	*M_UNRECOGNIZED*) echo "UNRECOGNIZED $M $P" ;;
	*) echo "${out##* } $M $P" ;;
	esac
done <<'LIST'
GET /v3/publicRooms
POST /v3/publicRooms
GET /v3/directory/list/room/ROOM
PUT /v3/directory/list/room/ROOM {"visibility":"private"}
POST /v3/knock/ROOM
POST /v3/rooms/ROOM/upgrade {"new_version":"12"}
POST /v3/rooms/ROOM/report/$x {}
POST /v3/rooms/ROOM/report {}
POST /v3/users/ME/report {}
POST /v3/user_directory/search {"search_term":"p"}
GET /v1/rooms/ROOM/relations/$x
GET /v1/rooms/ROOM/threads
POST /v3/search {"search_categories":{"room_events":{"search_term":"x"}}}
GET /v1/media/config
GET /v1/media/preview_url?url=http%3A%2F%2F127.0.0.1%2F
GET /v3/thirdparty/protocols
GET /v3/account/3pid
POST /v3/account/3pid/add
GET /v3/login/sso/redirect
POST /v1/login/get_token
GET /v1/auth_metadata
GET /v3/voip/turnServer
POST /v3/user/ME/openid/request_token
GET /v3/admin/whois/ME
GET /v1/rooms/ROOM/hierarchy
GET /v1/rooms/ROOM/timestamp_to_event?ts=1&dir=f
GET /unstable/org.matrix.msc3814.v1/dehydrated_device
GET /v3/events
GET /v3/rooms/ROOM/initialSync
GET /v3/keys/changes?from=s0&to=s1
GET /v3/capabilities
GET /v3/account/whoami
GET /v3/devices
GET /v3/pushrules/
GET /v3/notifications
LIST
