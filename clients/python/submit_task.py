#!/usr/bin/env python3
"""Submit one AgentTask to the ATB operator and wait for its outcome.

The seed's Python example, made complete and correct:

* the task is created in the namespace of its target (metadata.namespace, the namespace in the
  request path and spec.target.namespace agree; the operator rejects cross-namespace targets);
* it waits for the result: it watches the task (resuming after dropped watches and expired
  resource versions) until the operator records a terminal phase, then prints the phase, the risk
  tier the ATB broker computed and the reason;
* the PoA token is read from the environment variable ATB_POA_TOKEN, never from the command line:
  a process's arguments are readable by every local user (ps, /proc/<pid>/cmdline), end up in
  shell history and in CI and process-audit logs. The token is never printed, and is redacted
  from any error message that might quote it;
* the identity it runs as (the kubeconfig's user, or in a pod its ServiceAccount) must be bound to
  --agent-id: the operator records who created the task and the broker denies requester_mismatch
  otherwise. With no other configuration, run as the ServiceAccount <sa> in namespace <ns> and use
  the agent id spiffe://<trust domain>/ns/<ns>/sa/<sa> (docs/agents.md, "What you need").

Usage:
    export ATB_POA_TOKEN=...        # the agent's PoA token
    python3 submit_task.py --agent-id spiffe://example.org/agent/planner --action scale \\
        --target Deployment/production/web-frontend --payload '{"replicas": 5}' \\
        [--name NAME] [--namespace NS] [--kubeconfig PATH] [--timeout SECONDS]

Before asking for a token, the agent can print the digest its token must bind (con.change_sha256,
required from MEDIUM risk up; change_digest.py next to this script computes it, without a token or
a cluster):

    python3 submit_task.py --action restart --target Deployment/production/api-server --print-change-digest

A rollback also takes --template-hash (the pod-template-hash of the revision's ReplicaSet) and,
without a revision in its payload, --revision. An update-config of a Secret gives its values by
reference ({"valueFrom": {"secretKeyRef": {"name": ..., "key": ...}}}); its digest takes
--value-digest KEY=sha256:<hex> for each such key (the SHA-256 of the source Secret's value).

Kubernetes configuration: --kubeconfig, else $KUBECONFIG or ~/.kube/config, else the in-cluster
service account (when running in a pod).

Exit codes: 0 the task Completed; 1 it was Denied or Failed; 2 anything else (bad arguments,
the API server rejected the task at admission, API errors, timeout).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any, Dict, Optional

from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException

from change_digest import (
    VALUE_DIGEST_HELP,
    ChangeError,
    parse_payload,
    task_change_digest,
    template_hash_arg,
    value_digests_arg,
)

GROUP = "atb.siemens.com"
VERSION = "v1alpha1"
PLURAL = "agenttasks"
TERMINAL_PHASES = ("Completed", "Denied", "Failed")

EXIT_COMPLETED = 0
EXIT_REJECTED = 1  # Denied or Failed
EXIT_ERROR = 2


class SubmitError(Exception):
    """An error that ends the script with exit code 2."""


def redact(text: str, token: str) -> str:
    return text.replace(token, "[REDACTED]") if token else text


def api_message(err: ApiException) -> str:
    """The API server's own message from a Status body, else the HTTP reason."""
    try:
        body = json.loads(err.body or "")
        if isinstance(body, dict) and body.get("message"):
            return str(body["message"])
    except (TypeError, ValueError):
        pass
    return f"HTTP {err.status}: {err.reason}"


def load_api_client(kubeconfig: Optional[str]) -> client.ApiClient:
    cfg = client.Configuration()
    in_cluster = bool(os.environ.get("KUBERNETES_SERVICE_HOST"))
    has_kubeconfig = bool(kubeconfig or os.environ.get("KUBECONFIG")) or os.path.exists(os.path.expanduser("~/.kube/config"))
    if has_kubeconfig or not in_cluster:
        config.load_kube_config(config_file=kubeconfig, client_configuration=cfg)
    else:
        config.load_incluster_config(client_configuration=cfg)
    api_client = client.ApiClient(cfg)
    api_client.user_agent = "atb-submit-python/0.1"
    return api_client


