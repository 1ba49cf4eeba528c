// @ts-check
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

// ESLint reads the default export of its flat config; the project otherwise uses named exports only.
export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'coverage/**', '.bench-out/**', '.tmp/**', 'examples/browser/dist/**', '.stryker-tmp/**', 'reports/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: {
      globals: {
        console: 'readonly', process: 'readonly', setTimeout: 'readonly', clearTimeout: 'readonly',
        setInterval: 'readonly', clearInterval: 'readonly', URL: 'readonly', Buffer: 'readonly',
      },
    },
    rules: {
      '@typescript-eslint/consistent-type-imports': ['error', { fixStyle: 'separate-type-imports' }],
      '@typescript-eslint/no-explicit-any': 'off',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-restricted-syntax': [
        'error',
        { selector: 'ExportDefaultDeclaration', message: 'Use named exports.' },
        { selector: 'ExportAllDeclaration', message: 'List exports by name.' },
      ],
      'max-params': ['error', 3],
    },
  },
  {
    files: ['*.config.ts', '*.config.js', '*.config.mjs'],
    rules: { 'no-restricted-syntax': 'off' },
  },
);
