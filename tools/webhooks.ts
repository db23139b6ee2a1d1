// Registers the admission webhooks of a locally running operator (PEPR_MODE=dev) with a local
// API server, as `pepr dev --host localhost` does: https://localhost:<port>/{mutate,validate}/<api
// path>, the serving CA as caBundle, failurePolicy Fail so no task bypasses validation.
import { readFileSync } from "node:fs";

export const WEBHOOK_NAME = "atb-operator-local";

function webhook(
  kind: "mutate" | "validate",
  port: number,
  apiPath: string,
  caFile: string,
  name: string,
  namespaces: string[],
) {
  return {
    name: `${kind}.${name}.atb.siemens.com`,
    ...(namespaces.length
      ? {
          namespaceSelector: {
            matchExpressions: [{ key: "kubernetes.io/metadata.name", operator: "In", values: namespaces }],
          },
        }
      : {}),
    admissionReviewVersions: ["v1"],
    clientConfig: {
      url: `https://localhost:${port}/${kind}/${apiPath}`,
      caBundle: readFileSync(caFile).toString("base64"),
    },
    failurePolicy: "Fail",
    matchPolicy: "Equivalent",
    sideEffects: "None",
    timeoutSeconds: 10,
    rules: [
      {
        apiGroups: ["atb.siemens.com"],
        apiVersions: ["v1alpha1"],
        operations: ["CREATE", "UPDATE"],
        resources: ["agenttasks"],
        scope: "Namespaced",
      },
    ],
  };
}

/** The two webhook configurations as JSON objects for kubectl apply; namespaces empty = all. */
export function webhookConfigurations(
  port: number,
  apiPath: string,
  caFile: string,
  name = WEBHOOK_NAME,
  namespaces: string[] = [],
): object[] {
  return [
    {
      apiVersion: "admissionregistration.k8s.io/v1",
      kind: "MutatingWebhookConfiguration",
      metadata: { name },
      webhooks: [{ ...webhook("mutate", port, apiPath, caFile, name, namespaces), reinvocationPolicy: "Never" }],
    },
    {
      apiVersion: "admissionregistration.k8s.io/v1",
      kind: "ValidatingWebhookConfiguration",
      metadata: { name },
      webhooks: [webhook("validate", port, apiPath, caFile, name, namespaces)],
    },
  ];
}