def generate_name(action: str, target: str) -> str:
    """metadata.generateName prefix: "<action>-<target>-", leaving room for the 5-char suffix."""
    prefix = f"{action}-{target}".lower()[:57].rstrip("-.")
    return prefix + "-"


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Submit an AgentTask and wait until it is Completed, Denied or Failed. "
        "The PoA token is read from $ATB_POA_TOKEN.",
    )
    p.add_argument("--kubeconfig", default=None, help="kubeconfig path (default: $KUBECONFIG, ~/.kube/config, in-cluster)")
    p.add_argument("--namespace", default=None, help="namespace of the AgentTask (default: the target's namespace)")
    p.add_argument("--name", default=None, help="name of the AgentTask (default: generated from action and target)")
    p.add_argument("--agent-id", default=os.environ.get("ATB_AGENT_ID"), help="the agent's SPIFFE ID (default: $ATB_AGENT_ID)")
    p.add_argument("--action", required=True, help="scale, restart, update-config, deploy, rollback or patch")
    p.add_argument("--target", required=True, help="KIND/NAMESPACE/NAME, e.g. Deployment/production/web-frontend")
    p.add_argument("--payload", default="{}", help="the action's payload as a JSON object, e.g. '{\"replicas\": 5}'")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for a terminal phase (default 300)")
    p.add_argument(
        "--print-change-digest",
        action="store_true",
        help="print the digest of the task's change (the token's con.change_sha256) and exit: no token, no cluster",
    )
    p.add_argument("--revision", type=int, default=None, help="rollback, with --print-change-digest: the revision it restores")
    p.add_argument(
        "--template-hash",
        default=None,
        help='rollback, with --print-change-digest: the pod-template-hash of that revision ("none" if it has none)',
    )
    p.add_argument(
        "--value-digest",
        action="append",
        default=None,
        metavar="KEY=sha256:HEX",
        help="with --print-change-digest, " + VALUE_DIGEST_HELP,
    )
    return p.parse_args(argv)


def print_change_digest(args: argparse.Namespace) -> int:
    """--print-change-digest: the digest of the change the operator will ask the broker about."""
    parts = args.target.split("/")
    if len(parts) != 3 or not all(parts):
        print(f"error: --target must be KIND/NAMESPACE/NAME, got {args.target!r}", file=sys.stderr)
        return EXIT_ERROR
    try:
        payload = parse_payload(args.payload)
        print(
            task_change_digest(
                args.action,
                parts[0],
                payload,
                args.revision,
                template_hash_arg(args.template_hash),
                value_digests_arg(args.value_digest),
            )
        )
    except (ChangeError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_ERROR
    return EXIT_COMPLETED


def build_task(args: argparse.Namespace, token: str) -> Dict[str, Any]:
    parts = args.target.split("/")
    if len(parts) != 3 or not all(parts):
        raise SubmitError(f"--target must be KIND/NAMESPACE/NAME, got {args.target!r}")
    kind, target_ns, target_name = parts
    try:
        payload = json.loads(args.payload)
    except ValueError as e:
        raise SubmitError(f"--payload is not valid JSON: {e}") from None
    if not isinstance(payload, dict):
        raise SubmitError("--payload must be a JSON object")
    namespace = args.namespace or target_ns
    metadata: Dict[str, Any] = {"namespace": namespace}
    if args.name:
        metadata["name"] = args.name
    else:
        metadata["generateName"] = generate_name(args.action, target_name)
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "AgentTask",
        "metadata": metadata,
        "spec": {
            "agentId": args.agent_id,
            "poaToken": token,
            "action": args.action,
            "target": {"kind": kind, "name": target_name, "namespace": target_ns},
            "payload": payload,
        },
    }


def phase_of(obj: Dict[str, Any]) -> str:
    return str((obj.get("status") or {}).get("phase") or "")


