import { describe, expect, it } from 'vitest';
import { isPosixShellScript, renderLaunchToken } from '../../src/render/launch-token.js';

describe('%%themis_launch%% rendering (render/launch-token.ts)', () => {
  it('a POSIX shell script reads THEMIS_LAUNCH with the gen-time prefix as the fallback', () => {
    expect(renderLaunchToken(['srun', '--exact', '-n', '2', '-c', '1'], '#!/bin/bash\n')).toBe('${THEMIS_LAUNCH-srun --exact -n 2 -c 1}');
    // No launcher (local): an unset THEMIS_LAUNCH falls back to nothing, an empty one stays empty.
    expect(renderLaunchToken([], '#!/bin/sh\n')).toBe('${THEMIS_LAUNCH-}');
  });

  it('any other script gets the gen-time prefix as text', () => {
    expect(renderLaunchToken(['flux', 'run', '-n', '2'], '#!/usr/bin/env python3\n')).toBe('flux run -n 2');
    expect(renderLaunchToken(['jsrun', '-n', '2'], '#!/bin/tcsh -f\n')).toBe('jsrun -n 2');
  });

  it('tells shells by the #! line: env (with -S and options), paths, none at all', () => {
    for (const head of ['#!/bin/sh', '#!/bin/bash -eu', '#! /usr/bin/env bash', '#!/usr/bin/env -S bash -e', '#!/usr/bin/zsh', '#!/bin/dash\r', 'echo no shebang']) {
      expect(isPosixShellScript(`${head}\necho hi\n`), head).toBe(true);
    }
    for (const head of ['#!/usr/bin/env python3', '#!/usr/bin/perl', '#!/bin/csh', '#!/usr/bin/env -S fish', '#!']) {
      expect(isPosixShellScript(`${head}\necho hi\n`), head).toBe(false);
    }
    expect(isPosixShellScript('#!/bin/sh')).toBe(true);
  });
});
