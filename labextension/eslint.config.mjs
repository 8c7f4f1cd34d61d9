// The front end's shared lint rules (widgets/eslint.config.mjs); `lib/` is tsc's output.
export { default } from '../widgets/eslint.config.mjs';
