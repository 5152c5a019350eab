// Lint rules. Beyond the recommended sets, this enforces the layering of docs/ARCHITECTURE.md (lint/layers.js:
// no upward import between layers, no import between siblings of one layer, production never imports a
// testing/ folder, src/status reaches components only through their status.ts); nothing but src/k8s touches
// the Kubernetes client; nobody runs shell strings (child_process.exec) — argv arrays through execFile/spawn only.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import layers from './lint/layers.js';

const noShell = {
  paths: [
    {
      name: 'node:child_process',
      importNames: ['exec', 'execSync'],
      message: 'use execFile/spawn with an argv array (src/common/exec-adapter.ts)',
    },
    { name: 'child_process', message: 'import node:child_process' },
  ],
};

export default tseslint.config(
  { ignores: ['node_modules/**', 'dist/**', '.tap/**', 'coverage/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: {
      globals: {
        process: 'readonly',
        console: 'readonly',
        setTimeout: 'readonly',
        clearTimeout: 'readonly',
        setInterval: 'readonly',
        clearInterval: 'readonly',
        Buffer: 'readonly',
        URL: 'readonly',
        queueMicrotask: 'readonly',
        setImmediate: 'readonly',
        AbortController: 'readonly',
        AbortSignal: 'readonly',
        structuredClone: 'readonly',
        TextEncoder: 'readonly',
        TextDecoder: 'readonly',
        performance: 'readonly',
        fetch: 'readonly',
      },
    },
    rules: {
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' },
      ],
      '@typescript-eslint/consistent-type-imports': 'error',
      'no-restricted-imports': ['error', noShell],
      eqeqeq: ['error', 'smart'],
    },
  },
  {
    files: ['src/**', 'cni-plugins/**', 'ingress/**'],
    plugins: { kdp: layers },
    rules: { 'kdp/layers': 'error' },
  },
  {
    files: ['src/**', 'cni-plugins/**', 'ingress/**'],
    ignores: ['src/k8s/**'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          ...noShell,
          patterns: [{ group: ['@kubernetes/client-node'], message: 'only src/k8s touches the Kubernetes client' }],
        },
      ],
    },
  },
);
