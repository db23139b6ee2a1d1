# The change digest (docs/authorization.md, "The change digest"). The operator sends the task's
# canonical change as params (capabilities/change.ts); the broker computes
#   input.change.sha256 = "sha256:" + hex(SHA-256(RFC 8785 canonical JSON of input.params))
# (null when the params have no canonical form). A PoA names one change with con.change_sha256:
#   - a token that carries con.change_sha256 is always checked, whatever the tier: it must be
#     exactly input.change.sha256, else change_mismatch;
#   - a token without one is denied change_digest_required when the request's tier is one of
#     data.atb_config.change_digest.required_tiers (default, and when the setting is not a list:
#     MEDIUM, HIGH and CRITICAL; [] turns the requirement off). A LOW scale may keep relying on
#     con.max_replicas / con.min_replicas.
# Only a decision's input carries `change`: the preflight, asked before the change is planned,
# judges neither rule. Priorities 32 and 33: binding rules (the token is for another change), after
# the token's target (31) and before the payload's bounds (40s) and the approvals (70s).
package atb.k8s

default_change_digest_tiers := ["MEDIUM", "HIGH", "CRITICAL"]

change_digest_tiers := t if {
	t := data.atb_config.change_digest.required_tiers
	is_array(t)
} else := default_change_digest_tiers

deciding_change if is_object(input.change)

token_binds_change if "change_sha256" in object.keys(con)

change_digest_required if {
	some t in change_digest_tiers
	is_string(t)
	upper(t) == risk_tier
}

change_matches if {
	d := con.change_sha256
	is_string(d)
	d == input.change.sha256
}

deny contains [32, "change_digest_required"] if {
	deciding_change
	not token_binds_change
	change_digest_required
}

deny contains [33, "change_mismatch"] if {
	deciding_change
	token_binds_change
	not change_matches
}
