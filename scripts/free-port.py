#!/usr/bin/env python3
"""Prints a free loopback port below the kernel's ephemeral range, so that a client
connection cannot take it while the service that owns it is stopped (a restart must find
its ports free). Used by scripts/services.sh and scripts/kafka.sh."""
import random
import socket

low = int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
for _ in range(1000):
    port = random.randrange(10000, max(low, 10001))
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", port))
    except OSError:
        continue
    finally:
        s.close()
    print(port)
    break
else:
    raise SystemExit("no free port below the ephemeral range")
