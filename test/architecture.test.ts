/**
 * The dependency rules of DESIGN.md, checked: protocol/ is a pure codec (no sockets, timers,
 * config, logging or scanning) and src/ reaches it only through protocol/index.ts.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = join(import.meta.dirname, '..');

function tsFiles(dir: string): string[] {
  return readdirSync(join(ROOT, dir), { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && e.name.endsWith('.ts'))
    .map((e) => relative(ROOT, join(e.parentPath, e.name)));
}

function imports(file: string): string[] {
  const text = readFileSync(join(ROOT, file), 'utf8');
  return [...text.matchAll(/(?:^|\n)\s*(?:import|export)[^'";]*?from\s+['"]([^'"]+)['"]/g)].map((m) => m[1]!);
}

describe('architecture', () => {
  it('protocol/ imports only its own modules', () => {
    for (const file of tsFiles('protocol')) {
      for (const spec of imports(file)) expect(spec, `${file} imports ${spec}`).toMatch(/^\.\/[a-z0-9-]+\.js$/);
    }
    const source = tsFiles('protocol').map((f) => readFileSync(join(ROOT, f), 'utf8')).join('\n');
    expect(source).not.toMatch(/setTimeout|setInterval|process\.|console\./);
  });

  it('src/ imports protocol/ only through protocol/index.ts', () => {
    for (const file of tsFiles('src')) {
      for (const spec of imports(file).filter((s) => s.includes('protocol/'))) {
        expect(spec, `${file} imports ${spec}`).toMatch(/(\.\.\/)+protocol\/index\.js$/);
      }
    }
  });

  it('verdict/ is pure: no I/O, no config, no logging', () => {
    for (const file of tsFiles('src/verdict')) {
      for (const spec of imports(file)) expect(spec, `${file} imports ${spec}`).not.toMatch(/^node:(fs|net|child_process)|pino|\/config\/|\/server\//);
    }
  });
});
