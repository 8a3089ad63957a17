#!/usr/bin/env node
// Stand-in for a native `solc` binary, backed by solcjs (npm `solc`, pinned in package.json).
// Why: no native solc can be installed here (forge's svm downloads are unreachable), so
// foundry.toml points `solc` at this script. Forge only ever calls it two ways:
//   solc --version
//   solc --base-path <root> [--include-path <dir>]... [--allow-paths <dirs>] --standard-json
// (standard-JSON input on stdin, output on stdout; --allow-paths is accepted and not enforced).
// Set SOLC_JS_LOG=<file> to log each argv.
'use strict';
const fs = require('fs');
const path = require('path');
const solc = require('solc');

const args = process.argv.slice(2);
if (process.env.SOLC_JS_LOG) fs.appendFileSync(process.env.SOLC_JS_LOG, JSON.stringify(args) + '\n');

if (args.includes('--version')) {
  // forge reads the last line, strips "Version: " and parses the rest as semver.
  console.log('solc, the solidity compiler commandline interface');
  console.log('Version: ' + solc.version());
  process.exit(0);
}

if (!args.includes('--standard-json')) {
  console.error('scripts/solc.js: only --version and --standard-json are supported; got: ' + args.join(' '));
  process.exit(1);
}

// Directories that import paths are looked up under, like native solc: base path, then include paths.
const roots = [];
args.forEach((a, i) => {
  if (a === '--base-path' || a === '--include-path') roots.push(path.resolve(args[i + 1]));
});
if (roots.length === 0) roots.push(process.cwd());

// solcjs calls this for any source that forge did not already put into the input JSON.
function findImports(name) {
  for (const root of roots) {
    try {
      return { contents: fs.readFileSync(path.resolve(root, name), 'utf8') };
    } catch {} // not under this root; try the next
  }
  return { error: 'File not found under ' + roots.join(', ') };
}

let output;
try {
  output = solc.compile(fs.readFileSync(0, 'utf8'), { import: findImports });
} catch (e) {
  // Never crash: report the failure the way solc does, in the standard-JSON errors array.
  const message = 'solcjs failed: ' + (e && e.stack ? e.stack : String(e));
  output = JSON.stringify({
    errors: [{ component: 'general', severity: 'error', type: 'InternalCompilerError', message, formattedMessage: message }],
  });
}
process.stdout.write(output);
