# Holder binding: may the Kubernetes identity that created the task act as the agent it names?
# input.requester is that identity as the operator's admission webhook recorded it
# ({username, uid?, groups}); input.agent.spiffe_id is the task's spec.agentId. The binding is
# policy data, data.atb_config.requester_binding:
#   trust_domains: the SPIFFE Kubernetes form, in these trust domains only: the ServiceAccount
#     <ns>/<sa> (username system:serviceaccount:<ns>:<sa>) may act as spiffe://<td>/ns/<ns>/sa/<sa>.
#     Absent or empty: the form binds nobody, only the entries do.
#   entries: [{name, agents, users, groups, service_accounts}]: every requester an entry names
#     (username in users, one of its groups in groups, or its ServiceAccount "<ns>/<sa>" in
#     service_accounts) may act as every agent the entry names: an exact SPIFFE ID, or a prefix
#     ending in "/*" ("spiffe://td/agent/*" is every ID below spiffe://td/agent/). No regex.
# No requester, or no binding data at all: nobody is bound (fail closed). Both the preflight and
# the decision judge it (priority 15: after the request's shape, before the token's claims).
package atb.k8s

requester_binding := b if {
	b := data.atb_config.requester_binding
	is_object(b)
} else := {}

requester := r if {
	r := input.requester
	is_object(r)
	is_string(r.username)
	r.username != ""
}

requester_groups contains g if {
	some g in requester.groups
	is_string(g)
}

# The ServiceAccount a requester is, from the username the API server gives it.
requester_service_account := {"namespace": p[2], "name": p[3]} if {
	p := split(requester.username, ":")
	count(p) == 4
	p[0] == "system"
	p[1] == "serviceaccount"
	p[2] != ""
	p[3] != ""
}

spiffe_kubernetes_id(td, sa) := sprintf("spiffe://%s/ns/%s/sa/%s", [td, sa.namespace, sa.name])

requester_bound_by contains "spiffe_kubernetes" if {
	some td in object.get(requester_binding, "trust_domains", [])
	is_string(td)
	td != ""
	input.agent.spiffe_id == spiffe_kubernetes_id(td, requester_service_account)
}

requester_bound_by contains sprintf("entry:%v", [object.get(entry, "name", i)]) if {
	some i, entry in object.get(requester_binding, "entries", [])
	is_object(entry)
	entry_names_agent(entry, input.agent.spiffe_id)
	entry_names_requester(entry)
}

entry_names_agent(entry, id) if {
	some pattern in object.get(entry, "agents", [])
	agent_pattern_matches(pattern, id)
}

agent_pattern_matches(pattern, id) if {
	is_string(pattern)
	not endswith(pattern, "/*")
	id == pattern
}

# A prefix pattern: "spiffe://<trust domain>/<path>/*" (the trust domain is never a wildcard).
agent_pattern_matches(pattern, id) if {
	is_string(pattern)
	endswith(pattern, "/*")
	prefix := trim_suffix(pattern, "*")
	startswith(prefix, "spiffe://")
	split(trim_prefix(prefix, "spiffe://"), "/")[0] != ""
	startswith(id, prefix)
	count(id) > count(prefix)
}

entry_names_requester(entry) if requester.username in object.get(entry, "users", [])

entry_names_requester(entry) if {
	some g in object.get(entry, "groups", [])
	g in requester_groups
}

entry_names_requester(entry) if {
	sa := requester_service_account
	sprintf("%s/%s", [sa.namespace, sa.name]) in object.get(entry, "service_accounts", [])
}

deny contains [15, "requester_mismatch"] if count(requester_bound_by) == 0

# For the decision's details: who asked, and which rule bound them (never the groups).
requester_details := {
	"username": object.get(input, ["requester", "username"], null),
	"bound_by": sort(requester_bound_by),
}
