# Shared fixtures for the policy tests: a valid, bound LOW scale request, and helpers that run
# the decision on a variation of it.
package atb.k8s_test

import data.atb.k8s

# The agent is the ServiceAccount agents/planner in the SPIFFE Kubernetes form, and that
# ServiceAccount created the task: bound by the shipped data's trust domain (requester.rego).
agent := "spiffe://atb.example.com/ns/agents/sa/planner"

requester := {"username": "system:serviceaccount:agents:planner", "groups": ["system:serviceaccounts", "system:serviceaccounts:agents", "system:authenticated"]}

operator := "spiffe://atb.example/ns/atb-system/sa/atb-operator"

# Wednesday, 10:00 UTC.
now := "2026-03-04T10:00:00Z"

now_s := 1772618400

request(verb, kind, params, context, approvals) := {
	"action": sprintf("k8s.%s.%s", [kind, verb]),
	"agent": {"spiffe_id": agent},
	"requester": requester,
	"operator": {"spiffe_id": operator},
	"poa": {
		"sub": agent,
		"act": sprintf("k8s.%s.%s", [kind, verb]),
		"con": {"namespace": "shop", "kind": kind, "name": "web"},
		"jti": "jti-1",
		"iat": now_s - 10,
		"exp": now_s + 290,
		"approvals": approvals,
	},
	"target": {"kind": kind, "name": "web", "namespace": "shop"},
	"params": params,
	"context": context,
	"now": now,
}

scale_request(current, desired) := request("scale", "Deployment", {"replicas": desired}, {"current": {"replicas": current}}, [])

low := scale_request(3, 5)

approval(id) := {"id": id, "source": "approval"}

dual(id) := {"id": id, "source": "dual_control"}

executive(id) := {"id": id, "source": "executive_control", "roles": ["executive"]}

attested(id, roles) := {"id": id, "source": "attestation", "roles": roles}

with_approvals(verb, approvals) := request(verb, "Deployment", {}, {}, approvals)

decide(inp) := d if d := k8s.decision with input as inp

# The decision on inp with fields replaced (object.union merges nested objects).
decide_patched(inp, patch) := decide(object.union(inp, patch))

denied_with(inp, code) if {
	d := decide(inp)
	d.allow == false
	d.reason == code
}

allowed(inp) if decide(inp).allow == true
