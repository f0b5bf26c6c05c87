import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PACK_BIN, makeTempDir, runThemis } from '../helpers/cli.js';
import { haveChromium, launchChromium } from '../helpers/browser.js';
import { spawn } from 'node:child_process';

/**
 * The report of a small finished ensemble (failures, a restart, GPUs, two allocations) opened in
 * a real headless Chromium with every network request refused: it renders without console
 * errors, asks for nothing off the file, and its timeline holds one mark per step attempt.
 */
const required = process.env.CI === 'true';
let dir: string;

function pack(args: string[]): Promise<number | null> {
  return new Promise((resolve) => {
    const c = spawn(process.execPath, [PACK_BIN, ...args], { cwd: dir, stdio: 'ignore', env: { ...process.env, CI: 'true' } });
    c.on('exit', (code) => resolve(code));
  });
}

describe.skipIf(!haveChromium && !required)('themis report in headless Chromium', () => {
  beforeAll(async () => {
    dir = makeTempDir('themis-report-browser-');
    fs.writeFileSync(
      path.join(dir, 'app.sh'),
      '#!/bin/sh\nsleep %%secs%%\necho "run %%themis_run_id%% working"\nif [ "%%fail%%" = 1 ]; then echo "bad input: %%label%%" >&2; exit 2; fi\necho done\n',
      { mode: 0o755 },
    );
    const rows = ['secs,fail,label,gpus_per_task,x'];
    for (let i = 1; i <= 8; i++) rows.push(`${(0.2 + (i % 3) * 0.15).toFixed(2)},${i === 3 || i === 6 ? 1 : 0},r${i},${i % 2},${i}`);
    fs.writeFileSync(path.join(dir, 's.csv'), rows.join('\n') + '\n');
    const gen = runThemis(['gen', './app.sh', 's.csv', '--scheduler', 'local', '--allocations', '2', '--max-restarts', '1', '--vary-all'], { cwd: dir });
    expect(gen.code, gen.stderr).toBe(0);
    // Two allocations at once, each with its own plan, 2 cores and 2 GPUs.
    const codes = await Promise.all([1, 2].map((k) => pack(['--allocation', String(k), '--no-steal', '--cores', '2', '--gpus', '2', '--heartbeat', '1'])));
    expect(codes.every((c) => c === 0 || c === 1)).toBe(true);
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('renders with no console errors and no request off the file, one timeline mark per step attempt', async () => {
    const out = path.join(dir, 'report.html');
    const r = runThemis(['report', '--out', out], { cwd: dir });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('2 allocations');
    const json = JSON.parse(runThemis(['report', '--json'], { cwd: dir }).stdout);
    // Step attempts as the statuses tell them: one `started` per attempt.
    let attempts = 0;
    for (const id of fs.readdirSync(path.join(dir, 'runs'))) {
      const s = JSON.parse(fs.readFileSync(path.join(dir, 'runs', id, '.themis/status.json'), 'utf8'));
      attempts += s.history.filter((h: { event: string }) => h.event === 'started').length;
    }
    expect(attempts).toBe(10); // 8 runs, 2 of them restarted once
    expect(json.failures.count).toBe(2);
    expect(json.allocations).toHaveLength(2);
    expect(json.timeline.mode).toBe('steps');

    const browser = await launchChromium();
    try {
      const context = await browser.newContext();
      const offFile: string[] = [];
      await context.route('**/*', (route) => {
        const url = route.request().url();
        if (url.startsWith('file:')) return route.continue();
        offFile.push(url);
        return route.abort();
      });
      const page = await context.newPage();
      const errors: string[] = [];
      page.on('console', (m) => {
        if (m.type() === 'error') errors.push(m.text());
      });
      page.on('pageerror', (e) => errors.push(String(e)));
      page.on('request', (q) => {
        if (!q.url().startsWith('file:')) offFile.push(q.url());
      });
      await page.goto(`file://${out}`);
      await page.waitForFunction(() => document.body.dataset.drawn === 'yes', null, { timeout: 20_000 });
      const seen = await page.evaluate(() => ({
        marks: document.querySelectorAll('.timeline svg g[aria-label="rect"] rect').length,
        perAllocation: [...document.querySelectorAll('.timeline')].map((t) => (t as HTMLElement).dataset.marks),
        gpuLanes: [...document.querySelectorAll('.timeline svg text')].some((t) => /GPUs/.test(t.textContent ?? '')),
        failures: document.querySelectorAll('#failures tbody tr').length,
        scatter: document.querySelectorAll('#scatter svg').length,
        runtimeCharts: document.querySelectorAll('#runtimes svg').length,
      }));
      expect(errors).toEqual([]);
      expect(offFile).toEqual([]);
      expect(seen.marks).toBe(attempts);
      expect(seen.perAllocation.map(Number).reduce((a, b) => a + b, 0)).toBe(attempts);
      expect(seen.gpuLanes).toBe(true);
      expect(seen.failures).toBe(2);
      expect(seen.runtimeCharts).toBeGreaterThan(0);
    } finally {
      await browser.close();
    }
  });
});
