package atb.k8s_test

import data.atb.k8s

tier_of(inp) := decide(inp).risk_tier

test_scale_small_change_is_low if {
	tier_of(scale_request(3, 5)) == "LOW"
	allowed(scale_request(3, 5))
}

test_scale_to_zero_is_medium if tier_of(scale_request(3, 0)) == "MEDIUM"

test_scale_exactly_double_is_low if tier_of(scale_request(3, 6)) == "LOW"

test_scale_more_than_double_is_medium if tier_of(scale_request(3, 7)) == "MEDIUM"

test_scale_from_zero_is_medium if tier_of(scale_request(0, 1)) == "MEDIUM"

test_scale_down_to_half_is_low if tier_of(scale_request(10, 5)) == "LOW"

test_scale_down_below_half_is_medium if tier_of(scale_request(10, 4)) == "MEDIUM"

test_scale_by_ten_is_low if tier_of(scale_request(20, 30)) == "LOW"

test_scale_by_more_than_ten_is_medium if tier_of(scale_request(20, 31)) == "MEDIUM"

test_scale_with_unknown_current_is_medium if {
	tier_of(request("scale", "Deployment", {"replicas": 2}, {}, [])) == "MEDIUM"
}

test_fixed_verb_tiers if {
	tier_of(with_approvals("restart", [])) == "MEDIUM"
	tier_of(request("update-config", "ConfigMap", {}, {}, [])) == "MEDIUM"
	tier_of(with_approvals("deploy", [])) == "HIGH"
	tier_of(with_approvals("rollback", [])) == "HIGH"
	tier_of(with_approvals("patch", [])) == "HIGH"
}

test_protected_namespace_is_critical if {
	inp := object.union(low, {"target": {"namespace": "kube-system"}, "poa": {"con": {"namespace": "kube-system"}}})
	tier_of(inp) == "CRITICAL"
	denied_with(inp, "critical_risk_executive_approval_required")
}

test_every_protected_namespace_from_data_is_critical if {
	every ns in data.atb_config.protected_namespaces {
		tier_of(object.union(low, {"target": {"namespace": ns}, "poa": {"con": {"namespace": ns}}})) == "CRITICAL"
	}
}

test_protected_namespaces_come_from_data if {
	inp := object.union(low, {"target": {"namespace": "payments"}, "poa": {"con": {"namespace": "payments"}}})
	d := k8s.decision with input as inp with data.atb_config.protected_namespaces as ["payments"]
	d.risk_tier == "CRITICAL"
}

test_asserted_tier_raises if {
	inp := object.union(low, {"poa": {"risk_tier": "high"}})
	tier_of(inp) == "HIGH"
	denied_with(inp, "high_risk_dual_control_required")
}

test_asserted_tier_never_lowers if {
	inp := object.union(with_approvals("deploy", []), {"poa": {"risk_tier": "LOW"}})
	tier_of(inp) == "HIGH"
	denied_with(inp, "high_risk_dual_control_required")
}

test_asserted_equal_tier_keeps_it if tier_of(object.union(low, {"poa": {"risk_tier": "LOW"}})) == "LOW"

test_invalid_asserted_tier_denied if denied_with(object.union(low, {"poa": {"risk_tier": "urgent"}}), "risk_tier_invalid")

test_unknown_action_reports_critical if tier_of(object.union(low, {"action": "k8s.Deployment.delete", "poa": {"act": "k8s.Deployment.delete"}})) == "CRITICAL"
