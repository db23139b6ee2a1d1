package atb.k8s_test

import data.atb.k8s

deploy_ok := with_approvals("deploy", [dual("alice"), dual("bob")])

# 2026-03-04T10:00:00Z is inside [09:00, 11:00).
absolute := [{"name": "release-freeze", "start": "2026-03-04T09:00:00Z", "end": "2026-03-04T11:00:00Z"}]

decide_at(inp, at, windows) := d if {
	d := k8s.decision with input as object.union(inp, {"now": at}) with data.atb_config.maintenance_windows as windows
}

test_deploy_inside_window_denied if {
	d := decide_at(deploy_ok, now, absolute)
	d.allow == false
	d.reason == "maintenance_window"
	d.details.maintenance_windows == {"release-freeze"}
}

test_window_start_is_inclusive if decide_at(deploy_ok, "2026-03-04T09:00:00Z", absolute).reason == "maintenance_window"

test_just_before_window_allowed if decide_at(deploy_ok, "2026-03-04T08:59:59.999999999Z", absolute).allow == true

test_window_end_is_exclusive if decide_at(deploy_ok, "2026-03-04T11:00:00Z", absolute).allow == true

test_just_before_window_end_denied if decide_at(deploy_ok, "2026-03-04T10:59:59Z", absolute).reason == "maintenance_window"

test_window_uses_request_time_not_token_time if {
	# The token was issued (iat) before the window opened; the request falls inside it.
	inp := object.union(deploy_ok, {"poa": {"iat": 1772612000}})
	decide_at(inp, now, absolute).reason == "maintenance_window"
}

test_scale_not_frozen_by_default if decide_at(low, now, absolute).allow == true

test_window_actions_extend_the_freeze if {
	windows := [object.union(absolute[0], {"actions": ["deploy", "scale"]})]
	decide_at(low, now, windows).reason == "maintenance_window"
}

test_window_limited_to_namespaces if {
	elsewhere := [object.union(absolute[0], {"namespaces": ["billing"]})]
	decide_at(deploy_ok, now, elsewhere).allow == true
	here := [object.union(absolute[0], {"namespaces": ["shop"]})]
	decide_at(deploy_ok, now, here).reason == "maintenance_window"
}

test_empty_namespace_list_means_all if {
	decide_at(deploy_ok, now, [object.union(absolute[0], {"namespaces": []})]).reason == "maintenance_window"
}

weekly := [{"name": "wednesday-morning", "weekly": {"days": ["Wednesday"], "start": "09:30", "end": "10:30"}}]

test_weekly_window_inside_denied if decide_at(deploy_ok, now, weekly).reason == "maintenance_window"

test_weekly_window_boundaries if {
	decide_at(deploy_ok, "2026-03-04T09:30:00Z", weekly).reason == "maintenance_window"
	decide_at(deploy_ok, "2026-03-04T09:29:59Z", weekly).allow == true
	decide_at(deploy_ok, "2026-03-04T10:30:00Z", weekly).allow == true
}

test_weekly_window_other_day_allowed if decide_at(deploy_ok, "2026-03-05T10:00:00Z", weekly).allow == true

test_weekly_window_until_midnight if {
	late := [{"name": "late", "weekly": {"days": ["Wednesday"], "start": "22:00", "end": "24:00"}}]
	decide_at(deploy_ok, "2026-03-04T23:59:59Z", late).reason == "maintenance_window"
	decide_at(deploy_ok, "2026-03-05T00:00:00Z", late).allow == true
}

test_shipped_example_window_is_in_the_past if decide(deploy_ok).allow == true
