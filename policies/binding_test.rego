package atb.k8s_test

test_action_malformed if {
	denied_with(object.union(low, {"action": "Deployment.scale", "poa": {"act": "Deployment.scale"}}), "action_malformed")
	denied_with(object.union(low, {"action": "k8s.Deploy ment.scale"}), "action_malformed")
}

test_unknown_action if denied_with(object.union(low, {"action": "k8s.Deployment.delete", "poa": {"act": "k8s.Deployment.delete"}}), "unknown_action")

test_action_kind_must_match_target_kind if {
	inp := object.union(low, {"action": "k8s.StatefulSet.scale", "poa": {"act": "k8s.StatefulSet.scale"}})
	denied_with(inp, "action_target_kind_mismatch")
}

test_request_time_required if {
	denied_with(object.union(low, {"now": "yesterday"}), "request_time_invalid")
	denied_with(object.remove(low, ["now"]), "request_time_invalid")
}

test_sub_must_be_the_agent if denied_with(object.union(low, {"poa": {"sub": "spiffe://atb.example/agent/other"}}), "sub_mismatch")

test_act_must_be_the_action if denied_with(object.union(low, {"poa": {"act": "k8s.Deployment.restart"}}), "action_mismatch")

test_constraints_must_name_the_target if {
	denied_with(object.union(low, {"poa": {"con": {"namespace": null}}}), "constraints_missing_target")
	denied_with(json.remove(low, ["poa/con/name"]), "constraints_missing_target")
	denied_with(json.remove(low, ["poa/con"]), "constraints_missing_target")
}

test_token_for_another_deployment_denied if denied_with(object.union(low, {"target": {"name": "api"}}), "target_mismatch")

test_token_for_another_namespace_denied if denied_with(object.union(low, {"target": {"namespace": "billing"}}), "target_mismatch")

test_token_for_another_kind_denied if {
	inp := object.union(low, {"poa": {"con": {"kind": "StatefulSet"}}})
	denied_with(inp, "target_mismatch")
}

test_binding_beats_approvals if {
	inp := object.union(with_approvals("deploy", []), {"target": {"name": "api"}})
	denied_with(inp, "target_mismatch")
	"high_risk_dual_control_required" in decide(inp).details.denies
}

test_scale_params_must_be_replicas if {
	denied_with(scale_request(3, "5"), "params_invalid")
	denied_with(scale_request(3, -1), "params_invalid")
	denied_with(scale_request(3, 2.5), "params_invalid")
	denied_with(request("scale", "Deployment", {}, {"current": {"replicas": 3}}, []), "params_invalid")
}

test_scale_within_max_replicas_allowed if allowed(object.union(low, {"poa": {"con": {"max_replicas": 5}}}))

test_larger_scale_than_token_allows_denied if denied_with(object.union(low, {"poa": {"con": {"max_replicas": 4}}}), "payload_exceeds_constraints")

test_smaller_scale_than_token_allows_denied if denied_with(object.union(low, {"poa": {"con": {"min_replicas": 6}}}), "payload_exceeds_constraints")

test_replicas_above_global_limit_denied if {
	inp := scale_request(95, 101)
	denied_with(inp, "replicas_above_limit")
	allowed(scale_request(95, 100))
}
