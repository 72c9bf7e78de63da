/**
 * Top self-time functions of a V8 CPU profile (node --cpu-prof), with TypeScript file:line for
 * code compiled to dist/ (through the .js.map beside each file, node:module's SourceMap).
 *
 *   node --import tsx bench/profile-top.ts PROFILE.cpuprofile [--top 10] [--all]
 *
 * Self time = samples whose top frame is the function. Without --all, "(idle)" is left out of the
 * listing and of the percentages (they are shares of busy time), and so are "(program)" and
 * "(garbage collector)", which are reported on their own line.
 */
import { existsSync, readFileSync } from 'node:fs';
import { SourceMap } from 'node:module';
import { relative, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
  columnNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

const ROOT = resolve(import.meta.dirname, '..');
const maps = new Map<string, SourceMap | null>();

function sourceMapFor(file: string): SourceMap | null {
  if (!maps.has(file)) {
    const mapFile = `${file}.map`;
    maps.set(file, existsSync(mapFile) ? new SourceMap(JSON.parse(readFileSync(mapFile, 'utf8')) as ConstructorParameters<typeof SourceMap>[0]) : null);
  }
  return maps.get(file)!;
}

/** "src/server/connection.ts:123" for a frame in dist/, else the script's own path and line. */
export function location(cf: CallFrame): string {
  if (cf.url === '') return '(native)';
  if (!cf.url.startsWith('file:')) return `${cf.url}:${cf.lineNumber + 1}`;
  const file = fileURLToPath(cf.url);
  const map = file.endsWith('.js') ? sourceMapFor(file) : null;
  const entry = map?.findEntry(cf.lineNumber, cf.columnNumber) as { originalSource?: string; originalLine?: number } | undefined;
  if (entry?.originalSource !== undefined && entry.originalLine !== undefined) {
    const src = entry.originalSource.startsWith('file:') ? fileURLToPath(entry.originalSource) : resolve(file, '..', entry.originalSource);
    return `${relative(ROOT, src)}:${entry.originalLine + 1}`;
  }
  return `${relative(ROOT, file)}:${cf.lineNumber + 1}`;
}

export function topSelf(profile: Profile, top: number, all: boolean): string {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const self = new Map<string, number>();
  const special = new Map<string, number>();
  let busy = 0;
  let total = 0;
  profile.samples.forEach((id, i) => {
    const d = profile.timeDeltas[i] ?? 0;
    total += d;
    const cf = byId.get(id)!.callFrame;
    const name = cf.functionName || '(anonymous)';
    if (!all && name.startsWith('(') && cf.url === '') {
      special.set(name, (special.get(name) ?? 0) + d);
      if (name !== '(idle)') busy += d;
      return;
    }
    busy += d;
    const key = `${name}  ${location(cf)}`;
    self.set(key, (self.get(key) ?? 0) + d);
  });
  const pct = (v: number, of: number): string => `${((100 * v) / of).toFixed(1).padStart(5)}%`;
  const lines = [
    `profile: ${(total / 1e6).toFixed(2)} s sampled, ${(busy / 1e6).toFixed(2)} s busy` +
      [...special].map(([k, v]) => `, ${k} ${(v / 1e6).toFixed(2)} s`).join(''),
    '',
    '| # | self % of busy | self ms | function | where |',
    '|---:|---:|---:|---|---|',
  ];
  [...self]
    .sort((a, b) => b[1] - a[1])
    .slice(0, top)
    .forEach(([key, v], i) => {
      const [fn, where] = key.split('  ');
      lines.push(`| ${i + 1} | ${pct(v, busy)} | ${(v / 1000).toFixed(0)} | \`${fn}\` | ${where} |`);
    });
  return lines.join('\n');
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const { values, positionals } = parseArgs({
    args: process.argv.slice(2),
    options: { top: { type: 'string' }, all: { type: 'boolean' } },
    allowPositionals: true,
  });
  for (const file of positionals) {
    console.log(`${file}\n${topSelf(JSON.parse(readFileSync(file, 'utf8')) as Profile, Number(values.top ?? 10), values.all === true)}\n`);
  }
}
