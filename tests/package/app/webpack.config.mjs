// The same app built by webpack 5 with nothing but an entry and an output: no loader or asset
// rule, since the package must need none (webpack follows its `new Worker(new URL(...))` and
// `new URL(..., import.meta.url)` and emits the workers and the wasm itself). webpack writes no
// HTML: the test puts index.html beside the bundle.
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = dirname(fileURLToPath(import.meta.url));

export default {
  mode: 'production',
  entry: join(HERE, 'main.js'),
  output: { path: join(HERE, 'dist-webpack'), filename: 'main.js', clean: true },
};
