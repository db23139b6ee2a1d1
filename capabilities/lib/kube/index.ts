// The kube adapter's public face: the client and its port, the API coordinates, the errors.
export * from "./client";
export * from "./errors";
export * from "./resources";
