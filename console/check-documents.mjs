// Checks every GraphQL document of the console against the server's schema, so a schema change
// that breaks a page fails the build (and CI), not a user.
//
// A document is a gql`...` template in src/ (no interpolation allowed: the text is the document).
// Each must parse, hold exactly one named operation, and pass graphql-js `validate` against the
// SDL that `cloudbase-ai schema` prints. The SDL comes from $CONSOLE_SDL (a file) when set, else
// from the debug or release binary in ../target.
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { buildSchema, parse, validate, Kind } from 'graphql';

const here = new URL('.', import.meta.url).pathname;

function sdl() {
  if (process.env.CONSOLE_SDL) return readFileSync(process.env.CONSOLE_SDL, 'utf8');
  for (const profile of ['debug', 'release']) {
    const bin = join(here, '..', 'target', profile, 'cloudbase-ai');
    if (existsSync(bin)) return execFileSync(bin, ['schema'], { encoding: 'utf8' });
  }
  throw new Error('no SDL: set CONSOLE_SDL or build the server (cargo build -p cloudbase-server)');
}

function* files(dir) {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) yield* files(path);
    else if (/\.tsx?$/.test(name)) yield path;
  }
}

const schema = buildSchema(sdl());
const template = /\bgql`([^`]*)`/g;
let count = 0;
const failures = [];
for (const file of files(join(here, 'src'))) {
  const text = readFileSync(file, 'utf8');
  for (const match of text.matchAll(template)) {
    const where = `${relative(here, file)}:${text.slice(0, match.index).split('\n').length}`;
    const source = match[1];
    count += 1;
    if (source.includes('${')) {
      failures.push(`${where}: a document may not interpolate`);
      continue;
    }
    let doc;
    try {
      doc = parse(source);
    } catch (e) {
      failures.push(`${where}: ${e.message}`);
      continue;
    }
    const operations = doc.definitions.filter((d) => d.kind === Kind.OPERATION_DEFINITION);
    if (operations.length !== 1 || !operations[0].name) {
      failures.push(`${where}: a document holds exactly one named operation`);
    }
    for (const error of validate(schema, doc)) failures.push(`${where}: ${error.message}`);
  }
}
if (count === 0) failures.push('no gql`...` documents found in src/');
if (failures.length) {
  console.error(failures.join('\n'));
  console.error(`${failures.length} problem(s) in the console's GraphQL documents`);
  process.exit(1);
}
console.log(`${count} GraphQL documents of the console are valid against the server's schema`);
