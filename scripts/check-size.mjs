// Keeps src/ easy to read (issue 12): no file over 300 lines, no function over 80, nested closures included.
// `npm run lint:size`; CI runs it. Prints each file or function over its limit, and exits 1 if there is one.
import { readdirSync, readFileSync } from "node:fs"
import { join, relative } from "node:path"
import { fileURLToPath } from "node:url"
import ts from "typescript"

const root = fileURLToPath(new URL("..", import.meta.url))
const maxFileLines = 300
const maxFunctionLines = 80

const sources = (dir) =>
  readdirSync(dir, { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory() ? sources(join(dir, entry.name)) : entry.name.endsWith(".ts") ? [join(dir, entry.name)] : []
  )

/** what to call a function in the report: its variable, property or declared name */
const nameOf = (node) => {
  if (node.name !== undefined) return node.name.getText()
  const parent = node.parent
  if (ts.isVariableDeclaration(parent) || ts.isPropertyAssignment(parent) || ts.isPropertyDeclaration(parent)) {
    return parent.name.getText()
  }
  return "(anonymous)"
}

const problems = []
for (const file of sources(join(root, "src"))) {
  const text = readFileSync(file, "utf8")
  const path = relative(root, file)
  const source = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true)
  const lines = source.getLineAndCharacterOfPosition(text.length).line + (text.endsWith("\n") ? 0 : 1)
  if (lines > maxFileLines) problems.push(`${path}: ${lines} lines (at most ${maxFileLines})`)
  const visit = (node) => {
    if (ts.isFunctionLike(node) && "body" in node && node.body !== undefined) {
      const start = source.getLineAndCharacterOfPosition(node.getStart(source)).line
      const end = source.getLineAndCharacterOfPosition(node.getEnd()).line
      const length = end - start + 1
      if (length > maxFunctionLines) {
        problems.push(`${path}:${start + 1}: function ${nameOf(node)} is ${length} lines (at most ${maxFunctionLines})`)
      }
    }
    ts.forEachChild(node, visit)
  }
  visit(source)
}

for (const problem of problems) console.log(problem)
if (problems.length > 0) {
  console.log(`${problems.length} over the limits: split by concept (one module per concept, small functions)`)
  process.exit(1)
}
console.log(`src/: every file within ${maxFileLines} lines, every function within ${maxFunctionLines}`)
