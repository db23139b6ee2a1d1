// Runs in every e2e worker before the test file: points KUBECONFIG at the suite's control plane
// so kubectl, kubernetes-fluent-client and the operator child processes all use it.
import { e2eCluster } from "../helpers/cluster-env";

process.env.KUBECONFIG = e2eCluster().kubeconfig;
