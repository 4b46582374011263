#!/usr/bin/env python3
"""Measures how long a publish made through one replica takes to be served by another.

Used by scale.sh. Publishes --count signed groups through --publish-url (the demo's manifests
with a new id and a later createdAt, signed with the fixture's TEST key, as publish_many.py
does), and after each answered publish polls --watch-url's manifest endpoint, with the headers
expo-updates sends, until it serves the new id. Prints one JSON object: the delays in
milliseconds (p50, p90, p99, max) from the publish's answer to the first request that got it.
Loopback only.
"""

import argparse
import http.client
import json
import os
import sys
import time
import uuid
from urllib.parse import urlparse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from publish_many import Api, Signer, iso_ms, replace_once  # noqa: E402


def percentile(sorted_values, share):
    index = min(len(sorted_values) - 1, max(0, round(share * (len(sorted_values) - 1))))
    return sorted_values[index]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--publish-url", required=True)
    parser.add_argument("--watch-url", required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--project", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--keyid", default="main")
    parser.add_argument("--platform", default="android")
    parser.add_argument("--count", type=int, default=100)
    args = parser.parse_args()

    api = Api(args.publish_url, args.token)
    signer = Signer(args.key, args.keyid)
    newest = api.call("GET", f"/api/v1/projects/{args.project}/groups?limit=1")["groups"][0]
    group = api.call("GET", f"/api/v1/projects/{args.project}/groups/{newest['id']}")
    templates = {u["platform"]: u["manifest"] for u in group["updates"]}
    runtime_version = group["runtime_version"]

    watch = urlparse(args.watch_url)
    if watch.hostname not in ("127.0.0.1", "localhost"):
        sys.exit("propagation: loopback only")
    conn = http.client.HTTPConnection(watch.hostname, watch.port, timeout=10)
    headers = {
        "accept": "multipart/mixed,application/expo+json,application/json",
        "expo-platform": args.platform,
        "expo-protocol-version": "1",
        "expo-runtime-version": runtime_version,
        "eas-client-id": "5f3c2a1e-7b4d-4e8a-9c2f-1d6e8b3a0f42",
    }

    delays = []
    polls = 0
    clock = int(time.time() * 1000)
    for n in range(args.count):
        clock = max(clock + 1, int(time.time() * 1000) - 1)
        created = iso_ms(clock)
        updates, wanted = [], None
        for platform, template in templates.items():
            update_id = str(uuid.uuid4())
            text = replace_once(template, r'"id":"[0-9a-f-]{36}"', f'"id":"{update_id}"')
            text = replace_once(text, r'"createdAt":"[^"]+"', f'"createdAt":"{created}"')
            updates.append({"platform": platform, "manifest": text,
                            "signature": signer.header(text.encode())})
            if platform == args.platform:
                wanted = update_id.encode()
        api.call("POST", f"/api/v1/projects/{args.project}/groups",
                 {"runtime_version": runtime_version, "message": f"propagation {n}",
                  "updates": updates}, expect=(201,))
        answered = time.perf_counter()
        while True:
            conn.request("GET", f"/manifest/{args.project}", headers=headers)
            body = conn.getresponse().read()
            polls += 1
            if wanted in body:
                delays.append((time.perf_counter() - answered) * 1000)
                break
            if time.perf_counter() - answered > 10:
                sys.exit(f"propagation: publish {n} not served by the watched replica in 10 s")
    delays.sort()
    print(json.dumps({
        "publishes": len(delays),
        "polls": polls,
        "p50_ms": round(percentile(delays, 0.50), 1),
        "p90_ms": round(percentile(delays, 0.90), 1),
        "p99_ms": round(percentile(delays, 0.99), 1),
        "max_ms": round(delays[-1], 1),
    }))


if __name__ == "__main__":
    main()
