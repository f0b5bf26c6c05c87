// The bench's strace counter (bench/strace-count.mjs, the metaops and summary cases): real-looking
// `strace -f -qq -y` lines, split calls, failed calls, relative paths, what counts as namespace-changing.
import { describe, expect, it } from 'vitest';
import { countStrace, normalise, splitArgs } from '../../bench/strace-count.mjs';

const ROOT = '/tmp/b/e';

const TRACE = `
29688 execve("/usr/bin/node", ["node", "/work/dist/bin/them"..., "run", "--cores", "2"], 0x7ffeb0cdd4e0 /* 39 vars */) = 0
29688 openat(AT_FDCWD</tmp/b/e>, "/etc/ld.so.cache", O_RDONLY|O_CLOEXEC) = 3</etc/ld.so.cache>
29688 openat(AT_FDCWD</tmp/b/e>, "/tmp/b/e/runs/17/.themis/status.json", O_RDONLY|O_CLOEXEC) = 22</tmp/b/e/runs/17/.themis/status.json>
29688 statx(22</tmp/b/e/runs/17/.themis/status.json>, "", AT_STATX_SYNC_AS_STAT|AT_EMPTY_PATH, STATX_ALL, {stx_mask=STATX_ALL|STATX_MNT_ID, stx_size=237, ...}) = 0
29688 read(22</tmp/b/e/runs/17/.themis/status.json>, "{\\"format\\":1,\\"root\\":\\"/tmp/b/e/runs/17\\"}", 8192) = 37
29688 close(22</tmp/b/e/runs/17/.themis/status.json>) = 0
29688 link("/tmp/b/e/.themis_setup/packers/vm-29688-fbf210.owner", "/tmp/b/e/runs/17/.themis/claim") = 0
29688 access("/tmp/b/e/runs/17/.themis/dequeue.request", F_OK) = -1 ENOENT (No such file or directory)
29688 rename("/tmp/b/e/runs/17/.themis/.status.json.spare", "/tmp/b/e/runs/17/.themis/.status.json.tmp-29688-b24133aa-v") = 0
29688 openat(AT_FDCWD</tmp/b/e>, "/tmp/b/e/runs/17/.themis/.status.json.tmp-29688-b24133aa-v", O_WRONLY|O_CREAT|O_TRUNC|O_CLOEXEC, 0666) = 23</tmp/b/e/runs/17/.themis/.status.json.tmp-29688-b24133aa-v>
29688 write(23</tmp/b/e/runs/17/.themis/.status.json.tmp-29688-b24133aa-v>, "{\\"status\\":\\"running\\"}", 21) = 21
29688 rename("/tmp/b/e/runs/17/.themis/.status.json.tmp-29688-b24133aa-v", "/tmp/b/e/runs/17/.themis/status.json") = 0
29700 link("/tmp/b/e/runs/17/.themis/log.spare", "/tmp/b/e/runs/17/run.log" <unfinished ...>
29688 epoll_pwait(14,  <unfinished ...>
29700 <... link resumed>)               = 0
29700 unlink("/tmp/b/e/runs/17/.themis/log.spare" <unfinished ...>
29688 <... epoll_pwait resumed>[], 1024, 0, NULL, 8) = 0
29700 <... unlink resumed>)             = -1 ENOENT (No such file or directory)
29879 chdir("/tmp/b/e/runs/17")   = 0
29879 stat("input.dat", 0x7ffd5c1e0a30) = -1 ENOENT (No such file or directory)
29879 openat(AT_FDCWD</tmp/b/e/runs/17>, "out.txt", O_WRONLY|O_CREAT|O_APPEND, 0644) = 3</tmp/b/e/runs/17/out.txt>
29879 openat(AT_FDCWD</tmp/b/e/runs/17>, "../../../../etc/passwd", O_RDONLY) = 4</etc/passwd>
29879 execve("/bin/true", ["/bin/true"], 0x56434197a610 /* 44 vars */) = 0
29688 statx(AT_FDCWD</tmp/b/e>, "/tmp/b/e/runs/17/.themis/claim", AT_STATX_SYNC_AS_STAT|AT_SYMLINK_NOFOLLOW, STATX_ALL <unfinished ...>
29688 <... statx resumed>{stx_mask=STATX_ALL|STATX_MNT_ID, stx_attributes=0, stx_mode=S_IFREG|0644, stx_size=203, ...}) = 0
29688 rename("/tmp/b/e/runs/17/.themis/claim", "/tmp/b/e/runs/17/.themis/claim.released-29688-1b279e330e2df53bi") = 0
29688 unlink("/tmp/b/e/runs/17/.themis/claim.released-29688-1b279e330e2df53bi") = 0
29688 mkdir("/tmp/b/e/.themis_setup/packers", 0777) = -1 EEXIST (File exists)
29688 openat(AT_FDCWD</tmp/b/e>, "/tmp/b/e2/runs/1/.themis/status.json", O_RDONLY) = 5</tmp/b/e2/runs/1/.themis/status.json>
29688 --- SIGCHLD {si_signo=SIGCHLD, si_code=CLD_EXITED, si_pid=29879, si_status=0, si_utime=0, si_stime=0} ---
29688 getcwd("/tmp/b/e", 4096) = 9
29701 openat(AT_FDCWD</tmp/b/e>, "/tmp/b/e/runs/18/.themis/status.json", O_RDONLY|O_CLOEXEC <unfinished ...>
`;

