import fs from 'node:fs';
import path from 'node:path';

/**
 * What kind of file system a path is on, from statfs's magic number: it decides how much a
 * lookup can be trusted (claims) and whether reading many files pays off in parallel (scans).
 */

/**
 * statfs magic numbers of network and parallel file systems, where every open is a round trip to
 * a server (0.2-1 ms): 100,000 sequential reads there take a minute, N threads cut it N-fold.
 * On a local disk the sequential scan is fastest (async fs calls cost 3-5x more here).
 */
const NETWORK_FS = new Set<number>([
  0x6969, // NFS
  0x0bd00bd0, // Lustre
  0x47504653, // GPFS / Spectrum Scale
  0x19830326, // BeeGFS
  0xff534d42, // CIFS
  0xfe534d42, // SMB2
  0x00c36400, // CephFS
  0x5346414f, // AFS
  0xaad7aaea, // PanFS
  0x65735546, // FUSE (sshfs, many site file systems)
]);

/** True when `dir` lives on a network or parallel file system (false when unsure). */
export function onNetworkFs(dir: string): boolean {
  try {
    return NETWORK_FS.has(Number(fs.statfsSync(dir).type));
  } catch {
    return false;
  }
}

/** Local file systems (statfs magic numbers): one kernel, so every lookup sees the latest rename. */
const LOCAL_FS_TYPES = new Set([
  0xef53, // ext2/3/4
  0x58465342, // xfs
  0x9123683e, // btrfs
  0x01021994, // tmpfs
  0x2fc12fc1, // zfs
  0xf2f52010, // f2fs
  0x794c7630, // overlayfs
]);
const coherentDirs = new Map<string, boolean>();
/** `THEMIS_REVALIDATE_CLAIMS=1`: treat every file system as shared (open, never a plain stat). */
export const REVALIDATE_ENV = 'THEMIS_REVALIDATE_CLAIMS';

/** Forget what was learnt of file system types (tests, or after changing REVALIDATE_ENV). */
export function forgetFileSystemTypes(): void {
  coherentDirs.clear();
}

/**
 * Does a plain stat of `p` (a run's `.themis/claim`) see renames made by other hosts at once?
 * Only on a local file system; NFS, Lustre, GPFS and anything unknown get the revalidating open.
 * Asked once per directory of run directories.
 */
export function lookupsCoherent(p: string): boolean {
  const meta = path.dirname(p);
  const key = path.dirname(path.dirname(meta));
  let v = coherentDirs.get(key);
  if (v === undefined) {
    try {
      v = process.env[REVALIDATE_ENV] !== '1' && LOCAL_FS_TYPES.has(Number(fs.statfsSync(meta).type));
    } catch {
      return false; // this run's directory is gone or unreadable: ask again for the next one
    }
    if (coherentDirs.size >= 1024) coherentDirs.clear();
    coherentDirs.set(key, v);
  }
  return v;
}