def wait_for_terminal(api: client.CustomObjectsApi, namespace: str, name: str, created: Dict[str, Any], timeout: float) -> Dict[str, Any]:
    """Watches the task until its phase is terminal; re-lists after a closed or expired watch."""
    deadline = time.monotonic() + timeout
    obj = created
    rv = created["metadata"]["resourceVersion"]
    last_phase = phase_of(obj) or "(none yet)"
    while True:
        if phase_of(obj) in TERMINAL_PHASES:
            return obj
        remaining = deadline - time.monotonic()
        if remaining < 1:
            raise SubmitError(
                f"timed out after {timeout:g}s waiting for AgentTask {namespace}/{name} to finish (last phase: {last_phase})"
            )
        w = watch.Watch()
        try:
            for event in w.stream(
                api.list_namespaced_custom_object,
                GROUP,
                VERSION,
                namespace,
                PLURAL,
                field_selector=f"metadata.name={name}",
                resource_version=rv,
                allow_watch_bookmarks=True,
                timeout_seconds=int(min(remaining, 60)),
                _request_timeout=min(remaining, 60) + 10,
            ):
                kind, item = event["type"], event["object"]
                rv = item.get("metadata", {}).get("resourceVersion", rv)
                if kind == "BOOKMARK":
                    continue
                if kind == "DELETED":
                    raise SubmitError(f"AgentTask {namespace}/{name} was deleted before it finished")
                obj = item
                if phase_of(obj):
                    last_phase = phase_of(obj)
                if phase_of(obj) in TERMINAL_PHASES:
                    w.stop()
                    return obj
        except ApiException as e:
            if e.status != 410:  # 410 Gone: the resource version expired; re-read below
                raise
        except Exception as e:  # a dropped connection or read timeout: re-read and watch again
            if isinstance(e, SubmitError):
                raise
            if time.monotonic() >= deadline:
                continue
            time.sleep(1)
        finally:
            w.stop()
        obj = api.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
        rv = obj["metadata"]["resourceVersion"]
        if phase_of(obj):
            last_phase = phase_of(obj)


def main(argv: list[str]) -> int:
    token = os.environ.get("ATB_POA_TOKEN", "")
    try:
        args = parse_args(argv)
    except SystemExit as e:  # argparse exits 2 on bad usage, 0 on --help
        return int(e.code or 0)
    if args.print_change_digest:
        return print_change_digest(args)
    try:
        if not token:
            raise SubmitError("ATB_POA_TOKEN is not set: export the agent's PoA token in the environment")
        if not args.agent_id:
            raise SubmitError("--agent-id (or $ATB_AGENT_ID) is required")
        task = build_task(args, token)
        namespace = task["metadata"]["namespace"]
        api = client.CustomObjectsApi(load_api_client(args.kubeconfig))
        try:
            created = api.create_namespaced_custom_object(
                group=GROUP, version=VERSION, namespace=namespace, plural=PLURAL, body=task, field_manager="atb-submit"
            )
        except ApiException as e:
            raise SubmitError(f"the API server rejected the AgentTask in namespace {namespace}: {api_message(e)}") from None
        name = created["metadata"]["name"]
        print(f"agenttask {namespace}/{name} created", flush=True)
        try:
            done = wait_for_terminal(api, namespace, name, created, args.timeout)
        except ApiException as e:
            raise SubmitError(f"watching AgentTask {namespace}/{name}: {api_message(e)}") from None
    except SubmitError as e:
        print(f"error: {redact(str(e), token)}", file=sys.stderr)
        return EXIT_ERROR
    except Exception as e:  # configuration and connection errors
        print(f"error: {redact(f'{type(e).__name__}: {e}', token)}", file=sys.stderr)
        return EXIT_ERROR

    status = done.get("status") or {}
    atb = status.get("atbResult") or {}
    phase = status.get("phase")
    print(f"phase: {phase}")
    print(f"riskTier: {atb.get('riskTier') or '-'}")
    print(f"reason: {redact(str(atb.get('reason') or '-'), token)}")
    print(f"message: {redact(str(status.get('message') or '-'), token)}")
    print(f"requestId: {atb.get('requestId') or '-'}")
    return EXIT_COMPLETED if phase == "Completed" else EXIT_REJECTED


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
