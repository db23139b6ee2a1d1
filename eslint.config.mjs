// Size and safety limits after Pepr's own ESLint setup: small functions, awaited promises. The
// type-aware rules use tsconfig.all.json (every file); tsconfig.json covers only the module.
import tseslint from "@typescript-eslint/eslint-plugin";
import tsparser from "@typescript-eslint/parser";

export default [
  { ignores: ["dist/**", "node_modules/**", "coverage/**", ".data/**", "**/*.js", "**/*.mjs"] },
  {
    files: ["**/*.ts"],
    languageOptions: { parser: tsparser, parserOptions: { project: "./tsconfig.all.json" } },
    plugins: { "@typescript-eslint": tseslint },
    rules: {
      "@typescript-eslint/no-floating-promises": "error",
      "@typescript-eslint/no-misused-promises": "error",
      "@typescript-eslint/no-explicit-any": "error",
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_" }],
      complexity: ["warn", 12],
      "max-depth": ["error", 3],
      "max-params": ["warn", 4],
      "no-console": "off",
    },
  },
];
