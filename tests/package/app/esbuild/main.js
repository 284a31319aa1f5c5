// The test app as an esbuild user writes it: `vmdisk/inline`, whose workers and wasm travel in
// the bundle (esbuild emits neither), imported before the element, which then uses its worker.
// Built with `esbuild esbuild/main.js --bundle --format=esm --outdir=dist-esbuild` and nothing else.
import * as vmdisk from 'vmdisk/inline';
import 'vmdisk/element';
import { start } from '../harness.js';

start(vmdisk);
