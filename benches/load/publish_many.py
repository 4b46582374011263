#!/usr/bin/env python3
"""Fills an otago-server store with many signed, published updates for the load benchmark.

Used by run.sh (phase e). Talks to the management API on 127.0.0.1 only, with the admin token
from OTAGO_ADMIN_TOKEN. The assets are already stored (the demo published exports/v1), so every
publish is a small JSON body: the demo's manifest text with a new id, a later createdAt and,
where needed, another runtimeVersion, signed with the fixture's TEST key, through the same
checks as any deploy (asset presence, signature against the project's certificate, newer
createdAt, one SQLite transaction each).

Where the updates go (total = --updates, default 10,000 updates = 5,000 two-platform groups):
  40 %  the measured channel itself (the demo project, its runtime version): a long history;
  20 %  other runtime versions of the same project (--runtime-versions of them);
  40 %  other projects (--projects of them), each with its own signed history.
"""

import argparse
import base64
import http.client
import json
import re
import subprocess
import sys
import time
import uuid
from datetime import datetime, timezone
from urllib.parse import urlparse

try:  # in-process signing when the `cryptography` package is there; openssl otherwise
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding
except ImportError:  # pragma: no cover
    serialization = None


class Api:
    def __init__(self, base_url, token):
        url = urlparse(base_url)
        if url.hostname not in ("127.0.0.1", "localhost"):
            sys.exit(f"publish_many: refusing to talk to {url.hostname}: loopback only")
        self.host, self.port = url.hostname, url.port
        self.token = token
        self.conn = http.client.HTTPConnection(self.host, self.port, timeout=60)

    def call(self, method, path, body=None, expect=(200,)):
        headers = {"authorization": f"Bearer {self.token}"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["content-type"] = "application/json"
        for attempt in range(2):  # one reconnect if the keep-alive connection was closed
            try:
                self.conn.request(method, path, body=data, headers=headers)
                response = self.conn.getresponse()
                text = response.read()
                break
            except (http.client.HTTPException, ConnectionError):
                if attempt:
                    raise
                self.conn.close()
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=60)
        if response.status not in expect:
            sys.exit(f"publish_many: {method} {path} -> {response.status}: {text[:500]!r}")
        return json.loads(text) if text else None


class Signer:
    def __init__(self, key_path, keyid):
        self.key_path = key_path
        self.keyid = keyid
        self.key = None
        if serialization is not None:
            with open(key_path, "rb") as f:
                self.key = serialization.load_pem_private_key(f.read(), password=None)

    def header(self, data: bytes) -> str:
        if self.key is not None:
            sig = self.key.sign(data, padding.PKCS1v15(), hashes.SHA256())
        else:
            sig = subprocess.run(
                ["openssl", "dgst", "-sha256", "-sign", self.key_path],
                input=data, capture_output=True, check=True,
            ).stdout
        b64 = base64.b64encode(sig).decode()
        return f'sig="{b64}", keyid="{self.keyid}", alg="rsa-v1_5-sha256"'


def replace_once(text, pattern, value):
    new, count = re.subn(pattern, lambda _: value, text, count=2)
    if count != 1:
        sys.exit(f"publish_many: expected exactly one match of {pattern} in the manifest")
    return new


def iso_ms(ms):
    dt = datetime.fromtimestamp(ms / 1000, tz=timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--project", required=True, help="ref of the measured (demo) project")
    parser.add_argument("--key", required=True, help="private key PEM (the fixture's TEST key)")
    parser.add_argument("--cert", required=True, help="certificate PEM of that key")
    parser.add_argument("--keyid", default="main")
    parser.add_argument("--updates", type=int, default=10_000)
    parser.add_argument("--runtime-versions", type=int, default=100)
    parser.add_argument("--projects", type=int, default=8)
    args = parser.parse_args()

    api = Api(args.base_url, args.token)
    signer = Signer(args.key, args.keyid)
    with open(args.cert) as f:
        certificate = f.read()

    # The demo's group: the manifest text of each platform, the template of every publish.
    newest = api.call("GET", f"/api/v1/projects/{args.project}/groups?limit=1")["groups"][0]
    group = api.call("GET", f"/api/v1/projects/{args.project}/groups/{newest['id']}")
    templates = {u["platform"]: u["manifest"] for u in group["updates"]}
    runtime_version = group["runtime_version"]
    first = json.loads(next(iter(templates.values())))
    start_ms = int(
        datetime.strptime(first["createdAt"], "%Y-%m-%dT%H:%M:%S.%fZ")
        .replace(tzinfo=timezone.utc).timestamp() * 1000
    )

    groups_total = args.updates // len(templates)
    measured = groups_total * 40 // 100
    per_rv = max(1, groups_total * 20 // 100 // args.runtime_versions)
    per_project = max(1, (groups_total - measured - per_rv * args.runtime_versions) // args.projects)

    # Other projects: created by the admin, signing required with the same certificate.
    project_refs = []
    existing = {(p["app"], p["environment"]): p["ref"]
                for p in api.call("GET", "/api/v1/projects")["projects"]}
    for i in range(args.projects):
        key = (f"bench-app-{i}", "production")
        ref = existing.get(key) or api.call(
            "POST", "/api/v1/projects", {"app": key[0], "environment": key[1]}, expect=(201,)
        )["ref"]
        api.call("PATCH", f"/api/v1/projects/{ref}",
                 {"require_signing": True, "certificate_pem": certificate})
        project_refs.append(ref)

    # (project, runtime version) of every group, the measured channel last so that it also
    # gets the newest publishes.
    plan = []
    for i in range(args.projects):
        plan += [(project_refs[i], runtime_version)] * per_project
    for i in range(args.runtime_versions):
        plan += [(args.project, f"0.{i}.0")] * per_rv
    plan += [(args.project, runtime_version)] * measured

    clock = start_ms
    published = 0
    began = time.monotonic()
    last_ids = {}
    for n, (ref, rv) in enumerate(plan, 1):
        clock = max(clock + 1, int(time.time() * 1000) - 1)  # strictly increasing, not ahead
        created = iso_ms(clock)
        updates = []
        for platform, template in templates.items():
            update_id = str(uuid.uuid4())
            text = replace_once(template, r'"id":"[0-9a-f-]{36}"', f'"id":"{update_id}"')
            text = replace_once(text, r'"createdAt":"[^"]+"', f'"createdAt":"{created}"')
            text = replace_once(text, r'"runtimeVersion":"[^"]+"',
                                '"runtimeVersion":' + json.dumps(rv))
            updates.append({"platform": platform, "manifest": text,
                            "signature": signer.header(text.encode())})
            last_ids[(ref, rv, platform)] = update_id
        api.call("POST", f"/api/v1/projects/{ref}/groups",
                 {"runtime_version": rv, "message": f"load bench {n}", "updates": updates},
                 expect=(201,))
        published += len(updates)
        if n % 500 == 0 or n == len(plan):
            rate = n / (time.monotonic() - began)
            print(f"publish_many: {n}/{len(plan)} groups ({published} updates), {rate:.0f} groups/s",
                  file=sys.stderr, flush=True)

    summary = {
        "updates_published": published,
        "groups_published": len(plan),
        "measured_channel_groups": measured,
        "other_runtime_versions": args.runtime_versions,
        "groups_per_other_runtime_version": per_rv,
        "other_projects": args.projects,
        "groups_per_other_project": per_project,
        "seconds": round(time.monotonic() - began, 1),
        "signing": "cryptography" if signer.key is not None else "openssl",
        "measured_newest_ids": {p: last_ids[(args.project, runtime_version, p)] for p in templates},
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
