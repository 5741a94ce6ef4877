// What Cloudflare's codemode offers a model for catalogs read as JSON on stdin (run by benchmarks.peers):
// its one code tool, built by the package's own `createBrowserCodeTool`, whose description embeds the
// TypeScript declarations of every tool. (The package's main entry needs the Workers runtime; the browser
// entry builds the same description from plain JSON Schema.) Nothing is executed.
// argv[2]: the package directory (node_modules/@cloudflare/codemode, pinned in scripts/npm-servers.txt).
// stdin: {"server": [tool definitions as captured]};
// stdout: {"version": ..., "catalogs": {"server": {name, description, inputSchema, outputSchema}}}.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const root = process.argv[2];
const { createBrowserCodeTool } = await import(pathToFileURL(join(root, "dist", "browser.js")).href);
const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8"));
const catalogs = JSON.parse(readFileSync(0, "utf8"));
const unused = { execute: async () => ({ result: null }) }; // the executor is never called
const out = {};
for (const [server, tools] of Object.entries(catalogs)) {
  const record = {};
  for (const tool of tools) {
    record[tool.name] = {
      description: tool.description,
      inputSchema: tool.inputSchema ?? { type: "object", properties: {} },
      ...(tool.outputSchema ? { outputSchema: tool.outputSchema } : {}),
    };
  }
  const { name, description, inputSchema, outputSchema } = createBrowserCodeTool({ tools: record, executor: unused });
  out[server] = { name, description, inputSchema, outputSchema };
}
process.stdout.write(JSON.stringify({ version: pkg.version, catalogs: out }));
