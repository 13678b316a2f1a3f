#!/usr/bin/env python3
"""Checks deploy/: every YAML file parses, the manifests carry the keys an
operator relies on, and every PORTCULLIS_* variable they set is one the
command they run knows (per its --help).

    python3 deploy/check.py target/debug/portcullis
"""
import pathlib
import re
import subprocess
import sys

import yaml

DEPLOY = pathlib.Path(__file__).resolve().parent
failures = []


def fail(message):
    failures.append(message)


def known_variables(binary, *command):
    text = subprocess.run([binary, *command, "--help"], capture_output=True, text=True, check=True).stdout
    return set(re.findall(r"PORTCULLIS_[A-Z0-9_]+", text))


def dig(document, *path):
    for key in path:
        if isinstance(document, list):
            document = document[key] if isinstance(key, int) and key < len(document) else None
        elif isinstance(document, dict):
            document = document.get(key)
        else:
            return None
    return document


def check_variables(where, names, known):
    for name in names:
        if name.startswith("PORTCULLIS_") and name not in known:
            fail(f"{where}: {name} is not known to the command it configures")


def main(binary):
    serve = known_variables(binary, "serve")
    migrate = known_variables(binary, "db", "migrate")
    provision = known_variables(binary, "db", "provision")

    documents = {}
    for path in sorted(DEPLOY.rglob("*.y*ml")):
        try:
            documents[path.relative_to(DEPLOY).as_posix()] = [d for d in yaml.safe_load_all(path.read_text()) if d]
        except yaml.YAMLError as error:
            fail(f"{path}: does not parse: {error}")

    by_kind = {}
    for name, docs in documents.items():
        for doc in docs:
            if isinstance(doc, dict) and "kind" in doc:
                by_kind.setdefault(doc["kind"], []).append((name, doc))
    for kind in ["Deployment", "Service", "ConfigMap", "PodDisruptionBudget", "HorizontalPodAutoscaler", "Job"]:
        if kind not in by_kind:
            fail(f"k8s: no {kind}")

    configmap_names = set()
    for _, doc in by_kind.get("ConfigMap", []):
        configmap_names |= set((doc.get("data") or {}).keys())
    check_variables("k8s ConfigMap", configmap_names, serve)

    for name, doc in by_kind.get("Deployment", []):
        pod = dig(doc, "spec", "template", "spec") or {}
        if not dig(pod, "securityContext", "runAsNonRoot"):
            fail(f"{name}: pod must run as non-root")
        for container in pod.get("containers", []):
            for probe in ["readinessProbe", "livenessProbe"]:
                if not dig(container, probe, "grpc", "port"):
                    fail(f"{name}: {probe} must use gRPC health")
            if not dig(container, "resources", "requests"):
                fail(f"{name}: resources.requests missing")
            if not dig(container, "securityContext", "readOnlyRootFilesystem"):
                fail(f"{name}: the root filesystem should be read-only")
            env = container.get("env", [])
            if not any(dig(e, "valueFrom", "secretKeyRef") for e in env):
                fail(f"{name}: secrets should come from a Secret reference")
            check_variables(name, [e["name"] for e in env], serve)

    for name, doc in by_kind.get("Job", []):
        for container in dig(doc, "spec", "template", "spec", "containers") or []:
            check_variables(name, [e["name"] for e in container.get("env", [])], migrate)

    compose = documents.get("docker-compose.yml", [{}])[0]
    services = compose.get("services", {})
    for service in ["postgres", "provision", "portcullis", "otel-collector"]:
        if service not in services:
            fail(f"docker-compose.yml: no {service} service")
    if not str(dig(services, "postgres", "image") or "").startswith("postgres:16"):
        fail("docker-compose.yml: PostgreSQL 16 expected")
    check_variables("compose portcullis", (dig(services, "portcullis", "environment") or {}).keys(), serve)
    check_variables("compose provision", (dig(services, "provision", "environment") or {}).keys(), provision | migrate)

    dockerfile = (DEPLOY / "Dockerfile").read_text()
    if dockerfile.count("\nFROM ") + dockerfile.startswith("FROM ") < 2:
        fail("Dockerfile: multi-stage build expected")
    if not re.search(r"^USER (?!0|root)", dockerfile, re.M):
        fail("Dockerfile: must switch to a non-root user")
    if "pool_mode = transaction" not in (DEPLOY / "pgbouncer" / "pgbouncer.ini").read_text():
        fail("pgbouncer.ini: transaction pooling expected")

    for message in failures:
        print(f"deploy check: {message}")
    checked = sum(len(docs) for docs in documents.values())
    print(f"deploy: {checked} YAML documents checked, {len(failures)} problems")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "target/debug/portcullis"))
