#!/usr/bin/env bash
# Starts ringside-media on a throwaway SQLite with demo users, until Ctrl-C.
set -euo pipefail
bin=${1:-bin/ringside-media}
data=$(mktemp -d -t ringside-demo.XXXXXX)
trap 'rm -rf "$data"' EXIT
add() { "$bin" user add "$@" --data "$data" >/dev/null; }
add alice --ext 1001 --password alice-pw --role agent --team red
add bob   --ext 1002 --password bob-pw   --role agent --team blue
add carol --ext 1003 --password carol-pw --role agent --team red
add sam   --ext 2001 --password sam-pw   --role supervisor --team red
add ada   --ext 3001 --password ada-pw   --role admin
cat <<MSG
Demo users (name / ext / password): alice 1001 alice-pw agent (team red), bob 1002 bob-pw agent
(team blue), carol 1003 carol-pw agent (team red; web visitors call her softphone at
http://127.0.0.1:8080/live/1003), sam 2001 sam-pw supervisor (team red), ada 3001 ada-pw admin.
SIP domain: 127.0.0.1:5060.
Register a SIP phone as 1001, call sip:1001@127.0.0.1:5060 from another phone (a customer),
then from a phone registered as 2001 dial *11001 (listen), *21001 (whisper) or *31001 (barge);
keys 1/2/3 switch mode. API: curl -s -XPOST 127.0.0.1:8080/api/login -d '{"user":"sam","password":"sam-pw"}'
MSG
"$bin" serve --data "$data" --sip-addr 127.0.0.1:5060 --http-addr 127.0.0.1:8080
