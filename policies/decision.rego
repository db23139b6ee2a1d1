# The decision the reference broker asks for: data.atb.k8s.decision =
#   {allow, reason, risk_tier, details}
# Input (built by the broker after it verified the PoA's signature, lifetime, expiry and jti):
#   action, agent{spiffe_id}, requester{username, uid?, groups} (the Kubernetes identity that
#   created the task; requester.rego), operator{spiffe_id}, poa{sub, act, con, leg, iat, exp, jti,
#   approvals, risk_tier?}, target{kind, name, namespace}, params, context, now (RFC 3339).
# Every deny carries a stable reason code; when several apply, the lowest priority number wins
# (binding before payload before time before approvals), so the reason is deterministic.
package atb.k8s

con := c if {
	c := input.poa.con
	is_object(c)
} else := {}

deny contains [10, "action_malformed"] if not action_match

deny contains [11, "unknown_action"] if {
	action_match
	not verb in known_verbs
}

deny contains [12, "action_target_kind_mismatch"] if {
	action_match
	action_kind != input.target.kind
}

deny contains [13, "request_time_invalid"] if not now_ns

deny contains [20, "sub_mismatch"] if input.poa.sub != input.agent.spiffe_id

deny contains [21, "action_mismatch"] if input.poa.act != input.action

deny contains [30, "constraints_missing_target"] if {
	some field in ["namespace", "kind", "name"]
	not is_string(object.get(con, field, null))
}

deny contains [31, "target_mismatch"] if {
	some field in ["namespace", "kind", "name"]
	is_string(con[field])
	con[field] != input.target[field]
}

deny contains [40, "params_invalid"] if {
	verb == "scale"
	not valid_desired_replicas
}

deny contains [41, "payload_exceeds_constraints"] if {
	verb == "scale"
	desired_replicas > con.max_replicas
}

deny contains [41, "payload_exceeds_constraints"] if {
	verb == "scale"
	desired_replicas < con.min_replicas
}

deny contains [42, "replicas_above_limit"] if {
	verb == "scale"
	desired_replicas > data.atb_config.limits.max_replicas
}

deny contains [50, "risk_tier_invalid"] if {
	input.poa.risk_tier
	not tier_rank[asserted_tier]
}

deny contains [60, "maintenance_window"] if in_maintenance_window

deny contains [70, "self_approval_not_allowed"] if {
	risk_tier != "LOW"
	self_approved
}

deny contains [71, "approval_expired"] if {
	not approvals_satisfied
	expired_approval
}

deny contains [72, "duplicate_approvers"] if {
	not approvals_satisfied
	risk_tier in {"HIGH", "CRITICAL"}
	duplicate_approvers
}

deny contains [73, missing_approval_code[risk_tier]] if not approvals_satisfied

valid_desired_replicas if {
	n := desired_replicas
	is_number(n)
	n >= 0
	n == floor(n)
}

deny_codes := [d[1] | some d in sort(deny)]

details := {
	"computed_tier": computed_tier,
	"asserted_tier": object.get(input, ["poa", "risk_tier"], null),
	"approvers": count(approvers),
	"counted_approvers": sort(approvers),
	"executive_approvers": count(executive_approvers),
	"maintenance_windows": active_windows,
	"ignored_approvals": ignored_approvals,
	"denies": deny_codes,
	"requester": requester_details,
}

# The workload findings (workload.rego) join the details only when there are any.
decision_details := object.union(details, workload_details)

decision := {"allow": true, "reason": "allowed", "risk_tier": risk_tier, "details": decision_details} if count(deny) == 0

decision := {"allow": false, "reason": deny_codes[0], "risk_tier": risk_tier, "details": decision_details} if count(deny) > 0
