import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { printedSchema } from '../src/resolvers/schema.ts';

describe('schema.graphql', () => {
  it('matches the schema generated from the code (run `npm run schema` after changing the API)', () => {
    const file = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'schema.graphql');
    expect(fs.readFileSync(file, 'utf8')).toBe(printedSchema());
  });
});
