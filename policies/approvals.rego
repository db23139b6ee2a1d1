# Approvals. The broker normalises the token's leg.approval, leg.dual_control.approvers and
# leg.executive_control.approvers into input.poa.approvals: [{id, source, exp?}], where source is
# "approval", "dual_control" or "executive_control" and exp (unix seconds) is optional.
#   MEDIUM    one live approver other than the agent (any source)
#   HIGH      two distinct live approvers, neither the agent (dual control)
#   CRITICAL  two distinct live executive approvers (leg.executive_control), neither the agent
# An approval by the agent itself is never counted and denies the request outright when the tier
# needs approval: a token in which the agent approves itself is malformed or forged.
package atb.k8s

approvals := object.get(input, ["poa", "approvals"], [])

approval_live(a) if not a.exp

approval_live(a) if a.exp > now_seconds

self_approved if {
	some a in approvals
	a.id == input.poa.sub
}

expired_approval if {
	some a in approvals
	not approval_live(a)
}

# Distinct, live approvers other than the agent.
approvers contains a.id if {
	some a in approvals
	a.id != input.poa.sub
	approval_live(a)
}

executive_approvers contains a.id if {
	some a in approvals
	a.source == "executive_control"
	a.id != input.poa.sub
	approval_live(a)
}

# Some approver id appears more than once among the live, non-agent approvals of the
# high-tier sources.
duplicate_approvers if {
	ids := [a.id | some a in approvals; a.source != "approval"; a.id != input.poa.sub; approval_live(a)]
	count(ids) > count({id | some id in ids})
}

required_approvers := {"LOW": 0, "MEDIUM": 1, "HIGH": 2, "CRITICAL": 2}

approvals_satisfied if risk_tier == "LOW"

approvals_satisfied if {
	risk_tier in {"MEDIUM", "HIGH"}
	count(approvers) >= required_approvers[risk_tier]
}

approvals_satisfied if {
	risk_tier == "CRITICAL"
	count(executive_approvers) >= 2
}

missing_approval_code := {
	"MEDIUM": "medium_risk_approval_required",
	"HIGH": "high_risk_dual_control_required",
	"CRITICAL": "critical_risk_executive_approval_required",
}
