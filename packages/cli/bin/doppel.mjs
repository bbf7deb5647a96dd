#!/usr/bin/env node
// The `doppel` command: runs the TypeScript CLI from source (no build step needed).
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const child = spawn(
  process.execPath,
  // tsx resolved from here, not from the cwd: the command may run in a folder outside the repo.
  ['--conditions=source', '--import', import.meta.resolve('tsx'), join(root, 'src/doppel.cli.ts'), ...process.argv.slice(2)],
  // `pnpm doppel` runs scripts from the repo root; INIT_CWD is where the user typed it,
  // so relative folders and the report path mean what the user expects.
  { stdio: 'inherit', cwd: process.env.INIT_CWD ?? process.cwd() },
);
// Ctrl-C already reaches the CLI through the terminal's process group, and the CLI stops
// its services itself: the wrapper only ignores SIGINT, relays SIGTERM and mirrors the exit.
process.on('SIGINT', () => {});
process.on('SIGTERM', () => child.kill('SIGTERM'));
child.on('exit', (code, signal) => process.exit(code ?? (signal === 'SIGINT' ? 130 : 1)));
