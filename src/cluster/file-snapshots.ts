/**
 * The cluster primary's copies of the files its accepted configurations name (config-files.ts).
 * A worker reads these instead of the originals, so one started after the originals were edited
 * or removed serves what its siblings serve, as it already runs the configuration they run.
 *
 * Copies on disk, not file contents sent over IPC: a hash list may be hundreds of MiB, which one
 * JSON message per worker would have to carry (and a V8 string hold), while a copy costs the disk
 * once whatever the number of workers, and the message carries only paths. So nothing here bounds
 * a file's size; the disk does, as for the original.
 *
 *   <spool.directory at start>/icap-bridge-files-<primary pid>/    mode 0700
 *     start/<n>-<name>          restart-only files (TLS certificate, key, client CA), copied once:
 *                               the workers that started with the node never read them again
 *     <generation>/<n>-<name>   the others, copied for each configuration the primary accepts
 *
 * A copy keeps its original's mode (a key stays 0600); the directory keeps everyone else out.
 * A generation's copies go once no worker may still read them (keepOnly); all of it at exit. A
 * primary killed outright leaves the directory, which the next one with the same pid removes, as
 * worker-spool.ts does with a worker's.
 */
import { constants, mkdirSync, rmSync } from 'node:fs';
import { copyFile, mkdir, rm } from 'node:fs/promises';
import { basename, join } from 'node:path';
import type { Config } from '../config/index.js';
import { namedFiles, type FileCopies } from './config-files.js';

export class FileSnapshots {
  readonly #root: string;
  #startCopies: FileCopies = {};
  /** Generations whose copies are on disk. */
  readonly #generations = new Set<number>();

  private constructor(root: string) {
    this.#root = root;
  }

  /** Makes the directory under `parent` and copies `config`'s restart-only files into it. */
  static async create(parent: string, pid: number, config: Config): Promise<FileSnapshots> {
    const snapshots = new FileSnapshots(join(parent, `icap-bridge-files-${pid}`));
    rmSync(snapshots.#root, { recursive: true, force: true });
    mkdirSync(snapshots.#root, { mode: 0o700 });
    try {
      snapshots.#startCopies = await copyAll(join(snapshots.#root, 'start'), namedFiles(config).restartOnly);
    } catch (err) {
      snapshots.removeAll();
      throw err;
    }
    return snapshots;
  }

  /**
   * Copies the files of `config` (as the workers will run it) for `generation`; resolves with
   * every copy a worker of that generation reads. On failure (a file gone since it was validated,
   * a full disk) nothing of the generation is left and the error says which file.
   */
  async take(generation: number, config: Config): Promise<FileCopies> {
    const dir = join(this.#root, String(generation));
    try {
      const copies = await copyAll(dir, namedFiles(config).reloaded);
      this.#generations.add(generation);
      return { ...this.#startCopies, ...copies };
    } catch (err) {
      await rm(dir, { recursive: true, force: true });
      throw err;
    }
  }

  /** Removes the copies of every generation but `keep`. */
  keepOnly(keep: ReadonlySet<number>): void {
    for (const generation of this.#generations) {
      if (keep.has(generation)) continue;
      this.#generations.delete(generation);
      try {
        rmSync(join(this.#root, String(generation)), { recursive: true, force: true });
      } catch {
        // Busy or unreadable: removed with the rest at exit.
      }
    }
  }

  /** Removes every copy (the primary is exiting). */
  removeAll(): void {
    try {
      rmSync(this.#root, { recursive: true, force: true });
    } catch {
      // Nothing more to do at exit; the next primary with this pid removes it.
    }
  }
}

/** Copies each of `files` into the new directory `dir`, named `<n>-<its name>` (two files may share a name). */
async function copyAll(dir: string, files: readonly string[]): Promise<FileCopies> {
  if (files.length === 0) return {};
  await mkdir(dir, { mode: 0o700 });
  const copies: Record<string, string> = {};
  for (const [n, file] of files.entries()) {
    const copy = join(dir, `${n}-${basename(file)}`);
    // A clone where the file system can (copy-on-write): a large hash list then costs no space.
    await copyFile(file, copy, constants.COPYFILE_FICLONE);
    copies[file] = copy;
  }
  return copies;
}
