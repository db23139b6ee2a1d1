# The plan (POST /api/v1/plan): what the policy would ask of a change, without a token. The
# operator asks it for a Plan task (spec.mode Plan) after the target was read and dry-run; the
# answer is shown to the agent and the approvers (status.plan), never acted on. It never allows:
# allow is false and the reason plan_only, whatever the input. input.poa is empty, so the tier is
# the computed one (tiers.rego: the action's default, raised by its risk rules, CRITICAL in a
# protected namespace); the approvals are what approvals.rego would need for that tier.
# details.policy_denies lists the objections the decision would have that do not depend on the
# token or its approvals (the request's shape, holder binding, payload limits, maintenance windows),
# so an agent knows before it asks for a token that no token would do.
package atb.k8s

plan_approvals := {"count": required_approvers[risk_tier], "roles": ["executive"]} if {
	risk_tier == "CRITICAL"
} else := {"count": required_approvers[risk_tier]}

# Priorities 20..39 judge the token (sub, act, its target constraints), 70..79 its approvals.
token_priority(p) if {
	p >= 20
	p < 40
}

token_priority(p) if {
	p >= 70
	p < 80
}

plan_denies := [d[1] | some d in sort(deny); not token_priority(d[0])]

plan := {
	"allow": false,
	"reason": "plan_only",
	"risk_tier": risk_tier,
	"approvals_required": plan_approvals,
	"details": object.union(
		{
			"computed_tier": computed_tier,
			"maintenance_windows": active_windows,
			"policy_denies": plan_denies,
			"requester": requester_details,
		},
		workload_details,
	),
}
