# The seed's Python example: the fenced block of section "Python Example" in the ATB Kubernetes
# Operator Example document this project started from, copied verbatim below this comment.
# It leaves agent_spiffe_id and poa_token undefined and calls load_incluster_config():
# tests/e2e/seed_snippet_runner.py defines the two names (from the environment) and, outside a
# pod, makes load_incluster_config() load the kubeconfig instead, then runs this file as it is.
from kubernetes import client, config

config.load_incluster_config()  # or load_kube_config() for local

api = client.CustomObjectsApi()

task = {
    "apiVersion": "atb.siemens.com/v1alpha1",
    "kind": "AgentTask",
    "metadata": {"name": "scale-frontend"},
    "spec": {
        "agentId": agent_spiffe_id,
        "poaToken": poa_token,
        "action": "scale",
        "target": {
            "kind": "Deployment",
            "name": "web-frontend",
            "namespace": "production"
        },
        "payload": {"replicas": 5}
    }
}

api.create_namespaced_custom_object(
    group="atb.siemens.com",
    version="v1alpha1",
    namespace="production",
    plural="agenttasks",
    body=task
)
