"""Runs samples/seed/python_example.py, the seed's Python example, exactly as it is written.

The snippet leaves two names undefined; this runner defines only those, from the environment:
agent_spiffe_id (ATB_AGENT_ID) and poa_token (ATB_POA_TOKEN, never printed). The snippet calls
config.load_incluster_config(), which works only inside a pod; outside one (here, the e2e test)
that function is made to do what the snippet's own comment names for local use,
config.load_kube_config() (KUBECONFIG). The snippet's text is then compiled and executed as is.

usage: ATB_AGENT_ID=... ATB_POA_TOKEN=... KUBECONFIG=... python seed_snippet_runner.py [snippet.py]
"""

import os
import sys

from kubernetes import config

HERE = os.path.dirname(os.path.abspath(__file__))
SNIPPET = os.path.join(HERE, "..", "..", "samples", "seed", "python_example.py")


def main() -> int:
    path = sys.argv[1] if len(sys.argv) > 1 else SNIPPET
    with open(path, encoding="utf-8") as f:
        source = f.read()
    # Outside a pod: the snippet's comment says "or load_kube_config() for local".
    config.load_incluster_config = lambda *args, **kwargs: config.load_kube_config()
    names = {
        "__name__": "__main__",
        "__file__": path,
        "agent_spiffe_id": os.environ["ATB_AGENT_ID"],
        "poa_token": os.environ["ATB_POA_TOKEN"],
    }
    exec(compile(source, path, "exec"), names)  # noqa: S102 - running the snippet is the point
    return 0


if __name__ == "__main__":
    sys.exit(main())
