package atb.k8s_test

import data.atb.k8s

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

# Approver ids: one approver however the id is written (case, trailing slash, SPIFFE user form).
test_approver_key_rule if {
	k8s.approver_key("alice") == "alice"
	k8s.approver_key(" Alice/ ") == "alice"
	k8s.approver_key("spiffe://corp.example/user/Alice") == "alice"
	k8s.approver_key("SPIFFE://other.example/user/alice//") == "alice"
	k8s.approver_key("spiffe://corp.example/ns/shop/sa/deployer") == "spiffe://corp.example/ns/shop/sa/deployer"
	k8s.approver_key("alice@example.com") == "alice@example.com"
	not k8s.approver_key("al ice")
	not k8s.approver_key("alicé")
	not k8s.approver_key("/")
	not k8s.approver_key("")
}

test_high_with_case_variants_of_one_approver_denied if {
	denied_with(with_approvals("deploy", [dual("alice"), dual("Alice")]), "duplicate_approvers")
	denied_with(with_approvals("deploy", [dual("alice"), dual("ALICE/")]), "duplicate_approvers")
	denied_with(with_approvals("deploy", [attested("alice", []), attested("spiffe://corp.example/user/Alice", [])]), "duplicate_approvers")
}

test_high_with_spiffe_and_bare_form_of_one_approver_denied if {
	denied_with(with_approvals("deploy", [dual("spiffe://corp.example/user/alice"), dual("alice")]), "duplicate_approvers")
}

test_self_approval_in_another_spelling_denied if {
	denied_with(with_approvals("restart", [approval(upper(agent))]), "self_approval_not_allowed")
	denied_with(with_approvals("restart", [approval(concat("", [agent, "/"]))]), "self_approval_not_allowed")
	denied_with(with_approvals("deploy", [dual("alice"), attested(concat("", [" ", agent, "//"]), [])]), "self_approval_not_allowed")
}

test_ids_without_a_key_never_count if {
	denied_with(with_approvals("deploy", [dual("al ice"), dual("bob")]), "high_risk_dual_control_required")
	denied_with(with_approvals("restart", [approval("alicé")]), "medium_risk_approval_required")
}

test_two_attestations_allow_high if allowed(with_approvals("deploy", [attested("alice", []), attested("bob", [])]))

test_attestation_and_vouched_dual_control_allow_high if allowed(with_approvals("deploy", [dual("alice"), attested("bob", [])]))

test_critical_executive_control_without_role_denied if {
	no_role := {"id": "cto", "source": "executive_control"}
	other := {"id": "ciso", "source": "executive_control", "roles": []}
	denied_with(critical([no_role, other]), "critical_risk_executive_approval_required")
}

test_critical_with_two_executive_attestations_allowed if {
	allowed(critical([attested("cto", ["executive"]), attested("ciso", ["executive"])]))
}

test_critical_with_an_attestation_without_the_role_denied if {
	denied_with(critical([attested("cto", ["executive"]), attested("ciso", [])]), "critical_risk_executive_approval_required")
}

test_critical_with_one_executive_in_two_spellings_denied if {
	denied_with(critical([executive("cto"), attested("CTO/", ["executive"])]), "duplicate_approvers")
}

# What the broker did not count reaches the details as it came.
test_ignored_approvals_in_details if {
	ignored := [{"source": "dual_control", "id": "alice", "why": "dual_control_not_required"}]
	inp := object.union(high, {"poa": {"ignored_approvals": ignored}})
	d := decide(inp)
	d.reason == "high_risk_dual_control_required"
	d.details.ignored_approvals == ignored
	decide(low).details.ignored_approvals == []
}
