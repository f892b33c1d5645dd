#!/usr/bin/env python3
"""A load client for benches/restart.sh: CONCURRENCY threads each send GET requests to
URL over a keep-alive connection (a new one after any failure) until DURATION seconds
have passed, then print, per window of the marks file (lines "<name> <start> <end>",
epoch seconds, written by the script while the load runs): requests, failed requests,
the longest gap a client saw (the longest time one thread waited between two successful
answers, from the window's start to past its end) and the p99 latency of requests
started in the window.

usage: restart_load.py URL DURATION CONCURRENCY MARKS_FILE
"""

import http.client
import sys
import threading
import time
import urllib.parse


def worker(host, port, path, until, out):
    conn = None
    while True:
        start = time.time()
        if start >= until:
            break
        try:
            if conn is None:
                conn = http.client.HTTPConnection(host, port, timeout=10)
            conn.request("GET", path)
            resp = conn.getresponse()
            resp.read()
            ok = 200 <= resp.status < 300
            if resp.getheader("connection", "").lower() == "close":
                conn.close()
                conn = None
        except (OSError, http.client.HTTPException):
            ok = False
            if conn is not None:
                conn.close()
            conn = None
        out.append((start, time.time(), ok))
        if not ok:
            time.sleep(0.001)


def p99(latencies):
    if not latencies:
        return float("nan")
    latencies = sorted(latencies)
    return latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]


def main():
    url, duration, concurrency, marks = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    u = urllib.parse.urlparse(url)
    until = time.time() + duration
    results = [[] for _ in range(concurrency)]
    threads = [
        threading.Thread(target=worker, args=(u.hostname, u.port, u.path or "/", until, results[i]))
        for i in range(concurrency)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    windows = []
    with open(marks) as f:
        for line in f:
            name, start, end = line.split()
            windows.append((name, float(start), float(end)))
    print("| switch | requests | failed | longest gap (ms) | p99 in window (ms) |")
    print("|---|---|---|---|---|")
    for name, start, end in windows:
        # The window reaches one second past the switch: a slow first answer counts.
        lo, hi = start, end + 1.0
        total = failed = 0
        latencies = []
        gap = 0.0
        for rs in results:
            last_ok = None
            for s, e, ok in rs:
                if lo <= s <= hi:
                    total += 1
                    latencies.append(e - s)
                    if not ok:
                        failed += 1
                if ok:
                    if last_ok is not None and e >= lo and last_ok <= hi:
                        gap = max(gap, e - max(last_ok, lo))
                    last_ok = e
        print(f"| {name} | {total} | {failed} | {gap * 1000:.0f} | {p99(latencies) * 1000:.1f} |")


if __name__ == "__main__":
    main()
