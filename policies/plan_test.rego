package atb.k8s_test

import data.atb.k8s

# A plan's input: the decision's without a token (input.poa absent).
plan_of(inp) := p if p := k8s.plan with input as object.remove(inp, ["poa"])

test_plan_never_allows if {
	p := plan_of(scale_request(2, 3))
	p.allow == false
	p.reason == "plan_only"
	p.risk_tier == "LOW"
	p.approvals_required == {"count": 0}
	p.details.policy_denies == []
}

test_plan_tiers_and_approvals_follow_the_action if {
	plan_of(scale_request(2, 30)).risk_tier == "MEDIUM"
	plan_of(scale_request(2, 30)).approvals_required == {"count": 1}
	p := plan_of(request("deploy", "Deployment", {"image": "nginx:1.28"}, {}, []))
	p.risk_tier == "HIGH"
	p.approvals_required == {"count": 2}
	p.allow == false
}

test_plan_protected_namespace_needs_two_executives if {
	inp := object.union(scale_request(2, 3), {"target": {"namespace": "kube-system"}})
	p := plan_of(inp)
	p.risk_tier == "CRITICAL"
	p.approvals_required == {"count": 2, "roles": ["executive"]}
}

test_plan_lists_objections_no_token_would_lift if {
	# replicas above the configured limit, and a requester nobody bound: neither depends on the token.
	inp := object.union(scale_request(2, 100000), {"requester": {"username": "mallory", "groups": []}})
	p := plan_of(inp)
	p.allow == false
	"replicas_above_limit" in p.details.policy_denies
	"requester_mismatch" in p.details.policy_denies

	# The token's own objections are not listed: there is none to judge.
	not "constraints_missing_target" in p.details.policy_denies
	not "high_risk_dual_control_required" in p.details.policy_denies
	not "medium_risk_approval_required" in p.details.policy_denies
}
