# The policy judges the result, not the agent's summary of it. The operator sends the target as it
# is now (input.context.before) and the object as the API server's dry run says it would be stored
# (input.context.after), each as capabilities/lib/pipeline/object-view.ts builds it:
#   {kind, metadata{name, namespace, labels, annotations, ownerReferences?, finalizers?}, spec?, ...}
# or null when the object does not exist. Without an after nothing here applies.
#
# Rules (data.atb_config.workload_rules.<rule> = "deny" | "raise:<TIER>" | "ignore"; a missing or
# unknown setting is "deny"):
#   pod_security_baseline       the pod spec breaks a Pod Security Standards baseline control
#   pod_security_restricted     ... a restricted control, in namespaces whose level is restricted
#   service_account_change      the pods would run under another service account
#   image_registry_not_allowed  a container image (any container kind) outside the allow-list
#   service_exposure            a Service of type NodePort/LoadBalancer, or with externalIPs
#   service_selector_change     a Service's selector (or externalName) changes
#   ownership_change            metadata.ownerReferences or metadata.finalizers change
# Pod security levels: data.atb_config.pod_security.namespaces[<ns>] or .default_level
# ("privileged" | "baseline" | "restricted"; default baseline; an unknown level is restricted).
# Registry allow-list: data.atb_config.image_registries (absent: no registry rule; []: no image
# is allowed).
#
# The absolute findings (pod security, registries, exposure) that the object already had are not
# judged again while the judged part (the pod spec of a workload, the spec of anything else) stays
# the same: a scale, a restart or a label patch of a workload an administrator made privileged
# still works, but any change to its pod spec judges the whole result. The comparisons (service
# account, selector, ownership) are about the change itself.
package atb.k8s

# ---- Settings --------------------------------------------------------------------------------

rule_setting(rule) := s if {
	s := data.atb_config.workload_rules[rule]
	is_string(s)
} else := "deny"

raise_tier(rule) := t if {
	parts := split(rule_setting(rule), ":")
	count(parts) == 2
	parts[0] == "raise"
	t := upper(parts[1])
	tier_rank[t]
}

# "deny", "ignore" or "raise:<TIER>"; anything else is "deny" (fail closed).
rule_outcome(rule) := "ignore" if rule_setting(rule) == "ignore"

rule_outcome(rule) := concat(":", ["raise", raise_tier(rule)]) if raise_tier(rule)

rule_outcome(rule) := "deny" if {
	rule_setting(rule) != "ignore"
	not raise_tier(rule)
}

# The namespace's Pod Security Standards level.
pod_security_level := lvl if {
	lvl := data.atb_config.pod_security.namespaces[input.target.namespace]
	is_string(lvl)
} else := lvl if {
	lvl := data.atb_config.pod_security.default_level
	is_string(lvl)
} else := "baseline"

judge_baseline if pod_security_level != "privileged"

judge_restricted if not pod_security_level in {"privileged", "baseline"}

# ---- The objects -----------------------------------------------------------------------------

judged_objects[side] := obj if {
	some side in ["before", "after"]
	obj := input.context[side]
	is_object(obj)
}

kind_of(obj) := k if {
	k := obj.kind
	is_string(k)
} else := input.target.kind

template_kinds := {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "ReplicationController", "Job"}

# {at, meta_at, spec, annotations} of the pod an object runs: its template's (the pod itself for a Pod).
pod_of(obj) := {"at": "spec.template.spec", "meta_at": "spec.template.metadata", "spec": t.spec, "annotations": object.get(t, ["metadata", "annotations"], {})} if {
	kind_of(obj) in template_kinds
	t := obj.spec.template
	is_object(t.spec)
}

pod_of(obj) := {"at": "spec.jobTemplate.spec.template.spec", "meta_at": "spec.jobTemplate.spec.template.metadata", "spec": t.spec, "annotations": object.get(t, ["metadata", "annotations"], {})} if {
	kind_of(obj) == "CronJob"
	t := obj.spec.jobTemplate.spec.template
	is_object(t.spec)
}

pod_of(obj) := {"at": "spec", "meta_at": "metadata", "spec": obj.spec, "annotations": object.get(obj, ["metadata", "annotations"], {})} if {
	kind_of(obj) == "Pod"
	is_object(obj.spec)
}

