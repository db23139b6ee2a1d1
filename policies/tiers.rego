# Risk tiers. The seed's table, made precise:
#   each action starts at its default tier (action_default_tiers in actions.rego, generated from
#   the operator's action registry: scale LOW, restart and update-config MEDIUM, deploy, rollback
#   and patch HIGH); an action's own risk rules may raise it (scale: MEDIUM when risky_scale)
#   any action on a protected namespace (data.atb_config.protected_namespaces): CRITICAL
# A tier asserted in the token (input.poa.risk_tier) raises the computed tier, never lowers it.
package atb.k8s

tier_rank := {"LOW": 0, "MEDIUM": 1, "HIGH": 2, "CRITICAL": 3}

known_verbs := object.keys(action_default_tiers)

# "k8s.<Kind>.<action>"; undefined when the action string is malformed.
action_match := regex.find_all_string_submatch_n(`^k8s\.([A-Za-z][A-Za-z0-9]*)\.([a-z][a-z-]*)$`, input.action, 1)[0]

action_kind := action_match[1]

verb := action_match[2]

protected_namespace if input.target.namespace in data.atb_config.protected_namespaces

desired_replicas := input.params.replicas

current_replicas := input.context.current.replicas

# A scale is risky when it goes to zero, when it multiplies or divides the replica count by more
# than max_factor (2), or when it changes it by more than max_abs_change (10). Without a known
# current count the change cannot be judged, so it counts as risky.
risky_scale if desired_replicas == 0

# (A rule, not `not is_number(...)`: a builtin call on an undefined value is undefined, and so is
# its negation.)
current_replicas_known if is_number(current_replicas)

risky_scale if not current_replicas_known

risky_scale if desired_replicas > data.atb_config.scale.max_factor * current_replicas

risky_scale if desired_replicas * data.atb_config.scale.max_factor < current_replicas

risky_scale if abs(desired_replicas - current_replicas) > data.atb_config.scale.max_abs_change

# The tiers an action's own risk rules ask for (only scale has such rules).
raised_tiers contains "MEDIUM" if {
	verb == "scale"
	risky_scale
}

# The default tier, or the highest raised tier above it.
action_tier := max_tier if {
	default_tier := action_default_tiers[verb]
	max_tier := max_rank_tier(raised_tiers | {default_tier})
}

max_rank_tier(tiers) := t if {
	some t in tiers
	every u in tiers {
		tier_rank[u] <= tier_rank[t]
	}
}

base_tier := "CRITICAL" if protected_namespace

base_tier := action_tier if not protected_namespace

# Unknown or malformed actions are denied anyway; report the most cautious tier.
default computed_tier := "CRITICAL"

computed_tier := base_tier

asserted_tier := upper(input.poa.risk_tier)

risk_tier := asserted_tier if {
	tier_rank[asserted_tier] > tier_rank[computed_tier]
} else := computed_tier
