// Lint rules of the front end, shared by widgets/ and labextension/ (whose eslint.config.mjs
// reuses this file, and so these packages from widgets/node_modules): ESLint's and
// typescript-eslint's recommended rules. Layout is prettier's job (.prettierrc.json).
import js from '@eslint/js';
import { defineConfig } from 'eslint/config';
import tseslint from 'typescript-eslint';

export default defineConfig(
  { ignores: ['lib/', 'node_modules/'] },
  js.configs.recommended,
  tseslint.configs.recommended,
  {
    // the build scripts and this config run in Node
    files: ['**/*.mjs'],
    languageOptions: { globals: { console: 'readonly', process: 'readonly' } }
  }
);
