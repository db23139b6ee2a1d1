# Approvals. The broker passes only approvals someone trusted vouches for, as
# input.poa.approvals: [{id, raw_id, source, roles, exp?, vouched_by}], where source is
# "approval", "dual_control" or "executive_control" (a leg block the token's issuer profile vouches
# for) or "attestation" (signed by the approver's own key), roles are verified roles (e.g.
# "executive") and exp (unix seconds) is optional. What it did not count is in
# input.poa.ignored_approvals and goes to the decision's details.
#   MEDIUM    one live approver other than the agent (any source)
#   HIGH      two distinct live approvers, neither the agent (dual control)
#   CRITICAL  two distinct live approvers with the executive role, neither the agent
# Approver ids are compared by their key (approver_key below, the broker's rule again so that no
# caller of the policy can bypass it): case, trailing slashes and the SPIFFE user form do not make
# two approvers out of one. An approval by the agent itself is never counted and denies the
# request outright when the tier needs approval: a token in which the agent approves itself is
# malformed or forged.
package atb.k8s

approvals := object.get(input, ["poa", "approvals"], [])

ignored_approvals := object.get(input, ["poa", "ignored_approvals"], [])

# The comparison key of an approver id: trimmed, lower-case, trailing slashes removed, and
# spiffe://<trust domain>/user/<name> read as <name>. Ids that are not 1..256 printable ASCII
# characters have no key and never count.
approver_key(id) := key if {
	s := trim_space(id)
	regex.match(`^[!-~]{1,256}$`, s)
	lowered := trim_right(lower(s), "/")
	lowered != ""
	key := spiffe_user_name(lowered)
}

spiffe_user_name(s) := m[0][1] if {
	m := regex.find_all_string_submatch_n(`^spiffe://[^/]+/user/([^/]+)$`, s, 1)
	count(m) == 1
} else := s

agent_key := approver_key(input.poa.sub)

# The approvals with a key, each with that key (a list: the same approval twice is a duplicate).
keyed := [object.union(a, {"key": k}) |
	some a in approvals
	k := approver_key(a.id)
]

approval_live(a) if not a.exp

approval_live(a) if a.exp > now_seconds

has_role(a, role) if role in object.get(a, "roles", [])

self_approved if {
	some a in keyed
	a.key == agent_key
}

expired_approval if {
	some a in keyed
	not approval_live(a)
}

# Distinct, live approvers other than the agent.
approvers contains a.key if {
	some a in keyed
	a.key != agent_key
	approval_live(a)
}

executive_approvers contains a.key if {
	some a in keyed
	has_role(a, "executive")
	a.key != agent_key
	approval_live(a)
}

# Some approver appears more than once among the live, non-agent approvals of the high-tier
# sources (every source but the single leg.approval).
duplicate_approvers if {
	keys := [a.key |
		some a in keyed
		a.source != "approval"
		a.key != agent_key
		approval_live(a)
	]
	count(keys) > count({k | some k in keys})
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
