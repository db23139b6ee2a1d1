# The policy judges the resulting object (workload.rego): every rule, its deny and allow sides,
# the settings in data, and what is not judged again.
package atb.k8s_test

import data.atb.k8s

# ---- Fixtures --------------------------------------------------------------------------------

image := "registry.example.com/web:1.0"

web(extra) := object.union({"name": "web", "image": image}, extra)

harmless := {"containers": [web({})]}

# A pod spec with one container whose securityContext is sc.
with_sc(sc) := {"containers": [web({"securityContext": sc})]}

# The harmless pod spec plus pod-level fields.
pod_with(fields) := object.union(harmless, fields)

# Compliant with the restricted level.
restricted_ok := {
	"securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}},
	"containers": [web({"securityContext": {"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}}})],
}

# restricted_ok with its container's securityContext merged with sc.
restricted_with(sc) := object.union(restricted_ok, {"containers": [web({"securityContext": object.union({"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}}, sc)})]})

workload(kind, podspec) := {
	"kind": kind,
	"metadata": {"name": "web", "namespace": "shop", "labels": {"app": "web"}, "annotations": {}},
	"spec": {
		"replicas": 2,
		"selector": {"matchLabels": {"app": "web"}},
		"template": {"metadata": {"labels": {"app": "web"}}, "spec": podspec},
	},
}

dep(podspec) := workload("Deployment", podspec)

two := [dual("alice"), dual("bob")]

# A HIGH action on Deployment shop/web, with dual control, from before to after.
change(verb, before, after) := request(verb, "Deployment", {}, {"before": before, "after": after}, two)

# What runs before each deploy: harmless, with the previous image.
previous := {"containers": [web({"image": "registry.example.com/web:0.9"})]}

# A deploy of the pod spec over the previous Deployment.
deploy(podspec) := change("deploy", dep(previous), dep(podspec))

restricted_ns := {"namespaces": {"shop": "restricted"}}

# Data with nothing but the requester binding (an older data file, once it binds requesters).
only_binding := {"requester_binding": data.atb_config.requester_binding}

decide_restricted(inp) := d if d := k8s.decision with input as inp with data.atb_config.pod_security as restricted_ns

baseline_denied(podspec) if denied_with(deploy(podspec), "pod_security_baseline")

restricted_denied(podspec) if {
	d := decide_restricted(deploy(podspec))
	d.allow == false
	d.reason == "pod_security_restricted"
}

restricted_allowed(podspec) if decide_restricted(deploy(podspec)).allow == true

findings(inp) := decide(inp).details.workload.findings

has_finding(inp, rule, field) if {
	some f in findings(inp)
	f.rule == rule
	f.field == field
}

# ---- No after, or a harmless one: the decisions stay as they were ---------------------------

test_no_after_keeps_the_decision if {
	d := decide(with_approvals("deploy", two))
	d.allow == true
	not d.details.workload
}

test_null_after_is_not_judged if allowed(request("deploy", "Deployment", {}, {"before": null, "after": null}, two))

test_harmless_deploy_allowed_without_findings if {
	d := decide(deploy(object.union(harmless, {"containers": [web({"image": "registry.example.com/web:1.1"})]})))
	d.allow == true
	d.risk_tier == "HIGH"
	not d.details.workload
}

test_harmless_change_still_needs_its_approvals if {
	inp := request("deploy", "Deployment", {}, {"before": dep(harmless), "after": dep(harmless)}, [dual("alice")])
	denied_with(inp, "high_risk_dual_control_required")
}

test_harmless_scale_stays_low if {
	before := dep(harmless)
	after := json.patch(before, [{"op": "replace", "path": "/spec/replicas", "value": 3}])
	inp := request("scale", "Deployment", {"replicas": 3}, {"current": {"replicas": 2}, "before": before, "after": after}, [])
	d := decide(inp)
	d.allow == true
	d.risk_tier == "LOW"
}

# ---- Baseline: host namespaces, privileged, capabilities ------------------------------------

test_host_namespaces_denied if {
	every field in ["hostNetwork", "hostPID", "hostIPC"] {
		baseline_denied(pod_with({field: true}))
		has_finding(deploy(pod_with({field: true})), "pod_security_baseline", sprintf("spec.template.spec.%s", [field]))
	}
}

test_host_namespaces_false_allowed if allowed(deploy(pod_with({"hostNetwork": false, "hostPID": false, "hostIPC": false})))

test_privileged_denied_in_every_container_kind if {
	baseline_denied(with_sc({"privileged": true}))
	init := pod_with({"initContainers": [{"name": "init", "image": image, "securityContext": {"privileged": true}}]})
	baseline_denied(init)
	has_finding(deploy(init), "pod_security_baseline", "spec.template.spec.initContainers[init].securityContext.privileged")
	eph := pod_with({"ephemeralContainers": [{"name": "debug", "image": image, "securityContext": {"privileged": true}}]})
	baseline_denied(eph)
	has_finding(deploy(eph), "pod_security_baseline", "spec.template.spec.ephemeralContainers[debug].securityContext.privileged")
}

test_privileged_false_allowed if allowed(deploy(with_sc({"privileged": false})))

test_capabilities_beyond_baseline_denied if {
	baseline_denied(with_sc({"capabilities": {"add": ["SYS_ADMIN"]}}))
	baseline_denied(with_sc({"capabilities": {"add": ["CHOWN", "NET_RAW"]}}))
	baseline_denied(with_sc({"capabilities": {"add": ["CAP_CHOWN"]}}))
}

test_baseline_capabilities_allowed if {
	allowed(deploy(with_sc({"capabilities": {"add": ["NET_BIND_SERVICE", "CHOWN", "KILL", "SYS_CHROOT"]}})))
	allowed(deploy(with_sc({"capabilities": {"drop": ["ALL"]}})))
}

# ---- Baseline: volumes, ports, AppArmor, SELinux, /proc, seccomp, sysctls, Windows, probes ---

test_host_path_volume_denied if {
	spec := pod_with({"volumes": [{"name": "root", "hostPath": {"path": "/"}}]})
	baseline_denied(spec)
	has_finding(deploy(spec), "pod_security_baseline", "spec.template.spec.volumes[root].hostPath")
}

test_other_volumes_allowed if allowed(deploy(pod_with({"volumes": [
	{"name": "tmp", "emptyDir": {}},
	{"name": "cfg", "configMap": {"name": "web"}},
	{"name": "data", "persistentVolumeClaim": {"claimName": "data"}},
	{"name": "nfs", "nfs": {"server": "nfs.example.com", "path": "/x"}},
]})))

test_host_port_denied if {
	spec := {"containers": [web({"ports": [{"containerPort": 80, "hostPort": 8080}]})]}
	baseline_denied(spec)
	has_finding(deploy(spec), "pod_security_baseline", "spec.template.spec.containers[web].ports[0].hostPort")
}

test_container_port_and_zero_host_port_allowed if allowed(deploy({"containers": [web({"ports": [{"containerPort": 80}, {"containerPort": 81, "hostPort": 0}]})]}))

test_apparmor_unconfined_denied if {
	baseline_denied(with_sc({"appArmorProfile": {"type": "Unconfined"}}))
	baseline_denied(pod_with({"securityContext": {"appArmorProfile": {"type": "Unconfined"}}}))
	annotated := json.patch(dep(harmless), [{"op": "add", "path": "/spec/template/metadata/annotations", "value": {"container.apparmor.security.beta.kubernetes.io/web": "unconfined"}}])
	inp := change("deploy", dep(harmless), annotated)
	denied_with(inp, "pod_security_baseline")
	has_finding(inp, "pod_security_baseline", "spec.template.metadata.annotations[container.apparmor.security.beta.kubernetes.io/web]")
}

test_apparmor_default_and_localhost_allowed if {
	allowed(deploy(with_sc({"appArmorProfile": {"type": "RuntimeDefault"}})))
	allowed(deploy(pod_with({"securityContext": {"appArmorProfile": {"type": "Localhost", "localhostProfile": "k8s-web"}}})))
	annotated := json.patch(dep(harmless), [{"op": "add", "path": "/spec/template/metadata/annotations", "value": {
		"container.apparmor.security.beta.kubernetes.io/web": "runtime/default",
		"container.apparmor.security.beta.kubernetes.io/side": "localhost/k8s-side",
	}}])
	allowed(change("deploy", dep(harmless), annotated))
}

test_selinux_custom_options_denied if {
	baseline_denied(with_sc({"seLinuxOptions": {"type": "spc_t"}}))
	baseline_denied(pod_with({"securityContext": {"seLinuxOptions": {"user": "system_u"}}}))
	baseline_denied(with_sc({"seLinuxOptions": {"role": "sysadm_r"}}))
}

test_selinux_container_types_allowed if {
	allowed(deploy(with_sc({"seLinuxOptions": {"type": "container_t", "level": "s0:c123,c456"}})))
	allowed(deploy(pod_with({"securityContext": {"seLinuxOptions": {"type": "container_engine_t"}}})))
	allowed(deploy(with_sc({"seLinuxOptions": {"user": "", "role": null}})))
}

test_proc_mount_unmasked_denied if baseline_denied(with_sc({"procMount": "Unmasked"}))

test_proc_mount_default_allowed if {
	allowed(deploy(with_sc({"procMount": "Default"})))
	allowed(deploy(with_sc({"procMount": null})))

	# In a user namespace baseline allows any procMount.
	allowed(deploy(object.union(with_sc({"procMount": "Unmasked"}), {"hostUsers": false})))
}

test_seccomp_unconfined_denied if {
	baseline_denied(with_sc({"seccompProfile": {"type": "Unconfined"}}))
	baseline_denied(pod_with({"securityContext": {"seccompProfile": {"type": "Unconfined"}}}))
}

test_seccomp_runtime_default_allowed if allowed(deploy(pod_with({"securityContext": {"seccompProfile": {"type": "RuntimeDefault"}}})))

test_unsafe_sysctls_denied if {
	spec := pod_with({"securityContext": {"sysctls": [{"name": "net.ipv4.tcp_syncookies", "value": "1"}, {"name": "kernel.msgmax", "value": "65536"}]}})
	baseline_denied(spec)
	some f in findings(deploy(spec))
	f.check == "sysctls"
	f.value == "\"kernel.msgmax\""
}

test_safe_sysctls_allowed if allowed(deploy(pod_with({"securityContext": {"sysctls": [
	{"name": "net.ipv4.ip_local_port_range", "value": "1024 65535"},
	{"name": "net.ipv4.tcp_keepalive_time", "value": "60"},
]}})))

test_windows_host_process_denied if {
	baseline_denied(with_sc({"windowsOptions": {"hostProcess": true}}))
	baseline_denied(pod_with({"securityContext": {"windowsOptions": {"hostProcess": true}}}))
}

test_windows_host_process_false_allowed if allowed(deploy(with_sc({"windowsOptions": {"hostProcess": false}})))

test_probe_and_lifecycle_hosts_denied if {
	baseline_denied({"containers": [web({"livenessProbe": {"httpGet": {"path": "/", "port": 80, "host": "169.254.169.254"}}})]})
	baseline_denied({"containers": [web({"lifecycle": {"preStop": {"tcpSocket": {"port": 80, "host": "10.0.0.1"}}}})]})
}

test_probes_without_host_allowed if allowed(deploy({"containers": [web({
	"livenessProbe": {"httpGet": {"path": "/", "port": 80}},
	"readinessProbe": {"tcpSocket": {"port": 80, "host": ""}},
	"startupProbe": {"httpGet": {"path": "/", "port": 80, "host": null}},
})]}))

# ---- Restricted, per namespace level ---------------------------------------------------------

test_restricted_compliant_pod_allowed if restricted_allowed(restricted_ok)

test_baseline_pod_denied_in_a_restricted_namespace_only if {
	restricted_denied(harmless)
	allowed(deploy(harmless))
}

test_restricted_run_as_user_zero_denied if {
	restricted_denied(restricted_with({"runAsUser": 0}))
	restricted_denied(object.union(restricted_ok, {"securityContext": {"runAsUser": 0}}))
	restricted_allowed(restricted_with({"runAsUser": 1000}))
	allowed(deploy(with_sc({"runAsUser": 0})))
}

test_restricted_run_as_non_root if {
	restricted_denied(object.union(restricted_ok, {"securityContext": {"runAsNonRoot": false}}))
	restricted_denied(restricted_with({"runAsNonRoot": false}))

	# Neither the pod nor the container says it.
	restricted_denied(object.union(restricted_ok, {"securityContext": {"runAsNonRoot": null}}))

	# The container says it for itself.
	restricted_allowed(object.union(restricted_with({"runAsNonRoot": true}), {"securityContext": {"runAsNonRoot": null}}))
}

test_restricted_privilege_escalation if {
	restricted_denied(restricted_with({"allowPrivilegeEscalation": true}))
	restricted_denied({
		"securityContext": restricted_ok.securityContext,
		"containers": [web({"securityContext": {"capabilities": {"drop": ["ALL"]}}})],
	})
}

test_restricted_capabilities if {
	restricted_denied(restricted_with({"capabilities": {"drop": ["NET_RAW"]}}))
	restricted_denied(restricted_with({"capabilities": {"drop": ["ALL"], "add": ["CHOWN"]}}))
	restricted_allowed(restricted_with({"capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}}))
}

test_restricted_seccomp if {
	restricted_denied(object.union(restricted_ok, {"securityContext": {"seccompProfile": null}}))
	restricted_allowed(object.union(restricted_with({"seccompProfile": {"type": "Localhost", "localhostProfile": "p.json"}}), {"securityContext": {"seccompProfile": null}}))
}

test_restricted_volume_types if {
	restricted_denied(object.union(restricted_ok, {"volumes": [{"name": "nfs", "nfs": {"server": "nfs.example.com", "path": "/x"}}]}))
	restricted_allowed(object.union(restricted_ok, {"volumes": [
		{"name": "tmp", "emptyDir": {}},
		{"name": "cfg", "configMap": {"name": "web"}},
		{"name": "sec", "secret": {"secretName": "web"}},
		{"name": "data", "persistentVolumeClaim": {"claimName": "data"}},
		{"name": "tok", "projected": {"sources": []}},
	]}))
}

test_restricted_windows_pods_exempt_from_linux_controls if {
	windows := {
		"os": {"name": "windows"},
		"securityContext": {"runAsNonRoot": true},
		"containers": [web({})],
	}
	restricted_allowed(windows)
}

test_restricted_user_namespace_relaxations if {
	userns := object.union(restricted_ok, {"hostUsers": false, "securityContext": {"runAsNonRoot": null, "runAsUser": 0}})
	restricted_allowed(userns)
	restricted_denied(object.union(restricted_with({"procMount": "Unmasked"}), {"hostUsers": false}))
}

test_pod_security_levels_from_data if {
	# A default level for every namespace.
	d1 := k8s.decision with input as deploy(harmless) with data.atb_config.pod_security as {"default_level": "restricted"}
	d1.reason == "pod_security_restricted"
	d1.details.workload.pod_security_level == "restricted"

	# A privileged namespace judges no pod security control.
	priv := pod_with({"hostPID": true})
	d2 := k8s.decision with input as deploy(priv) with data.atb_config.pod_security as {"namespaces": {"shop": "privileged"}}
	d2.allow == true

	# An unknown level is judged as restricted.
	d3 := k8s.decision with input as deploy(harmless) with data.atb_config.pod_security as {"namespaces": {"shop": "strict"}}
	d3.reason == "pod_security_restricted"

	# No pod_security data at all: baseline.
	d4 := k8s.decision with input as deploy(pod_with({"hostPID": true})) with data.atb_config as only_binding
	d4.reason == "pod_security_baseline"
	d5 := k8s.decision with input as deploy(harmless) with data.atb_config as only_binding
	d5.allow == true
}

# ---- Service account -------------------------------------------------------------------------

test_service_account_change_denied if {
	inp := deploy(pod_with({"serviceAccountName": "cluster-admin-sa"}))
	denied_with(inp, "service_account_change")
	some f in findings(inp)
	f.field == "spec.template.spec.serviceAccountName"
	f.value == "{\"after\":\"cluster-admin-sa\",\"before\":\"default\"}"

	# The deprecated field counts too.
	denied_with(deploy(pod_with({"serviceAccount": "other"})), "service_account_change")

	# A new object is compared with the default service account.
	denied_with(change("deploy", null, dep(pod_with({"serviceAccountName": "other"}))), "service_account_change")
}

test_same_service_account_allowed if {
	sa := pod_with({"serviceAccountName": "web"})
	allowed(change("deploy", dep(sa), dep(object.union(sa, {"containers": [web({"image": "registry.example.com/web:1.1"})]}))))
	allowed(deploy(pod_with({"serviceAccountName": "default"})))
	allowed(change("deploy", null, dep(harmless)))
}

# ---- Image registries ------------------------------------------------------------------------

registries := ["registry.example.com", "ghcr.io/company", "docker.io/library"]

image_denied(img) if {
	d := k8s.decision with input as deploy({"containers": [web({"image": img})]}) with data.atb_config.image_registries as registries
	d.reason == "image_registry_not_allowed"
}

image_allowed(img) if {
	d := k8s.decision with input as deploy({"containers": [web({"image": img})]}) with data.atb_config.image_registries as registries
	d.allow == true
}

test_image_repository_normalization if {
	k8s.image_repository("nginx") == "docker.io/library/nginx"
	k8s.image_repository("nginx:1.27") == "docker.io/library/nginx"
	k8s.image_repository("bitnami/redis:7") == "docker.io/bitnami/redis"
	k8s.image_repository("index.docker.io/library/nginx@sha256:abc") == "docker.io/library/nginx"
	k8s.image_repository("localhost:5000/team/app:1") == "localhost:5000/team/app"
	k8s.image_repository("Registry.Example.com/app") == "registry.example.com/app"
	k8s.image_repository("ghcr.io/company/payment-service:v2.0.0") == "ghcr.io/company/payment-service"
}

test_allowed_registries if {
	image_allowed("registry.example.com/payment-service:2.0.0")
	image_allowed("nginx:1.27")
	image_allowed("docker.io/library/busybox")
	image_allowed("ghcr.io/company/payment-service:v2.0.0")
	image_allowed("registry.example.com/api@sha256:0123456789abcdef")
}

test_registries_outside_the_list_denied if {
	image_denied("ghcr.io/attacker/miner:latest")
	image_denied("evil.example.com/miner:latest")
	image_denied("bitnami/redis:7")
	image_denied("registry.example.com.evil.io/app:1")
	image_denied("ghcr.io/company-evil/app:1")
	image_denied("localhost:5000/app")
}

test_registry_rule_covers_every_container_kind if {
	init := pod_with({"initContainers": [{"name": "fetch", "image": "quay.io/anyone/tool:1"}]})
	inp := deploy(init)
	denied_with(inp, "image_registry_not_allowed")
	has_finding(inp, "image_registry_not_allowed", "spec.template.spec.initContainers[fetch].image")
	eph := pod_with({"ephemeralContainers": [{"name": "debug", "image": "quay.io/anyone/tool:1"}]})
	denied_with(deploy(eph), "image_registry_not_allowed")
}

test_registry_list_settings if {
	# No list: no registry rule.
	d1 := k8s.decision with input as deploy({"containers": [web({"image": "quay.io/anyone/tool:1"})]}) with data.atb_config.image_registries as null
	d1.allow == true
	d2 := k8s.decision with input as deploy({"containers": [web({"image": "quay.io/anyone/tool:1"})]}) with data.atb_config as only_binding
	d2.allow == true

	# An empty list: no image is allowed.
	d3 := k8s.decision with input as deploy(harmless) with data.atb_config.image_registries as []
	d3.reason == "image_registry_not_allowed"
}

# ---- Services --------------------------------------------------------------------------------

service(spec) := {
	"kind": "Service",
	"metadata": {"name": "web", "namespace": "shop", "labels": {}, "annotations": {}},
	"spec": object.union({"type": "ClusterIP", "selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]}, spec),
}

service_patch(before, after) := request("patch", "Service", {}, {"before": before, "after": after}, two)

test_service_type_exposure_denied if {
	every t in ["NodePort", "LoadBalancer"] {
		denied_with(service_patch(service({}), service({"type": t})), "service_exposure")
	}
}

test_service_external_ips_denied if {
	inp := service_patch(service({}), service({"externalIPs": ["203.0.113.10"]}))
	denied_with(inp, "service_exposure")
	has_finding(inp, "service_exposure", "spec.externalIPs")
}

test_service_selector_change_denied if {
	inp := service_patch(service({}), service({"selector": {"app": "payment-service"}}))
	denied_with(inp, "service_selector_change")
	denied_with(service_patch(service({}), service({"selector": {"app": "web", "track": "canary"}})), "service_selector_change")
	denied_with(service_patch(service({"type": "ExternalName", "externalName": "web.example.com", "selector": null}), service({"type": "ExternalName", "externalName": "evil.example.com", "selector": null})), "service_selector_change")
}

test_service_external_ips_and_selector_swap if {
	inp := service_patch(service({}), service({"externalIPs": ["203.0.113.10"], "selector": {"app": "payment-service"}}))
	d := decide(inp)
	d.reason == "service_exposure"
	d.details.denies == ["service_exposure", "service_selector_change"]
}

test_harmless_service_patch_allowed if {
	allowed(service_patch(service({}), service({"ports": [{"port": 80, "targetPort": 9090}]})))
	patched := json.patch(service({}), [{"op": "add", "path": "/metadata/labels/team", "value": "web"}])
	allowed(service_patch(service({}), patched))
}

test_existing_exposure_is_not_judged_again if {
	before := service({"type": "NodePort", "externalIPs": ["203.0.113.10"]})
	after := json.patch(before, [{"op": "add", "path": "/metadata/labels/team", "value": "web"}])
	d := decide(service_patch(before, after))
	d.allow == true
	d.details.workload.inherited == 2

	# A spec change judges the whole result again.
	denied_with(service_patch(before, service({"type": "NodePort", "externalIPs": ["203.0.113.10"], "ports": [{"port": 81}]})), "service_exposure")
}

# ---- Ownership -------------------------------------------------------------------------------

owner := {"apiVersion": "apps/v1", "kind": "Deployment", "name": "other", "uid": "0b8c1a52-1111-2222-3333-444455556666", "controller": true}

test_owner_references_added_denied if {
	after := json.patch(dep(harmless), [{"op": "add", "path": "/metadata/ownerReferences", "value": [owner]}])
	inp := change("deploy", dep(harmless), after)
	denied_with(inp, "ownership_change")
	has_finding(inp, "ownership_change", "metadata.ownerReferences")
}

test_finalizers_added_or_removed_denied if {
	with_finalizer := json.patch(dep(harmless), [{"op": "add", "path": "/metadata/finalizers", "value": ["example.com/hold"]}])
	denied_with(change("deploy", dep(harmless), with_finalizer), "ownership_change")
	denied_with(change("deploy", with_finalizer, dep(harmless)), "ownership_change")
}

test_unchanged_owner_references_allowed if {
	rs := json.patch(workload("ReplicaSet", harmless), [{"op": "add", "path": "/metadata/ownerReferences", "value": [owner]}])
	scaled := json.patch(rs, [{"op": "replace", "path": "/spec/replicas", "value": 3}])
	inp := request("scale", "ReplicaSet", {"replicas": 3}, {"current": {"replicas": 2}, "before": rs, "after": scaled}, [])
	allowed(inp)
}

# ---- What is not judged again ----------------------------------------------------------------

host_network := pod_with({"hostNetwork": true})

test_existing_findings_with_unchanged_pod_spec_not_judged if {
	# A scale of a workload that already runs on the host network.
	before := dep(host_network)
	after := json.patch(before, [{"op": "replace", "path": "/spec/replicas", "value": 3}])
	d := decide(request("scale", "Deployment", {"replicas": 3}, {"current": {"replicas": 2}, "before": before, "after": after}, []))
	d.allow == true
	d.details.workload.inherited == 1
	d.details.workload.judged == 0

	# A restart (pod template annotation) of a workload with an image from another registry.
	old := dep({"containers": [web({"image": "quay.io/legacy/app:1"})]})
	restarted := json.patch(old, [{"op": "add", "path": "/spec/template/metadata/annotations", "value": {"kubectl.kubernetes.io/restartedAt": "2026-03-04T10:00:00Z"}}])
	allowed(request("restart", "Deployment", {}, {"before": old, "after": restarted}, [approval("alice")]))
}

test_any_pod_spec_change_judges_everything if {
	# A new image in a pod that already runs on the host network.
	after := dep(object.union(host_network, {"containers": [web({"image": "registry.example.com/web:1.1"})]}))
	denied_with(change("deploy", dep(host_network), after), "pod_security_baseline")

	# New arguments in an already privileged container.
	priv := with_sc({"privileged": true})
	denied_with(change("patch", dep(priv), dep({"containers": [web({"securityContext": {"privileged": true}, "args": ["sh", "-c", "id"]})]})), "pod_security_baseline")
}

# ---- Settings: deny, raise, ignore -----------------------------------------------------------

test_rule_raise_tier if {
	inp := deploy(pod_with({"serviceAccountName": "other"}))
	d := k8s.decision with input as inp with data.atb_config.workload_rules.service_account_change as "raise:CRITICAL"
	d.risk_tier == "CRITICAL"
	d.reason == "critical_risk_executive_approval_required"
	some f in d.details.workload.findings
	f.outcome == "raise:CRITICAL"

	exec := request("deploy", "Deployment", {}, inp.context, [executive("cto"), executive("ciso")])
	d2 := k8s.decision with input as exec with data.atb_config.workload_rules.service_account_change as "raise:CRITICAL"
	d2.allow == true
}

test_rule_raise_on_a_low_action if {
	before := service({})
	inp := request("patch", "Service", {}, {"before": before, "after": service({"type": "NodePort"})}, [approval("alice")])
	d := k8s.decision with input as inp with data.atb_config.workload_rules.service_exposure as "raise:high"
	d.risk_tier == "HIGH"
	d.reason == "high_risk_dual_control_required"
}

test_rule_ignore if {
	inp := deploy(pod_with({"hostPID": true}))
	d := k8s.decision with input as inp with data.atb_config.workload_rules.pod_security_baseline as "ignore"
	d.allow == true
	d.details.workload.findings[0].outcome == "ignore"
}

test_unknown_rule_setting_denies if {
	inp := deploy(pod_with({"hostPID": true}))
	every setting in ["maybe", "raise:URGENT", "raise", "", 7] {
		d := k8s.decision with input as inp with data.atb_config.workload_rules.pod_security_baseline as setting
		d.reason == "pod_security_baseline"
	}
}

test_missing_rule_settings_deny if {
	d := k8s.decision with input as deploy(pod_with({"hostPID": true})) with data.atb_config.workload_rules as null
	d.reason == "pod_security_baseline"
}

# ---- The escalation from issue 13, precedence, details ---------------------------------------

escalation := {
	"hostPID": true,
	"serviceAccountName": "payments-admin",
	"securityContext": {"runAsUser": 0},
	"volumes": [{"name": "host", "hostPath": {"path": "/"}}],
	"initContainers": [{"name": "setup", "image": "docker.io/attacker/tools:latest"}],
	"containers": [web({
		"securityContext": {"runAsUser": 0, "capabilities": {"add": ["SYS_ADMIN"]}},
		"volumeMounts": [{"name": "host", "mountPath": "/host"}],
	})],
}

test_the_reported_escalation_is_denied_with_every_reason if {
	after := json.patch(dep(escalation), [{"op": "add", "path": "/metadata/ownerReferences", "value": [owner]}])
	d := decide_restricted(change("deploy", dep(harmless), after))
	d.allow == false
	d.reason == "pod_security_baseline"
	d.risk_tier == "HIGH"
	d.details.denies == [
		"pod_security_baseline",
		"pod_security_restricted",
		"service_account_change",
		"image_registry_not_allowed",
		"ownership_change",
	]
}

test_details_name_the_container_and_field if {
	d := decide(deploy(escalation))
	d.details.workload.pod_security_level == "baseline"
	fields := {f.field | some f in d.details.workload.findings}
	"spec.template.spec.hostPID" in fields
	"spec.template.spec.volumes[host].hostPath" in fields
	"spec.template.spec.containers[web].securityContext.capabilities.add" in fields
	"spec.template.spec.initContainers[setup].image" in fields
	"spec.template.spec.serviceAccountName" in fields
}

test_details_are_bounded if {
	many := {"containers": [web({"name": sprintf("c%d", [i]), "securityContext": {"privileged": true}}) | some i in numbers.range(1, 30)]}
	d := decide(deploy(many))
	count(d.details.workload.findings) == 20
	d.details.workload.judged == 30
	long := pod_with({"volumes": [{"name": "h", "hostPath": {"path": concat("", ["/" | some _ in numbers.range(1, 500)])}}]})
	every f in decide(deploy(long)).details.workload.findings {
		count(f.value) <= 203
	}
}

test_other_workload_kinds if {
	every kind in ["StatefulSet", "DaemonSet", "ReplicaSet"] {
		inp := request("patch", kind, {}, {"before": workload(kind, harmless), "after": workload(kind, pod_with({"hostNetwork": true}))}, two)
		denied_with(inp, "pod_security_baseline")
	}
	cron := {"kind": "CronJob", "metadata": {"name": "web", "namespace": "shop"}, "spec": {"jobTemplate": {"spec": {"template": {"spec": with_sc({"privileged": true})}}}}}
	has_finding(request("patch", "CronJob", {}, {"before": null, "after": cron}, two), "pod_security_baseline", "spec.jobTemplate.spec.template.spec.containers[web].securityContext.privileged")
	pod := {"kind": "Pod", "metadata": {"name": "web", "namespace": "shop"}, "spec": pod_with({"hostIPC": true})}
	has_finding(request("patch", "Pod", {}, {"before": null, "after": pod}, two), "pod_security_baseline", "spec.hostIPC")
}

test_config_objects_are_not_judged_as_workloads if {
	cm := {"kind": "ConfigMap", "metadata": {"name": "web", "namespace": "shop", "labels": {}, "annotations": {}}, "data": {"k": "sha256:00"}}
	cm2 := json.patch(cm, [{"op": "replace", "path": "/data/k", "value": "sha256:11"}])
	allowed(request("update-config", "ConfigMap", {}, {"before": cm, "after": cm2}, [approval("alice")]))
}
