// Projects: unit (no cluster, seconds), integration, e2e (the project's own control plane, started
// once in globalSetup), reliability, and interrupt (npm test's runner interrupted while it runs an
// e2e file: a control plane of its own, none from globalSetup). kubernetes-fluent-client and its
// ESM dependencies must be transformed for jest on Node 20 (they ship ES modules only).
const esm = ["kubernetes-fluent-client", "@kubernetes/client-node", "openid-client", "oauth4webapi", "jose"];
const common = {
  transform: {
    "^.+\\.[tj]s$": [
      "ts-jest",
      {
        tsconfig: {
          allowJs: true,
          module: "commonjs",
          moduleResolution: "node",
          target: "ES2022",
          esModuleInterop: true,
          isolatedModules: true,
        },
      },
    ],
  },
  transformIgnorePatterns: [`/node_modules/(?!(${esm.join("|")})/)`],
  testEnvironment: "node",
};
module.exports = {
  projects: [
    { ...common, displayName: "unit", testMatch: ["<rootDir>/tests/unit/**/*.test.ts"] },
    // Real TLS, real OPA, reference broker; no Kubernetes control plane needed.
    {
      ...common,
      displayName: "integration",
      testMatch: ["<rootDir>/tests/integration/**/*.test.ts"],
      setupFilesAfterEnv: ["<rootDir>/tests/integration/setup-timeout.ts"],
    },
    {
      ...common,
      displayName: "e2e",
      testMatch: ["<rootDir>/tests/e2e/**/*.test.ts"],
      globalSetup: "<rootDir>/tests/e2e/global-setup.ts",
      globalTeardown: "<rootDir>/tests/e2e/global-teardown.ts",
      setupFiles: ["<rootDir>/tests/e2e/setup-env.ts"],
      setupFilesAfterEnv: ["<rootDir>/tests/e2e/setup-timeout.ts"],
    },
    // Tries to break the product (crashes, broker faults, API server restart, hostile input) on the
    // e2e control plane; reduced sizes by default, ATB_RELIABILITY=full for the full counts.
    {
      ...common,
      displayName: "reliability",
      testMatch: ["<rootDir>/tests/reliability/**/*.test.ts"],
      globalSetup: "<rootDir>/tests/e2e/global-setup.ts",
      globalTeardown: "<rootDir>/tests/e2e/global-teardown.ts",
      setupFiles: ["<rootDir>/tests/e2e/setup-env.ts"],
      setupFilesAfterEnv: ["<rootDir>/tests/e2e/setup-timeout.ts"],
    },
    { ...common, displayName: "interrupt", testMatch: ["<rootDir>/tests/interrupt/**/*.test.ts"] },
  ],
};
