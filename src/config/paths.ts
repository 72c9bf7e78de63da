/**
 * Where the shipped files live. This module runs from src/config/ (tsx, vitest) and from
 * dist/src/config/ (compiled), so rather than counting `..` we walk up to package.json.
 */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

function findPackageRoot(start: string): string {
  let dir = start;
  for (;;) {
    if (existsSync(join(dir, 'package.json'))) return dir;
    const parent = dirname(dir);
    if (parent === dir) throw new Error(`icap-bridge: no package.json above ${start}`);
    dir = parent;
  }
}

const PACKAGE_ROOT = findPackageRoot(dirname(fileURLToPath(import.meta.url)));

/** Absolute path of the shipped config/icap-bridge.yaml. */
export function defaultConfigPath(): string {
  return join(PACKAGE_ROOT, 'config', 'icap-bridge.yaml');
}

/** The shipped block page; a service without `block_page` uses it, wherever its config file is. */
export const DEFAULT_BLOCK_PAGE = join(PACKAGE_ROOT, 'config', 'block-page.html');