pods[side] := pod_of(obj) if some side, obj in judged_objects

# What "unchanged" compares: the pod spec of a workload, the spec of anything else.
judged_part(obj) := pod_of(obj).spec

judged_part(obj) := object.get(obj, "spec", null) if not pod_of(obj)

judged_part_unchanged if judged_part(judged_objects.before) == judged_part(judged_objects.after)

container_lists := ["initContainers", "containers", "ephemeralContainers"]

# [side, path, container] for every container of every kind.
containers contains [side, path, c] if {
	some side, pod in pods
	some list in container_lists
	some i, c in object.get(pod.spec, list, [])
	is_object(c)
	path := sprintf("%s.%s[%v]", [pod.at, list, object.get(c, "name", i)])
}

sec(x) := s if {
	s := x.securityContext
	is_object(s)
} else := {}

host_users_off(pod) if pod.spec.hostUsers == false

windows_pod(pod) if pod.spec.os.name == "windows"

finding(rule, check, field, value) := {"rule": rule, "check": check, "field": field, "value": value}

baseline(check, field, value) := finding("pod_security_baseline", check, field, value)

restricted(check, field, value) := finding("pod_security_restricted", check, field, value)

# ---- Pod Security Standards: baseline (k8s.io/pod-security-admission v0.36) --------------------

baseline_capabilities := {
	"AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD",
	"NET_BIND_SERVICE", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT",
}

safe_sysctls := {
	"kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.ip_unprivileged_port_start",
	"net.ipv4.tcp_syncookies", "net.ipv4.ping_group_range", "net.ipv4.ip_local_reserved_ports",
	"net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_keepalive_intvl",
	"net.ipv4.tcp_keepalive_probes", "net.ipv4.tcp_rmem", "net.ipv4.tcp_wmem",
}

