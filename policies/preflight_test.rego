package atb.k8s_test

import data.atb.k8s

preflight(inp) := p if p := k8s.binding with input as object.remove(inp, ["params", "context"])

test_preflight_allows_a_token_bound_to_this_action_and_target if {
	p := preflight(low)
	p.allow
	p.reason == "token_verified"
}

test_preflight_refuses_each_binding_failure if {
	preflight(object.union(low, {"target": {"name": "api"}})).reason == "target_mismatch"
	preflight(object.union(low, {"poa": {"sub": "spiffe://atb.example/agent/other"}})).reason == "sub_mismatch"
	preflight(object.union(low, {"poa": {"act": "k8s.Deployment.restart"}})).reason == "action_mismatch"
	preflight(json.remove(low, ["poa/con"])).reason == "constraints_missing_target"
	preflight(object.union(low, {"action": "k8s.Deployment.delete", "poa": {"act": "k8s.Deployment.delete"}})).reason == "unknown_action"
}

test_preflight_ignores_what_needs_the_change if {
	# Missing approvals, params and a maintenance window are the decision's business, not the preflight's.
	p := preflight(with_approvals("deploy", []))
	p.allow
	p.risk_tier == "HIGH"
}

test_preflight_tier_is_the_default_tier_without_context if {
	# A scale without a known current count is MEDIUM for the decision; the preflight says LOW.
	preflight(low).risk_tier == "LOW"
	preflight(object.union(low, {"target": {"name": "api"}})).risk_tier == "LOW"
}

test_preflight_protected_namespace_is_critical if {
	inp := object.union(low, {"target": {"namespace": "kube-system"}, "poa": {"con": {"namespace": "kube-system"}}})
	preflight(inp).risk_tier == "CRITICAL"
}

test_preflight_asserted_tier_raises if preflight(object.union(low, {"poa": {"risk_tier": "HIGH"}})).risk_tier == "HIGH"
