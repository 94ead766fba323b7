#!/usr/bin/env python3
"""A faultline client for Redis, standard library only.

faultline starts this program once per worker and writes one operation per
line on its stdin:

    {"id": 1, "f": "read", "value": [3, null], "node": "10.0.0.1:7000"}

and expects one answer per line on its stdout, with the same id:

    {"id": 1, "type": "ok", "value": [3, 5]}

`ok`: it happened (value: the operation's value, with what a read read);
`fail`: it certainly did not happen; `info`: it may have (a timeout, a lost
connection). Anything else on stdout is a protocol error: print diagnostics
to stderr (they go to the run's faultline.log).

This client sends every operation to the first node (FAULTLINE_NODES lists
them all, in host order): each Redis server here is standalone, so one of
them is the register, which must then be linearizable.
"""

import json
import os
import socket
import sys

PRIMARY = os.environ["FAULTLINE_NODES"].split(",")[0]
CONNECT_TIMEOUT_S = 0.3
# Below faultline's operation timeout (1 s): answer `info` before it gives up on us.
CALL_TIMEOUT_S = 0.6

# Compare-and-set, atomic in Redis: set KEYS[1] to ARGV[2] if it is ARGV[1].
CAS = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2])
  return 1
end
return 0
"""


class RedisError(Exception):
    """Redis answered with an error: the command did not run."""


class Redis:
    """One connection speaking RESP."""

    def __init__(self, addr):
        host, port = addr.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_S)
        self.sock.settimeout(CALL_TIMEOUT_S)
        self.reader = self.sock.makefile("rb")

    def call(self, *args):
        out = [b"*%d\r\n" % len(args)]
        for a in args:
            a = str(a).encode()
            out.append(b"$%d\r\n%s\r\n" % (len(a), a))
        self.sock.sendall(b"".join(out))
        return self.read()

    def read(self):
        line = self.reader.readline()
        if not line.endswith(b"\r\n"):
            raise ConnectionError("connection closed")
        kind, rest = line[:1], line[1:-2]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            raise RedisError(rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            if n < 0:
                return None
            data = self.reader.read(n + 2)
            if len(data) != n + 2:
                raise ConnectionError("connection closed")
            return data[:-2].decode()
        if kind == b"*":
            return [self.read() for _ in range(int(rest))]
        raise ConnectionError("unexpected reply %r" % line)

    def close(self):
        self.sock.close()


def apply(redis, f, value):
    """Runs one register operation; returns the ok value or raises."""
    key = "r%d" % value[0]
    if f == "read":
        got = redis.call("GET", key)
        return [value[0], None if got is None else int(got)]
    if f == "write":
        redis.call("SET", key, value[1])
        return value
    if f == "cas":
        old, new = value[1]
        if redis.call("EVAL", CAS, 1, key, old, new) == 1:
            return value
        return None  # not applied: a definite failure
    raise ValueError("unknown f %r" % f)


def main():
    redis = None
    for line in sys.stdin:
        op = json.loads(line)
        answer = {"id": op["id"]}
        if redis is None:
            try:
                redis = Redis(PRIMARY)
            except OSError as e:
                # Nothing was sent: it certainly did not happen.
                answer.update(type="fail", error="connect: %s" % e)
        if redis is not None:
            try:
                value = apply(redis, op["f"], op["value"])
                if value is None:
                    answer.update(type="fail", error="cas-mismatch")
                else:
                    answer.update(type="ok", value=value)
            except RedisError as e:
                answer.update(type="fail", error=str(e))
            except (OSError, ValueError) as e:
                # Sent, but no answer: it may or may not have happened.
                answer.update(type="info", error=str(e))
                redis.close()
                redis = None
        print(json.dumps(answer), flush=True)


if __name__ == "__main__":
    main()
