#!/usr/bin/env python3
"""Submit one AgentTask to the ATB operator and wait for its outcome.

The seed's Python example, made complete and correct:

* the task is created in the namespace of its target (metadata.namespace, the namespace in the
  request path and spec.target.namespace agree; the operator rejects cross-namespace targets);
* it waits for the result: it watches the task (resuming after dropped watches and expired
  resource versions) until the operator records a terminal phase, or AwaitingApproval (the
  broker's only objection is missing approvals: the approvers' turn), then prints the phase, the
  risk tier the ATB broker computed and the reason;
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

Plan a change before asking for a token (a Plan task: no token, nothing written; prints the change
digest the token must carry, the risk tier, the approvals needed and a diff; exit 0 when Planned):

    python3 submit_task.py --plan --agent-id ... --action scale --target Deployment/production/web-frontend \
        --payload '{"replicas": 5}'

Wait while a task is AwaitingApproval and print the phase it moves on to (exit 0 Executing or
Completed, 1 Denied or Failed, 2 on timeout): python3 submit_task.py --await-approval NAME --namespace NS.
The functions plan() and await_approval() do the same for a program that imports this module.

Kubernetes configuration: --kubeconfig, else $KUBECONFIG or ~/.kube/config, else the in-cluster
service account (when running in a pod).

Exit codes: 0 the task Completed; 1 it was Denied or Failed; 3 it is AwaitingApproval (approvers
must add AgentTaskApprovals; wait with --await-approval NAME); 2 anything else (bad arguments,
the API server rejected the task at admission, API errors, timeout).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any, Callable, Dict, Optional, Tuple

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
EXIT_AWAITING_APPROVAL = 3  # the broker's only objection is missing approvals: the task waits for them


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
    p.add_argument("--action", default=None, help="scale, restart, update-config, deploy, rollback or patch")
    p.add_argument("--target", default=None, help="KIND/NAMESPACE/NAME, e.g. Deployment/production/web-frontend")
    p.add_argument(
        "--plan",
        action="store_true",
        help="create a Plan task instead (no token needed, nothing written) and print its plan: the change digest "
        "a token must carry, the risk tier, the approvals needed and a diff",
    )
    p.add_argument(
        "--await-approval",
        default=None,
        metavar="NAME",
        help="wait while the task NAME (in --namespace) is AwaitingApproval and print the phase it moves on to",
    )
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
    args = p.parse_args(argv)
    if not args.await_approval and (not args.action or not args.target):
        p.error("--action and --target are required")
    return args


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
    """Watches the task until its phase is terminal or AwaitingApproval; re-lists after a closed or expired watch."""
    # AwaitingApproval is where an agent's part ends for now: the approvers' turn (see --await-approval).
    obj, timed_out = wait_for(
        api, namespace, name, created, timeout, lambda o: phase_of(o) in TERMINAL_PHASES + ("AwaitingApproval",)
    )
    if timed_out:
        raise SubmitError(
            f"timed out after {timeout:g}s waiting for AgentTask {namespace}/{name} to finish "
            f"(last phase: {phase_of(obj) or '(none yet)'})"
        )
    return obj


def wait_for(
    api: client.CustomObjectsApi,
    namespace: str,
    name: str,
    created: Optional[Dict[str, Any]],
    timeout: float,
    done: Callable[[Dict[str, Any]], bool],
) -> Tuple[Dict[str, Any], bool]:
    """Watches the task until done(task) holds; returns (task, False), or (last task seen, True) after
    timeout seconds. Re-lists after a closed or expired watch; raises SubmitError when it is deleted."""
    deadline = time.monotonic() + timeout
    if created is None:
        try:
            created = api.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
        except ApiException as e:
            raise SubmitError(f"reading AgentTask {namespace}/{name}: {api_message(e)}") from None
    obj = created
    rv = created["metadata"]["resourceVersion"]
    while True:
        if done(obj):
            return obj, False
        remaining = deadline - time.monotonic()
        if remaining < 1:
            return obj, True
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
                if done(obj):
                    w.stop()
                    return obj, False
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
        try:
            obj = api.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
        except ApiException as e:
            if e.status == 404:
                raise SubmitError(f"AgentTask {namespace}/{name} was deleted before it finished") from None
            raise
        rv = obj["metadata"]["resourceVersion"]


UNDECIDED_PHASES = ("", "Pending", "Processing", "AwaitingApproval")


def plan(
    api: client.CustomObjectsApi,
    agent_id: str,
    action: str,
    target: Tuple[str, str, str],
    payload: Dict[str, Any],
    timeout: float,
    name: Optional[str] = None,
) -> Dict[str, Any]:
    """Creates a Plan task (spec.mode Plan: no token, nothing written) for the change and returns its
    status.plan once it is Planned: changeSha256 (the token's con.change_sha256), riskTier,
    approvalsRequired {count, roles?, sentence}, diff, diffTruncated. The task is created in the
    target's namespace. Raises SubmitError when it ends otherwise (e.g. Failed PlanNotAllowed: the
    caller may not read the target), is refused at admission, or the time is up."""
    kind, namespace, target_name = target
    metadata: Dict[str, Any] = {"namespace": namespace}
    if name:
        metadata["name"] = name
    else:
        metadata["generateName"] = generate_name(f"plan-{action}", target_name)
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "AgentTask",
        "metadata": metadata,
        "spec": {
            "agentId": agent_id,
            "mode": "Plan",
            "action": action,
            "target": {"kind": kind, "name": target_name, "namespace": namespace},
            "payload": payload,
        },
    }
    try:
        created = api.create_namespaced_custom_object(
            group=GROUP, version=VERSION, namespace=namespace, plural=PLURAL, body=body, field_manager="atb-plan"
        )
    except ApiException as e:
        raise SubmitError(f"the API server rejected the Plan task in namespace {namespace}: {api_message(e)}") from None
    task_name = created["metadata"]["name"]
    obj, timed_out = wait_for(
        api, namespace, task_name, created, timeout, lambda o: phase_of(o) in TERMINAL_PHASES + ("Planned",)
    )
    status = obj.get("status") or {}
    if timed_out:
        raise SubmitError(
            f"timed out after {timeout:g}s waiting for the plan of AgentTask {namespace}/{task_name} "
            f"(last phase: {phase_of(obj) or '(none yet)'})"
        )
    if phase_of(obj) != "Planned" or not status.get("plan"):
        reasons = [c.get("reason") for c in status.get("conditions") or [] if c.get("status") == "False"]
        raise SubmitError(
            f"AgentTask {namespace}/{task_name} ended {phase_of(obj)} without a plan "
            f"({(reasons or ['-'])[0]}): {status.get('message') or '-'}"
        )
    return obj


def await_approval(api: client.CustomObjectsApi, namespace: str, name: str, timeout: float) -> Tuple[Dict[str, Any], bool]:
    """Waits while the task is AwaitingApproval (or not yet decided: no phase, Pending, Processing).
    Returns (task, False) once it has moved on (Executing or a terminal phase), or (task, True) when
    timeout seconds passed first."""
    return wait_for(api, namespace, name, None, timeout, lambda o: phase_of(o) not in UNDECIDED_PHASES)


def print_plan(obj: Dict[str, Any]) -> None:
    p = (obj.get("status") or {}).get("plan") or {}
    approvals = p.get("approvalsRequired") or {}
    print(f"phase: {phase_of(obj)}")
    print(f"changeSha256: {p.get('changeSha256') or '-'}")
    print(f"riskTier: {p.get('riskTier') or '-'}")
    roles = ", ".join(approvals.get("roles") or [])
    print(f"approvalsRequired: {approvals.get('count', 0)}{f' ({roles})' if roles else ''}: {approvals.get('sentence') or '-'}")
    print(f"diffTruncated: {str(bool(p.get('diffTruncated'))).lower()}")
    print("diff:")
    print(p.get("diff") or "")


def print_result(obj: Dict[str, Any], token: str) -> None:
    status = obj.get("status") or {}
    atb = status.get("atbResult") or {}
    print(f"phase: {status.get('phase')}")
    print(f"riskTier: {atb.get('riskTier') or '-'}")
    print(f"reason: {redact(str(atb.get('reason') or '-'), token)}")
    print(f"message: {redact(str(status.get('message') or '-'), token)}")
    print(f"requestId: {atb.get('requestId') or '-'}")
    sentence = (status.get("approvals") or {}).get("sentence")
    if status.get("phase") == "AwaitingApproval" and sentence:
        print(f"approvals: {redact(str(sentence), token)}")


def main(argv: list[str]) -> int:
    token = os.environ.get("ATB_POA_TOKEN", "")
    try:
        args = parse_args(argv)
    except SystemExit as e:  # argparse exits 2 on bad usage, 0 on --help
        return int(e.code or 0)
    if args.print_change_digest:
        return print_change_digest(args)
    if args.plan or args.await_approval:
        return plan_or_await(args, token)
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

    print_result(done, token)
    if phase_of(done) == "AwaitingApproval":
        return EXIT_AWAITING_APPROVAL
    return EXIT_COMPLETED if phase_of(done) == "Completed" else EXIT_REJECTED


def plan_or_await(args: argparse.Namespace, token: str) -> int:
    """--plan (no token needed) and --await-approval NAME."""
    try:
        if args.plan:
            if not args.agent_id or not args.action or not args.target:
                raise SubmitError("--plan needs --agent-id (or $ATB_AGENT_ID), --action and --target")
            parts = args.target.split("/")
            if len(parts) != 3 or not all(parts):
                raise SubmitError(f"--target must be KIND/NAMESPACE/NAME, got {args.target!r}")
            try:
                payload = json.loads(args.payload)
            except ValueError as e:
                raise SubmitError(f"--payload is not valid JSON: {e}") from None
            if not isinstance(payload, dict):
                raise SubmitError("--payload must be a JSON object")
            api = client.CustomObjectsApi(load_api_client(args.kubeconfig))
            obj = plan(api, args.agent_id, args.action, (parts[0], parts[1], parts[2]), payload, args.timeout, args.name)
            print(f"agenttask {obj['metadata']['namespace']}/{obj['metadata']['name']} planned")
            print_plan(obj)
            return EXIT_COMPLETED
        if not args.namespace:
            raise SubmitError("--await-approval needs --namespace (the task's namespace)")
        api = client.CustomObjectsApi(load_api_client(args.kubeconfig))
        obj, timed_out = await_approval(api, args.namespace, args.await_approval, args.timeout)
        if timed_out:
            raise SubmitError(
                f"timed out after {args.timeout:g}s: AgentTask {args.namespace}/{args.await_approval} is still "
                f"{phase_of(obj) or '(no phase yet)'}"
            )
    except SubmitError as e:
        print(f"error: {redact(str(e), token)}", file=sys.stderr)
        return EXIT_ERROR
    except Exception as e:  # configuration, connection and API errors
        print(f"error: {redact(f'{type(e).__name__}: {e}', token)}", file=sys.stderr)
        return EXIT_ERROR
    print_result(obj, token)
    return EXIT_REJECTED if phase_of(obj) in ("Denied", "Failed") else EXIT_COMPLETED


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