selinux_types := {"", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"}

valid_profile_types := {"RuntimeDefault", "Localhost"}

# Security contexts that apply to a pod: [side, path, securityContext], the pod's and each container's.
security_contexts contains [side, sprintf("%s.securityContext", [pod.at]), s] if {
	some side, pod in pods
	s := sec(pod.spec)
}

security_contexts contains [side, sprintf("%s.securityContext", [path]), sec(c)] if some [side, path, c] in containers

absolute_findings contains [side, baseline("hostNamespaces", sprintf("%s.%s", [pod.at, field]), true)] if {
	some side, pod in pods
	some field in ["hostNetwork", "hostPID", "hostIPC"]
	pod.spec[field] == true
}

absolute_findings contains [side, baseline("privileged", sprintf("%s.securityContext.privileged", [path]), true)] if {
	some [side, path, c] in containers
	sec(c).privileged == true
}

absolute_findings contains [side, baseline("capabilities", sprintf("%s.securityContext.capabilities.add", [path]), cap)] if {
	some [side, path, c] in containers
	some cap in sec(c).capabilities.add
	not cap in baseline_capabilities
}

absolute_findings contains [side, baseline("hostPathVolumes", sprintf("%s.volumes[%v].hostPath", [pod.at, object.get(v, "name", i)]), v.hostPath)] if {
	some side, pod in pods
	some i, v in object.get(pod.spec, "volumes", [])
	is_object(v.hostPath)
}

absolute_findings contains [side, baseline("hostPorts", sprintf("%s.ports[%v].hostPort", [path, i]), p.hostPort)] if {
	some [side, path, c] in containers
	some i, p in object.get(c, "ports", [])
	is_number(p.hostPort)
	p.hostPort != 0
}

absolute_findings contains [side, baseline("appArmorProfile", sprintf("%s.appArmorProfile.type", [path]), object.get(s.appArmorProfile, "type", null))] if {
	some [side, path, s] in security_contexts
	is_object(s.appArmorProfile)
	not object.get(s.appArmorProfile, "type", "") in valid_profile_types
}

absolute_findings contains [side, baseline("appArmorProfile", sprintf("%s.annotations[%s]", [pod.meta_at, k]), v)] if {
	some side, pod in pods
	some k, v in pod.annotations
	startswith(k, "container.apparmor.security.beta.kubernetes.io/")
	not apparmor_annotation_allowed(v)
}

apparmor_annotation_allowed(v) if v in {"", "runtime/default"}

apparmor_annotation_allowed(v) if startswith(v, "localhost/")

absolute_findings contains [side, baseline("seLinuxOptions", sprintf("%s.seLinuxOptions.type", [path]), o.type)] if {
	some [side, path, s] in security_contexts
	o := s.seLinuxOptions
	is_object(o)
	not object.get(o, "type", "") in selinux_types
}

absolute_findings contains [side, baseline("seLinuxOptions", sprintf("%s.seLinuxOptions.%s", [path, field]), o[field])] if {
	some [side, path, s] in security_contexts
	o := s.seLinuxOptions
	is_object(o)
	some field in ["user", "role"]
	is_string(o[field])
	o[field] != ""
}

absolute_findings contains [side, baseline("procMount", sprintf("%s.securityContext.procMount", [path]), m)] if {
	some [side, path, c] in containers
	not host_users_off(pods[side])
	m := sec(c).procMount
	is_string(m)
	m != "Default"
}

absolute_findings contains [side, baseline("seccompProfile", sprintf("%s.seccompProfile.type", [path]), object.get(s.seccompProfile, "type", null))] if {
	some [side, path, s] in security_contexts
	is_object(s.seccompProfile)
	not object.get(s.seccompProfile, "type", "") in valid_profile_types
}

absolute_findings contains [side, baseline("sysctls", sprintf("%s.securityContext.sysctls", [pod.at]), object.get(x, "name", null))] if {
	some side, pod in pods
	some x in sec(pod.spec).sysctls
	not object.get(x, "name", "") in safe_sysctls
}

absolute_findings contains [side, baseline("windowsHostProcess", sprintf("%s.windowsOptions.hostProcess", [path]), true)] if {
	some [side, path, s] in security_contexts
	s.windowsOptions.hostProcess == true
}

absolute_findings contains [side, baseline("hostProbesAndHostLifecycle", sprintf("%s.%s.%s.host", [path, handler, how]), h)] if {
	some [side, path, c] in containers
	some handler in ["livenessProbe", "readinessProbe", "startupProbe"]
	some how in ["httpGet", "tcpSocket"]
	h := c[handler][how].host
	is_string(h)
	h != ""
}

absolute_findings contains [side, baseline("hostProbesAndHostLifecycle", sprintf("%s.lifecycle.%s.%s.host", [path, hook, how]), h)] if {
	some [side, path, c] in containers
	some hook in ["postStart", "preStop"]
	some how in ["httpGet", "tcpSocket"]
	h := c.lifecycle[hook][how].host
	is_string(h)
	h != ""
}

# ---- Pod Security Standards: restricted (on top of baseline) -----------------------------------

restricted_volume_sources := {
	"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "image",
	"persistentVolumeClaim", "projected", "secret",
}

# (hostPath is reported by baseline already.)
absolute_findings contains [side, restricted("restrictedVolumes", sprintf("%s.volumes[%v]", [pod.at, object.get(v, "name", i)]), sources)] if {
	judge_restricted
	some side, pod in pods
	some i, v in object.get(pod.spec, "volumes", [])
	is_object(v)
	sources := {k | some k, s in v; k != "name"; s != null}
	count(sources & restricted_volume_sources) == 0
	not is_object(object.get(v, "hostPath", null))
}

absolute_findings contains [side, restricted("allowPrivilegeEscalation", sprintf("%s.securityContext.allowPrivilegeEscalation", [path]), object.get(sec(c), "allowPrivilegeEscalation", null))] if {
	judge_restricted
	some [side, path, c] in containers
	not windows_pod(pods[side])
	object.get(sec(c), "allowPrivilegeEscalation", null) != false
}

absolute_findings contains [side, restricted("runAsNonRoot", sprintf("%s.securityContext.runAsNonRoot", [pod.at]), false)] if {
	judge_restricted
	some side, pod in pods
	not host_users_off(pod)
	sec(pod.spec).runAsNonRoot == false
}

# A container must say runAsNonRoot: true, or leave it to a pod that does.
absolute_findings contains [side, restricted("runAsNonRoot", sprintf("%s.securityContext.runAsNonRoot", [path]), v)] if {
	judge_restricted
	some [side, path, c] in containers
	pod := pods[side]
	not host_users_off(pod)
	v := object.get(sec(c), "runAsNonRoot", null)
	v != true
	not container_inherits_non_root(pod, v)
}

container_inherits_non_root(pod, v) if {
	v == null
	sec(pod.spec).runAsNonRoot == true
}

absolute_findings contains [side, restricted("runAsUser", sprintf("%s.runAsUser", [path]), 0)] if {
	judge_restricted
	some [side, path, s] in security_contexts
	not host_users_off(pods[side])
	s.runAsUser == 0
}

# A container must have a RuntimeDefault or Localhost seccomp profile, its own or the pod's (a
# container's own invalid profile is a baseline finding).
absolute_findings contains [side, restricted("seccompProfile", sprintf("%s.securityContext.seccompProfile", [path]), null)] if {
	judge_restricted
	some [side, path, c] in containers
	pod := pods[side]
	not windows_pod(pod)
	not is_object(object.get(sec(c), "seccompProfile", null))
	not object.get(sec(pod.spec), ["seccompProfile", "type"], null) in valid_profile_types
}

absolute_findings contains [side, restricted("capabilities", sprintf("%s.securityContext.capabilities.drop", [path]), object.get(sec(c), ["capabilities", "drop"], null))] if {
	judge_restricted
	some [side, path, c] in containers
	not windows_pod(pods[side])
	not "ALL" in object.get(sec(c), ["capabilities", "drop"], [])
}

# (Capabilities outside the baseline list are reported by baseline already.)
absolute_findings contains [side, restricted("capabilities", sprintf("%s.securityContext.capabilities.add", [path]), cap)] if {
	judge_restricted
	some [side, path, c] in containers
	not windows_pod(pods[side])
	some cap in sec(c).capabilities.add
	cap != "NET_BIND_SERVICE"
	cap in baseline_capabilities
}

# In a user namespace baseline allows any procMount; restricted does not.
absolute_findings contains [side, restricted("procMount", sprintf("%s.securityContext.procMount", [path]), m)] if {
	judge_restricted
	some [side, path, c] in containers
	host_users_off(pods[side])
	m := sec(c).procMount
	is_string(m)
	m != "Default"
}

# ---- Image registries ------------------------------------------------------------------------

# "registry/path" of an image reference without tag or digest, as a container runtime reads it:
# the first component is a registry when it has a "." or ":", is "localhost" or has upper case;
# otherwise the image is on Docker Hub (docker.io/library/<name> for a one-component name).
image_repository(image) := concat("/", [registry, concat("/", path)]) if {
	name := split(image, "@")[0]
	parts := split(name, "/")
	[registry, rest] := image_registry_split(parts)
	last := rest[count(rest) - 1]
	path := array.concat(array.slice(rest, 0, count(rest) - 1), [split(last, ":")[0]])
}

image_registry_split(parts) := [canonical_registry(lower(parts[0])), array.slice(parts, 1, count(parts))] if {
	count(parts) > 1
	registry_component(parts[0])
}

image_registry_split(parts) := ["docker.io", parts] if {
	count(parts) > 1
	not registry_component(parts[0])
}

image_registry_split(parts) := ["docker.io", ["library", parts[0]]] if count(parts) == 1

registry_component(c) if contains(c, ".")

registry_component(c) if contains(c, ":")

registry_component("localhost")

registry_component(c) if lower(c) != c

canonical_registry(r) := "docker.io" if r in {"index.docker.io", "registry-1.docker.io"}

canonical_registry(r) := r if not r in {"index.docker.io", "registry-1.docker.io"}

# An entry allows itself and everything under it: "registry.example.com", "ghcr.io/company",
# "docker.io/library" (Docker Hub's official images).
image_allowed(image) if {
	repo := image_repository(image)
	some entry in data.atb_config.image_registries
	is_string(entry)
	prefix := trim_suffix(lower(entry), "/")
	registry_prefix_match(repo, prefix)
}

registry_prefix_match(repo, prefix) if repo == prefix

registry_prefix_match(repo, prefix) if startswith(repo, concat("", [prefix, "/"]))

registry_rule_configured if is_array(data.atb_config.image_registries)

absolute_findings contains [side, finding("image_registry_not_allowed", "registry", sprintf("%s.image", [path]), c.image)] if {
	registry_rule_configured
	some [side, path, c] in containers
	not image_allowed(c.image)
}

# ---- Services --------------------------------------------------------------------------------

exposed_service_types := {"NodePort", "LoadBalancer"}

absolute_findings contains [side, finding("service_exposure", "type", "spec.type", obj.spec.type)] if {
	some side, obj in judged_objects
	kind_of(obj) == "Service"
	obj.spec.type in exposed_service_types
}

absolute_findings contains [side, finding("service_exposure", "externalIPs", "spec.externalIPs", ip)] if {
	some side, obj in judged_objects
	kind_of(obj) == "Service"
	some ip in obj.spec.externalIPs
}

# ---- Comparisons (the change itself) ---------------------------------------------------------

service_account(pod) := sa if {
	sa := pod.spec.serviceAccountName
	is_string(sa)
	sa != ""
} else := sa if {
	sa := pod.spec.serviceAccount
	is_string(sa)
	sa != ""
} else := "default"

# A new object is compared with the namespace's default service account.
before_service_account := service_account(pods.before) if pods.before

before_service_account := "default" if not judged_objects.before

change_findings contains finding("service_account_change", "serviceAccountName", sprintf("%s.serviceAccountName", [pods.after.at]), {"before": before_service_account, "after": after_sa}) if {
	after_sa := service_account(pods.after)
	after_sa != before_service_account
}

change_findings contains finding("service_selector_change", field, concat(".", ["spec", field]), {"before": b, "after": a}) if {
	kind_of(judged_objects.after) == "Service"
	some field in ["selector", "externalName"]
	b := object.get(judged_objects.before, ["spec", field], null)
	a := object.get(judged_objects.after, ["spec", field], null)
	b != a
}

change_findings contains finding("ownership_change", field, concat(".", ["metadata", field]), {"added": added, "removed": removed}) if {
	after := judged_objects.after
	before := object.get(judged_objects, "before", {})
	some field in ["ownerReferences", "finalizers"]
	a := {x | some x in object.get(after, ["metadata", field], [])}
	b := {x | some x in object.get(before, ["metadata", field], [])}
	a != b
	added := sort(a - b)
	removed := sort(b - a)
}

# ---- Findings, denies, tiers, details --------------------------------------------------------

after_findings := {f | some ["after", f] in absolute_findings; workload_rule_applies(f)}

before_findings := {f | some ["before", f] in absolute_findings}

workload_rule_applies(f) if f.rule != "pod_security_baseline"

workload_rule_applies(f) if {
	f.rule == "pod_security_baseline"
	judge_baseline
}

inherited_findings := {f | some f in after_findings; f in before_findings; judged_part_unchanged}

judged_findings := (after_findings - inherited_findings) | change_findings

workload_denies(rule) if {
	some f in judged_findings
	f.rule == rule
	rule_outcome(rule) == "deny"
}

deny contains [43, "pod_security_baseline"] if workload_denies("pod_security_baseline")

deny contains [44, "pod_security_restricted"] if workload_denies("pod_security_restricted")

deny contains [45, "service_account_change"] if workload_denies("service_account_change")

deny contains [46, "image_registry_not_allowed"] if workload_denies("image_registry_not_allowed")

deny contains [47, "service_exposure"] if workload_denies("service_exposure")

deny contains [48, "service_selector_change"] if workload_denies("service_selector_change")

deny contains [49, "ownership_change"] if workload_denies("ownership_change")

raised_tiers contains raise_tier(f.rule) if {
	some f in judged_findings
	raise_tier(f.rule)
}

# At most this many findings are listed (the decision must stay small); the count is exact.
max_listed_findings := 20

bounded_text(x) := s if {
	s := json.marshal(x)
	count(s) <= 200
} else := concat("", [substring(json.marshal(x), 0, 200), "..."])

listed_finding(f) := {
	"rule": f.rule,
	"check": f.check,
	"field": f.field,
	"value": bounded_text(f.value),
	"outcome": rule_outcome(f.rule),
}

workload_details := {"workload": {
	"pod_security_level": pod_security_level,
	"findings": array.slice([listed_finding(f) | some f in sort(judged_findings)], 0, max_listed_findings),
	"judged": count(judged_findings),
	"inherited": count(inherited_findings),
}} if {
	count(judged_findings) + count(inherited_findings) > 0
} else := {}
