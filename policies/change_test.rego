# The change digest rules (policies/change.rego): a digest in the token is always checked, a
# missing one is refused from MEDIUM up (or the tiers data.atb_config.change_digest names), and
# the preflight judges neither.
package atb.k8s_test

import data.atb.k8s

digest_a := "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"

digest_b := "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"

# inp as the broker sends it for a change whose digest is `change`, with a token that binds `bound`
# (null: the token carries no change_sha256).
judged(inp, change, bound) := object.union(inp, {"change": {"sha256": change}}) if bound == null

judged(inp, change, bound) := object.union(inp, {"change": {"sha256": change}, "poa": {"con": {"change_sha256": bound}}}) if bound != null

restart_approved := with_approvals("restart", [approval("alice")])

deploy_approved := with_approvals("deploy", [dual("alice"), dual("bob")])

test_medium_without_a_digest_is_refused if {
	denied_with(judged(restart_approved, digest_a, null), "change_digest_required")
}

test_medium_with_the_matching_digest_is_allowed if {
	allowed(judged(restart_approved, digest_a, digest_a))
}

test_medium_with_another_digest_is_a_mismatch if {
	denied_with(judged(restart_approved, digest_a, digest_b), "change_mismatch")
}

test_high_and_critical_need_a_digest if {
	denied_with(judged(deploy_approved, digest_a, null), "change_digest_required")
	allowed(judged(deploy_approved, digest_a, digest_a))
	critical := object.union(with_approvals("restart", [executive("ceo"), executive("cfo")]), {"target": {"namespace": "kube-system"}, "poa": {"con": {"namespace": "kube-system"}}})
	decide(judged(critical, digest_a, null)).risk_tier == "CRITICAL"
	denied_with(judged(critical, digest_a, null), "change_digest_required")
	allowed(judged(critical, digest_a, digest_a))
}

test_low_scale_may_do_without_a_digest if {
	allowed(judged(low, digest_a, null))
}

test_a_digest_in_the_token_is_checked_whatever_the_tier if {
	denied_with(judged(low, digest_a, digest_b), "change_mismatch")
	allowed(judged(low, digest_a, digest_a))
}

test_a_scale_raised_to_medium_needs_a_digest if {
	zero := object.union(scale_request(3, 0), {"poa": {"approvals": [approval("alice")]}})
	decide(judged(zero, digest_a, null)).risk_tier == "MEDIUM"
	denied_with(judged(zero, digest_a, null), "change_digest_required")
	allowed(judged(zero, digest_a, digest_a))
}

test_a_tier_asserted_in_the_token_counts if {
	asserted := object.union(low, {"poa": {"risk_tier": "MEDIUM", "approvals": [approval("alice")]}})
	denied_with(judged(asserted, digest_a, null), "change_digest_required")
	allowed(judged(asserted, digest_a, digest_a))
}

test_a_malformed_digest_in_the_token_never_matches if {
	denied_with(judged(low, digest_a, 42), "change_mismatch")
	denied_with(judged(low, digest_a, upper(digest_a)), "change_mismatch")
	denied_with(judged(low, digest_a, ""), "change_mismatch")

	# A token field present but null binds nothing it could match.
	denied_with(object.union(judged(low, digest_a, null), {"poa": {"con": {"change_sha256": null}}}), "change_mismatch")
}

test_params_without_a_canonical_form_never_match if {
	# The broker sends sha256 null when the params cannot be canonicalized.
	denied_with(judged(low, null, digest_a), "change_mismatch")
	denied_with(judged(restart_approved, null, null), "change_digest_required")
}

test_the_required_tiers_are_policy_data if {
	only_high := {"required_tiers": ["HIGH", "CRITICAL"]}
	allowed(judged(restart_approved, digest_a, null)) with data.atb_config.change_digest as only_high
	denied_with(judged(deploy_approved, digest_a, null), "change_digest_required") with data.atb_config.change_digest as only_high

	# Names in any case; [] turns the requirement off (a digest in the token is still checked).
	denied_with(judged(restart_approved, digest_a, null), "change_digest_required") with data.atb_config.change_digest as {"required_tiers": ["medium"]}
	allowed(judged(deploy_approved, digest_a, null)) with data.atb_config.change_digest as {"required_tiers": []}
	denied_with(judged(deploy_approved, digest_a, digest_b), "change_mismatch") with data.atb_config.change_digest as {"required_tiers": []}
	allowed(judged(low, digest_a, null)) with data.atb_config.change_digest as {"required_tiers": ["MEDIUM"]}
}

test_a_malformed_setting_falls_back_to_the_default if {
	denied_with(judged(restart_approved, digest_a, null), "change_digest_required") with data.atb_config.change_digest as {"required_tiers": "HIGH"}
	denied_with(judged(restart_approved, digest_a, null), "change_digest_required") with data.atb_config.change_digest as "off"
	denied_with(judged(restart_approved, digest_a, null), "change_digest_required") with data.atb_config as object.remove(data.atb_config, ["change_digest"])
}

test_the_digest_rules_rank_between_the_target_and_the_payload if {
	# The token's target (31) first; then the change (33) before the replica bounds (41) and approvals (73).
	other_target := object.union(judged(restart_approved, digest_a, digest_b), {"target": {"name": "api"}})
	denied_with(other_target, "target_mismatch")
	bounded := object.union(scale_request(3, 0), {"poa": {"con": {"max_replicas": 2, "min_replicas": 1}}})
	d := decide(judged(bounded, digest_a, digest_b))
	d.reason == "change_mismatch"
	"payload_exceeds_constraints" in d.details.denies
	"medium_risk_approval_required" in d.details.denies
	decide(judged(with_approvals("restart", []), digest_a, null)).details.denies == ["change_digest_required", "medium_risk_approval_required"]
}

test_the_preflight_judges_neither_rule if {
	# The preflight's input has no change: a token without a digest, or with any, passes it.
	p := k8s.binding with input as object.remove(with_approvals("deploy", []), ["params", "context"])
	p.allow
	q := k8s.binding with input as object.union(object.remove(low, ["params", "context"]), {"poa": {"con": {"change_sha256": digest_b}}})
	q.allow
}
