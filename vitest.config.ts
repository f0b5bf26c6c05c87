import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // 2 cores here; integration tests start real processes.
    maxWorkers: 2,
    pool: 'forks',
  },
});
