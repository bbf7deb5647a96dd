import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['**/dist/**', '**/node_modules/**', '**/.doppel/**', 'bench/out/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: { process: 'readonly', console: 'readonly', Buffer: 'readonly', URL: 'readonly', setTimeout: 'readonly', clearTimeout: 'readonly', setInterval: 'readonly', clearInterval: 'readonly', setImmediate: 'readonly', performance: 'readonly', fetch: 'readonly', AbortController: 'readonly', AbortSignal: 'readonly', structuredClone: 'readonly', TextEncoder: 'readonly', TextDecoder: 'readonly', queueMicrotask: 'readonly' } },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/no-explicit-any': 'error',
      'no-restricted-syntax': ['error', {
        selector: "MemberExpression[object.name='process'][property.name='env'] ",
        message: 'read env once through loadConfig() in main.ts, not inside modules',
      }],
    },
  },
  {
    // Entry points, scripts, benchmarks and tests may read the environment.
    files: ['**/main.ts', '**/scripts/**', 'bench/**', '**/test/**', 'tests/**', 'bin/**', '**/*.mjs', 'packages/service-kit/src/config.ts', 'packages/cli/src/**'],
    rules: { 'no-restricted-syntax': 'off' },
  },
);
