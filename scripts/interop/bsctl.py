#!/usr/bin/env python3
"""bsctl.py PORT COMMAND [PARAMS] - send one command to baresip's ctrl_tcp (netstring JSON)
and print the replies that arrive within a second. e.g. bsctl.py 4401 dial 'sip:*11001@127.0.0.1:5070'"""
import json, socket, sys

port, cmd = int(sys.argv[1]), sys.argv[2]
params = " ".join(sys.argv[3:])
msg = json.dumps({"command": cmd, "params": params, "token": "t"}).encode()
s = socket.create_connection(("127.0.0.1", port), timeout=2)
s.sendall(b"%d:%s," % (len(msg), msg))
s.settimeout(1.0)
buf = b""
try:
    while True:
        chunk = s.recv(4096)
        if not chunk:
            break
        buf += chunk
except socket.timeout:
    pass
while buf:
    n, _, rest = buf.partition(b":")
    if not n.isdigit():
        break
    n = int(n)
    print(rest[:n].decode(errors="replace"))
    buf = rest[n + 1:]
