// Imported first by a test file that needs Pepr's watch bindings registered: Pepr decides at load
// time (node_modules/pepr/src/lib/core/capability.ts, registerWatch) whether a capability keeps
// its Watch/Reconcile bindings, as `pepr build` loads the module (PEPR_MODE=build).
process.env.PEPR_MODE = "build";
