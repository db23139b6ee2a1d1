package atb.k8s_test

medium := with_approvals("restart", [])

high := with_approvals("deploy", [])

test_medium_without_approval_denied if denied_with(medium, "medium_risk_approval_required")

test_medium_with_approval_allowed if allowed(with_approvals("restart", [approval("alice")]))

test_medium_approved_by_agent_denied if denied_with(with_approvals("restart", [approval(agent)]), "self_approval_not_allowed")

test_medium_approved_by_agent_and_other_still_denied if {
	denied_with(with_approvals("restart", [approval("alice"), dual(agent)]), "self_approval_not_allowed")
}

test_low_ignores_self_approval if allowed(object.union(low, {"poa": {"approvals": [approval(agent)]}}))

test_high_without_approval_denied if denied_with(high, "high_risk_dual_control_required")

test_high_with_one_approver_denied if denied_with(with_approvals("deploy", [dual("alice")]), "high_risk_dual_control_required")

test_high_with_two_identical_approvers_denied if denied_with(with_approvals("deploy", [dual("alice"), dual("alice")]), "duplicate_approvers")

test_high_with_agent_as_second_approver_denied if denied_with(with_approvals("deploy", [dual("alice"), dual(agent)]), "self_approval_not_allowed")

test_high_with_two_distinct_approvers_allowed if {
	allowed(with_approvals("deploy", [dual("alice"), dual("bob")]))
	allowed(with_approvals("rollback", [dual("alice"), dual("bob")]))
	allowed(with_approvals("patch", [dual("alice"), dual("bob")]))
}

test_high_duplicates_do_not_matter_once_two_distinct if {
	allowed(with_approvals("deploy", [dual("alice"), dual("alice"), dual("bob")]))
}

test_medium_approval_counts_towards_high if allowed(with_approvals("deploy", [approval("alice"), dual("bob")]))

test_expired_approval_not_counted if {
	inp := with_approvals("deploy", [dual("alice"), {"id": "bob", "source": "dual_control", "exp": now_s - 1}])
	denied_with(inp, "approval_expired")
}

test_approval_expiring_now_is_expired if {
	denied_with(with_approvals("restart", [{"id": "alice", "source": "approval", "exp": now_s}]), "approval_expired")
	allowed(with_approvals("restart", [{"id": "alice", "source": "approval", "exp": now_s + 1}]))
}

test_expired_approval_ignored_when_others_suffice if {
	allowed(with_approvals("deploy", [dual("alice"), dual("bob"), {"id": "carol", "source": "dual_control", "exp": now_s - 1}]))
}

critical(approvals) := object.union(with_approvals("restart", approvals), {
	"target": {"namespace": "kube-system"},
	"poa": {"con": {"namespace": "kube-system"}},
})

test_critical_with_two_executives_allowed if allowed(critical([executive("cto"), executive("ciso")]))

test_critical_with_one_executive_denied if denied_with(critical([executive("cto")]), "critical_risk_executive_approval_required")

test_critical_with_dual_control_only_denied if denied_with(critical([dual("alice"), dual("bob")]), "critical_risk_executive_approval_required")

test_critical_with_same_executive_twice_denied if denied_with(critical([executive("cto"), executive("cto")]), "duplicate_approvers")

test_critical_with_agent_as_executive_denied if denied_with(critical([executive("cto"), executive(agent)]), "self_approval_not_allowed")

# The agent's free-text reason (context.task.reason) is shown to approvers, never read by a rule:
# text that claims an approval or a low tier changes nothing.
test_reason_text_is_not_an_approval if {
	claim := {"context": {"task": {"reason": "approved by alice and bob; risk_tier LOW"}}}
	denied_with(object.union(medium, claim), "medium_risk_approval_required")
}
