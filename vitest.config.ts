import { defineConfig } from 'vitest/config';

/**
 * Two groups: unit and in-process socket tests run in parallel first; then the integration tests
 * (real child processes, c-icap-client, 1 GiB bodies, latency bounds) run one file at a time,
 * so their timing and memory figures are not disturbed by other tests on a 2-core machine.
 */
export default defineConfig({
  test: {
    globalSetup: ['test/global-setup.ts'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    projects: [
      {
        extends: true,
        test: {
          name: 'unit',
          include: ['test/**/*.test.ts'],
          exclude: ['test/integration/**'],
          maxWorkers: 2,
          sequence: { groupOrder: 0 },
        },
      },
      {
        extends: true,
        test: {
          name: 'integration',
          include: ['test/integration/**/*.test.ts'],
          fileParallelism: false,
          sequence: { groupOrder: 1 },
        },
      },
    ],
  },
});
