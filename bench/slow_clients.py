"""Opens N sockets to HOST:PORT in three kinds (silent, trickling headers, trickling a body),
keeps trickling for at most SECONDS, and prints how many of each the server closed (loopback only)."""
import json
import socket
import sys
import time

host, port, n, seconds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
assert host in ("127.0.0.1", "localhost"), "loopback only"
kinds = {"silent": [], "headers": [], "body": []}
for i in range(n):
    kind = list(kinds)[i % 3]
    s = socket.create_connection((host, port))
    s.setblocking(False)
    if kind == "headers":
        s.send(b"POST /graphql HTTP/1.1\r\nHost: x\r\n")
    elif kind == "body":
        s.send(b"POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{")
    kinds[kind].append(s)
closed = {k: set() for k in kinds}
deadline = time.monotonic() + seconds
while time.monotonic() < deadline:
    for kind, socks in kinds.items():
        for i, s in enumerate(socks):
            if i in closed[kind]:
                continue
            try:
                data = s.recv(4096)
                if data == b"" or data.startswith(b"HTTP/1.1 408"):
                    closed[kind].add(i)
                    continue
            except BlockingIOError:
                pass
            except OSError:
                closed[kind].add(i)
                continue
            if kind != "silent":
                try:
                    s.send(b" ")
                except OSError:
                    closed[kind].add(i)
    time.sleep(0.5)
print(json.dumps({k: {"opened": len(v), "closed_by_server": len(closed[k])} for k, v in kinds.items()}))
