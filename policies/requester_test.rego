package atb.k8s_test

import data.atb.k8s

# The fixture's requester is the ServiceAccount agents/planner and its agent that account's
# SPIFFE ID in atb.example.com (helpers_test.rego); these vary one or the other.

sa_user(ns, name) := {"username": sprintf("system:serviceaccount:%s:%s", [ns, name]), "groups": ["system:serviceaccounts", sprintf("system:serviceaccounts:%s", [ns]), "system:authenticated"]}

as_requester(r) := object.union(low, {"requester": r})

claiming(id) := object.union(low, {"agent": {"spiffe_id": id}, "poa": {"sub": id}})

mismatch(inp) if denied_with(inp, "requester_mismatch")

both_mismatch(inp) if {
	mismatch(inp)
	preflight(inp).reason == "requester_mismatch"
}

test_requester_mismatch_the_spiffe_kubernetes_form_binds_the_service_account_to_its_own_id if {
	allowed(low)
	preflight(low).allow
	decide(low).details.requester == {"username": "system:serviceaccount:agents:planner", "bound_by": ["spiffe_kubernetes"]}
}

test_requester_mismatch_another_service_account_claiming_the_agent if {
	# A (agents/other) presents B's token for B's agent: the token is good, the holder is not.
	both_mismatch(as_requester(sa_user("agents", "other")))
	both_mismatch(as_requester(sa_user("shop", "planner")))
	decide(as_requester(sa_user("agents", "other"))).details.requester == {"username": "system:serviceaccount:agents:other", "bound_by": []}
}

test_requester_mismatch_the_form_holds_only_in_the_listed_trust_domains if {
	both_mismatch(claiming("spiffe://elsewhere.example/ns/agents/sa/planner"))
	mismatch(low) with data.atb_config.requester_binding as {"trust_domains": ["other.example"]}
	allowed(low) with data.atb_config.requester_binding as {"trust_domains": ["other.example", "atb.example.com"]}
}

test_requester_mismatch_no_binding_data_binds_nobody if {
	mismatch(low) with data.atb_config.requester_binding as {"trust_domains": []}
	mismatch(low) with data.atb_config.requester_binding as {}
	mismatch(low) with data.atb_config.requester_binding as "all"
	mismatch(low) with data.atb_config as object.remove(data.atb_config, ["requester_binding"])
	mismatch(low) with data.atb_config.requester_binding as {"trust_domains": "atb.example.com"}
}

test_requester_mismatch_without_a_requester if {
	both_mismatch(object.remove(low, ["requester"]))
	both_mismatch(as_requester({"username": ""}))
	both_mismatch(object.union(low, {"requester": "system:serviceaccount:agents:planner"}))
	both_mismatch(as_requester({"username": 7}))
	decide(object.remove(low, ["requester"])).details.requester == {"username": null, "bound_by": []}
}

test_requester_mismatch_the_form_needs_a_service_account_username if {
	# A user named like a service account's SPIFFE path is not the service account.
	mismatch(as_requester({"username": "agents:planner", "groups": []}))
	mismatch(as_requester({"username": "system:serviceaccount:agents:planner:x", "groups": []}))
	mismatch(as_requester({"username": "system:serviceaccounts:agents:planner", "groups": []}))
	mismatch(claiming("spiffe://atb.example.com/ns/agents/sa/planner/x"))
	mismatch(claiming("spiffe://atb.example.com/ns/agents/sa/plan"))
}

release := "spiffe://atb.example.com/agent/release"

entries(list) := {"trust_domains": ["atb.example.com"], "entries": list}

human := {"username": "alice@example.com", "uid": "u-1", "groups": ["release-managers", "system:authenticated"]}

test_requester_mismatch_entries_bind_users_groups_and_service_accounts if {
	inp := object.union(claiming(release), {"requester": human})
	both_mismatch(inp)
	by_user := entries([{"name": "alice", "agents": [release], "users": ["alice@example.com"]}])
	allowed(inp) with data.atb_config.requester_binding as by_user
	decide(inp).details.requester.bound_by == ["entry:alice"] with data.atb_config.requester_binding as by_user
	allowed(inp) with data.atb_config.requester_binding as entries([{"agents": [release], "groups": ["release-managers"]}])
	ci := object.union(claiming(release), {"requester": sa_user("ci", "release-bot")})
	allowed(ci) with data.atb_config.requester_binding as entries([{"agents": [release], "service_accounts": ["ci/release-bot"]}])
	mismatch(ci) with data.atb_config.requester_binding as entries([{"agents": [release], "service_accounts": ["ci/other"]}])
	mismatch(ci) with data.atb_config.requester_binding as entries([{"agents": [release], "users": ["ci/release-bot"]}])
}

