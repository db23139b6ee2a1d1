# Maintenance windows (data.atb_config.maintenance_windows), evaluated against the request time
# input.now (RFC 3339), never the token's issue time. A window is either absolute
#   {"name", "start": RFC3339, "end": RFC3339}
# or weekly, in UTC
#   {"name", "weekly": {"days": ["Saturday", ...], "start": "HH:MM", "end": "HH:MM"}}
# Start is inclusive, end exclusive; a weekly window must not cross midnight (split it in two;
# "24:00" is a valid end). Optional "actions" (default ["deploy"]) and "namespaces" (default or
# empty: all) narrow what the window freezes.
package atb.k8s

now_ns := time.parse_rfc3339_ns(input.now)

now_seconds := now_ns / 1000000000

minute_of_day(hhmm) := (to_number(parts[0]) * 60) + to_number(parts[1]) if parts := split(hhmm, ":")

window_applies(w) if {
	verb in object.get(w, "actions", ["deploy"])
	count(object.get(w, "namespaces", [])) == 0
}

window_applies(w) if {
	verb in object.get(w, "actions", ["deploy"])
	input.target.namespace in w.namespaces
}

window_active(w) if {
	now_ns >= time.parse_rfc3339_ns(w.start)
	now_ns < time.parse_rfc3339_ns(w.end)
}

window_active(w) if {
	time.weekday(now_ns) in w.weekly.days
	clock := time.clock(now_ns)
	minute := (clock[0] * 60) + clock[1]
	minute >= minute_of_day(w.weekly.start)
	minute < minute_of_day(w.weekly.end)
}

active_windows contains w.name if {
	some w in data.atb_config.maintenance_windows
	window_applies(w)
	window_active(w)
}

in_maintenance_window if count(active_windows) > 0
