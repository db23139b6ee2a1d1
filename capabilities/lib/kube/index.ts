// The kube adapter's public face: the client and its port, the API coordinates, the errors, watches.
export * from "./client";
export * from "./errors";
export * from "./resources";
export * from "./watch";
