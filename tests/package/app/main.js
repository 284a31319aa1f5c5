// The test app: what a dashboard would write. It imports the installed package by its names
// (Vite and webpack resolve them; unbundled.html maps them with an import map).
import * as vmdisk from 'vmdisk';
import 'vmdisk/element';
import { start } from './harness.js';

start(vmdisk);