describe('strace counter', () => {
  const r = countStrace(TRACE, { root: ROOT });
  const count = (key: string) => r.patterns.find((p: { key: string }) => p.key === key)?.count ?? 0;

  it('counts calls whose path lies under the root, by class, failed ones too', () => {
    expect(r.byClass).toMatchObject({ open: 4, stat: 3, chdir: 1, link: 2, rename: 3, unlink: 2, mkdir: 1, other: 0 });
    expect(r.total).toBe(16);
    // access ENOENT, unlink (resumed) ENOENT, stat ENOENT, mkdir EEXIST
    expect(r.failed).toBe(4);
    expect(count('access runs/N/.themis/dequeue.request = ENOENT')).toBe(1);
    expect(count('mkdir .themis_setup/packers = EEXIST')).toBe(1);
  });

  it('joins an unfinished call with its resumed half, and counts one left unfinished', () => {
    expect(count('link runs/N/.themis/log.spare -> runs/N/run.log')).toBe(1);
    expect(count('unlink runs/N/.themis/log.spare = ENOENT')).toBe(1);
    expect(count('statx runs/N/.themis/claim')).toBe(1);
    // 29701's open never resumed (the process died in it): still issued
    expect(count('openat runs/N/.themis/status.json')).toBe(2);
    expect(r.unmatchedResumes).toBe(0);
  });

  it('resolves relative paths against the cwd after chdir, and against AT_FDCWD<...>', () => {
    expect(count('stat runs/N/input.dat = ENOENT')).toBe(1);
    expect(count('openat O_CREAT runs/N/out.txt')).toBe(1);
    // ../../../../etc/passwd from runs/17 is outside the root; so is a sibling ensemble /tmp/b/e2
    expect(r.patterns.some((p: { paths: string }) => p.paths.includes('passwd') || p.paths.includes('e2'))).toBe(false);
  });

  it('counts namespace changes: link, rename, unlink, mkdir and O_CREAT opens as creates', () => {
    expect(r.creates).toBe(2);
    expect(r.namespace).toBe(2 + 3 + 2 + 1 + 2);
    expect(count('openat O_CREAT runs/N/.themis/.status.json.tmp-X')).toBe(1);
  });

  it('keeps descriptor-only calls apart and never reads written data as a path', () => {
    expect(r.fdOps).toEqual({ 'statx(fd)': 1, close: 1 });
    expect(r.bySyscall.write).toBeUndefined();
    expect(r.bySyscall.getcwd).toBeUndefined();
    expect(r.bySyscall.execve).toBeUndefined();
  });

  it('normalises run ids, temp and claim-aside suffixes and packer ids', () => {
    expect(normalise('runs/123/.themis/.status.json.tmp-29688-b24133aa-10')).toBe('runs/N/.themis/.status.json.tmp-X');
    expect(normalise('runs/7/.themis/claim.released-29688-1b279e330e2df53bi')).toBe('runs/N/.themis/claim.released-X');
    expect(normalise('.themis_setup/packers/node12.cluster-4242-0a1b2c.owner')).toBe('.themis_setup/packers/PACKER.owner');
    expect(normalise('.themis_setup/logs/packer-vm-4242-0a1b2c.log')).toBe('.themis_setup/logs/packer-PACKER.log');
    expect(normalise('.themis_setup/index/000001.jsonl')).toBe('.themis_setup/index/000001.jsonl');
  });

  it('splits arguments around quotes, brackets and -y paths', () => {
    const { args, closed, rest } = splitArgs('AT_FDCWD</a, b>, "x, \\"y\\"", {a=1, b=[2, 3]}, O_RDONLY) = 3</a, b/x>');
    expect(args).toEqual(['AT_FDCWD</a, b>', '"x, \\"y\\""', '{a=1, b=[2, 3]}', 'O_RDONLY']);
    expect(closed).toBe(true);
    expect(rest).toBe(' = 3</a, b/x>');
  });
});
