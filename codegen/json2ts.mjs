// Compiles many JSON Schemas to TypeScript in one process, for taskschema codegen.
// stdin: {"schemas": [{"name": "...", "schema": {...}}, ...]}
// stdout: {"outputs": {"<name>": "<typescript>", ...}} (in input order)
// Remote and file $refs are never resolved: contracts only use local "#/definitions/..." refs.
import { compile } from "json-schema-to-typescript";

const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const { schemas } = JSON.parse(Buffer.concat(chunks).toString("utf8"));

const refused = {
  order: 1,
  canRead: () => true,
  read: (file) => {
    throw new Error(`taskschema codegen does not fetch $ref ${file.url}`);
  },
};

const outputs = {};
for (const { name, schema } of schemas) {
  outputs[name] = await compile(schema, name, {
    bannerComment: "",
    declareExternallyReferenced: true,
    unreachableDefinitions: true,
    additionalProperties: true,
    strictIndexSignatures: true,
    enableConstEnums: false,
    format: true,
    style: { printWidth: 100, singleQuote: false, trailingComma: "all" },
    $refOptions: { resolve: { http: refused, https: refused, file: refused } },
  });
}
process.stdout.write(JSON.stringify({ outputs }));