test_requester_mismatch_an_entry_binds_only_whom_it_names_to_what_it_names if {
	inp := object.union(claiming(release), {"requester": human})
	mismatch(inp) with data.atb_config.requester_binding as entries([{"agents": [release], "users": ["bob@example.com"]}])
	mismatch(inp) with data.atb_config.requester_binding as entries([{"agents": [release], "groups": ["release"]}])
	mismatch(inp) with data.atb_config.requester_binding as entries([{"agents": ["spiffe://atb.example.com/agent/other"], "users": ["alice@example.com"]}])
	mismatch(inp) with data.atb_config.requester_binding as entries([{"users": ["alice@example.com"]}])
	mismatch(inp) with data.atb_config.requester_binding as entries([{"agents": [release]}])
	mismatch(inp) with data.atb_config.requester_binding as entries(["alice@example.com"])
	mismatch(inp) with data.atb_config.requester_binding as entries([{"agents": release, "users": "alice@example.com"}])

	# Exact names: no case folding, no partial match.
	mismatch(inp) with data.atb_config.requester_binding as entries([{"agents": [release], "users": ["Alice@example.com"]}])
	mismatch(inp) with data.atb_config.requester_binding as entries([{"agents": ["spiffe://atb.example.com/agent/releas"], "users": ["alice@example.com"]}])
}

binding(pattern) := entries([{"agents": [pattern], "users": ["alice@example.com"]}])

at(id) := object.union(claiming(id), {"requester": human})

test_requester_mismatch_agent_prefixes if {
	allowed(at(release)) with data.atb_config.requester_binding as binding("spiffe://atb.example.com/agent/*")
	allowed(at("spiffe://atb.example.com/agent/team/x")) with data.atb_config.requester_binding as binding("spiffe://atb.example.com/agent/*")
	allowed(at(release)) with data.atb_config.requester_binding as binding("spiffe://atb.example.com/*")

	# The prefix ends at a path boundary and is not itself matched.
	mismatch(at("spiffe://atb.example.com/agents/x")) with data.atb_config.requester_binding as binding("spiffe://atb.example.com/agent/*")
	mismatch(at("spiffe://atb.example.com/agent")) with data.atb_config.requester_binding as binding("spiffe://atb.example.com/agent/*")
	mismatch(at("spiffe://evil.example/agent/x")) with data.atb_config.requester_binding as binding("spiffe://atb.example.com/agent/*")

	# A trust domain is never a wildcard, and "*" elsewhere is a literal character.
	mismatch(at(release)) with data.atb_config.requester_binding as binding("spiffe://*")
	mismatch(at(release)) with data.atb_config.requester_binding as binding("*")
	mismatch(at(release)) with data.atb_config.requester_binding as binding("spiffe://atb.example.com/agent/rel*")
	mismatch(at(release)) with data.atb_config.requester_binding as binding("spiffe://atb.example.com/*/release")
}

test_requester_mismatch_comes_after_the_request_shape_and_before_the_token_claims if {
	stranger := sa_user("agents", "other")
	denied_with(object.union(as_requester(stranger), {"action": "k8s.Deploy ment.scale"}), "action_malformed")
	d := decide(object.union(as_requester(stranger), {"poa": {"sub": "spiffe://atb.example.com/ns/agents/sa/other"}}))
	d.reason == "requester_mismatch"
	"sub_mismatch" in d.details.denies
	both_mismatch(object.union(as_requester(stranger), {"target": {"name": "api"}}))
}

agreement_cases := [
	low,
	as_requester(sa_user("agents", "other")),
	object.remove(low, ["requester"]),
	claiming("spiffe://elsewhere.example/ns/agents/sa/planner"),
	object.union(claiming(release), {"requester": human}),
]

decision_mismatches contains i if {
	some i, inp in agreement_cases
	decide(inp).reason == "requester_mismatch"
}

preflight_mismatches contains i if {
	some i, inp in agreement_cases
	preflight(inp).reason == "requester_mismatch"
}

test_requester_mismatch_preflight_and_decision_agree if {
	decision_mismatches == {1, 2, 3, 4}
	preflight_mismatches == decision_mismatches
	with_group := entries([{"agents": [release], "groups": ["release-managers"]}])
	decision_mismatches == {1, 2, 3} with data.atb_config.requester_binding as with_group
	preflight_mismatches == {1, 2, 3} with data.atb_config.requester_binding as with_group
}
