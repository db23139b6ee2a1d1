# The preflight (POST /api/v1/verify): may this token be used for this action on this target?
# The operator asks it before it reads, dry-runs or evaluates anything of the target, so a task
# whose token fails gets the same answer whatever the target holds. Only the binding rules apply
# (priority below 40: the action string, sub, act, the token's target constraints); params and
# context are absent. The tier is the one known without the change: the action's default tier,
# CRITICAL in a protected namespace, raised by a tier the token asserts.
package atb.k8s

binding_denies := [d[1] | some d in sort(deny); d[0] < 40]

preflight_base_tier := "CRITICAL" if protected_namespace

preflight_base_tier := action_default_tiers[verb] if not protected_namespace

default preflight_computed_tier := "CRITICAL"

preflight_computed_tier := preflight_base_tier

preflight_tier := asserted_tier if {
	tier_rank[asserted_tier] > tier_rank[preflight_computed_tier]
} else := preflight_computed_tier

binding := {"allow": true, "reason": "token_verified", "risk_tier": preflight_tier} if count(binding_denies) == 0

binding := {"allow": false, "reason": binding_denies[0], "risk_tier": preflight_tier} if count(binding_denies) > 0
