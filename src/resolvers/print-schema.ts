import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { printedSchema } from './schema.ts';

/** npm run schema: regenerates the checked-in schema.graphql from the code. */
const target = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'schema.graphql');
fs.writeFileSync(target, printedSchema());
console.log(`wrote ${path.relative(process.cwd(), target)}`);
