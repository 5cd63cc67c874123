import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../helpers/processes.ts';
import { printedSchema } from '../../src/resolvers/schema.ts';

describe('schema.graphql', () => {
  it('matches the schema generated from the code (run `npm run schema` after changing the API)', () => {
    const file = path.join(REPO_ROOT, 'schema.graphql');
    expect(fs.readFileSync(file, 'utf8')).toBe(printedSchema());
  });
});
