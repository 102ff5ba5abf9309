#!/usr/bin/env python3
"""Checks the deployment files against the binary they deploy.

Renders the kustomize base (`kubectl kustomize deploy/k8s`), reads
compose.yaml and the Dockerfile, and checks that:
- every environment variable they set is a setting of the binary (its
  `--help` names each one's variable);
- the ports they name are the ports the settings bind (BIND_ADDR,
  METRICS_BIND_ADDR), and the probes use named ports that exist;
- every probe path answers on a running server (not 404), /health with 200;
- every metric the alert rules use is one the server exports;
- the PrometheusRule equals deploy/prometheus/alerts.yaml.

Usage: deploy/check_manifests.py [path to the bookedbarber binary]
"""

import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BINARY = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "target/debug/bookedbarber")
# Set by the Secret the base expects (not in it).
SECRET_KEYS = {"DATABASE_URL", "REDIS_URL", "JWT_SECRET"}

failures = []


def fail(message):
    failures.append(message)
    print(f"FAIL {message}")


def port_of(addr):
    return int(addr.rsplit(":", 1)[1])


def settings():
    """The environment variables the binary reads, from its --help."""
    text = subprocess.run([BINARY, "--help"], capture_output=True, text=True, check=True).stdout
    return set(re.findall(r"\[env: ([A-Z0-9_]+)[=\]]", text))


def rendered():
    out = subprocess.run(
        ["kubectl", "kustomize", os.path.join(ROOT, "deploy/k8s")],
        capture_output=True, text=True, check=True,
    ).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def serve():
    """A server on a scratch database: its address and process."""
    scratch = tempfile.mkdtemp()
    env = dict(os.environ)
    env.update({
        "DATABASE_URL": f"sqlite://{scratch}/check.db?mode=rwc",
        "BIND_ADDR": "127.0.0.1:0",
        "DEMO_SEED": "false",
        "RUST_LOG": "warn",
    })
    env.pop("REDIS_URL", None)
    env.pop("METRICS_BIND_ADDR", None)
    process = subprocess.Popen([BINARY, "serve"], env=env, stdout=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    for line in process.stdout:
        found = re.search(r"listening on http://(\S+)", line)
        if found:
            return found.group(1), process
        if time.time() > deadline:
            break
    process.kill()
    raise SystemExit("the server did not start")


def status(url):
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def main():
    known = settings()
    docs = rendered()
    by_kind = {}
    for doc in docs:
        by_kind.setdefault(doc["kind"], []).append(doc)
    config = {}
    for configmap in by_kind.get("ConfigMap", []):
        config.update(configmap.get("data", {}))

    # Variables: the ConfigMap's, each container's env, the Secret's keys.
    names = set(config) | SECRET_KEYS
    probes = []
    ports = {}
    for kind in ("Deployment", "Job"):
        for doc in by_kind.get(kind, []):
            for container in doc["spec"]["template"]["spec"]["containers"]:
                names |= {env["name"] for env in container.get("env", [])}
                for port in container.get("ports", []):
                    ports[port["name"]] = port["containerPort"]
                for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
                    if probe in container:
                        probes.append((probe, container[probe]["httpGet"]))
    with open(os.path.join(ROOT, "deploy/compose.yaml")) as f:
        compose = yaml.safe_load(f)
    for name, service in compose["services"].items():
        environment = service.get("environment") or {}
        if "bookedbarber" in str(service.get("image", "")):
            names |= set(environment)
    with open(os.path.join(ROOT, "deploy/Dockerfile")) as f:
        dockerfile = f.read()
    names |= set(re.findall(r"^\s*(?:ENV\s+)?([A-Z][A-Z0-9_]+)=", dockerfile, re.M)) - {"PATH"}
    for name in sorted(names - known):
        fail(f"{name} is set by the deployment files but is not a setting of the binary")
    print(f"ok   {len(names & known)} variables are settings of the binary")

    # Ports.
    if port_of(config["BIND_ADDR"]) != ports.get("http"):
        fail(f"BIND_ADDR {config['BIND_ADDR']} is not the container port http {ports.get('http')}")
    if "METRICS_BIND_ADDR" in config and port_of(config["METRICS_BIND_ADDR"]) != ports.get("metrics"):
        fail("METRICS_BIND_ADDR is not the container port metrics")
    for service in by_kind.get("Service", []):
        for port in service["spec"]["ports"]:
            if port["targetPort"] not in ports:
                fail(f"the Service targets port {port['targetPort']}, which no container names")
    exposed = re.findall(r"^EXPOSE (\d+)", dockerfile, re.M)
    docker_bind = re.search(r"BIND_ADDR=(\S+)", dockerfile)
    if not docker_bind or [str(port_of(docker_bind.group(1)))] != exposed:
        fail("the Dockerfile's EXPOSE is not its BIND_ADDR's port")
    if "8080" not in dockerfile.split("HEALTHCHECK", 1)[1]:
        fail("the Dockerfile's HEALTHCHECK does not ask the port it binds")
    for probe, get in probes:
        if get["port"] not in ports:
            fail(f"{probe} uses port {get['port']}, which no container names")
    print(f"ok   ports: {ports}")

    # Paths and metrics, against a running server.
    addr, process = serve()
    try:
        for probe, get in probes:
            code, _ = status(f"http://{addr}{get['path']}")
            if code == 404 or (get["path"] == "/health" and code != 200):
                fail(f"{probe} path {get['path']} answers {code}")
            else:
                print(f"ok   {probe} {get['path']} answers {code}")
        status(f"http://{addr}/graphql?query=%7B__typename%7D")
        _, metrics = status(f"http://{addr}/metrics")
        exported = set(re.findall(r"^([a-z_]+)(?:\{| )", metrics, re.M))
        with open(os.path.join(ROOT, "deploy/prometheus/alerts.yaml")) as f:
            alerts = yaml.safe_load(f)
        for group in alerts["groups"]:
            for rule in group["rules"]:
                for metric in set(re.findall(r"bookedbarber_[a-z_]+", rule["expr"])):
                    if metric not in exported:
                        fail(f"alert {rule['alert']} uses {metric}, which the server does not export")
        print("ok   the alert rules use exported metrics")
        rule = by_kind.get("PrometheusRule", [{}])[0]
        if rule.get("spec") != alerts:
            fail("the PrometheusRule differs from deploy/prometheus/alerts.yaml")
    finally:
        process.kill()

    if failures:
        raise SystemExit(f"{len(failures)} problem(s) in the deployment files")
    print("the deployment files match the binary")


main()
